"""The reproducible layer writer (aiopod.builder.layers.writer): Go's header conventions at the
byte level, the ``diff_id`` hashed on the way, entries of every kind, and layers the
applier and tarfile read back.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from conftest_context import layer_members, raw_headers, tree_state

from aiopod.builder.layers.writer import LayerWriter, round_mtime
from aiopod.errors import BuildError
from aiopod.storage.applier import apply_layer
from aiopod.storage.layer_check import scan_layer
from aiopod.storage.tar_reader import TarReader


def _write(build: object, **kwargs: object) -> tuple[bytes, str, int]:
    out = io.BytesIO()
    writer = LayerWriter(out, **kwargs)  # type: ignore[arg-type]
    build(writer)  # type: ignore[operator]
    info = writer.close()
    return out.getvalue(), info.diff_id, info.size


# -- header conventions ---------------------------------------------------------------------------


def test_layer_end_and_hash() -> None:
    data, diff_id, size = _write(
        lambda w: (w.add_dir("d", mtime=5), w.add_file("d/f", io.BytesIO(b"hello"), size=5))
    )
    # two headers + one data block + exactly two zero blocks; no 10 KiB record padding
    assert size == len(data) == 512 * 3 + 1024
    assert data.endswith(bytes(1024)) and data[-1536:-1024] != bytes(512)
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert [m.name for m in layer_members(data)] == ["d/", "d/f"]
    assert scan_layer(io.BytesIO(data)) == 2


def test_names_are_relative_without_dot_slash() -> None:
    data, _, _ = _write(
        lambda w: (w.add_dir("/a/"), w.add_dir("./a/b"), w.add_symlink("a//b/./l", "../x"))
    )
    assert [m.name for m in layer_members(data)] == ["a/", "a/b/", "a/b/l"]
    for bad in ("", ".", "/", "a/../b"):
        with pytest.raises(ValueError):
            LayerWriter(io.BytesIO()).add_dir(bad)


def test_modes_carry_type_bits() -> None:
    def build(w: LayerWriter) -> None:
        w.add_dir("d", mode=0o1777)
        w.add_file("f", io.BytesIO(b""), size=0, mode=0o4755)
        w.add_symlink("l", "f")
        w.add_hardlink("h", "f", mode=0o755)
        w.add_fifo("p", mode=0o600)
        w.add_device("c", block=False, major=1, minor=3, mode=0o666)
        w.add_device("b", block=True, major=7, minor=0)
        w.add_whiteout("gone")
        w.add_opaque("d")

    data, _, _ = _write(build)
    modes = {m.name: (m.type, oct(m.mode), m.size) for m in layer_members(data)}
    assert modes == {
        "d/": (b"5", "0o41777", 0),
        "f": (b"0", "0o104755", 0),
        "l": (b"2", "0o120777", 0),
        "h": (b"1", "0o100755", 0),
        "p": (b"6", "0o10600", 0),
        "c": (b"3", "0o20666", 0),
        "b": (b"4", "0o60600", 0),
        ".wh.gone": (b"0", "0o0", 0),  # whiteouts: regular, mode 0, size 0
        "d/.wh..wh..opq": (b"0", "0o0", 0),
    }
    with pytest.raises(ValueError):
        LayerWriter(io.BytesIO()).add_whiteout(".wh.x")


def test_timestamp_replaces_and_clamp_lowers_mtimes() -> None:
    def build(w: LayerWriter) -> None:
        w.add_dir("old", mtime=100)
        w.add_dir("new", mtime=10**9)
        w.add_whiteout("gone", mtime=10**9)

    data, _, _ = _write(build, timestamp=500)
    assert {m.name: m.mtime for m in layer_members(data)} == {
        "old/": 500, "new/": 500, ".wh.gone": 500
    }  # fmt: skip
    data, _, _ = _write(build, clamp_mtime=500)
    assert {m.name: m.mtime for m in layer_members(data)} == {
        "old/": 100, "new/": 500, ".wh.gone": 500
    }  # fmt: skip


def test_round_mtime_is_gos_round() -> None:
    assert round_mtime(1_700_000_000_499_999_999) == 1_700_000_000
    assert round_mtime(1_700_000_000_500_000_000) == 1_700_000_001
    assert round_mtime(0) == 0


def test_pax_only_when_needed() -> None:
    long_dir = "d" * 120
    splittable = f"{long_dir}/file"  # 125 bytes: USTAR prefix + name
    unsplittable = "x" * 150  # one 150-byte component: PAX

    def build(w: LayerWriter) -> None:
        w.add_file(splittable, io.BytesIO(b"1"), size=1)
        w.add_file(unsplittable, io.BytesIO(b"2"), size=1)
        w.add_file("ünïcode", io.BytesIO(b"3"), size=1)
        w.add_file("big-id", io.BytesIO(b"4"), size=1, uid=3_000_000)
        w.add_file("xattr", io.BytesIO(b"5"), size=1, xattrs={"user.k": b"v\0bin"})
        w.add_symlink("longlink", "t" * 200)
        w.add_file("plain", io.BytesIO(b"6"), size=1)

    data, _, _ = _write(build)
    blocks = raw_headers(data)
    kinds = [b[156:157] for b in blocks]
    assert kinds == [b"0", b"x", b"0", b"x", b"0", b"x", b"0", b"x", b"0", b"x", b"2", b"0"]
    first = blocks[0]
    assert (
        first[345:500].rstrip(b"\0") == long_dir.encode() and first[:100].rstrip(b"\0") == b"file"
    )
    # Go names the extended header <dir>/PaxHeaders.0/<base>, truncated to 100 bytes
    assert blocks[1][:100].rstrip(b"\0") == (b"PaxHeaders.0/" + b"x" * 87)
    assert blocks[1][329:345] == bytes(16)  # Go leaves the device fields empty there
    members = {m.name: m for m in layer_members(data)}
    assert set(members) == {splittable, unsplittable, "ünïcode", "big-id", "xattr",
                            "longlink", "plain"}  # fmt: skip
    assert members["big-id"].uid == 3_000_000
    assert members["xattr"].pax == {"SCHILY.xattr.user.k": "v\0bin"}
    assert members["longlink"].link == "t" * 200
    # tarfile and aiopod's hardened reader agree
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert sorted(tf.getnames()) == sorted(members)
    reader = TarReader(io.BytesIO(data))
    assert sorted(m.name for m in reader) == sorted(members)
    assert scan_layer(io.BytesIO(data)) == len(members)


def test_add_file_sources(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(3 * (1 << 20) + 17))  # several 1 MiB chunks
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(src)

    def build(w: LayerWriter) -> None:
        w.add_file("from-path", src)
        fd = os.open(src, os.O_RDONLY)
        try:
            w.add_file("from-fd", fd)
        finally:
            os.close(fd)
        with src.open("rb") as f:
            w.add_file("from-stream", f, size=src.stat().st_size)

    data, _, _ = _write(build)
    for member in layer_members(data):
        assert member.data == src.read_bytes()
    writer = LayerWriter(io.BytesIO())
    with pytest.raises(BuildError):
        writer.add_file("x", fifo)  # never blocks on a FIFO, never reads it
    with pytest.raises(OSError):
        writer.add_file("x", link)  # a final symlink is not followed
    with pytest.raises(BuildError, match="early"):
        writer.add_file("x", io.BytesIO(b"abc"), size=4)
    fd = os.open(src, os.O_RDONLY)
    try:
        with pytest.raises(BuildError, match="grew"):
            writer.add_file("y", fd, size=10)
    finally:
        os.close(fd)


def test_round_trip_through_the_applier(tmp_path: Path) -> None:
    def build(w: LayerWriter) -> None:
        w.add_dir("etc", mode=0o755, mtime=1000)
        w.add_file("etc/passwd", io.BytesIO(b"root:x:0:0\n"), size=11, mode=0o644, mtime=1000)
        w.add_hardlink("etc/passwd-", "etc/passwd")
        w.add_symlink("etc/localtime", "/usr/share/zoneinfo/UTC", mtime=1000)
        w.add_dir("tmp", mode=0o1777, mtime=1000)
        w.add_file("bin/su", io.BytesIO(b"#!"), size=2, mode=0o4755, mtime=1000)

    data, diff_id, _ = _write(build)
    again, diff_id_again, _ = _write(build)
    assert (again, diff_id_again) == (data, diff_id)  # reproducible
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(root, io.BytesIO(data))
    assert tree_state(root) == {
        "etc": ("dir", "0o755"),
        "etc/passwd": ("file", "0o644", hashlib.sha256(b"root:x:0:0\n").hexdigest()),
        "etc/passwd-": ("file", "0o644", hashlib.sha256(b"root:x:0:0\n").hexdigest()),
        "etc/localtime": ("symlink", "/usr/share/zoneinfo/UTC"),
        "tmp": ("dir", "0o1777"),
        "bin": ("dir", "0o755"),
        "bin/su": ("file", "0o4755", hashlib.sha256(b"#!").hexdigest()),
    }
    assert os.stat(root / "etc" / "passwd").st_ino == os.stat(root / "etc" / "passwd-").st_ino
