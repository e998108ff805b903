"""Where a ``COPY``/``ADD`` destination is inside a stage's root file system.

A destination is looked up in the root file system the way buildah's copier does, inside
it: the image's symlinks are followed with the root as ``/`` (``/etc/link -> /tmp``
leads to ``tmp``), ``..`` stops at the root, and nothing outside the root is ever opened
(the in-root resolver of :mod:`aiopod.storage.rootfs_path`).

:func:`destination_hints` says whether the destination exists as a directory or a file
(what :func:`aiopod.builder.sources.copy_plan.copy_plan` needs to decide where the items
go); :func:`resolve_destination` says where the destination directory really is and
which of its parents exist, with their attributes (what
:func:`aiopod.builder.sources.copy_plan.plan_copy_layer` needs to write the parents as
buildah does).

Everything here that takes a root file system is blocking (it opens directories);
async callers run it in a worker thread.  :func:`root_components` is pure.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from aiopod.builder.sources.ignore import go_clean
from aiopod.errors import BuildError, TooManySymlinks
from aiopod.storage.rootfs_path import (
    RootDir,
    lstat_at,
    path_components,
    resolve_in_root,
)

__all__ = (
    "ExistingDirectory",
    "ResolvedDestination",
    "destination_hints",
    "resolve_destination",
    "root_components",
)


@dataclass(frozen=True, slots=True)
class ExistingDirectory:
    """A directory of the root file system as it is: permission bits, owner, and mtime in
    whole seconds (truncated)."""

    perm: int
    uid: int
    gid: int
    mtime: int


@dataclass(frozen=True, slots=True)
class ResolvedDestination:
    """Where a destination directory is in a root file system.

    ``path`` holds the root-relative components of the real directory (the image's
    symlinks resolved); the first ``len(existing)`` of them exist as directories, with the
    attributes in ``existing``; the rest do not exist yet.  ``ResolvedDestination(parts)``
    says nothing exists (nothing was looked up).
    """

    path: tuple[str, ...]
    existing: tuple[ExistingDirectory, ...] = ()


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


def resolve_destination(rootfs: Path, dest_dir: tuple[str, ...]) -> ResolvedDestination:
    """Resolve ``dest_dir`` inside ``rootfs``, its symlinks followed with the rootfs as
    ``/`` (a dangling one leads to where its target would be, as buildah's ``Eval`` and
    ``Mkdir`` do: ``/app -> /opt/app`` with no ``/opt/app`` gives ``opt/app``).  Below the
    first missing component the rest is taken lexically.  Raises :class:`BuildError` when a
    component is not a directory or the symlinks loop.  Blocking."""
    shown = "/" + "/".join(dest_dir)
    with RootDir(rootfs) as root:
        real: tuple[str, ...] = ()
        todo = list(dest_dir)
        missing: list[str] = []
        hops = 0
        while todo:
            name = todo.pop(0)
            try:
                resolved = root.open_dir((*real, name))
            except FileNotFoundError:
                pass
            except NotADirectoryError as exc:
                at = "/" + "/".join((*real, name))
                raise BuildError(f"destination {shown!r}: {at!r} is not a directory") from exc
            else:
                os.close(resolved.fd)
                real = resolved.path
                continue
            parent = root.open_dir(real)
            try:
                st = lstat_at(parent.fd, name)
                target = (
                    os.readlink(name, dir_fd=parent.fd)
                    if st is not None and stat.S_ISLNK(st.st_mode)
                    else None
                )
            finally:
                os.close(parent.fd)
            if target is None:
                missing = [name, *todo]
                break
            hops += 1
            if hops > root.max_symlink_hops:
                raise BuildError(f"destination {shown!r}: too many symlinks")
            if target.startswith("/"):
                real = ()
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
        parts: list[str] = []
        for name in missing:  # lexically: nothing below a missing directory exists
            if name == "..":
                if parts:
                    parts.pop()
                elif real:
                    real = real[:-1]
            elif name not in ("", "."):
                parts.append(name)
        existing = tuple(_existing_dir(root, real[:depth]) for depth in range(1, len(real) + 1))
    return ResolvedDestination((*real, *parts), existing)


def _existing_dir(root: RootDir, parts: tuple[str, ...]) -> ExistingDirectory:
    parent = root.open_dir(parts[:-1])
    try:
        st = lstat_at(parent.fd, parts[-1])
    finally:
        os.close(parent.fd)
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise BuildError(f"{'/'.join(parts)!r} changed while the destination was resolved")
    return ExistingDirectory(
        stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns // 1_000_000_000
    )
