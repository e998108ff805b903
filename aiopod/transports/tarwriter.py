"""A small, fast, reproducible tar writer for image archives.

Headers come from :class:`tarfile.TarInfo` (ustar, PAX only when a name needs it); file
data is copied with ``os.sendfile`` from the store's blob files, or streamed from a
decompressor.  Entries have uid/gid 0, empty user and group names and a fixed mtime,
and the archive ends with two zero blocks and no record padding, as the Go tools write.
Blocking; callers run it in a worker thread, which a cancelled caller interrupts between
chunks (:func:`~aiopod.storage.cancellation.raise_if_cancelled`).
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from aiopod.storage.cancellation import raise_if_cancelled

__all__ = ("TarWriter",)

BLOCK = 512
_CHUNK = 1 << 20
_SENDFILE_CHUNK = 64 << 20  # about 0.1 s of copying between cancellation checks


class TarWriter:
    """Write a tar archive to an open file descriptor."""

    def __init__(self, fd: int, *, mtime: int = 0) -> None:
        self._fd = fd
        self._mtime = mtime

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _header(self, name: str, kind: bytes, size: int, mode: int) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = size
        info.mode = mode
        info.mtime = self._mtime
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _pad(self, size: int) -> None:
        if remainder := size % BLOCK:
            self._write(b"\0" * (BLOCK - remainder))

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        """Add a directory entry."""
        self._header(name.rstrip("/") + "/", tarfile.DIRTYPE, 0, mode)

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file holding *data*."""
        self._header(name, tarfile.REGTYPE, len(data), mode)
        self._write(data)
        self._pad(len(data))

    def add_path(
        self,
        name: str,
        path: Path,
        size: int,
        mode: int = 0o644,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Add a regular file copied from *path* (exactly *size* bytes); *progress* is
        called with the bytes written so far after each chunk."""
        self._header(name, tarfile.REGTYPE, size, mode)
        src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            offset = 0
            while offset < size:
                raise_if_cancelled()
                sent = os.sendfile(self._fd, src, offset, min(size - offset, _SENDFILE_CHUNK))
                if sent == 0:
                    raise OSError(f"{path} is shorter than {size} bytes")
                offset += sent
                if progress is not None:
                    progress(offset)
        finally:
            os.close(src)
        self._pad(size)

    def add_stream(
        self,
        name: str,
        stream: BinaryIO,
        size: int,
        mode: int = 0o644,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Add a regular file read from *stream*, which must yield exactly *size* bytes;
        *progress* as for :meth:`add_path`."""
        self._header(name, tarfile.REGTYPE, size, mode)
        remaining = size
        while remaining:
            raise_if_cancelled()
            data = stream.read(min(remaining, _CHUNK))
            if not data:
                raise OSError(f"stream for {name} ended {remaining} bytes early")
            self._write(data)
            remaining -= len(data)
            if progress is not None:
                progress(size - remaining)
        if stream.read(1):
            raise OSError(f"stream for {name} is longer than {size} bytes")
        self._pad(size)

    def close(self) -> None:
        """End the archive (two zero blocks)."""
        self._write(b"\0" * (2 * BLOCK))
