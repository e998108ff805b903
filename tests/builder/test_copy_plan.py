"""The destination rules of COPY/ADD (aiopod.builder.sources.copy_plan) and the destination's
lookup in the image (aiopod.builder.sources.destination), with the hostile case B4 of
hostile-input.md: destinations never leave the root file system.

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

from aiopod.builder.layers.writer import write_copy_layer
from aiopod.builder.sources.context import SourceEntry, resolve_sources
from aiopod.builder.sources.copy_plan import copy_plan
from aiopod.builder.sources.destination import destination_hints
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
