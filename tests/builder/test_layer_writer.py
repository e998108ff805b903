"""The reproducible layer writer (aiopod.builder.layers.writer): Go's header conventions at the
byte level, the ``diff_id`` hashed on the way, COPY layers written straight from a build
context, and byte-for-byte equality with the layers buildah commits (``--timestamp``).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest_context import Buildah, layer_members, make_tree, raw_headers, tree_state

from aiopod.builder.layers.writer import LayerWriter, round_mtime, write_copy_layer
from aiopod.builder.sources.context import resolve_sources
from aiopod.builder.sources.copy_plan import copy_plan
from aiopod.builder.sources.ignore import IgnoreRules
from aiopod.errors import BuildError
from aiopod.storage.applier import apply_layer
from aiopod.storage.layer_check import scan_layer
from aiopod.storage.tar_reader import TarReader

NO_RULES = IgnoreRules()


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


# -- COPY layers ----------------------------------------------------------------------------------


def _copy(
    ctx: Path,
    sources: list[str],
    dest: str,
    rules: IgnoreRules = NO_RULES,
    *,
    dest_is_dir: bool = False,
    **kwargs: object,
) -> bytes:
    entries = resolve_sources(ctx, sources, rules)
    plan = copy_plan(entries, dest, "/", dest_is_dir_hint=dest_is_dir)
    out = io.BytesIO()
    opts: dict[str, object] = {"chown": None, "chmod": None, "timestamp": None, "now": 1234}
    opts.update(kwargs)
    info = write_copy_layer(entries, plan, out=out, **opts)  # type: ignore[arg-type]
    data = out.getvalue()
    assert info.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert scan_layer(io.BytesIO(data)) > 0
    return data


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = make_tree(
        tmp_path / "ctx",
        {
            "a.txt": "a",
            "suid": ("s", 0o6755),
            "d/f": ("f", 0o640),
            "d/link@": "f",
            "d/sticky/": 0o1777,
            "d/setgid/": 0o2775,
            "d/sub/deep": "deep",
            "d/h1": "hard",
        },
    )
    os.link(root / "d" / "h1", root / "d" / "h2")
    os.utime(root / "d" / "h1", (1, 1))
    return root


def test_copy_layer_parents_ownership_and_modes(ctx: Path) -> None:
    members = {m.name: m for m in layer_members(_copy(ctx, ["d"], "/x/y/"))}
    assert list(members) == [
        "x/", "x/y/", "x/y/f", "x/y/h1", "x/y/h2", "x/y/link", "x/y/setgid/",
        "x/y/sticky/", "x/y/sub/", "x/y/sub/deep",
    ]  # fmt: skip
    # New parents: 0755, 0:0, mtime "now"; the source directory itself is not copied.
    assert (oct(members["x/"].mode), members["x/"].mtime) == ("0o40755", 1234)
    assert (oct(members["x/y/"].mode), members["x/y/"].uid) == ("0o40755", 0)
    assert oct(members["x/y/f"].mode) == "0o100640"
    assert oct(members["x/y/sticky/"].mode) == "0o41777"  # sticky kept
    assert oct(members["x/y/setgid/"].mode) == "0o40775"  # setgid stripped
    assert (members["x/y/link"].type, oct(members["x/y/link"].mode)) == (b"2", "0o120777")
    # hard links inside a directory source stay links; the first in layer order has data
    assert (members["x/y/h1"].type, members["x/y/h1"].data) == (b"0", b"hard")
    assert (members["x/y/h2"].type, members["x/y/h2"].link) == (b"1", "x/y/h1")
    assert members["x/y/h1"].mtime == 1  # the source's mtime, rounded
    assert all((m.uid, m.gid) == (0, 0) for m in members.values())


def test_copy_layer_chown_chmod_and_setid(ctx: Path) -> None:
    members = {
        m.name: m
        for m in layer_members(_copy(ctx, ["d", "suid"], "/o/", chown=(7, 8), chmod=0o750))
    }
    assert all((m.uid, m.gid) == (7, 8) for m in members.values())  # the new parent too
    assert oct(members["o/"].mode) == "0o40755"  # the destination keeps 0755
    assert oct(members["o/f"].mode) == "0o100750"
    assert oct(members["o/sub/"].mode) == "0o40750"
    assert oct(members["o/link"].mode) == "0o120777"
    assert oct(members["o/suid"].mode) == "0o100750"
    members = {m.name: m for m in layer_members(_copy(ctx, ["suid"], "/s"))}
    assert oct(members["s"].mode) == "0o100755"  # 6755 without setuid and setgid
    members = {m.name: m for m in layer_members(_copy(ctx, ["suid"], "/s", strip_setid=False))}
    assert oct(members["s"].mode) == "0o106755"


def test_copy_layer_preserve_ownership(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    ctx = make_tree(tmp_path / "ctx", {"f": "x"})
    os.chown(ctx / "f", 33, 44)
    [member] = layer_members(_copy(ctx, ["f"], "/f", preserve_ownership=True))
    assert (member.uid, member.gid) == (33, 44)
    [member] = layer_members(_copy(ctx, ["f"], "/f"))
    assert (member.uid, member.gid) == (0, 0)


def test_copy_layer_separate_sources_are_separate_files(ctx: Path) -> None:
    members = layer_members(_copy(ctx, ["d/h1", "d/h2"], "/z/"))
    assert [(m.name, m.type) for m in members] == [("z/", b"5"), ("z/h1", b"0"), ("z/h2", b"0")]


def test_copy_layer_rename_and_timestamp(ctx: Path) -> None:
    members = layer_members(_copy(ctx, ["a.txt"], "/n/newname", timestamp=42))
    assert [(m.name, m.mtime) for m in members] == [("n/", 42), ("n/newname", 42)]
    members = layer_members(_copy(ctx, ["a.txt"], "/top"))
    assert [m.name for m in members] == ["top"]  # the root itself is never written


def test_copy_layer_sorted_or_walk_order(tmp_path: Path) -> None:
    ctx = make_tree(tmp_path / "ctx", {"a/x": "", "a-b": "", "a.txt": "", "B": ""})
    sorted_names = [m.name for m in layer_members(_copy(ctx, ["."], "/c/"))]
    assert sorted_names == ["c/", "c/B", "c/a/", "c/a-b", "c/a.txt", "c/a/x"]
    walked = [m.name for m in layer_members(_copy(ctx, ["."], "/c/", walk_order=True))]
    assert walked == ["c/", "c/B", "c/a/", "c/a/x", "c/a-b", "c/a.txt"]


def test_copy_layer_implicit_directories(ctx: Path) -> None:
    rules = IgnoreRules.parse("d\n!d/sub/deep\n")
    members = {m.name: m for m in layer_members(_copy(ctx, ["."], "/c/", rules, chown=(5, 5)))}
    assert set(members) == {"c/", "c/a.txt", "c/suid", "c/d/", "c/d/sub/", "c/d/sub/deep"}
    # entered only for the exception: made as new directories (0755, owner, now)
    assert (oct(members["c/d/"].mode), members["c/d/"].uid, members["c/d/"].mtime) == (
        "0o40755", 5, 1234
    )  # fmt: skip


def test_copy_layer_existing_parents_from_the_rootfs(ctx: Path, tmp_path: Path) -> None:
    rootfs = make_tree(tmp_path / "rootfs", {"usr/local/": 0o750, "tmp/": 0o1777}, mtime=77)
    os.chown(rootfs / "usr", 3, 4) if os.geteuid() == 0 else None
    members = {
        m.name: m for m in layer_members(_copy(ctx, ["a.txt"], "/usr/local/bin/", rootfs=rootfs))
    }
    assert list(members) == ["usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/a.txt"]
    assert (oct(members["usr/"].mode), members["usr/"].mtime) == ("0o40755", 77)
    if os.geteuid() == 0:
        assert (members["usr/"].uid, members["usr/"].gid) == (3, 4)
    # the deepest existing directory gets a new entry: its mtime is "now"
    assert (oct(members["usr/local/"].mode), members["usr/local/"].mtime) == ("0o40750", 1234)
    assert (oct(members["usr/local/bin/"].mode), members["usr/local/bin/"].mtime) == (
        "0o40755", 1234
    )  # fmt: skip
    members = {m.name: m for m in layer_members(_copy(ctx, ["a.txt"], "/tmp/", rootfs=rootfs))}
    assert oct(members["tmp/"].mode) == "0o41777"  # /tmp keeps its mode


def test_copy_layer_through_a_dangling_image_symlink(ctx: Path, tmp_path: Path) -> None:
    rootfs = make_tree(tmp_path / "rootfs", {"opt/": 0o755, "app@": "/opt/app"})
    names = [m.name for m in layer_members(_copy(ctx, ["a.txt"], "/app/", rootfs=rootfs))]
    assert names == ["opt/", "opt/app/", "opt/app/a.txt"]


def test_copy_layer_refuses_a_changed_source(ctx: Path) -> None:
    entries = resolve_sources(ctx, ["a.txt"], NO_RULES)
    plan = copy_plan(entries, "/x", "/", dest_is_dir_hint=False)
    (ctx / "a.txt").write_text("longer now")
    with pytest.raises(BuildError, match="changed"):
        write_copy_layer(entries, plan, chown=None, chmod=None, timestamp=None, out=io.BytesIO())


def test_copy_layer_round_trip(ctx: Path, tmp_path: Path) -> None:
    data = _copy(ctx, ["."], "/c/")
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(root, io.BytesIO(data))
    theirs = tree_state(ctx)
    ours = tree_state(root / "c")
    theirs["suid"] = ("file", "0o755", theirs["suid"][2])
    theirs["d/setgid"] = ("dir", "0o775")
    assert ours == theirs


# -- against buildah ------------------------------------------------------------------------------


@pytest.mark.peer("buildah")
def test_copy_layers_are_buildahs_byte_for_byte(tmp_path: Path) -> None:
    ctx = make_tree(
        tmp_path / "ctx",
        {
            "a.txt": "a",
            "a-b": "ab",
            "B": "B",
            "a/x": "x",
            "a/y/z": "z",
            "suid": ("s", 0o4755),
            "d/f": ("f", 0o640),
            "d/l@": "f",
            "d/sticky/": 0o1777,
            "d/setgid/": 0o2775,
            "d/h1": "hard",
            "ünïcode.txt": "u",
            "long/" + "n" * 150: "long name",
            "split/" + "p" * 60 + "/" + "q" * 60: "splittable",
        },
    )
    os.link(ctx / "d" / "h1", ctx / "d" / "h2")
    os.mkfifo(ctx / "d" / "fifo")
    os.setxattr(ctx / "a.txt", "user.note", b"kept")
    os.utime(ctx / "a.txt", ns=(1_700_000_000_700_000_000,) * 2)  # rounded up to ...001
    steps: list[tuple[str, list[str], str, dict[str, Any]]] = [
        ("COPY . /c/", ["."], "/c/", {}),
        ("COPY a.txt /x/y/z/", ["a.txt"], "/x/y/z/", {}),
        ("COPY --chmod=0750 d /m/", ["d"], "/m/", {"chmod": 0o750}),
        ("COPY --chown=1000:1000 d /o/p/", ["d"], "/o/p/", {"chown": (1000, 1000)}),
        ("COPY a.txt /n/newname", ["a.txt"], "/n/newname", {}),
        ("COPY d /c/", ["d"], "/c/", {}),
        ("COPY a.txt a-b /c/a/", ["a.txt", "a-b"], "/c/a/", {}),
    ]
    dockerfile = "FROM scratch\n" + "".join(step + "\n" for step, *_ in steps)
    result = Buildah(tmp_path / "buildah").build(
        ctx, dockerfile, "--layers", "--timestamp", "1650000000"
    )
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    for i, (text, sources, dest, opts) in enumerate(steps):
        entries = resolve_sources(ctx, sources, NO_RULES)
        is_dir = (rootfs / dest.strip("/")).is_dir()
        plan = copy_plan(entries, dest, "/", dest_is_dir_hint=is_dir)
        out = io.BytesIO()
        info = write_copy_layer(
            entries, plan, chown=opts.get("chown"), chmod=opts.get("chmod"),
            timestamp=1650000000, out=out, rootfs=rootfs, walk_order=i == 0,
        )  # fmt: skip
        theirs = result.layers[i]
        if out.getvalue() != theirs:
            ours_m = [
                (m.name, m.type, oct(m.mode), m.uid, m.mtime) for m in layer_members(out.getvalue())
            ]
            theirs_m = [
                (m.name, m.type, oct(m.mode), m.uid, m.mtime) for m in layer_members(theirs)
            ]
            assert ours_m == theirs_m, text
        assert info.diff_id == result.diff_ids[i], text
        out.seek(0)
        apply_layer(rootfs, out)
    assert stat.S_ISFIFO(os.lstat(rootfs / "c" / "d" / "fifo").st_mode)
