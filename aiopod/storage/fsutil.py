"""Small blocking file-system primitives for the store: atomic writes, directory fsyncs.

Every function here blocks; async callers run them in a worker thread
(``anyio.to_thread.run_sync``), batched per logical operation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from aiopod.errors import StorageFull

__all__ = (
    "PRIVATE_DIR_MODE",
    "atomic_write",
    "disk_errors",
    "fsync_dir",
    "fsync_file",
    "is_disk_full",
    "make_private_dir",
    "remove_tree",
)

PRIVATE_DIR_MODE = 0o700


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the directory entries of *path* durable (after a create or rename in it)."""
    _fsync(path, os.O_DIRECTORY)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Make the content of the file *path* durable (before it is renamed into place)."""
    _fsync(path, 0)


def _fsync(path: str | os.PathLike[str], flags: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Replace *path* with *data* atomically: temp file, fsync, rename, fsync of the directory.

    A reader sees either the old or the new content, never a mix; a crash leaves at most a
    ``.tmp-*`` file that the store removes when it is next opened.  A full disk raises
    :class:`~aiopod.errors.StorageFull` (operation ``writing NAME``) and leaves *path* as
    it was; the caller that knows the operation may re-raise it with its own name.
    """
    target = Path(path)
    with disk_errors(f"writing {target.name}", target):
        _atomic_write(target, data, durable=durable)


def _atomic_write(target: Path, data: bytes, *, durable: bool) -> None:
    tmp = target.with_name(f".tmp-{target.name}-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(target.parent)


#: The errors of a file system that has no room left: the device, or the user's quota.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether *exc* says the file system (or the quota) has no room left."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


@contextlib.contextmanager
def disk_errors(operation: str, path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a full disk (``ENOSPC``, ``EDQUOT``) met in the block into
    :class:`~aiopod.errors.StorageFull` naming *operation* and the file (the error's own
    ``filename`` when it has one, else *path*).  A :class:`StorageFull` raised inside
    keeps its own path and operation; every other error passes unchanged.

    This is how the store's file-writing layer (:func:`atomic_write`, staging areas,
    unpacking) reports a full disk, so that no raw :class:`OSError` for it reaches a caller.
    """
    try:
        yield
    except StorageFull:
        raise
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        where = exc.filename if exc.filename is not None else os.fspath(path)
        raise StorageFull(os.fspath(where), operation, errno=exc.errno) from exc


def make_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create *path* (and parents) with mode 0700 if missing; tighten the mode if it exists."""
    p = Path(path)
    p.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if p.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        os.chmod(p, PRIVATE_DIR_MODE)
    return p


def _make_writable_and_retry(func: object, path: str, exc: BaseException) -> None:
    # A directory of mode 0000 (legal inside a layer) blocks its own removal: open it up.
    parent = os.path.dirname(path)
    with contextlib.suppress(OSError):
        os.chmod(parent, 0o700)
    if os.path.isdir(path) and not os.path.islink(path):
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove a directory tree (fd-based, never follows symlinks); missing is fine."""
    if not os.path.lexists(path):
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=lambda f, p, e: _make_writable_and_retry(f, p, e[1]))
