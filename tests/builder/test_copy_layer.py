"""COPY/ADD layers written straight from a build context (aiopod.builder.layers.copy_layer):
parents, ownership, modes, hard links and order as buildah writes them, a source changed
after planning refused, and byte-for-byte equality with the layers buildah commits
(``--timestamp``).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest_context import Buildah, layer_members, make_tree, tree_state

from aiopod.builder.layers.copy_layer import write_copy_layer
from aiopod.builder.sources.context import resolve_sources
from aiopod.builder.sources.copy_plan import copy_plan
from aiopod.builder.sources.ignore import IgnoreRules
from aiopod.errors import BuildError
from aiopod.storage.applier import apply_layer
from aiopod.storage.layer_check import scan_layer

NO_RULES = IgnoreRules()


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
        apply_layer(rootfs, out, allow_special_files=True)  # as a runtime allowing FIFOs
    assert stat.S_ISFIFO(os.lstat(rootfs / "c" / "d" / "fifo").st_mode)
