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
from collections.abc import Mapping
from dataclasses import dataclass
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
from aiopod.errors import BuildError

__all__ = (
    "LayerInfo",
    "LayerWriter",
    "layer_xattrs",
    "round_mtime",
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


# -- helpers for what goes into a layer -------------------------------------------------------


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
