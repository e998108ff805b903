"""Resolve paths inside a root directory as if it were ``/`` (chroot semantics), without a chroot.

A container root file system legitimately holds absolute symlinks (``lib -> /usr/lib``,
``/etc/localtime -> /usr/share/zoneinfo/UTC``).  Whatever it holds, a path resolved here
stays inside the root: each component is opened relative to the directory file descriptor
of its parent with ``O_PATH | O_NOFOLLOW``; a symlink met on the way is read with
``readlink`` and its target spliced into the remaining components; an absolute target
restarts at the root; ``..`` at the root stays at the root (parents are kept on a stack
of descriptors, ``..`` is never opened by name); more than ``max_symlink_hops`` symlinks
fail with ``ELOOP``.  Only directories are entered: callers resolve the *parent* of the
name they act on and then use ``dir_fd=`` calls on the final name, which is never
followed.

Used by the layer applier and, for ``COPY``/``ADD``, by builds.  Everything here is
blocking: callers in async code run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import NamedTuple

from aiopod.errors import PathTooDeep, TooManySymlinks

__all__ = (
    "MAX_SYMLINK_HOPS",
    "ResolvedDir",
    "RootDir",
    "lstat_at",
    "make_dirs",
    "open_in_root",
    "open_parent_in_root",
    "path_components",
    "remove_at",
    "resolve_in_root",
    "split_path",
)

MAX_SYMLINK_HOPS = 40

_O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class _RefusedName(OSError):
    """A missing directory was not made because its name is refused (``EPERM``)."""


def split_path(path: str) -> tuple[str, ...]:
    """Normalise ``path`` lexically into root-relative components.

    A leading ``/`` is dropped (absolute names are relative to the root), empty and ``.``
    components vanish and ``a/..`` cancels out.  A path whose ``..`` climbs above the root
    raises ``ValueError``.  ``()`` is the root itself.
    """
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ValueError(f"{path!r} climbs above the root")
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


class ResolvedDir(NamedTuple):
    """A directory resolved inside the root: an ``O_PATH`` descriptor the caller must close,
    and the directory's real path inside the root (symlinks resolved) as components."""

    fd: int
    path: tuple[str, ...]


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """``lstat`` of ``name`` in ``dir_fd``, or ``None`` when nothing is there."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def remove_at(dir_fd: int, name: str, st: os.stat_result | None = None) -> bool:
    """Remove whatever ``name`` is in ``dir_fd`` (a directory with its contents), never
    following a symlink.  Returns whether something was removed."""
    if st is None:
        st = lstat_at(dir_fd, name)
        if st is None:
            return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # fd-based: avoids_symlink_attacks is True
    else:
        os.unlink(name, dir_fd=dir_fd)
    return True


class RootDir:
    """An open root directory in which paths are resolved with chroot semantics."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_symlink_hops: int = MAX_SYMLINK_HOPS,
        max_depth: int = 4096,
    ) -> None:
        self.fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.max_symlink_hops = max_symlink_hops
        self.max_depth = max_depth

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RootDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open_dir(
        self,
        parts: Sequence[str],
        *,
        create: bool = False,
        replace_non_dirs: bool = False,
        created: list[tuple[str, ...]] | None = None,
        refuse: Callable[[str], bool] | None = None,
    ) -> ResolvedDir:
        """Resolve the directory ``parts`` inside the root, following symlinks in the root.

        Missing directories are made (mode 0700) when ``create`` is true and their real
        paths appended to ``created``; with ``replace_non_dirs`` a file or other non-directory
        named in ``parts`` itself (not reached through a symlink) is unlinked and replaced by
        a directory (a later layer entry wins).  Otherwise a missing component raises
        ``FileNotFoundError`` and a non-directory ``NotADirectoryError``.  Too many symlinks
        raise :class:`~aiopod.errors.TooManySymlinks`, too many levels
        :class:`~aiopod.errors.PathTooDeep`.  A directory whose name ``refuse`` returns true
        for is never made (an ``EPERM`` :class:`OSError`).
        """
        stack: list[tuple[int, str]] = [(self.fd, "")]
        todo = list(reversed(parts))
        hops = 0
        try:
            while todo:
                name = todo.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) > 1:
                        os.close(stack.pop()[0])
                    continue
                cur = stack[-1][0]
                replace = replace_non_dirs and hops == 0  # never through a symlink
                opened = self._open_component(cur, name, create, replace, refuse)
                if opened is None:  # made a directory: enter it next round
                    todo.append(name)
                    if created is not None:
                        created.append((*_real_path(stack), name))
                    continue
                st, fd = opened
                if stat.S_ISDIR(st.st_mode):
                    if len(stack) > self.max_depth:
                        os.close(fd)
                        raise PathTooDeep(errno.ENAMETOOLONG, "path is too deep", name)
                    stack.append((fd, name))
                    continue
                os.close(fd)
                hops += 1
                if hops > self.max_symlink_hops:
                    raise TooManySymlinks(errno.ELOOP, "too many levels of symbolic links", name)
                target = os.readlink(name, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop()[0])
                todo.extend(reversed(target.split("/")))
            path = _real_path(stack)
            top_fd = stack.pop()[0] if len(stack) > 1 else os.dup(self.fd)
            return ResolvedDir(top_fd, path)
        finally:
            for fd, _ in stack[1:]:
                os.close(fd)

    def _open_component(
        self,
        cur: int,
        name: str,
        create: bool,
        replace_non_dirs: bool,
        refuse: Callable[[str], bool] | None,
    ) -> tuple[os.stat_result, int] | None:
        """Open one component, never following it: ``(stat, fd)`` of a directory or a
        symlink, or ``None`` after making a directory in its place."""
        try:
            fd = os.open(name, _O_PATH_NOFOLLOW, dir_fd=cur)
        except FileNotFoundError:
            if not create:
                raise
            if refuse is not None and refuse(name):
                raise _RefusedName(
                    errno.EPERM, "refusing to make a directory named", name
                ) from None
            with contextlib.suppress(FileExistsError):  # made meanwhile: opened next round
                os.mkdir(name, 0o700, dir_fd=cur)
            return None
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            return st, fd
        os.close(fd)
        if not (create and replace_non_dirs) or (refuse is not None and refuse(name)):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", name)
        os.unlink(name, dir_fd=cur)
        os.mkdir(name, 0o700, dir_fd=cur)
        return None


def _real_path(stack: Sequence[tuple[int, str]]) -> tuple[str, ...]:
    return tuple(name for _, name in stack[1:])


# -- opening and resolving by path inside a root -------------------------------------------


def path_components(path: str) -> list[str]:
    """The components of ``path`` without empty ones and ``.`` (``..`` kept)."""
    return [p for p in path.split("/") if p not in ("", ".")]


def resolve_in_root(
    root: RootDir,
    path: str | Sequence[str],
    *,
    follow_final: bool = True,
    max_final_hops: int | None = None,
) -> tuple[tuple[str, ...], os.stat_result]:
    """The real path (components, no symlinks) of ``path`` inside ``root`` and its
    ``lstat``.  Symlinks on the way are followed inside the root; with ``follow_final`` so
    is a chain of symlinks at the end (at most ``max_final_hops``, by default the root's
    ``max_symlink_hops``).  Raises ``FileNotFoundError``, ``NotADirectoryError`` or
    :class:`~aiopod.errors.TooManySymlinks` (``ELOOP``).
    """
    parts = (
        path_components(path) if isinstance(path, str) else [p for p in path if p not in ("", ".")]
    )
    limit = root.max_symlink_hops if max_final_hops is None else max_final_hops
    hops = 0
    while True:
        if not parts or parts[-1] == "..":
            resolved = root.open_dir(parts)
            try:
                return resolved.path, os.fstat(resolved.fd)
            finally:
                os.close(resolved.fd)
        parent = root.open_dir(parts[:-1])
        try:
            name = parts[-1]
            st = lstat_at(parent.fd, name)
            if st is None:
                raise FileNotFoundError(errno.ENOENT, "no such file or directory", "/".join(parts))
            if not (follow_final and stat.S_ISLNK(st.st_mode)):
                return (*parent.path, name), st
            target = os.readlink(name, dir_fd=parent.fd)
            base = parent.path
        finally:
            os.close(parent.fd)
        hops += 1
        if hops > limit:
            raise TooManySymlinks(errno.ELOOP, "too many levels of symbolic links", "/".join(parts))
        tparts = path_components(target)
        parts = tparts if target.startswith("/") else [*base, *tparts]


def open_parent_in_root(root: RootDir, dirpath: str) -> int:
    """An ``O_RDONLY`` descriptor of the directory ``dirpath`` resolved inside ``root``."""
    resolved = root.open_dir(path_components(dirpath))
    try:
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=resolved.fd)
    finally:
        os.close(resolved.fd)


def open_in_root(root: RootDir, path: str | Sequence[str]) -> int:
    """Open ``path`` for reading inside ``root`` (symlinks, a final one too, followed
    inside it); never blocks on a FIFO.  The caller closes the descriptor."""
    real, _ = resolve_in_root(root, path)
    if not real:
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root.fd)
    parent = root.open_dir(real[:-1])
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        return os.open(real[-1], flags, dir_fd=parent.fd)
    finally:
        os.close(parent.fd)


def make_dirs(
    root: RootDir, parts: Sequence[str], *, mode: int, owner: tuple[int, int]
) -> list[tuple[str, ...]]:
    """Make the missing directories of ``parts`` inside ``root`` (symlinks on the way
    followed inside it) with permission bits *mode* and owner *owner* (uid, gid), as
    buildah makes a ``WORKDIR`` or a ``COPY`` destination; the real paths of those made.
    They are changed through descriptors, never by path."""
    created: list[tuple[str, ...]] = []
    os.close(root.open_dir(parts, create=True, created=created).fd)
    for path in created:
        made = root.open_dir(path)
        try:
            os.chmod(f"/proc/self/fd/{made.fd}", mode)
            os.chown(f"/proc/self/fd/{made.fd}", *owner)
        finally:
            os.close(made.fd)
    return created
