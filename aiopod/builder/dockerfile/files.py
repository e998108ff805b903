"""Finding and reading the Dockerfile of a build, as ``podman build`` does."""

from __future__ import annotations

import os
from pathlib import Path

from aiopod.errors import BuildError

__all__ = ("read_dockerfile",)


def read_dockerfile(context: Path, dockerfile: Path | None) -> tuple[Path, str]:
    """The Dockerfile and its text: *dockerfile* (``-f``) as given or else in the context
    (where podman looks too), by default ``Containerfile`` or else ``Dockerfile`` in the
    context (podman's order).  A missing context, file or content is a
    :class:`~aiopod.errors.BuildError` worded as podman's; bytes that are not UTF-8 are
    read as U+FFFD.  Blocking."""
    if not context.is_dir():
        raise BuildError(f'context must be a directory: "{os.path.abspath(context)}"')
    if dockerfile is None:
        path = context / "Containerfile"
        if not path.exists():
            path = context / "Dockerfile"
    else:
        path = dockerfile
    if not path.exists() and not path.is_absolute():
        path = context / path
    try:
        # Go reads bytes: invalid UTF-8 reaches the image as U+FFFD, as its JSON writes it.
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise BuildError(f"stat {os.path.abspath(path)}: no such file or directory") from None
    except OSError as exc:
        raise BuildError(f"reading Dockerfile {path}: {exc.strerror}") from None
    if not text.strip():
        raise BuildError(f'no contents in "{os.path.abspath(path)}"')
    return path, text
