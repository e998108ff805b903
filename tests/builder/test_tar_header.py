"""The Go-compatible tar header codec (aiopod.builder.layers.tar_header), at the byte level.

The PAX cases (long, non-ASCII and split names, big ids, xattrs) are checked through the
layer writer in ``test_layer_writer.py``, with tarfile and aiopod's own reader.
"""

from __future__ import annotations

from aiopod.builder.layers.tar_header import go_tar_header


def test_a_directory_header_byte_by_byte() -> None:
    block = go_tar_header("c/", typeflag=b"5", mode=0o40755, mtime=1650000000)
    assert len(block) == 512
    assert block[0:100] == b"c/" + bytes(98)
    assert block[100:108] == b"0040755\0"  # the type bits, as Go's tools write them
    assert block[108:116] == b"0000000\0"
    assert block[116:124] == b"0000000\0"
    assert block[124:136] == b"00000000000\0"
    assert block[136:148] == b"14226200200\0"
    assert block[156:157] == b"5"
    assert block[157:257] == bytes(100)
    assert block[257:265] == b"ustar\x0000"
    assert block[265:329] == bytes(64)  # empty uname and gname
    assert block[329:345] == b"0000000\x000000000\0"
    assert block[345:512] == bytes(167)
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    assert block[148:156] == b"%06o\0 " % unsigned
