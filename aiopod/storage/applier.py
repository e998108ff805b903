"""Apply one OCI/Docker layer tar onto a root directory, never writing outside it.

:func:`apply_layer` reads a layer (gzip, zstd, bzip2, xz or plain tar) as a stream and
makes every file system change itself, through directory file descriptors: parent
directories are resolved inside the root with chroot semantics
(:mod:`aiopod.storage.rootfs_path`), the final name is never followed, files are created
with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and their metadata set through the descriptor.
``tarfile.extractall`` is not used: its filters either break real images or have been
bypassed.  The hostile layers this applier withstands are L1-L23 of
``docs/design/hostile-input.md``.

Layer semantics (OCI image-spec, as containers/storage applies them):

* ``.wh.<name>`` deletes ``<name>`` of the lower layers (not an entry of the same layer);
  ``.wh..wh..opq`` hides every lower entry of its directory, whatever its place in the
  archive; whiteouts never appear in the result; ``.wh.``, ``.wh..`` and ``.wh...`` are
  rejected; other ``.wh..wh.*`` names (aufs metadata) are skipped.
* An existing path is unlinked (a directory with its contents) and made anew, unless the
  old and new entries are both directories: then only the attributes change.
* Directories are made 0700; their mode, owner and times are applied in a final pass,
  deepest first, so that a 0000 directory can still receive its children.
* The root entry (``.``, ``./``, ``/``) may only be a directory, and only its attributes
  change.  Numeric ids only, ``chown`` only as root.  Special files (character and block
  devices, FIFOs) only when the caller allows them (and, for devices, may make them),
  else skipped with a warning: the layer keeps them, the root file system does not have
  them (``docs/design/hostile-input.md``, L12).  Setuid bits are kept.  Of the xattrs
  only ``user.*`` is applied.  Hard links get no attributes of their own (they share
  their target's inode).
* The layer stops inflating as soon as it passes the size or compression ratio limit
  (L16, L24).

A rejected layer raises :class:`~aiopod.errors.UnsafeLayer` (hostile or malformed; the
message names the entry) or :class:`~aiopod.errors.LimitExceeded`; the root is then left
half-applied, so callers apply into a staging directory and discard it on error.

Blocking: callers in async code run it in a worker thread (``anyio.to_thread.run_sync``);
a cancelled caller interrupts it between entries and chunks, leaving the root
half-applied as a rejected layer does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

from aiopod.errors import LimitExceeded, PathTooDeep, TooManySymlinks, UnsafeLayer
from aiopod.storage.cancellation import raise_if_cancelled
from aiopod.storage.compression import open_decompressed
from aiopod.storage.layer_check import DEFAULT_LIMITS, EntryChecker, LayerLimits
from aiopod.storage.rootfs_path import (
    RootDir,
    lstat_at,
    remove_at,
)
from aiopod.storage.tar_reader import TarMember, TarReader

__all__ = ("DEFAULT_LIMITS", "ApplyResult", "LayerLimits", "apply_layer")

_Path = tuple[str, ...]
_COPY_CHUNK = 1 << 20
_OPAQUE = ".wh..wh..opq"
_MAX_ID = 2**32 - 2
# Failures of the machine, not of the layer: raised as they are.
_ENVIRONMENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE}
    | {errno.EROFS, errno.EACCES}
)


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply_layer` did: entries read, file data bytes written, warnings."""

    entries: int
    bytes_written: int
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _DirMeta:
    mode: int
    uid: int | None
    gid: int | None
    mtime_ns: int | None
    xattrs: tuple[tuple[str, bytes], ...] = ()


_IMPLICIT_DIR = _DirMeta(0o755, None, None, None)


def apply_layer(
    root: str | os.PathLike[str],
    stream: BinaryIO,
    *,
    limits: LayerLimits = DEFAULT_LIMITS,
    allow_special_files: bool = False,
    what: str = "layer",
) -> ApplyResult:
    """Apply the layer read from ``stream`` (compressed or not) onto the directory ``root``.

    With ``allow_special_files`` device nodes and FIFOs are made (devices only where the
    process may: real root outside a user namespace); else they are skipped with a
    warning.  *what* names the layer in errors.
    Blocking; raises :class:`UnsafeLayer` or :class:`LimitExceeded` on a rejected layer.
    """
    data = open_decompressed(
        stream,
        max_bytes=limits.max_bytes,
        max_ratio=limits.max_compression_ratio,
        ratio_after=limits.ratio_after_bytes,
        what=what,
    )
    with (
        data,
        RootDir(
            root, max_symlink_hops=limits.max_symlink_hops, max_depth=limits.max_path_depth
        ) as rootdir,
    ):
        reader = TarReader(data, max_header_bytes=limits.max_pax_header_bytes)
        applier = _Applier(
            rootdir,
            reader,
            limits,
            allow_fifos=allow_special_files,
            allow_devices=allow_special_files and _can_make_devices(),
        )
        for member in reader:
            raise_if_cancelled()
            applier.apply(member)
        reader.drain()
        applier.finish()
    return ApplyResult(
        entries=applier.entries,
        bytes_written=applier.bytes_written,
        warnings=(*reader.warnings, *applier.warnings()),
    )


def _is_marker(name: str) -> bool:
    """Whiteout-shaped names are never made, not even through a symlink's target."""
    return name.startswith(".wh.")


def _can_make_devices() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


class _Applier:
    def __init__(
        self,
        root: RootDir,
        reader: TarReader,
        limits: LayerLimits,
        *,
        allow_fifos: bool,
        allow_devices: bool,
    ) -> None:
        self.root = root
        self.reader = reader
        self.limits = limits
        self.allow_fifos = allow_fifos
        self.allow_devices = allow_devices
        self.is_root = os.geteuid() == 0
        self.checker = EntryChecker(limits)
        self.bytes_written = 0
        self._warnings: list[str] = []
        self.written: set[_Path] = set()  # real paths this layer made
        self.ancestors: set[_Path] = set()  # their parents, up to the root
        self.dirs: dict[_Path, _DirMeta] = {}  # attributes to apply at the end
        self.buffer = memoryview(bytearray(_COPY_CHUNK))
        self.ignored_xattrs = 0
        self.first_ignored_xattr = ""

    def warnings(self) -> list[str]:
        out = list(self._warnings)
        if self.ignored_xattrs:
            out.append(
                f"ignored {self.ignored_xattrs} xattrs outside user.* "
                f"(first: {self.first_ignored_xattr})"
            )
        return out

    # -- one entry ---------------------------------------------------------------------

    @property
    def entries(self) -> int:
        """Entries seen so far."""
        return self.checker.entries

    def apply(self, member: TarMember) -> None:
        name = member.name
        parts = self.checker.check(member)
        try:
            if parts and parts[-1].startswith(".wh."):
                self._whiteout(member, parts)
            elif not parts:
                self._root_entry(member)
            else:
                self._entry(member, parts)
        except TooManySymlinks as exc:
            raise LimitExceeded(f"layer entry {name!r}: {exc.strerror}") from exc
        except PathTooDeep as exc:
            raise LimitExceeded(f"layer entry {name!r}: {exc.strerror}") from exc
        except OSError as exc:
            raise _os_error(f"layer entry {name!r}", exc) from exc

    def _root_entry(self, member: TarMember) -> None:
        self.dirs[()] = self._dir_meta(member)  # the checker made sure it is a directory

    def _entry(self, member: TarMember, parts: _Path) -> None:
        created: list[_Path] = []
        parent = self.root.open_dir(
            parts[:-1], create=True, replace_non_dirs=True, created=created, refuse=_is_marker
        )
        for path in created:
            self.dirs[path] = _IMPLICIT_DIR
        try:
            name = parts[-1]
            path = (*parent.path, name)
            existing = lstat_at(parent.fd, name)
            if member.isdir():
                if existing is None or not stat.S_ISDIR(existing.st_mode):
                    self._clear(parent.fd, name, path, existing)
                    os.mkdir(name, 0o700, dir_fd=parent.fd)
                self.dirs[path] = self._dir_meta(member)
            elif member.isreg():
                self._clear(parent.fd, name, path, existing)
                self._file(member, parent.fd, name)
            elif member.issym():
                # Targets are kept as they are ("..", absolute): resolution clamps them.
                self._clear(parent.fd, name, path, existing)
                os.symlink(member.linkname, name, dir_fd=parent.fd)
                self._node_meta(member, parent.fd, name, chmod=False)
            elif member.islnk():
                self._hardlink(member, parent.fd, name, path, existing)
            elif member.isfifo():
                self._clear(parent.fd, name, path, existing)
                if not self.allow_fifos:
                    self._warnings.append(
                        f"skipped FIFO {member.name!r}: special files are not allowed here"
                    )
                    return
                os.mkfifo(name, 0o600, dir_fd=parent.fd)
                self._node_meta(member, parent.fd, name, chmod=True)
            elif member.ischr() or member.isblk():
                self._clear(parent.fd, name, path, existing)
                if not self._device(member, parent.fd, name):
                    return
        finally:
            os.close(parent.fd)
        self._mark_written(path)

    def _file(self, member: TarMember, dir_fd: int, name: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
        try:
            for chunk in self.reader.read_data(member, self.buffer):
                raise_if_cancelled()
                while chunk:
                    chunk = chunk[os.write(fd, chunk) :]
            self.bytes_written += member.size
            if self.is_root:
                os.fchown(fd, *self._ids(member))  # before chmod: chown drops setuid
            os.fchmod(fd, member.mode & 0o7777)
            self._set_xattrs(fd, member)
            mtime = self._mtime_ns(member)
            if mtime is not None:
                os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)

    def _node_meta(self, member: TarMember, dir_fd: int, name: str, *, chmod: bool) -> None:
        """Owner, mode and times of a symlink, FIFO or device, never through a symlink."""
        if self.is_root:
            os.chown(name, *self._ids(member), dir_fd=dir_fd, follow_symlinks=False)
        if chmod:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                if stat.S_ISLNK(os.fstat(fd).st_mode):
                    raise UnsafeLayer(f"layer entry {member.name!r} changed under us")
                os.chmod(f"/proc/self/fd/{fd}", member.mode & 0o7777)
            except FileNotFoundError:
                self._warnings.append(f"no /proc: mode of {member.name!r} left at 0600")
            finally:
                os.close(fd)
        mtime = self._mtime_ns(member)
        if mtime is not None:
            os.utime(name, ns=(mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)

    def _device(self, member: TarMember, dir_fd: int, name: str) -> bool:
        kind = "character" if member.ischr() else "block"
        what = f"{kind} device {member.name!r} ({member.devmajor},{member.devminor})"
        if not self.allow_devices:
            self._warnings.append(f"skipped {what}: special files are not allowed here")
            return False
        if member.devmajor < 0 or member.devminor < 0:
            raise UnsafeLayer(f"layer entry {member.name!r} has a negative device number")
        file_type = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        try:
            os.mknod(
                name, file_type | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=dir_fd
            )
        except PermissionError as exc:
            self._warnings.append(f"skipped {what}: {exc.strerror}")
            return False
        self._node_meta(member, dir_fd, name, chmod=True)
        return True

    def _hardlink(
        self,
        member: TarMember,
        dir_fd: int,
        name: str,
        path: _Path,
        existing: os.stat_result | None,
    ) -> None:
        target = self.checker.check_name(member.name, member.linkname, "link target")
        if not target:
            raise UnsafeLayer(f"layer entry {member.name!r} is a hard link to the root")
        try:
            tparent = self.root.open_dir(target[:-1])
        except (FileNotFoundError, NotADirectoryError):
            raise UnsafeLayer(
                f"layer entry {member.name!r}: hard link target {member.linkname!r} "
                "does not exist in the root"
            ) from None
        try:
            tst = lstat_at(tparent.fd, target[-1])
            if tst is None:
                raise UnsafeLayer(
                    f"layer entry {member.name!r}: hard link target {member.linkname!r} "
                    "does not exist in the root"
                )
            if stat.S_ISDIR(tst.st_mode):
                raise UnsafeLayer(
                    f"layer entry {member.name!r} is a hard link to a directory "
                    f"({member.linkname!r})"
                )
            if existing is not None and (existing.st_dev, existing.st_ino) == (
                tst.st_dev,
                tst.st_ino,
            ):
                return  # already that very inode
            self._clear(dir_fd, name, path, existing)
            os.link(
                target[-1], name, src_dir_fd=tparent.fd, dst_dir_fd=dir_fd, follow_symlinks=False
            )
        finally:
            os.close(tparent.fd)

    # -- whiteouts -----------------------------------------------------------------

    def _whiteout(self, member: TarMember, parts: _Path) -> None:
        base = parts[-1]
        if base == _OPAQUE:
            created: list[_Path] = []
            where = self.root.open_dir(
                parts[:-1], create=True, replace_non_dirs=True, created=created, refuse=_is_marker
            )
            for path in created:
                self.dirs[path] = _IMPLICIT_DIR
            try:
                self._mark_ancestor(where.path)
                self._purge(where.fd, where.path)
            finally:
                os.close(where.fd)
            return
        if base.startswith(".wh..wh."):
            return  # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the image
        victim = base[len(".wh.") :]  # the checker refused "", "." and ".."
        try:
            parent = self.root.open_dir(parts[:-1])
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing below to hide
        try:
            path = (*parent.path, victim)
            if path in self.written:
                return  # whiteouts hide lower layers only, not the same layer's entries
            st = lstat_at(parent.fd, victim)
            if st is None:
                return
            if path in self.ancestors and stat.S_ISDIR(st.st_mode):
                # This layer already put entries inside: keep them, drop the lower ones.
                self._purge_at(parent.fd, victim, path)
            else:
                self._clear(parent.fd, victim, path, st)
        finally:
            os.close(parent.fd)

    def _purge_at(self, dir_fd: int, name: str, path: _Path) -> None:
        fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            self._purge(fd, path)
        finally:
            os.close(fd)

    def _purge(self, dir_fd: int, path: _Path) -> None:
        """Remove from the directory everything this layer did not write."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            with os.scandir(fd) as it:
                names = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        finally:
            os.close(fd)
        for name, is_dir in names:
            child = (*path, name)
            if child in self.written or child in self.ancestors:
                if is_dir:
                    self._purge_at(dir_fd, name, child)
            else:
                self._clear(dir_fd, name, child, None)

    # -- bookkeeping -----------------------------------------------------------------

    def _clear(self, dir_fd: int, name: str, path: _Path, st: os.stat_result | None) -> None:
        """Remove what is at ``name`` before something else takes its place."""
        if not remove_at(dir_fd, name, st):
            return
        if path in self.ancestors or path in self.dirs:
            prefix = len(path)
            for key in [k for k in self.dirs if k[:prefix] == path]:
                del self.dirs[key]

    def _mark_written(self, path: _Path) -> None:
        self.written.add(path)
        self._mark_ancestor(path[:-1])

    def _mark_ancestor(self, path: _Path) -> None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.ancestors:
                break
            self.ancestors.add(path[:end])

    def _dir_meta(self, member: TarMember) -> _DirMeta:
        uid, gid = self._ids(member)
        xattrs = tuple(sorted(member.xattrs.items()))
        return _DirMeta(member.mode & 0o7777, uid, gid, self._mtime_ns(member), xattrs)

    def _ids(self, member: TarMember) -> tuple[int, int]:
        if not (0 <= member.uid <= _MAX_ID and 0 <= member.gid <= _MAX_ID):
            raise UnsafeLayer(f"layer entry {member.name!r} has an invalid uid or gid")
        return member.uid, member.gid

    @staticmethod
    def _mtime_ns(member: TarMember) -> int | None:
        text = member.pax_headers.get("mtime")
        try:
            if text:
                from decimal import Decimal  # here: a PAX mtime is rare; decimal is slow to load

                ns = int(Decimal(text) * 1_000_000_000)
            else:
                ns = int(member.mtime) * 10**9
        except (ArithmeticError, ValueError):  # decimal.InvalidOperation is an ArithmeticError
            return None
        return ns if -(2**63) < ns < 2**63 else None

    def _set_xattrs(self, fd: int, member: TarMember | _DirMeta, name: str = "") -> None:
        items = member.xattrs.items() if isinstance(member, TarMember) else member.xattrs
        label = member.name if isinstance(member, TarMember) else name
        for key, value in items:
            if not key.startswith("user."):
                self.ignored_xattrs += 1
                self.first_ignored_xattr = self.first_ignored_xattr or f"{label}: {key}"
                continue
            with contextlib.suppress(OSError, ValueError):  # unsupported here: not fatal
                os.setxattr(fd, key, value)

    # -- the final pass over directories ---------------------------------------------------

    def finish(self) -> None:
        """Apply directory attributes, deepest first."""
        for path in sorted(self.dirs, key=len, reverse=True):
            meta = self.dirs[path]
            try:
                parent = self.root.open_dir(path[:-1])
            except OSError:
                continue  # removed or replaced since
            try:
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(path[-1] if path else ".", flags, dir_fd=parent.fd)
            except OSError:
                continue
            finally:
                os.close(parent.fd)
            try:
                if self.is_root and meta.uid is not None and meta.gid is not None:
                    os.fchown(fd, meta.uid, meta.gid)
                os.fchmod(fd, meta.mode)
                self._set_xattrs(fd, meta, "/".join(path) or "/")
                if meta.mtime_ns is not None:
                    os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))
            except OSError as exc:
                raise _os_error(f"directory {'/'.join(path) or '/'!r}", exc) from exc
            finally:
                os.close(fd)


def _os_error(what: str, exc: OSError) -> OSError | UnsafeLayer:
    """A failure of the machine is raised as it is; one caused by the layer is wrapped."""
    if exc.errno in _ENVIRONMENT_ERRNOS:
        return exc
    return UnsafeLayer(f"cannot apply {what}: {exc.strerror or exc}")
