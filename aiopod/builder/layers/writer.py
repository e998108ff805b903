"""Reproducible layer tars, byte for byte as buildah (Go's ``archive/tar``) writes them.

:class:`LayerWriter` streams entries into a binary output (usually a staging file) while
hashing every byte: when it is closed, the sha256 is the layer's ``diff_id``.  Headers are
encoded by :mod:`aiopod.builder.layers.tar_header` (Go's header conventions); the writer adds
the conventions of the layers buildah 1.28 commits (checked at the byte level in
``tests/builder/test_layer_writer.py``):

* Modes carry the file-type bits, as Go's tools write them (``0100644``, ``0040755``,
  ``0120777``).
* Directory names end in ``/``; names are relative with no ``./``; ``uname`` and ``gname``
  are empty; mtimes are whole seconds (``timestamp`` replaces every one of them, as
  ``buildah bud --timestamp`` does; ``clamp_mtime`` lowers later ones to it, the
  ``SOURCE_DATE_EPOCH`` convention); no atime or ctime.
* Whiteouts are regular files of mode 0 and size 0 (``.wh.<name>``, ``.wh..wh..opq``).
* The archive ends with two zero blocks and is *not* padded to a 10 KiB record.

File data is copied in 1 MiB chunks through one reused buffer and hashed on the way.
``sendfile``/``copy_file_range`` would save one copy only if the bytes did not have to be
hashed in user space; they do (the ``diff_id``), and measured on 200 MiB the kernel copy
plus a hashing read was no faster (0.43 s against 0.29-0.42 s), so data always goes
through the buffer.

What goes into a layer is decided elsewhere: :mod:`aiopod.builder.layers.snapshot` (the
difference of a root file system) and :mod:`aiopod.builder.layers.copy_layer` (a
``COPY``/``ADD``) write through this writer.

Everything here is blocking; async callers run a whole layer in one worker thread.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from aiopod.builder.layers.tar_header import (
    BLOCK,
    MODE_TYPE_BITS,
    TYPE_BLOCK,
    TYPE_CHAR,
    TYPE_DIR,
    TYPE_FIFO,
    TYPE_LINK,
    TYPE_REG,
    TYPE_SYMLINK,
    block_padding,
    go_tar_header,
)
from aiopod.builder.sources.context import SourceEntry, SourceReader
from aiopod.builder.sources.copy_plan import CopyPlan
from aiopod.errors import BuildError
from aiopod.storage.rootfs_path import RootDir, lstat_at

__all__ = (
    "LayerInfo",
    "LayerWriter",
    "layer_xattrs",
    "round_mtime",
    "write_copy_layer",
)

CHUNK: Final = 1 << 20
OPAQUE: Final = ".wh..wh..opq"

_ZERO_BLOCK = bytes(BLOCK)
_RELEVANT_XATTRS = ("security.capability", "security.ima")


@dataclass(frozen=True)
class LayerInfo:
    """A written layer: ``diff_id`` (``sha256:<hex>`` of the uncompressed tar) and size."""

    diff_id: str
    size: int


# -- the writer ----------------------------------------------------------------------------


def _clean_name(path: str) -> str:
    """A layer entry name: relative, no ``./``, no empty or ``.`` components."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"invalid layer entry name {path!r}")
    return "/".join(parts)


class LayerWriter:
    """Writes one layer tar to ``out`` and hashes it; :meth:`close` gives the ``diff_id``.

    Names are root-relative (``usr/bin/x``; a leading ``/`` or ``./`` is dropped).
    ``timestamp`` replaces every mtime (``--timestamp``), ``clamp_mtime`` caps them.  The
    caller owns ``out`` (a staging file: on an error, discard it).  Blocking.
    """

    def __init__(
        self,
        out: BinaryIO,
        *,
        timestamp: int | None = None,
        clamp_mtime: int | None = None,
    ) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self._size = 0
        self._pending = bytearray()
        self._buffer = bytearray(CHUNK)
        self._view = memoryview(self._buffer)
        self.timestamp = timestamp
        self.clamp_mtime = clamp_mtime
        self.entries = 0
        self._closed: LayerInfo | None = None

    # -- low level ---------------------------------------------------------------------

    def _emit(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self._size += len(data)
        self._out.write(data)

    def _flush_pending(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = bytearray()

    def _queue(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) >= CHUNK:
            self._flush_pending()

    def mtime(self, mtime: int) -> int:
        """The mtime written for an entry whose own mtime is ``mtime`` (whole seconds)."""
        if self.timestamp is not None:
            return self.timestamp
        if self.clamp_mtime is not None and mtime > self.clamp_mtime:
            return self.clamp_mtime
        return mtime

    def _header(
        self,
        name: str,
        typeflag: bytes,
        perm: int,
        *,
        uid: int,
        gid: int,
        mtime: int,
        size: int = 0,
        linkname: str = "",
        devmajor: int = 0,
        devminor: int = 0,
        xattrs: Mapping[str, bytes] | None = None,
        type_bits: bool = True,
    ) -> None:
        if self._closed is not None:
            raise ValueError("the layer writer is closed")
        mode = (perm & 0o7777) | (MODE_TYPE_BITS[typeflag] if type_bits else 0)
        self._queue(
            go_tar_header(
                name,
                typeflag=typeflag,
                mode=mode,
                uid=uid,
                gid=gid,
                size=size,
                mtime=self.mtime(mtime),
                linkname=linkname,
                devmajor=devmajor,
                devminor=devminor,
                xattrs=xattrs,
            )
        )
        self.entries += 1

    # -- entries -------------------------------------------------------------------------

    def add_dir(
        self,
        path: str,
        *,
        mode: int = 0o755,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 0,
        xattrs: Mapping[str, bytes] | None = None,
    ) -> None:
        """A directory entry (the name gets its trailing ``/``)."""
        self._header(
            _clean_name(path) + "/", TYPE_DIR, mode, uid=uid, gid=gid, mtime=mtime, xattrs=xattrs
        )

    def add_file(
        self,
        path: str,
        source: str | os.PathLike[str] | int | BinaryIO,
        *,
        size: int | None = None,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 0,
        xattrs: Mapping[str, bytes] | None = None,
    ) -> None:
        """A regular file whose data comes from ``source``: a file path (opened without
        following a final symlink), an open descriptor (read from its current offset) or
        a binary stream.  ``size`` defaults to the file's size (required for a stream).

        Exactly ``size`` bytes are written; a source that ends early or goes on longer
        raises :class:`BuildError` (it changed while being read; the layer is unusable).
        """
        name = _clean_name(path)
        if isinstance(source, (str, os.PathLike)):
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise BuildError(f"{os.fspath(source)!r} is not a regular file")
                self._file_from_fd(
                    name, fd, st.st_size if size is None else size, mode, uid, gid, mtime, xattrs
                )
            finally:
                os.close(fd)
        elif isinstance(source, int):
            if size is None:
                size = os.fstat(source).st_size - os.lseek(source, 0, os.SEEK_CUR)
            self._file_from_fd(name, source, size, mode, uid, gid, mtime, xattrs)
        else:
            if size is None:
                raise ValueError("size is required for a stream source")
            self._header(
                name, TYPE_REG, mode, uid=uid, gid=gid, mtime=mtime, size=size, xattrs=xattrs
            )
            self._flush_pending()
            left = size
            while left:
                got = source.readinto(self._view[: min(CHUNK, left)])  # type: ignore[attr-defined]
                if not got:
                    raise BuildError(f"{name!r}: the stream ended {left} bytes early")
                self._emit(self._view[:got])
                left -= got
            self._end_data(size)

    def _file_from_fd(
        self,
        name: str,
        fd: int,
        size: int,
        mode: int,
        uid: int,
        gid: int,
        mtime: int,
        xattrs: Mapping[str, bytes] | None,
    ) -> None:
        self._header(name, TYPE_REG, mode, uid=uid, gid=gid, mtime=mtime, size=size, xattrs=xattrs)
        self._flush_pending()
        left = size
        view = self._view
        while left:
            got = os.readv(fd, [view[: min(CHUNK, left)]])
            if not got:
                raise BuildError(f"{name!r} shrank while it was being read ({left} bytes short)")
            self._emit(view[:got])
            left -= got
        if os.readv(fd, [view[:1]]):
            raise BuildError(f"{name!r} grew while it was being read")
        self._end_data(size)

    def _end_data(self, size: int) -> None:
        pad = block_padding(size)
        if pad:
            self._queue(_ZERO_BLOCK[:pad])

    def add_symlink(
        self,
        path: str,
        target: str,
        *,
        mode: int = 0o777,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 0,
        xattrs: Mapping[str, bytes] | None = None,
    ) -> None:
        """A symbolic link to ``target`` (kept as it is: absolute, relative, dangling)."""
        self._header(
            _clean_name(path),
            TYPE_SYMLINK,
            mode,
            uid=uid,
            gid=gid,
            mtime=mtime,
            linkname=target,
            xattrs=xattrs,
        )

    def add_hardlink(
        self,
        path: str,
        target: str,
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 0,
    ) -> None:
        """A hard link to ``target``, a root-relative name written earlier (or in a lower
        layer).  The mode carries a regular file's type bits, as Go's tools write it."""
        self._header(
            _clean_name(path),
            TYPE_LINK,
            mode,
            uid=uid,
            gid=gid,
            mtime=mtime,
            linkname=_clean_name(target),
        )

    def add_fifo(
        self, path: str, *, mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int = 0
    ) -> None:
        """A named pipe."""
        self._header(_clean_name(path), TYPE_FIFO, mode, uid=uid, gid=gid, mtime=mtime)

    def add_device(
        self,
        path: str,
        *,
        block: bool,
        major: int,
        minor: int,
        mode: int = 0o600,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 0,
    ) -> None:
        """A character (``block=False``) or block device node."""
        self._header(
            _clean_name(path),
            TYPE_BLOCK if block else TYPE_CHAR,
            mode,
            uid=uid,
            gid=gid,
            mtime=mtime,
            devmajor=major,
            devminor=minor,
        )

    def add_whiteout(self, path: str, *, mtime: int = 0) -> None:
        """Delete ``path`` of the lower layers: an empty ``.wh.<name>`` file of mode 0."""
        name = _clean_name(path)
        head, _, base = name.rpartition("/")
        if base.startswith(".wh."):
            raise ValueError(f"cannot white out a whiteout-shaped name {path!r}")
        whiteout = f"{head}/.wh.{base}" if head else f".wh.{base}"
        self._header(whiteout, TYPE_REG, 0, uid=0, gid=0, mtime=mtime, type_bits=False)

    def add_opaque(self, directory: str, *, mtime: int = 0) -> None:
        """Hide every lower entry of ``directory`` (``<dir>/.wh..wh..opq``); buildah's vfs
        driver never writes one, but readers must accept it."""
        name = _clean_name(directory)
        self._header(f"{name}/{OPAQUE}", TYPE_REG, 0, uid=0, gid=0, mtime=mtime, type_bits=False)

    def close(self) -> LayerInfo:
        """Write the two zero blocks that end the archive (no record padding), flush the
        output (it is not closed) and return the ``diff_id`` and size.  Idempotent."""
        if self._closed is None:
            self._queue(_ZERO_BLOCK * 2)
            self._flush_pending()
            flush = getattr(self._out, "flush", None)
            if flush is not None:
                flush()
            self._closed = LayerInfo(f"sha256:{self._hash.hexdigest()}", self._size)
        return self._closed

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


# -- shared helpers for layers written from a directory tree ---------------------------------


def layer_xattrs(fd: int, name: str) -> dict[str, bytes] | None:
    """The extended attributes containers/storage puts into layers (``security.capability``,
    ``security.ima``, ``user.*``) of ``name`` in directory ``fd``, never following it."""
    path = f"/proc/self/fd/{fd}/{name}" if name else f"/proc/self/fd/{fd}"
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENOENT, errno.EPERM, errno.EACCES):
            return None
        raise
    out: dict[str, bytes] = {}
    for key in sorted(keys):
        if key in _RELEVANT_XATTRS or key.startswith("user."):
            try:
                out[key] = os.getxattr(path, key, follow_symlinks=False)
            except OSError:
                continue
    return out or None


def round_mtime(mtime_ns: int) -> int:
    """Go's ``time.Round(time.Second)``: to the nearest second, halves up."""
    return (mtime_ns + 500_000_000) // 1_000_000_000


def _path_key(parts: Sequence[str]) -> bytes:
    """containers/storage sorts a diff's changes by their path string, byte-wise."""
    return os.fsencode("/" + "/".join(parts))


# -- COPY / ADD layers --------------------------------------------------------------------------


@dataclass
class _Node:
    """One entry of a COPY layer before it is written."""

    parts: tuple[str, ...]
    kind: bytes
    perm: int
    uid: int
    gid: int
    mtime: int
    size: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    inode: tuple[int, int] | None = None  # for hard link detection (regular files)
    group: int = -1  # hard links are only kept within one top-level source
    source: SourceEntry | None = None
    realpath: str = ""  # in-context path of the data
    st: os.stat_result | None = None
    xattrs: Mapping[str, bytes] | None = None


def write_copy_layer(
    entries: Sequence[SourceEntry],
    plan: CopyPlan,
    *,
    chown: tuple[int, int] | None,
    chmod: int | None,
    timestamp: int | None,
    out: BinaryIO,
    rootfs: Path | None = None,
    preserve_ownership: bool = False,
    strip_setid: bool = True,
    walk_order: bool = False,
    now: int | None = None,
) -> LayerInfo:
    """Write the layer a ``COPY``/``ADD`` of ``entries`` (from
    :func:`~aiopod.builder.sources.context.resolve_sources`) makes, as planned by
    :func:`~aiopod.builder.sources.copy_plan.copy_plan`, reading straight from the build context.

    What buildah 1.28 puts into such a layer (observed):

    * The destination directory and its parents, as directories.  Ones that do not exist
      yet are mode 0755, owned by ``chown`` (else 0:0), with mtime ``now``.  Pass
      ``rootfs`` (the stage's root file system) to resolve the destination inside it
      (through the image's own symlinks: ``/etc/link -> /tmp`` puts the files under
      ``tmp/``) and to repeat existing parents with their current mode, owner and mtime
      (the directory that receives new entries gets mtime ``now``).  Without ``rootfs``
      every parent is written as a new directory, which replaces whatever the image has
      there when the layer is applied (a symlink, a 1777 ``/tmp``): pass ``rootfs``.
    * A file source becomes one entry (named after the plan's rename, or its own base
      name, the link's name for a dereferenced symlink); a directory source its contents
      (not the directory itself).  Directories that an ignore exception made the walk
      enter are not copied; they appear as new directories (0755) only as parents.
    * Ownership 0:0, or ``chown``, or with ``preserve_ownership`` (``COPY --from``) the
      source's own ids.  ``chmod`` replaces the mode of files and directories (symlinks
      stay 0777).  With ``strip_setid`` (the default for the build context) setuid and
      setgid bits are dropped; the sticky bit stays.
    * Mtimes are the source's rounded to the nearest second (Go's ``Round``), or
      ``timestamp`` for every entry.
    * Files hard linked to each other inside one directory source stay hard links (the
      first in layer order holds the data); separate sources make separate files.
    * Entries are sorted by path, as containers/storage writes a diff over a parent layer;
      ``walk_order`` writes them in the order of a sorted directory walk instead, as the
      first layer of a ``FROM scratch`` image is written.  With both orders, and
      ``timestamp`` set, the layer is byte for byte buildah's (same ``diff_id``).

    ``now`` (default: the current time) is the mtime of new directories.  ``ADD`` archive
    extraction is not done here (archives in a ``plan.extract`` copy raise
    :class:`BuildError`): extract those with :func:`aiopod.storage.applier.apply_layer`.
    Blocking; reads every source file once, each checked to be the file the walk saw.
    """
    if now is None:
        now = int(time.time())
    dest_dir = plan.dest_dir
    nodes: dict[tuple[str, ...], _Node] = {}

    def ids(st: os.stat_result) -> tuple[int, int]:
        if chown is not None:
            return chown
        if preserve_ownership:
            return st.st_uid, st.st_gid
        return 0, 0

    new_dir_ids = chown if chown is not None else (0, 0)

    # Where the destination really is, and its parents' attributes.
    parents: list[_Node] = []
    if rootfs is not None:
        dest_dir, parents = _resolve_dest(rootfs, dest_dir, new_dir_ids, now)
    else:
        for depth in range(1, len(dest_dir) + 1):
            parents.append(_Node(dest_dir[:depth], TYPE_DIR, 0o755, *new_dir_ids, mtime=now))
    for node in parents:
        nodes[node.parts] = node

    def perm_of(st: os.stat_result, is_dir: bool) -> int:
        perm = stat.S_IMODE(st.st_mode)
        if strip_setid:
            perm &= ~(stat.S_ISUID | stat.S_ISGID)
        if chmod is not None:
            perm = chmod & 0o7777
        return perm

    def add(
        parts: tuple[str, ...],
        st: os.stat_result,
        link: str | None,
        group: int,
        entry: SourceEntry,
        realpath: str,
        xattrs: Sequence[tuple[str, bytes]],
    ) -> None:
        mode = st.st_mode
        uid, gid = ids(st)
        mtime = round_mtime(st.st_mtime_ns)
        if stat.S_ISDIR(mode):
            node = _Node(parts, TYPE_DIR, perm_of(st, True), uid, gid, mtime)
        elif stat.S_ISREG(mode):
            node = _Node(
                parts,
                TYPE_REG,
                perm_of(st, False),
                uid,
                gid,
                mtime,
                size=st.st_size,
                inode=(st.st_dev, st.st_ino) if st.st_nlink > 1 else None,
                group=group,
                source=entry,
                realpath=realpath,
                st=st,
            )
        elif stat.S_ISLNK(mode):
            node = _Node(parts, TYPE_SYMLINK, 0o777, uid, gid, mtime, linkname=link or "")
        elif stat.S_ISFIFO(mode):
            node = _Node(parts, TYPE_FIFO, perm_of(st, False), uid, gid, mtime)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            node = _Node(
                parts,
                TYPE_BLOCK if stat.S_ISBLK(mode) else TYPE_CHAR,
                perm_of(st, False),
                uid,
                gid,
                mtime,
                devmajor=os.major(st.st_rdev),
                devminor=os.minor(st.st_rdev),
            )
        else:
            return  # sockets are skipped, as buildah does
        node.xattrs = dict(xattrs) or None
        nodes[parts] = node

    for group, entry in enumerate(entries):
        if plan.extract and entry.is_archive:
            raise BuildError(
                f"{entry.source!r}: extracting archives is not done by write_copy_layer"
            )
        if entry.is_dir:
            for member in entry.members:
                parts = (*dest_dir, *member.relname.split("/"))
                add(
                    parts,
                    member.stat,
                    member.link_target,
                    group,
                    entry,
                    member.realpath,
                    member.xattrs,
                )
        else:
            name = plan.rename if plan.rename is not None else entry.name
            add((*dest_dir, name), entry.stat, None, group, entry, entry.realpath, entry.xattrs)

    # Parents that no entry provides: directories the walk entered but did not copy.
    for parts in list(nodes):
        for depth in range(len(parts) - 1, 0, -1):
            parent = parts[:depth]
            if parent in nodes:
                break
            nodes[parent] = _Node(parent, TYPE_DIR, 0o755, *new_dir_ids, mtime=now)

    ordered = list(nodes.values())
    if not walk_order:
        ordered.sort(key=lambda n: _path_key(n.parts))
    else:
        ordered.sort(key=lambda n: [os.fsencode(p) for p in n.parts])

    writer = LayerWriter(out, timestamp=timestamp)
    first_link: dict[tuple[int, tuple[int, int]], str] = {}
    opener = SourceReader()
    try:
        for node in ordered:
            name = "/".join(node.parts)
            if node.kind == TYPE_DIR:
                writer.add_dir(
                    name,
                    mode=node.perm,
                    uid=node.uid,
                    gid=node.gid,
                    mtime=node.mtime,
                    xattrs=node.xattrs,
                )
            elif node.kind == TYPE_SYMLINK:
                writer.add_symlink(
                    name,
                    node.linkname,
                    uid=node.uid,
                    gid=node.gid,
                    mtime=node.mtime,
                    xattrs=node.xattrs,
                )
            elif node.kind == TYPE_REG:
                key = (node.group, node.inode) if node.inode is not None else None
                if key is not None and key in first_link:
                    writer.add_hardlink(
                        name,
                        first_link[key],
                        mode=node.perm,
                        uid=node.uid,
                        gid=node.gid,
                        mtime=node.mtime,
                    )
                    continue
                if key is not None:
                    first_link[key] = name
                assert node.source is not None and node.st is not None
                fd = opener.open(node.source.context, node.realpath, node.st)
                try:
                    writer._file_from_fd(
                        name, fd, node.size, node.perm, node.uid, node.gid, node.mtime, node.xattrs
                    )
                finally:
                    os.close(fd)
            elif node.kind == TYPE_FIFO:
                writer.add_fifo(name, mode=node.perm, uid=node.uid, gid=node.gid, mtime=node.mtime)
            else:
                writer.add_device(
                    name,
                    block=node.kind == TYPE_BLOCK,
                    major=node.devmajor,
                    minor=node.devminor,
                    mode=node.perm,
                    uid=node.uid,
                    gid=node.gid,
                    mtime=node.mtime,
                )
    finally:
        opener.close()
    return writer.close()


def _resolve_dest(
    rootfs: Path, dest_dir: tuple[str, ...], new_ids: tuple[int, int], now: int
) -> tuple[tuple[str, ...], list[_Node]]:
    """Resolve ``dest_dir`` inside ``rootfs``, its symlinks followed with the rootfs as
    ``/`` (a dangling one leads to where its target would be, as buildah's ``Eval`` and
    ``Mkdir`` do).  Returns the real destination and the parent entries to write:
    existing directories with their attributes (the deepest one, which gets new entries,
    with mtime ``now``), missing ones as new directories."""
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
                shown = "/" + "/".join((*real, name))
                raise BuildError(
                    f"destination {'/' + '/'.join(dest_dir)!r}: {shown!r} is not a directory"
                ) from exc
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
                raise BuildError(f"destination {'/' + '/'.join(dest_dir)!r}: too many symlinks")
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
        nodes = [_existing_dir(root, real[:depth]) for depth in range(1, len(real) + 1)]
    if nodes:
        nodes[-1].mtime = now  # the directory that gets new entries
    final = (*real, *parts)
    for depth in range(len(real) + 1, len(final) + 1):
        nodes.append(_Node(final[:depth], TYPE_DIR, 0o755, *new_ids, mtime=now))
    return final, nodes


def _existing_dir(root: RootDir, parts: tuple[str, ...]) -> _Node:
    parent = root.open_dir(parts[:-1])
    try:
        st = lstat_at(parent.fd, parts[-1])
    finally:
        os.close(parent.fd)
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise BuildError(f"{'/'.join(parts)!r} changed while the destination was resolved")
    return _Node(
        parts,
        TYPE_DIR,
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        st.st_mtime_ns // 1_000_000_000,
    )
