"""Staging areas and blob ingestion: copy a stream into the store's staging area while
hashing it, and hashing what it decompresses to (the layer's diff_id) in the same pass.

A staging area is a directory under ``aiopod/tmp`` with a lock file held for its whole
life; when the store is opened, staging areas whose lock is free belong to dead
processes and are removed.  Nothing in a staging area is part of the store until a
transaction moves it into ``blobs/`` under the store lock.

Everything here blocks; callers run it in a worker thread, one hop per archive.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiopod.errors import DigestMismatch, LimitExceeded, StorageFull, UnsafeLayer
from aiopod.storage.cancellation import raise_if_cancelled
from aiopod.storage.compression import (
    detect_compression,
    open_decompressed,
    size_limit_exceeded,
)
from aiopod.storage.fsutil import disk_errors, make_private_dir, remove_tree
from aiopod.storage.layer_check import DEFAULT_LIMITS, LayerLimits, scan_layer

__all__ = ("CHUNK", "StagedBlob", "StagingArea", "recover_stale_staging")

CHUNK = 1 << 20
_STAGE_PREFIX = "stage-"


@dataclass(frozen=True, slots=True)
class StagedBlob:
    """A blob copied into a staging area and identified by its content."""

    digest: str
    size: int
    path: Path
    compression: str  # "gzip", "zstd", "bzip2", "xz" or "none"
    uncompressed_digest: str
    uncompressed_size: int
    #: Why the content cannot be used as a layer (not a tar, or a hostile one); None if it can.
    layer_problem: str | None = None


class _HashingTee(io.RawIOBase):
    """Reads from *src*, copies every byte to *dst_fd* and into a sha256, counts bytes.

    More than *limit* bytes is an error; so is more than *layer_limit*, the layer size
    limit of an uncompressed blob (a compressed one is bounded as it inflates).
    """

    def __init__(
        self,
        head: bytes,
        src: BinaryIO,
        dst_fd: int,
        limit: int,
        *,
        layer_limit: int | None = None,
        what: str = "blob",
    ) -> None:
        self._head = head
        self._src = src
        self._fd = dst_fd
        self._limit = limit
        self._layer_limit = layer_limit
        self._what = what
        self.hash = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def _take(self, data: bytes | memoryview) -> None:
        raise_if_cancelled()
        self.size += len(data)
        if self._layer_limit is not None and self.size > self._layer_limit:
            raise size_limit_exceeded(self._what, self._layer_limit)
        if self.size > self._limit:
            raise LimitExceeded(f"blob is larger than the limit of {self._limit} bytes")
        self.hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def read(self, size: int = -1) -> bytes:
        if self._head:
            cut = len(self._head) if size is None or size < 0 else size
            data, self._head = self._head[:cut], self._head[cut:]
        else:
            data = self._src.read(CHUNK if size is None or size < 0 else min(size, CHUNK))
        if data:
            self._take(data)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            readinto = getattr(self._src, "readinto", None)
            if readinto is None:
                data = self._src.read(len(view))
                n = len(data)
                view[:n] = data
            else:
                n = readinto(view) or 0
        if n:
            self._take(view[:n])
        return n


class _Observed(io.RawIOBase):
    """A reader that counts (and optionally hashes) what passes through it, and remembers
    whether an error came from the stream itself rather than from its consumer."""

    def __init__(self, stream: BinaryIO, *, hashing: bool) -> None:
        self._stream = stream
        self._hash = hashlib.sha256() if hashing else None
        self.size = 0
        self.failed = False

    def readable(self) -> bool:
        return True

    def _count(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self._hash is not None:
            self._hash.update(data)

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._stream.read(CHUNK if size is None or size < 0 else size)
        except BaseException:
            self.failed = True
            raise
        self._count(data)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        try:
            n = self._stream.readinto(view) or 0  # type: ignore[attr-defined]
        except BaseException:
            self.failed = True
            raise
        self._count(view[:n])
        return n

    def digest(self) -> str:
        assert self._hash is not None
        return "sha256:" + self._hash.hexdigest()


def _scan(data: _Observed, limits: LayerLimits) -> str | None:
    """Check *data* as a layer; return what is wrong with it, None if nothing is."""
    try:
        scan_layer(data, limits)  # type: ignore[arg-type]
    except (UnsafeLayer, LimitExceeded) as exc:
        if data.failed:
            raise  # the stream itself failed (too large, corrupt compression): fatal
        return str(exc)
    return None


class StagingArea:
    """A private directory for one operation's incoming blobs.

    Create it with :meth:`create`; :meth:`close` removes it and everything still in it.
    Every blob ingested is held to ``limits`` (the store's layer limits): a compressed
    blob stops inflating as soon as it passes their size or compression ratio.
    """

    def __init__(self, path: Path, lock_fd: int, limits: LayerLimits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.limits = limits
        self._lock_fd: int | None = lock_fd
        self._counter = 0

    @classmethod
    def create(cls, tmp_root: Path, limits: LayerLimits = DEFAULT_LIMITS) -> StagingArea:
        """Make a new staging area under *tmp_root* and lock it (a full disk raises
        :class:`~aiopod.errors.StorageFull`)."""
        with disk_errors("making a staging area", tmp_root):
            return cls._create(tmp_root, limits)

    @classmethod
    def _create(cls, tmp_root: Path, limits: LayerLimits) -> StagingArea:
        make_private_dir(tmp_root)
        name = _STAGE_PREFIX + secrets.token_hex(8)
        # Lock the file under a name recovery ignores, then give it its real name, so that
        # recovery never sees an unlocked lock file of a live staging area.
        pending = tmp_root / (".pending-" + name + ".lock")
        lock_fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        os.rename(pending, tmp_root / (name + ".lock"))
        path = tmp_root / name
        path.mkdir(mode=0o700)
        return cls(path, lock_fd, limits)

    def new_path(self, suffix: str = "") -> Path:
        """A fresh file name inside the area."""
        self._counter += 1
        return self.path / f"part-{self._counter}{suffix}"

    def ingest(
        self,
        src: BinaryIO,
        *,
        max_size: int,
        max_uncompressed: int,
        expected_digest: str | None = None,
        expected_size: int | None = None,
        what: str | None = None,
    ) -> StagedBlob:
        """Copy *src* to a file named by its digest; also digest its decompressed form.

        In the same pass the (decompressed) content is read as a layer tar and every entry
        checked (:func:`~aiopod.storage.layer_check.scan_layer`); what is wrong with it as a
        layer is kept in ``layer_problem``, so that a load refuses a hostile layer before
        anything is stored.  Decompression stops as soon as the area's limits (size,
        compression ratio) or *max_uncompressed* are passed.  *what* names the blob in
        errors (default: its expected digest).

        :raises ~aiopod.errors.DigestMismatch: the content differs from what was expected.
        :raises ~aiopod.errors.LimitExceeded: more bytes than *max_size* / *max_uncompressed*
            or the layer limits allow; the partial file is removed with the area.
        :raises ~aiopod.errors.StorageFull: the disk is full (the partial file is removed).
        """
        tmp = self.new_path(".tmp")
        try:
            with disk_errors(f"storing {what or expected_digest or 'a blob'}", tmp):
                return self._ingest(
                    src, tmp, max_size, max_uncompressed, expected_digest, expected_size, what
                )
        except StorageFull:
            tmp.unlink(missing_ok=True)  # give back what the partial copy took
            raise

    def _ingest(
        self,
        src: BinaryIO,
        tmp: Path,
        max_size: int,
        max_uncompressed: int,
        expected_digest: str | None,
        expected_size: int | None,
        what: str | None,
    ) -> StagedBlob:
        if expected_size is not None:
            max_size = min(max_size, expected_size)
        limits = self.limits
        head = src.read(CHUNK)
        compression = detect_compression(head)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        label = f"layer {what or expected_digest or 'blob'}"
        max_layer = min(max_uncompressed, limits.max_bytes)
        try:
            if compression == "none":  # its digest is its diff_id: read it once, as it is
                tee = _HashingTee(head, src, fd, max_size, layer_limit=max_layer, what=label)
                data = _Observed(tee, hashing=False)  # type: ignore[arg-type]
            else:
                tee = _HashingTee(head, src, fd, max_size)
                data = _Observed(
                    open_decompressed(
                        io.BufferedReader(tee, CHUNK),
                        max_bytes=max_layer,
                        max_ratio=limits.max_compression_ratio,
                        ratio_after=limits.ratio_after_bytes,
                        what=label,
                    ),
                    hashing=True,
                )
            layer_problem = _scan(data, limits)
            while data.read(CHUNK):  # whatever the scan did not read
                pass
            while tee.read(CHUNK):  # trailing bytes after a compressed stream
                pass
        finally:
            os.close(fd)
        if compression == "none":
            uncompressed_digest, uncompressed_size = None, tee.size
        else:
            uncompressed_digest, uncompressed_size = data.digest(), data.size
        digest = "sha256:" + tee.hash.hexdigest()
        if expected_digest is not None and digest != expected_digest:
            tmp.unlink()
            raise DigestMismatch(f"blob content has digest {digest}, expected {expected_digest}")
        if expected_size is not None and tee.size != expected_size:
            tmp.unlink()
            raise DigestMismatch(f"blob {digest} has {tee.size} bytes, expected {expected_size}")
        final = self.path / digest.removeprefix("sha256:")
        os.replace(tmp, final)
        return StagedBlob(
            digest=digest,
            size=tee.size,
            path=final,
            compression=compression,
            uncompressed_digest=uncompressed_digest or digest,
            uncompressed_size=uncompressed_size,
            layer_problem=layer_problem,
        )

    def close(self) -> None:
        """Remove the area and everything in it; release its lock."""
        remove_tree(self.path)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(str(self.path) + ".lock")
            os.close(self._lock_fd)
            self._lock_fd = None


def recover_stale_staging(tmp_root: Path) -> list[str]:
    """Remove staging areas whose owner is gone (their lock is free); return their names."""
    removed: list[str] = []
    if not tmp_root.is_dir():
        return removed
    for lock_path in tmp_root.glob(_STAGE_PREFIX + "*.lock"):
        fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            remove_tree(lock_path.with_suffix(""))
            lock_path.unlink()
            removed.append(lock_path.stem)
        finally:
            os.close(fd)
    for entry in tmp_root.glob(_STAGE_PREFIX + "*"):
        if entry.is_dir() and not entry.with_name(entry.name + ".lock").exists():
            remove_tree(entry)
            removed.append(entry.name)
    return removed
