"""Streaming decompression of layer blobs, with a bound on what comes out.

:func:`open_decompressed` sniffs the first bytes of a blob (gzip, zstd, bzip2, xz, or
none of them, i.e. a plain tar) and returns a file object that yields the uncompressed
bytes a little at a time: a blob is never read whole into memory, and no helper program is
run.  When more than ``max_bytes`` uncompressed bytes come out, or the output grows more
than ``max_ratio`` times larger than the compressed input it came from (judged once
``ratio_after`` bytes have come out), reading raises :class:`aiopod.errors.LimitExceeded`:
a decompression bomb stops at the limit, having inflated no more than the limit allows.
The message names the input, the limit and the option that raises it.

Corrupt or truncated compressed data raises :class:`aiopod.errors.UnsafeLayer`; errors of
the underlying file object itself (``OSError``) pass through unchanged.  Concatenated gzip
members, bzip2 streams, xz streams and zstd frames are all read, as their command line
tools do.  A truncated zstd stream is detected by following the frame structure, since the
zstd library silently stops at the end of its input.

gzip is inflated by ISA-L (the ``isal`` package: twice as fast as zlib on typical layers,
with the same checks of the deflate data, the CRC and the length).

Everything here is blocking: callers in async code run it in a worker thread
(``anyio.to_thread.run_sync``).  Closing the returned reader does not close ``fileobj``.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, BinaryIO, Protocol, cast

from isal import isal_zlib

from aiopod.errors import LimitExceeded, UnsafeLayer

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = (
    "RATIO_AFTER",
    "detect_compression",
    "format_size",
    "open_decompressed",
    "size_limit_exceeded",
)

#: Output bytes before the compression ratio is judged, by default (1 GiB).
RATIO_AFTER = 1 << 30

_CHUNK = 256 * 1024
_XZ_MEMLIMIT = 256 * 1024 * 1024  # xz -9 needs about 65 MiB to decompress

#: ISA-L's error (its type stub declares it as an instance, not a class).
_INFLATE_ERROR = cast("type[Exception]", isal_zlib.error)

_XZ_MAGIC = b"\xfd7zXZ\x00"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def detect_compression(head: bytes) -> str:
    """Name the compression of a blob from its first bytes (six are enough).

    Returns ``"gzip"``, ``"zstd"``, ``"bzip2"``, ``"xz"`` or ``"none"``.
    """
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC) or _is_skippable_zstd(head):
        return "zstd"
    if len(head) >= 4 and head.startswith(b"BZh") and head[3:4] in b"123456789":
        return "bzip2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    return "none"


def format_size(size: float) -> str:
    """``size`` bytes in binary units as the limits are written (``64 GiB``, ``1.5 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.4g} {unit}"
        size /= 1024
    return f"{size:.4g} TiB"


def size_limit_exceeded(what: str, max_bytes: int) -> LimitExceeded:
    """The error for *what* (``layer NAME``) inflating past the layer size limit."""
    return LimitExceeded(
        f"{what} is larger than the limit of {format_size(max_bytes)} uncompressed; if it "
        "is genuine, raise max_layer_size (--max-layer-size, $AIOPOD_MAX_LAYER_SIZE)"
    )


def open_decompressed(
    fileobj: BinaryIO,
    *,
    max_bytes: int | None = None,
    max_ratio: float | None = None,
    ratio_after: int = RATIO_AFTER,
    what: str = "layer",
) -> BinaryIO:
    """Return a reader of the uncompressed bytes of ``fileobj``, whatever its compression.

    ``max_bytes`` bounds the uncompressed bytes, ``max_ratio`` the ratio of uncompressed
    to compressed bytes, judged once ``ratio_after`` bytes have come out (never for an
    uncompressed input); either raises :class:`~aiopod.errors.LimitExceeded`, whose
    message names *what* was read, as soon as it is exceeded.  Blocking.
    """
    source = _Source(fileobj)
    kind = detect_compression(source.peek(6))
    stream: _RawReader
    if kind == "none":
        stream = source
    elif kind == "zstd":
        stream = _ZstdReader(source)
    else:
        stream = _StreamDecompressor(source, kind)
    limited = _Limited(stream, kind, max_bytes, max_ratio, ratio_after, what)
    return io.BufferedReader(limited, buffer_size=_CHUNK)


class _RawReader(Protocol):
    def read(self, size: int, /) -> bytes: ...

    @property
    def consumed(self) -> int:
        """Compressed bytes turned into output so far (read ahead: not counted, if known)."""
        ...


def _is_skippable_zstd(head: bytes) -> bool:
    return len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18"


class _Source:
    """The caller's file object with a look-ahead buffer and a count of bytes read."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._fileobj = fileobj
        self._pending = b""
        self.consumed = 0
        self.observer: Callable[[bytes], None] | None = None

    def peek(self, size: int) -> bytes:
        while len(self._pending) < size:
            more = self._fileobj.read(size - len(self._pending))
            if not more:
                break
            self._pending += more
        return self._pending[:size]

    def read(self, size: int = _CHUNK, /) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
        else:
            data = self._fileobj.read(size)
        self.consumed += len(data)
        if self.observer is not None and data:
            self.observer(data)
        return data


class _StreamDecompressor:
    """gzip, bzip2 or xz through the incremental decompressors of the standard library.

    Output per call is bounded (``max_length``), so a bomb never sits in memory at once.
    """

    def __init__(self, source: _Source, kind: str) -> None:
        self._source = source
        self._kind = kind
        self._input = b""
        self._ended = False
        self._new_member()

    @property
    def consumed(self) -> int:
        return self._source.consumed - len(self._input)

    def _new_member(self) -> None:
        if self._kind == "gzip":
            self._zlib: isal_zlib.Decompress | None = isal_zlib.decompressobj(
                wbits=16 + zlib.MAX_WBITS
            )
            self._other: bz2.BZ2Decompressor | lzma.LZMADecompressor | None = None
        else:
            self._zlib = None
            self._other = (
                bz2.BZ2Decompressor()
                if self._kind == "bzip2"
                else lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=_XZ_MEMLIMIT)
            )

    def read(self, size: int, /) -> bytes:
        while True:
            if self._ended and not self._next_member():
                return b""
            if not self._input:
                self._input = self._source.read(_CHUNK)
            try:
                out, self._ended = self._step(size)
            except (_INFLATE_ERROR, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
                raise UnsafeLayer(f"corrupt {self._kind} stream: {exc}") from exc
            if out:
                return out
            if not self._ended and not self._input and self._source.peek(1) == b"":
                raise UnsafeLayer(f"truncated {self._kind} stream")

    def _step(self, size: int) -> tuple[bytes, bool]:
        data, self._input = self._input, b""
        if self._zlib is not None:
            out = self._zlib.decompress(data, size)
            self._input = self._zlib.unconsumed_tail or self._zlib.unused_data
            return out, self._zlib.eof
        assert self._other is not None
        out = self._other.decompress(data, size)
        if self._other.eof:
            self._input = self._other.unused_data
        return out, self._other.eof

    def _next_member(self) -> bool:
        """After a member ends: start the next one, or accept the end of the blob."""
        rest = self._input or self._source.read(_CHUNK)
        if self._kind != "bzip2":
            # Zero padding after a gzip member or an xz stream is allowed, as gzip(1) and
            # xz(1) allow it.
            rest = rest.lstrip(b"\0")
            while not rest:
                more = self._source.read(_CHUNK)
                if not more:
                    return False
                rest = more.lstrip(b"\0")
        if not rest:
            return False
        self._input = rest
        self._ended = False
        self._new_member()
        return True


class _ZstdReader:
    """zstd through ``zstandard``'s stream reader, with truncation detected by a frame walker."""

    def __init__(self, source: _Source) -> None:
        import zstandard  # here: loading its C library costs start-up time

        self._error = zstandard.ZstdError
        self._source = source
        self._frames = _ZstdFrameWalker()
        source.observer = self._frames.feed
        self._reader = zstandard.ZstdDecompressor().stream_reader(
            cast("IO[bytes]", source), read_size=_CHUNK, read_across_frames=True, closefd=False
        )

    @property
    def consumed(self) -> int:
        return self._source.consumed  # read ahead by at most one chunk

    def read(self, size: int, /) -> bytes:
        try:
            out = self._reader.read(size)
        except self._error as exc:
            raise UnsafeLayer(f"corrupt zstd stream: {exc}") from exc
        if not out and not self._frames.complete():
            raise UnsafeLayer("truncated zstd stream")
        return out


class _ZstdFrameWalker:
    """Follows zstd frame and block headers in the compressed bytes, skipping their payloads.

    Its only job is to tell whether the input ended exactly between two frames.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._skip = 0
        self._want = 4  # bytes needed by the current state before it can be parsed
        self._state = "magic"
        self._checksum = False
        self._frames = 0

    def complete(self) -> bool:
        return self._frames > 0 and self._state == "magic" and not self._buf and not self._skip

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
                continue
            take = self._want - len(self._buf)
            self._buf += bytes(view[:take])
            view = view[take:]
            if len(self._buf) == self._want:
                head, self._buf = self._buf, b""
                self._parse(head)

    def _parse(self, head: bytes) -> None:
        if self._state == "magic":
            if head == _ZSTD_MAGIC:
                self._state, self._want = "descriptor", 1
            elif _is_skippable_zstd(head):
                self._state, self._want = "skippable", 4
            else:
                raise UnsafeLayer("corrupt zstd stream: bad frame magic")
        elif self._state == "skippable":
            self._skip = int.from_bytes(head, "little")
            self._state, self._want = "magic", 4
            self._frames += 1
        elif self._state == "descriptor":
            fhd = head[0]
            single_segment = bool(fhd & 0x20)
            self._checksum = bool(fhd & 0x04)
            fcs = (0, 2, 4, 8)[fhd >> 6] or (1 if single_segment else 0)
            rest = (0 if single_segment else 1) + (0, 1, 2, 4)[fhd & 0x03] + fcs
            self._skip = rest
            self._state, self._want = "block", 3
        elif self._state == "block":
            header = int.from_bytes(head, "little")
            last, kind, size = header & 1, (header >> 1) & 3, header >> 3
            self._skip = 1 if kind == 1 else size
            if last:
                self._frames += 1
                self._skip += 4 if self._checksum else 0
                self._state, self._want = "magic", 4


class _Limited(io.RawIOBase):
    """Counts uncompressed bytes and enforces the size and ratio limits."""

    def __init__(
        self,
        stream: _RawReader,
        kind: str,
        max_bytes: int | None,
        max_ratio: float | None,
        ratio_after: int,
        what: str,
    ) -> None:
        super().__init__()
        self._stream = stream
        self._kind = kind
        self._max_bytes = max_bytes
        self._max_ratio = max_ratio if kind != "none" else None
        self._ratio_after = ratio_after
        self._what = what
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        if not view:
            return 0  # zlib would read max_length=0 as "unbounded"
        data = self._stream.read(len(view))
        n = len(data)
        view[:n] = data
        self.produced += n
        if self._max_bytes is not None and self.produced > self._max_bytes:
            raise size_limit_exceeded(self._what, self._max_bytes)
        if (
            self._max_ratio is not None
            and self.produced > self._ratio_after
            and self.produced > self._max_ratio * max(self._stream.consumed, 1)
        ):
            raise LimitExceeded(
                f"{self._what} inflates more than the limit of {self._max_ratio:g} times its "
                f"size ({format_size(self.produced)} from {format_size(self._stream.consumed)} "
                f"of {self._kind}): refused as a decompression bomb; if it is genuine, raise "
                "max_layer_ratio (--max-layer-ratio, $AIOPOD_MAX_LAYER_RATIO)"
            )
        return n
