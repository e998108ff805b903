"""Tar headers encoded byte for byte as Go's ``archive/tar`` writes them.

:func:`go_tar_header` gives the header block(s) of one entry, following the conventions
of the layers buildah 1.28 commits (checked at the byte level in
``tests/builder/test_tar_header.py`` and ``tests/builder/test_layer_writer.py``):

* USTAR (``ustar\\0`` + ``00``); names longer than 100 bytes are split into the prefix
  field when they can be; a PAX extended header (named ``<dir>/PaxHeaders.0/<base>``, as
  Go names it, records sorted) only when needed: a long or non-ASCII name or link target,
  an id, size or time that does not fit, or extended attributes (``SCHILY.xattr.*``).
* The mode field is written as given; Go's tools put the file-type bits into it
  (``0100644``, ``0040755``, ``0120777``, :data:`MODE_TYPE_BITS`), which :mod:`tarfile`
  drops (it keeps ``mode & 0o7777``): one reason aiopod encodes headers itself.  Numbers
  are zero-padded octal with a NUL, the checksum is six digits, NUL, space.

A codec only: it knows nothing of layers or builds (:mod:`aiopod.builder.layers.writer`
writes layers with it; the content digest of ``COPY``/``ADD`` sources and the summaries
of downloads hash its headers).  Pure functions, no I/O; safe on the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = (
    "BLOCK",
    "MODE_TYPE_BITS",
    "TYPE_BLOCK",
    "TYPE_CHAR",
    "TYPE_DIR",
    "TYPE_FIFO",
    "TYPE_LINK",
    "TYPE_REG",
    "TYPE_SYMLINK",
    "block_padding",
    "go_tar_header",
)

#: The size of a tar block: headers, and data padded to a whole number of them.
BLOCK: Final = 512

TYPE_REG: Final = b"0"
TYPE_LINK: Final = b"1"
TYPE_SYMLINK: Final = b"2"
TYPE_CHAR: Final = b"3"
TYPE_BLOCK: Final = b"4"
TYPE_DIR: Final = b"5"
TYPE_FIFO: Final = b"6"

#: The type bits Go's tools put into the mode field, by type flag.
MODE_TYPE_BITS: Final[Mapping[bytes, int]] = {
    TYPE_REG: 0o100000,
    TYPE_LINK: 0o100000,
    TYPE_SYMLINK: 0o120000,
    TYPE_CHAR: 0o020000,
    TYPE_BLOCK: 0o060000,
    TYPE_DIR: 0o040000,
    TYPE_FIFO: 0o010000,
}

_MAX_OCTAL_8 = 8**7 - 1  # 7 digits and a NUL
_MAX_OCTAL_12 = 8**11 - 1


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _is_ascii(data: bytes) -> bool:
    return data.isascii()


def _to_ascii(data: bytes) -> bytes:
    """Go's ``toASCII``: drop every byte of a non-ASCII character, and NULs."""
    if data.isascii() and b"\0" not in data:
        return data
    return bytes(c for c in data if 0 < c < 0x80)


def _octal(value: int, width: int) -> bytes:
    """Go's ``formatOctal``: zero-padded to ``width - 1`` digits and a NUL; 0 if too big."""
    if value < 0 or value >= 8 ** (width - 1):
        value = 0
    return format(value, "o").rjust(width - 1, "0").encode() + b"\0"


def _put_string(block: bytearray, offset: int, width: int, data: bytes) -> None:
    """Go's ``formatString``: copy at most ``width`` bytes; NUL-terminate if there is room;
    a truncated name never ends in ``/`` (Go's fix for buggy readers)."""
    block[offset : offset + min(len(data), width)] = data[:width]
    if len(data) > width and block[offset + width - 1] == ord("/"):
        kept = len(data[: width - 1].rstrip(b"/"))
        block[offset + kept] = 0


def _split_ustar_path(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's ``splitUSTARPath``: a prefix (<= 155 bytes) and a suffix (<= 100 bytes)."""
    length = len(name)
    if length <= 100 or not _is_ascii(name):
        return None
    if length > 156:
        length = 156
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    if i <= 0:
        return None
    suffix_len = len(name) - i - 1
    if suffix_len > 100 or suffix_len == 0 or i > 155:
        return None
    return name[:i], name[i + 1 :]


def _checksum(block: bytearray) -> None:
    block[148:156] = b"        "
    block[148:156] = _octal(sum(block), 7) + b" "


def _pax_record(key: bytes, value: bytes) -> bytes:
    """Go's ``formatPAXRecord``: ``"<len> <key>=<value>\\n"``, the length counting itself."""
    size = len(key) + len(value) + 3
    size += len(str(size))
    record = str(size).encode() + b" " + key + b"=" + value + b"\n"
    if len(record) != size:
        size = len(record)
        record = str(size).encode() + b" " + key + b"=" + value + b"\n"
    return record


def _pax_header_name(name: bytes) -> bytes:
    """Go names the extended header ``path.Join(dir, "PaxHeaders.0", base)``."""
    cut = name.rfind(b"/") + 1
    directory, base = name[:cut], name[cut:]
    parts = [p for p in (directory + b"PaxHeaders.0/" + base).split(b"/") if p]
    joined = b"/".join(parts)
    joined = _to_ascii(joined)[:100]
    return joined.rstrip(b"/")


def block_padding(size: int) -> int:
    """The zero bytes that follow ``size`` bytes of entry data up to a whole block."""
    return -size % BLOCK


def go_tar_header(
    name: str,
    *,
    typeflag: bytes,
    mode: int,
    uid: int = 0,
    gid: int = 0,
    size: int = 0,
    mtime: int = 0,
    linkname: str = "",
    uname: str = "",
    gname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: Mapping[str, bytes] | None = None,
) -> bytes:
    """The header block(s) Go's ``tar.Writer`` writes for one entry (without its data).

    USTAR when every field fits, else a PAX extended header first (its records sorted by
    key, as Go sorts them) and the main header with the fields that do fit.  ``mode`` is
    written as given: pass the type bits too for a Go-style layer.
    """
    bname, blink = _b(name), _b(linkname)
    buname, bgname = _b(uname), _b(gname)
    pax: dict[bytes, bytes] = {}
    ustar = True  # Go writes USTAR whenever it can, else PAX
    split = None
    if not _is_ascii(bname) or len(bname) > 100:
        pax[b"path"] = bname
        split = _split_ustar_path(bname)
        ustar = split is not None
    for pax_key, text, width in (
        (b"linkpath", blink, 100),
        (b"uname", buname, 32),
        (b"gname", bgname, 32),
    ):
        if not _is_ascii(text) or len(text) > width:
            pax[pax_key] = text
            ustar = False
    for pax_key, number, limit in (
        (b"uid", uid, _MAX_OCTAL_8),
        (b"gid", gid, _MAX_OCTAL_8),
        (b"size", size, _MAX_OCTAL_12),
        (b"mtime", mtime, _MAX_OCTAL_12),
    ):
        if not 0 <= number <= limit:
            pax[pax_key] = str(number).encode()
            ustar = False
    if not (0 <= devmajor <= _MAX_OCTAL_8 and 0 <= devminor <= _MAX_OCTAL_8):
        raise ValueError(f"device numbers of {name!r} do not fit a tar header")
    for xattr, value in (xattrs or {}).items():
        pax[b"SCHILY.xattr." + _b(xattr)] = value
        ustar = False
    out = bytearray()
    if not ustar:
        split = None  # Go does not split names in the PAX format
        records = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
        ext = bytearray(BLOCK)
        ext_name = _pax_header_name(bname)
        ext[0 : len(ext_name)] = ext_name
        ext[100:108] = _octal(0, 8)
        ext[108:116] = _octal(0, 8)
        ext[116:124] = _octal(0, 8)
        ext[124:136] = _octal(len(records), 12)
        ext[136:148] = _octal(0, 12)
        ext[156:157] = b"x"
        ext[257:265] = b"ustar\x0000"
        _checksum(ext)
        out += ext
        out += records
        out += bytes(block_padding(len(records)))
        bname = _to_ascii(bname)
        blink = _to_ascii(blink)
        buname = _to_ascii(buname)
        bgname = _to_ascii(bgname)
    block = bytearray(BLOCK)
    if split is not None:
        prefix, bname = split
        block[345 : 345 + len(prefix)] = prefix
    _put_string(block, 0, 100, bname)
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(uid, 8)
    block[116:124] = _octal(gid, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(mtime, 12)
    block[156:157] = typeflag
    _put_string(block, 157, 100, blink)
    block[257:265] = b"ustar\x0000"
    _put_string(block, 265, 32, buname)
    _put_string(block, 297, 32, bgname)
    block[329:337] = _octal(devmajor, 8)
    block[337:345] = _octal(devminor, 8)
    _checksum(block)
    out += block
    return bytes(out)
