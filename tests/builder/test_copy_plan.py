"""The plan of a COPY/ADD (aiopod.builder.sources.copy_plan): the destination rules and the
layer's entries, planned from what the walk recorded; and the destination's lookup in the
image (aiopod.builder.sources.destination), with the hostile case B4 of hostile-input.md:
destinations never leave the root file system.

Symlinks of the image that would reach a host path if followed on the host point at a
directory of the test (``<tmp_path>/host``), which is checked to be left untouched.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from conftest_context import layer_members, make_tree, sample_context, tree_state

from aiopod.builder.layers.copy_layer import write_copy_layer, write_planned_layer
from aiopod.builder.sources.context import SourceEntry, resolve_sources
from aiopod.builder.sources.copy_plan import (
    Directory,
    Fifo,
    FileData,
    HardLink,
    RegularFile,
    Symlink,
    copy_plan,
    plan_copy_layer,
)
from aiopod.builder.sources.destination import (
    ExistingDirectory,
    ResolvedDestination,
    destination_hints,
    resolve_destination,
)
from aiopod.builder.sources.ignore import IgnoreRules
from aiopod.errors import BuildError
from aiopod.storage.applier import apply_layer

NO_RULES = IgnoreRules()


# -- destination rules ----------------------------------------------------------------------------


def _entries(tmp_path: Path, *sources: str) -> list[SourceEntry]:
    return resolve_sources(sample_context(tmp_path), list(sources), NO_RULES)


def test_plan_trailing_slash_and_existing_dir(tmp_path: Path) -> None:
    entries = _entries(tmp_path, "a.txt")
    plan = copy_plan(entries, "/x/", "/", dest_is_dir_hint=False)
    assert (plan.dest, plan.dest_dir, plan.rename) == ("/x/", ("x",), None)
    plan = copy_plan(entries, "/x", "/", dest_is_dir_hint=True)
    assert (plan.dest_dir, plan.rename) == (("x",), None)
    plan = copy_plan(entries, "/x/newname", "/", dest_is_dir_hint=False)
    assert (plan.dest_dir, plan.rename) == (("x",), "newname")


def test_plan_several_sources_make_a_directory(tmp_path: Path) -> None:
    entries = _entries(tmp_path, "a.txt", "d")
    plan = copy_plan(entries, "/x", "/", dest_is_dir_hint=False)
    assert (plan.dest_dir, plan.rename) == (("x",), None)  # buildah: no trailing / needed


def test_plan_one_glob_with_several_files_names_a_file(tmp_path: Path) -> None:
    # buildah 1.28 (observed): COPY *.txt /x with several matches makes /x a file (the last).
    ctx = sample_context(tmp_path)
    entries = resolve_sources(ctx, ["?.txt"], NO_RULES)
    plan = copy_plan(entries, "/x", "/", dest_is_dir_hint=False)
    assert (plan.dest_dir, plan.rename) == ((), "x")
    out = io.BytesIO()
    write_copy_layer(entries, plan, chown=None, chmod=None, timestamp=0, out=out)
    [member] = layer_members(out.getvalue())
    assert (member.name, member.data) == ("x", b"b")


def test_plan_a_directory_source_needs_a_directory(tmp_path: Path) -> None:
    entries = _entries(tmp_path, "d")
    plan = copy_plan(entries, "/x", "/", dest_is_dir_hint=False)
    assert (plan.dest_dir, plan.rename) == (("x",), None)
    with pytest.raises(BuildError, match="already exists but is not a directory"):
        copy_plan(entries, "/x", "/", dest_is_dir_hint=False, dest_is_file_hint=True)
    # An existing file is replaced by a single file.
    plan = copy_plan(
        _entries(tmp_path / "2", "a.txt"), "/f", "/", dest_is_dir_hint=False, dest_is_file_hint=True
    )
    assert plan.rename == "f"


def test_plan_relative_destinations_use_workdir(tmp_path: Path) -> None:
    entries = _entries(tmp_path, "a.txt")
    assert copy_plan(entries, "rel", "/app", dest_is_dir_hint=False).dest_dir == ("app",)
    assert copy_plan(entries, "rel", "/app", dest_is_dir_hint=False).rename == "rel"
    plan = copy_plan(entries, "sub/", "/app", dest_is_dir_hint=False)
    assert (plan.dest, plan.dest_dir) == ("/app/sub/", ("app", "sub"))
    plan = copy_plan(entries, ".", "/app", dest_is_dir_hint=False)
    assert (plan.dest_dir, plan.rename) == (("app",), None)  # COPY f . goes into WORKDIR
    plan = copy_plan(entries, "", "app", dest_is_dir_hint=False)
    assert (plan.dest, plan.dest_dir) == ("/app/", ("app",))
    plan = copy_plan(entries, "../../x", "/app", dest_is_dir_hint=False)
    assert (plan.dest, plan.rename) == ("/x", "x")


def test_b4_destinations_are_root_relative(tmp_path: Path) -> None:
    entries = _entries(tmp_path, "a.txt")
    plan = copy_plan(entries, "/../../../../tmp/pwned", "/", dest_is_dir_hint=False)
    assert (plan.dest_dir, plan.rename) == (("tmp",), "pwned")
    plan = copy_plan(entries, "../../../../../etc/", "/app/x", dest_is_dir_hint=False)
    assert plan.dest_dir == ("etc",)


def test_b4_copy_through_an_image_symlink_stays_in_the_rootfs(tmp_path: Path) -> None:
    """``COPY f /etc/link/`` where the image has ``/etc/link -> <tmp>/host``: the file lands
    in the rootfs (at ``<rootfs>/<tmp>/host/f``), never in the test's host directory."""
    host = make_tree(tmp_path / "host", {"sentinel": "s"})
    before_host = tree_state(host, with_mtime=True)
    rootfs = make_tree(tmp_path / "rootfs", {"etc/link@": str(host), "tmp/": 0o1777})
    ctx = sample_context(tmp_path, {"f": "payload", "g": "second"})
    entries = resolve_sources(ctx, ["f"], NO_RULES)
    is_dir, is_file = destination_hints(rootfs, "/etc/link/", "/")
    assert (is_dir, is_file) == (False, False)  # the target is missing inside the rootfs
    # With the rootfs, the destination is resolved inside it, as buildah's Eval does.
    plan = copy_plan(entries, "/etc/link/", "/", dest_is_dir_hint=is_dir)
    out = io.BytesIO()
    write_copy_layer(entries, plan, chown=None, chmod=None, timestamp=0, out=out, rootfs=rootfs)
    assert [m.name for m in layer_members(out.getvalue())][-1] == str(host / "f").lstrip("/")
    out.seek(0)
    apply_layer(rootfs, out)
    assert (rootfs / str(host).lstrip("/") / "f").read_text() == "payload"
    assert os.path.islink(rootfs / "etc" / "link")
    assert tree_state(host, with_mtime=True) == before_host
    # Without it, the parents are written as directories: the applier replaces the link
    # by a directory, still inside the rootfs.
    out = io.BytesIO()
    write_copy_layer(entries, plan, chown=None, chmod=None, timestamp=0, out=out)
    out.seek(0)
    apply_layer(rootfs, out)
    assert (rootfs / "etc" / "link" / "f").read_text() == "payload"
    assert tree_state(host, with_mtime=True) == before_host
    # And /../../../../tmp/pwned lands in the rootfs's /tmp.
    plan = copy_plan(entries, "/../../../../tmp/pwned", "/", dest_is_dir_hint=False)
    out = io.BytesIO()
    write_copy_layer(entries, plan, chown=None, chmod=None, timestamp=0, out=out, rootfs=rootfs)
    out.seek(0)
    apply_layer(rootfs, out)
    assert (rootfs / "tmp" / "pwned").read_text() == "payload"
    assert stat.S_IMODE(os.stat(rootfs / "tmp").st_mode) == 0o1777  # parents kept as they were
    assert tree_state(host, with_mtime=True) == before_host


def test_destination_hints(tmp_path: Path) -> None:
    rootfs = make_tree(
        tmp_path / "rootfs",
        {"usr/bin/": 0o755, "etc/f": "x", "lib@": "usr", "abs@": "/usr/bin", "app/": 0o755},
    )
    assert destination_hints(rootfs, "/usr/bin", "/") == (True, False)
    assert destination_hints(rootfs, "/lib/bin/", "/") == (True, False)
    assert destination_hints(rootfs, "/abs", "/") == (True, False)
    assert destination_hints(rootfs, "/etc/f", "/") == (False, True)
    assert destination_hints(rootfs, "/nope", "/") == (False, False)
    assert destination_hints(rootfs, "bin", "/usr") == (True, False)
    assert destination_hints(rootfs, "/../../etc/f", "/") == (False, True)


def test_resolve_destination_follows_the_images_symlinks(tmp_path: Path) -> None:
    rootfs = make_tree(
        tmp_path / "rootfs",
        {"usr/local/": 0o750, "app@": "/opt/app", "opt/": 0o711, "etc/f": "x"},
        mtime=77,
    )
    usr, local, opt = (os.lstat(rootfs / p) for p in ("usr", "usr/local", "opt"))
    assert resolve_destination(rootfs, ("usr", "local", "bin")) == ResolvedDestination(
        ("usr", "local", "bin"),
        (
            ExistingDirectory(stat.S_IMODE(usr.st_mode), usr.st_uid, usr.st_gid, 77),
            ExistingDirectory(0o750, local.st_uid, local.st_gid, 77),
        ),
    )
    # a dangling symlink leads to where its target would be
    assert resolve_destination(rootfs, ("app", "x")) == ResolvedDestination(
        ("opt", "app", "x"), (ExistingDirectory(0o711, opt.st_uid, opt.st_gid, 77),)
    )
    with pytest.raises(BuildError, match="is not a directory"):
        resolve_destination(rootfs, ("etc", "f", "x"))


def test_the_layer_plan_is_made_from_what_the_walk_recorded(tmp_path: Path) -> None:
    ctx = make_tree(
        tmp_path / "ctx",
        {"d/f": ("f", 0o640), "d/link@": "f", "d/h1": "hard", "d/sub/": 0o2775},
    )
    os.link(ctx / "d" / "h1", ctx / "d" / "h2")
    os.mkfifo(ctx / "d" / "p")
    os.chmod(ctx / "d" / "p", 0o620)
    os.utime(ctx / "d" / "p", (1_500_000_000, 1_500_000_000))
    entries = resolve_sources(ctx, ["d"], NO_RULES)
    plan = copy_plan(entries, "/x/", "/", dest_is_dir_hint=False)
    # The planner reads nothing: the context may be gone while it plans.
    ctx.rename(tmp_path / "elsewhere")
    layer = plan_copy_layer(entries, plan, chown=(7, 8), chmod=None, now=1234)
    stats = {m.relname: m.stat for m in entries[0].members}
    assert layer == [
        Directory("x", 0o755, 7, 8, 1234),
        RegularFile("x/f", 0o640, 7, 8, 1_600_000_000, 1, FileData(ctx, "d/f", stats["f"])),
        RegularFile("x/h1", 0o644, 7, 8, 1_600_000_000, 4, FileData(ctx, "d/h1", stats["h1"])),
        HardLink("x/h2", 0o644, 7, 8, 1_600_000_000, "x/h1"),  # the first in layer order has data
        Symlink("x/link", 0o777, 7, 8, 1_600_000_000, "f"),
        Fifo("x/p", 0o620, 7, 8, 1_500_000_000),
        Directory("x/sub", 0o775, 7, 8, 1_600_000_000),  # setgid stripped
    ]
    # Written once the context is back, the plan is the layer write_copy_layer writes.
    (tmp_path / "elsewhere").rename(ctx)
    planned, direct = io.BytesIO(), io.BytesIO()
    write_planned_layer(layer, out=planned, timestamp=0)
    write_copy_layer(entries, plan, chown=(7, 8), chmod=None, timestamp=0, out=direct, now=1234)
    assert planned.getvalue() == direct.getvalue()


def test_a_plan_written_after_its_source_changed_is_refused(tmp_path: Path) -> None:
    ctx = sample_context(tmp_path)
    entries = resolve_sources(ctx, ["a.txt"], NO_RULES)
    layer = plan_copy_layer(
        entries,
        copy_plan(entries, "/x", "/", dest_is_dir_hint=False),
        chown=None,
        chmod=None,
        now=1,
    )
    (ctx / "a.new").write_text("b")
    (ctx / "a.new").rename(ctx / "a.txt")  # same size, another file
    with pytest.raises(BuildError, match="changed while being copied"):
        write_planned_layer(layer, out=io.BytesIO())
