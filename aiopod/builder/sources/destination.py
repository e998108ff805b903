"""Where a ``COPY``/``ADD`` destination is inside a stage's root file system.

A destination is looked up in the root file system the way buildah's copier does, inside
it: the image's symlinks are followed with the root as ``/`` (``/etc/link -> /tmp``
leads to ``tmp``), ``..`` stops at the root, and nothing outside the root is ever opened
(the in-root resolver of :mod:`aiopod.storage.rootfs_path`).

:func:`destination_hints` says whether the destination exists as a directory or a file
(what :func:`aiopod.builder.sources.copy_plan.copy_plan` needs to decide where the items
go).

Everything here that takes a root file system is blocking (it opens directories);
async callers run it in a worker thread.  :func:`root_components` is pure.
"""

from __future__ import annotations

import stat
from pathlib import Path

from aiopod.builder.sources.ignore import go_clean
from aiopod.storage.rootfs_path import (
    RootDir,
    TooManySymlinks,
    path_components,
    resolve_in_root,
)

__all__ = (
    "destination_hints",
    "root_components",
)


def root_components(path: str) -> tuple[str, ...]:
    """``path`` as root-relative components, ``..`` stopping at the root (Go's Clean)."""
    return tuple(path_components(go_clean("/" + path)))


def destination_hints(rootfs: Path, dest: str, workdir: str) -> tuple[bool, bool]:
    """``(is_dir, is_file)`` of a ``COPY`` destination in ``rootfs``, resolved inside it
    (the image's symlinks followed with ``rootfs`` as ``/``).  Blocking."""
    work = "/" + workdir.strip("/") if workdir.strip("/") else "/"
    dest_abs = dest if dest.startswith("/") else go_clean(work + "/" + dest)
    with RootDir(rootfs) as root:
        try:
            _, st = resolve_in_root(root, root_components(dest_abs), max_final_hops=40)
        except (FileNotFoundError, NotADirectoryError, TooManySymlinks):
            return False, False
    return stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)
