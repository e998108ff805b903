"""A hardened, forward-only reader of tar headers for layer application.

The standard library's :mod:`tarfile` parses the headers (ustar, GNU long names, checksums,
base-256 numbers), reading a non-seekable stream strictly forward.  This module plugs the
holes that matter for hostile layers:

* PAX extended headers are parsed here, strictly and in linear time (the 3.11 parser
  backtracks quadratically on crafted records, CVE-2024-6232, and accepts zero-length or
  inconsistent records); their size is bounded.  Global PAX headers are validated and then
  ignored, as containers/storage ignores them.  ``SCHILY.xattr.*`` values are kept as bytes.
* Sparse files (old GNU ``S`` entries and PAX ``GNU.sparse.*``) are refused before tarfile
  would read their maps.
* A negative size, a bad checksum or a truncated header anywhere in the archive is an
  error, where tarfile would quietly treat it as the end of the archive.
* A run of extension headers (PAX, GNU long name/link) before one member is bounded.

Errors are :class:`aiopod.errors.UnsafeLayer` (malformed) or
:class:`aiopod.errors.LimitExceeded` (too large).  Blocking, like all file I/O here: callers
in async code run it in a worker thread.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from typing import BinaryIO, cast

from aiopod.errors import AiopodError, LimitExceeded, UnsafeLayer

__all__ = ("TarMember", "TarReader")

_BLOCK = 512
_EXTENSION_TYPES = frozenset(
    {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
    | {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
)
_MAX_EXTENSIONS_PER_MEMBER = 8
_XATTR_PREFIX = "SCHILY.xattr."
# Raised by TarInfo.frombuf for a block of zeros and for an empty read (not in the stubs).
_EOF_HEADER_ERROR: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]
_EMPTY_HEADER_ERROR: type[Exception] = tarfile.EmptyHeaderError  # type: ignore[attr-defined]


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


class _ForwardReader:
    """The file object tarfile reads from: forward-only, counting its position."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._readinto: Callable[[memoryview], int | None] | None = getattr(
            stream, "readinto", None
        )
        self.pos = 0

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            raise UnsafeLayer("internal error: unbounded read of a layer stream")
        chunks: list[bytes] = []
        want = size
        while want > 0:
            data = self._stream.read(want)
            if not data:
                break
            chunks.append(data)
            want -= len(data)
        data = b"".join(chunks)
        self.pos += len(data)
        return data

    def readinto(self, view: memoryview) -> int:
        got = 0
        while got < len(view):
            if self._readinto is not None:
                n = self._readinto(view[got:]) or 0
            else:
                data = self._stream.read(len(view) - got)
                n = len(data)
                view[got : got + n] = data
            if not n:
                break
            got += n
        self.pos += got
        return got

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0, /) -> int:
        if whence != 0 or pos < self.pos:
            raise UnsafeLayer(f"malformed layer tar: backwards jump to offset {pos}")
        scratch = memoryview(bytearray(min(pos - self.pos, 1 << 20) or 1))
        while self.pos < pos:
            if not self.readinto(scratch[: pos - self.pos]):
                break
        return self.pos

    def write(self, data: bytes, /) -> int:
        raise OSError("read-only")

    def close(self) -> None:
        """The caller owns the stream."""


class _MemberData(io.RawIOBase):
    """The data of one member, read straight from the forward reader (no copies)."""

    def __init__(self, reader: _ForwardReader, member: TarMember) -> None:
        self._reader = reader
        self._member = member
        self._remaining = member.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer)[: self._remaining]
        if not view:
            return 0
        n = self._reader.readinto(view)
        if not n:
            raise UnsafeLayer(f"tar entry {self._member.name!r}: data truncated")
        self._remaining -= n
        return n


class TarMember(tarfile.TarInfo):
    """A tar header as parsed for a layer; ``xattrs`` holds the PAX ``SCHILY.xattr.*``."""

    xattrs: dict[str, bytes]

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> TarMember:
        tar = cast("_LayerTarFile", tarfile_)
        buf = tar.fileobj.read(_BLOCK)
        offset = tar.fileobj.tell() - len(buf)
        try:
            obj = cls.frombuf(buf, tar.encoding, tar.errors)
        except _EOF_HEADER_ERROR:
            tar.ended_with = "end-of-archive marker"
            raise
        except _EMPTY_HEADER_ERROR:
            tar.ended_with = "end of stream"
            raise
        except tarfile.HeaderError as exc:
            raise UnsafeLayer(f"malformed layer tar at offset {offset}: {exc}") from None
        obj.offset = offset
        obj.xattrs = {}
        if obj.size < 0:
            raise UnsafeLayer(f"layer entry {obj.name!r} has a negative size")
        if obj.type in _EXTENSION_TYPES:
            tar.extensions += 1
            if tar.extensions > _MAX_EXTENSIONS_PER_MEMBER:
                raise UnsafeLayer(f"too many extended headers before offset {offset}")
            if obj.size > tar.max_header_bytes:
                raise LimitExceeded(
                    f"extended tar header at offset {offset} is {obj.size} bytes, "
                    f"more than the limit of {tar.max_header_bytes}"
                )
        elif obj.type == tarfile.GNUTYPE_SPARSE:
            raise UnsafeLayer(f"layer entry {obj.name!r} is a sparse file (not supported)")
        return obj._proc_member(tarfile_)  # type: ignore[attr-defined,no-any-return]

    def _proc_pax(self, tarfile_: tarfile.TarFile) -> TarMember:
        """Replaces tarfile's PAX parser (called by tarfile's ``_proc_member``)."""
        tar = cast("_LayerTarFile", tarfile_)
        raw = tar.fileobj.read(_padded(self.size))
        if len(raw) < self.size:
            raise UnsafeLayer(f"truncated extended tar header at offset {self.offset}")
        records = _parse_pax(raw[: self.size], self.offset)
        try:
            nxt = self.fromtarfile(tarfile_)
        except tarfile.HeaderError:
            raise UnsafeLayer(
                f"extended tar header at offset {self.offset} is not followed by an entry"
            ) from None
        if self.type == tarfile.XGLTYPE:
            return nxt  # global headers: validated, then ignored (as containers/storage does)
        _apply_pax(nxt, records, tar)
        nxt.offset = self.offset
        return nxt


def _parse_pax(data: bytes, offset: int) -> dict[str, bytes]:
    """Parse ``"<len> <key>=<value>\\n"`` records exactly; anything else is an error."""
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 20)
        digits = data[pos:space] if space > pos else b""
        if not digits.isdigit() or (len(digits) > 1 and digits.startswith(b"0")):
            raise UnsafeLayer(f"malformed PAX record at offset {offset}: bad length")
        end = pos + int(digits)
        if end > len(data) or end <= space + 1 or data[end - 1 : end] != b"\n":
            raise UnsafeLayer(f"malformed PAX record at offset {offset}: bad length")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq or not key:
            raise UnsafeLayer(f"malformed PAX record at offset {offset}: no keyword")
        name = key.decode("utf-8", "surrogateescape")
        if name.startswith("GNU.sparse."):
            raise UnsafeLayer(f"sparse file at offset {offset} (not supported)")
        records[name] = value
        pos = end
    return records


def _apply_pax(member: TarMember, records: dict[str, bytes], tar: _LayerTarFile) -> None:
    text: dict[str, str] = {}
    for key, value in records.items():
        if key.startswith(_XATTR_PREFIX):
            member.xattrs[key[len(_XATTR_PREFIX) :]] = value
        else:
            text[key] = value.decode("utf-8", "surrogateescape")
    if "path" in text:
        member.name = text["path"]
        if member.isdir():
            member.name = member.name.rstrip("/")
    if "linkpath" in text:
        member.linkname = text["linkpath"]
    try:
        for key in ("uid", "gid", "size"):
            if key in text:
                setattr(member, key, int(text[key]))
        if "mtime" in text:
            member.mtime = float(text["mtime"])
    except ValueError:
        raise UnsafeLayer(f"layer entry {member.name!r} has a malformed PAX number") from None
    if member.size < 0:
        raise UnsafeLayer(f"layer entry {member.name!r} has a negative size")
    member.pax_headers = text
    if "size" in text and (member.isreg() or member.type not in tarfile.SUPPORTED_TYPES):
        tar.offset = member.offset_data + _padded(member.size)


class _LayerTarFile(tarfile.TarFile):
    tarinfo = TarMember
    fileobj: _ForwardReader
    members: list[tarfile.TarInfo]

    def __init__(self, reader: _ForwardReader, max_header_bytes: int) -> None:
        self.max_header_bytes = max_header_bytes
        self.ended_with = ""
        self.extensions = 0
        super().__init__(fileobj=reader, mode="r", encoding="utf-8", errors="surrogateescape")


class TarReader:
    """Iterates over the members of a tar stream; :meth:`read_data` reads a member's data.

    Data of a member must be read (or not at all) before the next member is asked for.
    """

    def __init__(self, stream: BinaryIO, *, max_header_bytes: int = 1 << 20) -> None:
        self._reader = _ForwardReader(stream)
        self._max_header_bytes = max_header_bytes
        self.warnings: list[str] = []
        self._last = "(start of archive)"
        self._data_end = 0

    def __iter__(self) -> Iterator[TarMember]:
        try:
            tar = _LayerTarFile(self._reader, self._max_header_bytes)
            while True:
                tar.extensions = 0
                member = tar.next()
                tar.members.clear()  # tarfile would keep every header in memory
                if member is None:
                    break
                assert isinstance(member, TarMember)
                self._last = member.name
                self._data_end = member.offset_data + member.size
                yield member
        except tarfile.ReadError as exc:
            # The stream ends inside the padding after the last entry's data (umoci writes
            # layers so, and Go's reader accepts them): a complete archive, unpadded.
            if str(exc) != "unexpected end of data" or self._reader.pos < self._data_end:
                raise UnsafeLayer(f"malformed layer tar after entry {self._last!r}: {exc}") from exc
            self.warnings.append("layer tar ends without padding or end-of-archive marker")
            return
        except AiopodError:
            raise  # a corrupt compressed stream, a header over the limit: reported as such
        except (tarfile.TarError, EOFError, ValueError, UnicodeError) as exc:
            raise UnsafeLayer(
                f"malformed layer tar after entry {self._last!r}: {exc or type(exc).__name__}"
            ) from exc
        if tar.ended_with != "end-of-archive marker":
            self.warnings.append("layer tar ends without an end-of-archive marker")

    def read_data(self, member: TarMember, buffer: memoryview) -> Iterator[memoryview]:
        """Yield the data of ``member`` in chunks read into ``buffer`` (reused each time)."""
        self._reader.seek(member.offset_data)
        remaining = member.size
        while remaining:
            n = self._reader.readinto(buffer[: min(remaining, len(buffer))])
            if not n:
                raise UnsafeLayer(f"layer entry {member.name!r}: data truncated")
            remaining -= n
            yield buffer[:n]

    def member_stream(self, member: TarMember) -> BinaryIO:
        """A stream of exactly the data of ``member`` (read it before the next member)."""
        self._reader.seek(member.offset_data)
        return cast(BinaryIO, _MemberData(self._reader, member))

    def drain(self) -> int:
        """Read the stream to its end (padding after the archive); returns the bytes read."""
        scratch = memoryview(bytearray(1 << 20))
        total = 0
        while n := self._reader.readinto(scratch):
            total += n
        return total
