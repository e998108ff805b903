"""Writing an export file so that a failed or interrupted save leaves nothing behind.

Blocking; callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ("output_file",)


@contextlib.contextmanager
def output_file(path: Path) -> Iterator[int]:
    """Yield a descriptor of a temporary file beside *path*; rename it to *path* on success."""
    tmp = path.with_name(f".{path.name}.aiopod-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        yield fd
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
