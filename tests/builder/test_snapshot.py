"""RUN-step diffs (aiopod.builder.layers.snapshot): the snapshot, the rules of the diff layer, a
round-trip property (before -> diff -> apply onto a copy of before == after), and equality
with the layer buildah commits for the same changes.

Every tree lives under ``tmp_path``; symlinks in these trees are only ever read.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest
from conftest_context import Buildah, layer_members, make_tree, tree_state
from hypothesis import HealthCheck, given, settings, strategies as st

from aiopod.builder.layers.snapshot import Snapshot, diff, write_diff_layer
from aiopod.storage.applier import apply_layer
from aiopod.storage.layer_check import scan_layer


def _layer(before: Snapshot, root: Path, **kwargs: object) -> bytes:
    out = io.BytesIO()
    opts: dict[str, object] = {"now": 99}
    opts.update(kwargs)
    info = write_diff_layer(before, root, out, **opts)  # type: ignore[arg-type]
    data = out.getvalue()
    assert info.size == len(data)
    assert scan_layer(io.BytesIO(data)) >= 0
    return data


def _entries(data: bytes) -> list[tuple[str, bytes]]:
    return [(m.name, m.type) for m in layer_members(data)]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "root",
        {
            "bin/busybox": ("x" * 3000, 0o755),
            "bin/sh@": "busybox",
            "etc/passwd": "root:x:0:0\n",
            "victim/dir/old": "o",
            "victim/dir/keep": "k",
            "victim/gone/file": "g",
            "victim/gone/deeper/f": "g2",
            "victim/re/a": "a",
            "victim/re/b": "b",
            "a/x": "x",
            "a.txt": "t",
            "m/file": "f",
            "m/chm": "c",
            "tmp/": 0o1777,
        },
    )


def test_snapshot_records_without_following(root: Path) -> None:
    snap = Snapshot.take(root)
    assert "" not in snap and "." not in snap
    assert snap.get("bin/sh") is not None and snap.nodes["bin/sh"].link == "busybox"
    assert snap.nodes["bin/sh"].kind == stat.S_IFLNK
    assert snap.nodes["tmp"].is_dir and snap.nodes["tmp"].mode == 0o1777
    assert snap.nodes["bin/busybox"].size == 3000
    assert len(snap) == len(tree_state(root))


@pytest.mark.anyio
async def test_snapshot_async(root: Path) -> None:
    snap = await Snapshot.take_async(root)
    assert snap.nodes == Snapshot.take(root).nodes


def test_nothing_changed_gives_an_empty_layer(root: Path) -> None:
    before = Snapshot.take(root)
    data = _layer(before, root)
    assert data == bytes(1024)


def test_diff_rules(root: Path) -> None:
    before = Snapshot.take(root)
    shutil.rmtree(root / "victim" / "gone")
    os.unlink(root / "victim" / "dir" / "old")
    shutil.rmtree(root / "victim" / "re")
    (root / "victim" / "re").mkdir()
    (root / "victim" / "re" / "new").write_text("n")
    os.chmod(root / "m" / "chm", 0o600)  # metadata only
    os.utime(root / "m" / "file", (5, 5))  # mtime only
    (root / "a" / "new").mkdir()
    (root / "a-c").write_text("y")
    os.link(root / "a-c", root / "a" / "hl")
    os.unlink(root / "bin" / "sh")
    os.symlink("/bin/busybox", root / "bin" / "sh")  # retargeted
    os.unlink(root / "a.txt")
    (root / "a.txt").mkdir()  # type change: no whiteout, the directory replaces the file
    data = _layer(before, root)
    assert _entries(data) == [
        ("a/", b"5"),
        ("a-c", b"0"),
        ("a.txt/", b"5"),
        ("a/hl", b"1"),
        ("a/new/", b"5"),
        ("bin/", b"5"),
        ("bin/sh", b"2"),
        ("m/", b"5"),
        ("m/chm", b"0"),
        ("m/file", b"0"),
        ("victim/", b"5"),
        ("victim/dir/", b"5"),
        ("victim/dir/.wh.old", b"0"),
        ("victim/.wh.gone", b"0"),  # one whiteout for the whole deleted tree
        ("victim/re/", b"5"),
        ("victim/re/.wh.a", b"0"),  # deleted and made again: per-child whiteouts
        ("victim/re/.wh.b", b"0"),
        ("victim/re/new", b"0"),
    ]
    members = {m.name: m for m in layer_members(data)}
    assert members["m/chm"].data == b"c" and oct(members["m/chm"].mode) == "0o100600"
    assert members["m/file"].data == b"f" and members["m/file"].mtime == 5
    assert members["a/hl"].link == "a-c"
    assert members["bin/sh"].link == "/bin/busybox"
    assert members["victim/.wh.gone"].mtime == 99 and members["victim/.wh.gone"].mode == 0
    assert members["victim/"].mtime == int(os.stat(root / "victim").st_mtime)


def test_parent_directories_carry_current_attributes(root: Path) -> None:
    before = Snapshot.take(root)
    os.chmod(root / "victim", 0o711)
    (root / "victim" / "dir" / "new").write_text("n")
    data = _layer(before, root)
    members = {m.name: m for m in layer_members(data)}
    assert list(members) == ["victim/", "victim/dir/", "victim/dir/new"]
    assert oct(members["victim/"].mode) == "0o40711"


def test_directory_mtime_alone_is_no_change(root: Path) -> None:
    before = Snapshot.take(root)
    os.utime(root / "victim", (1, 1))
    (root / "victim" / "tmpfile").write_text("x")
    os.unlink(root / "victim" / "tmpfile")
    assert _layer(before, root) == bytes(1024)


def test_content_rewrite_with_restored_mtime_is_seen(root: Path) -> None:
    before = Snapshot.take(root)
    st = os.stat(root / "etc" / "passwd")
    (root / "etc" / "passwd").write_text("ROOT:x:0:0\n")  # same size
    os.utime(root / "etc" / "passwd", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _entries(_layer(before, root)) == [("etc/", b"5"), ("etc/passwd", b"0")]


def test_exclude_drops_changes_and_deletions(root: Path) -> None:
    before = Snapshot.take(root)
    (root / "data").mkdir()
    (root / "data" / "f").write_text("f")
    (root / "victim" / "dir" / "keep").write_text("changed")
    shutil.rmtree(root / "victim" / "gone")
    (root / "etc" / "hosts").write_text("stub")
    data = _layer(before, root, exclude=["/data", "victim/gone", "/etc/hosts"])
    assert _entries(data) == [("victim/", b"5"), ("victim/dir/", b"5"), ("victim/dir/keep", b"0")]


def test_special_files(root: Path) -> None:
    before = Snapshot.take(root)
    os.mkfifo(root / "tmp" / "fifo", 0o600)
    if os.geteuid() == 0:
        os.mknod(root / "tmp" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    data = _layer(before, root)
    members = {m.name: m for m in layer_members(data)}
    assert members["tmp/fifo"].type == b"6"
    assert oct(members["tmp/"].mode) == "0o41777"
    if os.geteuid() == 0:
        assert members["tmp/null"].type == b"3"


def test_timestamp_and_reproducibility(root: Path, tmp_path: Path) -> None:
    before = Snapshot.take(root)
    (root / "new").write_text("n")
    shutil.rmtree(root / "victim" / "gone")
    first = _layer(before, root, timestamp=1_650_000_000, now=1)
    second = _layer(before, root, timestamp=1_650_000_000, now=2)
    assert first == second
    assert {m.mtime for m in layer_members(first)} == {1_650_000_000}
    # Same changes on another copy of the same tree: same bytes.
    other = tmp_path / "other"
    make_tree(other, {"x/y": "y"})
    twin = tmp_path / "twin"
    make_tree(twin, {"x/y": "y"})
    layers = []
    for tree in (other, twin):
        snap = Snapshot.take(tree)
        (tree / "x" / "z").write_text("z")
        layers.append(_layer(snap, tree, timestamp=0))
    assert layers[0] == layers[1]


def test_diff_order_is_by_path_bytes(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "t", {"keep": "k"})
    before = Snapshot.take(tree)
    make_tree(tree, {"a/x": "", "a-b": "", "a.txt": "", "B": "", "é": ""}, mtime=None)
    assert [p for p, _ in diff(before, Snapshot.take(tree))] == [
        "B", "a", "a-b", "a.txt", "a/x", "é"
    ]  # fmt: skip


def test_snapshot_of_20000_files_is_fast(tmp_path: Path) -> None:
    tree = tmp_path / "big"
    for d in range(200):
        sub = tree / f"d{d:03}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f:03}").write_bytes(b"")
    start = time.perf_counter()
    snap = Snapshot.take(tree)
    took = time.perf_counter() - start
    assert len(snap) == 20_200
    assert took < 2.0, took  # about 0.1 s here; generous for slow CI machines
    start = time.perf_counter()
    assert _layer(snap, tree) == bytes(1024)
    assert time.perf_counter() - start < 4.0


# -- round trip -----------------------------------------------------------------------------------

NAMES = ["a", "b", "c"]
_file = st.tuples(st.just("file"), st.sampled_from([b"", b"x", b"yy", b"z" * 700]),
                  st.sampled_from([0o644, 0o600, 0o755, 0o4755]))  # fmt: skip
_dir = st.tuples(st.just("dir"), st.just(b""), st.sampled_from([0o755, 0o700, 0o1777]))
_link = st.tuples(st.just("symlink"), st.sampled_from([b"a", b"../b", b"/c", b"a/b"]),
                  st.just(0o777))  # fmt: skip
_paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map(lambda p: "/".join(p))
_trees = st.dictionaries(_paths, st.one_of(_file, _dir, _link), max_size=12)


def _normalize(spec: dict[str, tuple[str, bytes, int]]) -> dict[str, tuple[str, bytes, int]]:
    """Keep paths whose ancestors are directories; make missing ancestors 0755 dirs."""
    out: dict[str, tuple[str, bytes, int]] = {}
    for path in sorted(spec, key=lambda p: p.count("/")):
        parts = path.split("/")
        ok = True
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            kind = out.setdefault(parent, ("dir", b"", 0o755))[0]
            if kind != "dir":
                ok = False
                break
        if ok and (path not in out or (out[path][0] == "dir" and spec[path][0] == "dir")):
            out[path] = spec[path]
    return out


def _create(root: Path, path: str, node: tuple[str, bytes, int]) -> None:
    full = root / path
    kind, payload, mode = node
    if kind == "dir":
        full.mkdir()
        full.chmod(mode)
    elif kind == "file":
        full.write_bytes(payload)
        full.chmod(mode)
    else:
        full.symlink_to(payload.decode())


def _remove(full: Path) -> None:
    if full.is_dir() and not full.is_symlink():
        shutil.rmtree(full)
    elif full.exists() or full.is_symlink():
        full.unlink()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(before=_trees, after=_trees)
def test_round_trip(tmp_path: Path, before: dict, after: dict) -> None:  # type: ignore[type-arg]
    before, after = _normalize(before), _normalize(after)
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    live, copy = work / "live", work / "copy"
    live.mkdir()
    for path in sorted(before, key=lambda p: p.count("/")):
        _create(live, path, before[path])
    snap = Snapshot.take(live)
    shutil.copytree(live, copy, symlinks=True)
    # Turn "live" into "after", touching only what differs.
    for path in sorted(before, key=lambda p: -p.count("/")):
        if path not in after or after[path][0] != before[path][0]:
            _remove(live / path)
    for path in sorted(after, key=lambda p: p.count("/")):
        full = live / path
        node = after[path]
        if not (full.exists() or full.is_symlink()):
            _create(live, path, node)
        elif node != before.get(path):
            kind, payload, mode = node
            if kind == "file":
                full.write_bytes(payload)
                full.chmod(mode)
            elif kind == "dir":
                full.chmod(mode)
            else:
                full.unlink()
                full.symlink_to(payload.decode())
    data = _layer(snap, live)
    apply_layer(copy, io.BytesIO(data))
    assert tree_state(copy) == tree_state(live)
    shutil.rmtree(work)


# -- against buildah ------------------------------------------------------------------------------

RUN = (
    "rm -rf /victim/gone; rm /victim/dir/old; rm -rf /victim/re && mkdir /victim/re && "
    "echo n > /victim/re/new; chmod 600 /m/chm; mkdir /a/new; echo y > /a-c; "
    "/bin/busybox ln /a-c /a/hl"
)


@pytest.mark.peer("buildah", "busybox")
def test_run_layer_is_buildahs_byte_for_byte(tmp_path: Path) -> None:
    ctx = make_tree(
        tmp_path / "ctx",
        {
            "bb/victim/dir/old": "o\n",
            "bb/victim/dir/keep": "k\n",
            "bb/victim/gone/file": "g\n",
            "bb/victim/re/a": "a\n",
            "bb/victim/re/b": "b\n",
            "bb/a/x": "x\n",
            "bb/a.txt": "t\n",
            "bb/m/file": "f\n",
            "bb/m/chm": "c\n",
        },
    )
    (ctx / "bb" / "bin").mkdir()
    shutil.copy2("/bin/busybox", ctx / "bb" / "bin" / "busybox")
    (ctx / "bb" / "bin" / "sh").symlink_to("busybox")
    dockerfile = f'FROM scratch\nCOPY bb/ /\nRUN ["/bin/busybox", "sh", "-c", "{RUN}"]\n'
    result = Buildah(tmp_path / "buildah").build(ctx, dockerfile, "--layers", "--timestamp", "0")
    # The same changes, made here on a copy of the tree buildah started from.
    root = tmp_path / "sim"
    shutil.copytree(ctx / "bb", root, symlinks=True)
    before = Snapshot.take(root)
    shutil.rmtree(root / "victim" / "gone")
    os.unlink(root / "victim" / "dir" / "old")
    shutil.rmtree(root / "victim" / "re")
    (root / "victim" / "re").mkdir()
    (root / "victim" / "re" / "new").write_text("n\n")
    os.chmod(root / "m" / "chm", 0o600)
    (root / "a" / "new").mkdir()
    (root / "a-c").write_text("y\n")
    os.link(root / "a-c", root / "a" / "hl")
    # buildah's RUN leaves stubs for its mounts (observed): dev, proc, run, sys and
    # three empty 0755 files in etc.
    for name in ("dev", "proc", "run", "sys", "etc"):
        (root / name).mkdir()
        (root / name).chmod(0o755)
    for name in ("hostname", "hosts", "resolv.conf"):
        (root / "etc" / name).write_text("")
        (root / "etc" / name).chmod(0o755)
    # what busybox makes under buildah's umask 022
    (root / "victim" / "re").chmod(0o755)
    (root / "a" / "new").chmod(0o755)
    (root / "victim" / "re" / "new").chmod(0o644)
    (root / "a-c").chmod(0o644)
    out = io.BytesIO()
    info = write_diff_layer(before, root, out, timestamp=0)
    ours = [(m.name, m.type, oct(m.mode), m.link) for m in layer_members(out.getvalue())]
    theirs = [(m.name, m.type, oct(m.mode), m.link) for m in layer_members(result.layers[1])]
    assert ours == theirs
    assert info.diff_id == result.diff_ids[1]
