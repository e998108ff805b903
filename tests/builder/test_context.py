"""COPY/ADD source resolution, destination rules and the content digest
(aiopod.builder.sources.context), with the hostile cases B1, B2 and B4 of hostile-input.md.

Contexts live under ``tmp_path``.  Symlinks that would reach a host path if followed on the
host point either at a directory of the test (``<tmp_path>/host``) or, in tests that only
read, at ``/etc``; nothing is ever written through them.
"""

from __future__ import annotations

import io
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest_context import Buildah, layer_members, make_tree, tree_state

from aiopod.builder.layers.writer import write_copy_layer
from aiopod.builder.sources.context import (
    SourceEntry,
    copy_plan,
    destination_hints,
    resolve_sources,
    sources_digest,
)
from aiopod.builder.sources.ignore import IgnoreRules
from aiopod.errors import BuildError
from aiopod.storage.applier import apply_layer

NO_RULES = IgnoreRules()


def _ctx(tmp_path: Path, spec: dict[str, object] | None = None) -> Path:
    return make_tree(
        tmp_path / "ctx",
        spec
        or {
            "a.txt": "a",
            "b.txt": "b",
            ".hidden.txt": "h",
            "c.md": "c",
            "d/x.txt": "x",
            "d/sub/y.txt": "y",
            "d/link@": "x.txt",
            "d/dangling@": "/nowhere",
            "e/x.txt": "ex",
            "[x].txt": "bracket",
        },
    )


def _names(entries: list[SourceEntry]) -> list[str]:
    return [e.relpath for e in entries]


# -- globs and plain sources ----------------------------------------------------------------------


def test_globs_follow_go_filepath_match(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    assert _names(resolve_sources(ctx, ["*.txt"], NO_RULES)) == [
        ".hidden.txt",  # Go's * matches dot files
        "[x].txt",
        "a.txt",
        "b.txt",
    ]
    assert _names(resolve_sources(ctx, ["?.txt"], NO_RULES)) == ["a.txt", "b.txt"]
    assert _names(resolve_sources(ctx, ["[ab].txt"], NO_RULES)) == ["a.txt", "b.txt"]
    assert _names(resolve_sources(ctx, ["\\[x\\].txt"], NO_RULES)) == ["[x].txt"]
    assert _names(resolve_sources(ctx, ["*/x.txt"], NO_RULES)) == ["d/x.txt", "e/x.txt"]
    # * never crosses /
    assert _names(resolve_sources(ctx, ["d/*.txt"], NO_RULES)) == ["d/x.txt"]
    assert _names(resolve_sources(ctx, ["d/s*"], NO_RULES)) == ["d/sub"]
    # A match that is a dangling symlink cannot be dereferenced: an error, as in buildah.
    with pytest.raises(BuildError, match="'/d/dangling': no such file or directory"):
        resolve_sources(ctx, ["d/*"], NO_RULES)
    with pytest.raises(BuildError, match="no such file or directory"):
        resolve_sources(ctx, ["*y.txt"], NO_RULES)


def test_glob_matches_are_sorted_per_directory(tmp_path: Path) -> None:
    ctx = make_tree(tmp_path / "ctx", {"b/1": "", "a/2": "", "a/1": "", "B/1": ""})
    assert _names(resolve_sources(ctx, ["*/*"], NO_RULES)) == ["B/1", "a/1", "a/2", "b/1"]


def test_a_glob_without_match_and_a_missing_file_are_errors(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with pytest.raises(BuildError, match=r"'/d/\*\.nothing': no such file or directory"):
        resolve_sources(ctx, ["d/*.nothing"], NO_RULES)
    with pytest.raises(BuildError, match=r"'/nothere': no such file or directory"):
        resolve_sources(ctx, ["nothere"], NO_RULES)
    with pytest.raises(BuildError, match="syntax error in pattern"):
        resolve_sources(ctx, ["["], NO_RULES)


def test_dot_and_slash_forms(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    for source in (".", "./", "/", "d/..", "./d/../"):
        [entry] = resolve_sources(ctx, [source], NO_RULES)
        assert entry.relpath == "." and entry.is_dir
    [entry] = resolve_sources(ctx, ["./d//sub/"], NO_RULES)
    assert entry.relpath == "d/sub"


def test_a_directory_source_is_walked_sorted_with_symlinks_kept(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    (ctx / "d" / "sock").parent.mkdir(exist_ok=True)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(ctx / "d" / "sock"))
        [entry] = resolve_sources(ctx, ["d"], NO_RULES)
    finally:
        sock.close()
    assert entry.is_dir and entry.kind == "dir"
    assert [m.relname for m in entry.members] == [
        "dangling", "link", "sub", "sub/y.txt", "x.txt"
    ]  # fmt: skip
    links = {m.relname: m.link_target for m in entry.members if m.link_target}
    assert links == {"dangling": "/nowhere", "link": "x.txt"}


def test_absolute_sources_are_relative_to_the_context(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    [entry] = resolve_sources(ctx, ["/d/x.txt"], NO_RULES)
    assert entry.relpath == "d/x.txt"


# -- B1: sources never leave the context ----------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    ["../secret.txt", "../../etc/passwd", "d/../../secret.txt", "/../secret.txt", "..", "../"],
)
def test_b1_escaping_sources_are_errors(tmp_path: Path, source: str) -> None:
    ctx = _ctx(tmp_path)
    (tmp_path / "secret.txt").write_text("secret")
    with pytest.raises(BuildError, match="possible escaping context directory"):
        resolve_sources(ctx, [source], NO_RULES)


def test_b1_an_absolute_host_path_is_looked_up_in_the_context(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with pytest.raises(BuildError, match=r"'/etc/shadow': no such file or directory"):
        resolve_sources(ctx, ["/etc/shadow"], NO_RULES)


def test_b1_climbing_back_into_the_context_is_allowed(tmp_path: Path) -> None:
    # buildah joins and cleans lexically: ../ctx/a.txt is <ctx>/a.txt.
    ctx = _ctx(tmp_path)
    [entry] = resolve_sources(ctx, ["../ctx/a.txt"], NO_RULES)
    assert entry.relpath == "a.txt"


# -- B2: symlinks resolve inside the context ------------------------------------------------------


def test_b2_leak_to_etc_is_resolved_inside_the_context(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {"leak@": "/etc", "abs-link@": "/etc/passwd"})
    with pytest.raises(BuildError, match="no such file or directory"):
        resolve_sources(ctx, ["leak/shadow"], NO_RULES)
    with pytest.raises(BuildError, match="no such file or directory"):
        resolve_sources(ctx, ["leak/passwd"], NO_RULES)
    with pytest.raises(BuildError, match="no such file or directory"):
        resolve_sources(ctx, ["abs-link"], NO_RULES)
    with pytest.raises(BuildError, match="no such file or directory"):
        resolve_sources(ctx, ["leak/"], NO_RULES)


def test_b2_a_symlink_into_the_test_host_dir_never_reads_it(tmp_path: Path) -> None:
    host = make_tree(tmp_path / "host", {"shadow": "HOST SECRET"})
    ctx = _ctx(
        tmp_path,
        {
            "leak@": str(host),
            "rel-out@": "../host/shadow",
            "up@": "../../../../..",
            "a.txt": "a",
        },
    )
    for source in ("leak/shadow", "rel-out", "up/host/shadow", "leak/*"):
        with pytest.raises(BuildError, match="no such file or directory"):
            resolve_sources(ctx, [source], NO_RULES)
    # ".." at the context root stays at the root: up/a.txt is <ctx>/a.txt.
    [entry] = resolve_sources(ctx, ["up/a.txt"], NO_RULES)
    assert entry.realpath == "a.txt"
    # With the same tree inside the context, the context's copy is what is read.
    make_tree(ctx, {str(host / "shadow").lstrip("/"): "context copy"}, mtime=None)
    [entry] = resolve_sources(ctx, ["leak/shadow"], NO_RULES)
    digest_ctx = sources_digest([entry])
    out = io.BytesIO()
    plan = copy_plan([entry], "/x", "/", dest_is_dir_hint=False)
    write_copy_layer([entry], plan, chown=None, chmod=None, timestamp=0, out=out)
    [member] = layer_members(out.getvalue())
    assert member.name == "x" and member.data == b"context copy"
    assert digest_ctx.startswith("file:")


def test_top_level_symlinks_are_dereferenced_inside_the_context(tmp_path: Path) -> None:
    ctx = _ctx(
        tmp_path,
        {
            "real/f": "f",
            "dirlink@": "real",
            "abslink@": "/real/f",
            "chain1@": "chain2",
            "chain2@": "abslink",
            "loop1@": "loop2",
            "loop2@": "loop1",
        },
    )
    [entry] = resolve_sources(ctx, ["dirlink"], NO_RULES)
    assert entry.is_dir and entry.realpath == "real" and entry.name == "dirlink"
    assert [m.relname for m in entry.members] == ["f"]
    [entry] = resolve_sources(ctx, ["chain1"], NO_RULES)
    assert entry.is_regular and entry.realpath == "real/f" and entry.name == "chain1"
    with pytest.raises(BuildError, match="too many levels of symbolic links"):
        resolve_sources(ctx, ["loop1"], NO_RULES)


# -- ignore rules ---------------------------------------------------------------------------------


def test_ignored_entries_are_left_out(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    rules = IgnoreRules.parse("*.md\nd/sub\n")
    [entry] = resolve_sources(ctx, ["."], rules)
    names = [m.relname for m in entry.members]
    assert "c.md" not in names and "d/sub" not in names and "d/sub/y.txt" not in names
    assert "d/x.txt" in names and "a.txt" in names
    assert _names(resolve_sources(ctx, ["*"], rules)) == [
        ".hidden.txt", "[x].txt", "a.txt", "b.txt", "d", "e"
    ]  # fmt: skip


def test_an_excluded_directory_is_walked_for_exceptions(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    rules = IgnoreRules.parse("d\n!d/sub/y.txt\n")
    [entry] = resolve_sources(ctx, ["."], rules)
    names = [m.relname for m in entry.members]
    assert "d/sub/y.txt" in names
    assert "d" not in names and "d/sub" not in names and "d/x.txt" not in names
    # Named directly, the excluded directory is still copied for its exception.
    [entry] = resolve_sources(ctx, ["d"], rules)
    assert [m.relname for m in entry.members] == ["sub/y.txt"]


def test_a_source_whose_matches_are_all_excluded_is_an_error(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    (ctx / ".dockerignore").write_text("a.txt\n*.md\n")
    rules = IgnoreRules.load(ctx)
    with pytest.raises(BuildError) as info:
        resolve_sources(ctx, ["a.txt"], rules)
    assert "no items matching glob" in str(info.value)
    assert f"(1 filtered out using {ctx / '.dockerignore'}): no such file or directory" in str(
        info.value
    )
    # Some matches left: fine.
    assert _names(resolve_sources(ctx, ["*.txt"], rules)) == [".hidden.txt", "[x].txt", "b.txt"]


def test_a_dereferenced_symlink_is_excluded_by_its_target_too(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {"secret.txt": "s", "alias@": "secret.txt", "ok.txt": "o"})
    rules = IgnoreRules.parse("secret.txt")
    with pytest.raises(BuildError, match="no items matching glob"):
        resolve_sources(ctx, ["alias"], rules)


# -- archives -------------------------------------------------------------------------------------


def test_archives_are_recognised_for_add(tmp_path: Path) -> None:
    import gzip
    import tarfile

    ctx = _ctx(tmp_path, {"plain.txt": "not an archive"})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("inside.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    (ctx / "a.tar").write_bytes(buf.getvalue())
    (ctx / "a.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    (ctx / "empty.tar").write_bytes(bytes(10240))
    entries = resolve_sources(ctx, ["*"], NO_RULES, check_archives=True)
    assert {e.name: e.is_archive for e in entries} == {
        "a.tar": True,
        "a.tar.gz": True,
        "empty.tar": False,
        "plain.txt": False,
    }
    [single] = [e for e in entries if e.name == "a.tar"]
    plan = copy_plan([single], "/x", "/", dest_is_dir_hint=False, extract=True)
    assert plan.rename is None and plan.dest_dir == ("x",)  # an archive to extract: a dir
    plan = copy_plan([single], "/x", "/", dest_is_dir_hint=False)
    assert plan.rename == "x"  # COPY: the archive is a file


# -- destination rules ----------------------------------------------------------------------------


def _entries(tmp_path: Path, *sources: str) -> list[SourceEntry]:
    return resolve_sources(_ctx(tmp_path), list(sources), NO_RULES)


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
    ctx = _ctx(tmp_path)
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
    ctx = _ctx(tmp_path, {"f": "payload", "g": "second"})
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


# -- the content digest ---------------------------------------------------------------------------


def test_digest_is_deterministic_and_sensitive_to_content_and_mode(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    rules = IgnoreRules.parse("c.md")
    first = sources_digest(resolve_sources(ctx, ["."], rules))
    assert first.startswith("dir:") and len(first) == 4 + 64
    assert sources_digest(resolve_sources(ctx, ["."], rules)) == first
    os.utime(ctx / "a.txt", (1, 1))
    assert sources_digest(resolve_sources(ctx, ["."], rules)) == first  # touch: same
    (ctx / "c.md").write_text("ignored change")
    assert sources_digest(resolve_sources(ctx, ["."], rules)) == first  # ignored: same
    os.chmod(ctx / "a.txt", 0o600)
    second = sources_digest(resolve_sources(ctx, ["."], rules))
    assert second != first  # chmod: different
    (ctx / "a.txt").write_text("new content")
    assert sources_digest(resolve_sources(ctx, ["."], rules)) not in (first, second)


def test_digest_kinds(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    file_digest = sources_digest(resolve_sources(ctx, ["a.txt"], NO_RULES))
    assert file_digest.startswith("file:")
    multi = sources_digest(resolve_sources(ctx, ["a.txt", "d"], NO_RULES))
    assert multi.startswith("multi:")
    assert sources_digest([]) == ""
    # chown, chmod and the rename are part of the digest, as in buildah's copier stream.
    entries = resolve_sources(ctx, ["a.txt"], NO_RULES)
    assert sources_digest(entries, chown=(1, 1)) != file_digest
    assert sources_digest(entries, chmod=0o600) != file_digest
    plan = copy_plan(entries, "/renamed", "/", dest_is_dir_hint=False)
    assert sources_digest(entries, plan) != file_digest


CHOWN_CHMOD: dict[str, Any] = {"chown": (7, 8), "chmod": 0o640}


@pytest.mark.peer("buildah")
def test_digests_and_errors_match_buildah(tmp_path: Path) -> None:
    ctx = make_tree(
        tmp_path / "ctx",
        {
            "a.txt": "1",
            "b.txt": "2",
            "suid": ("#!/bin/sh\n", 0o4755),
            "d/c.txt": "3",
            "d/link@": "c.txt",
            "d/h1": "hard",
            "la@": "a.txt",
            "etc/passwd": "toor:x:0:0::/:/bin/sh\nnob:x:65534:65534::/:/bin/sh\n",
            "etc/group": "wheel:x:0:\nnog:x:65534:\n",
            "owned": "o",
        },
    )
    os.link(ctx / "d" / "h1", ctx / "d" / "h2")
    os.chown(ctx / "owned", 65534, 65534)
    steps: list[tuple[str, list[str], str, dict[str, Any]]] = [
        ("COPY *.txt /x", ["*.txt"], "/x", {}),
        ("COPY d /y", ["d"], "/y", {}),
        ("COPY la /z", ["la"], "/z", {}),
        ("COPY a.txt d /w", ["a.txt", "d"], "/w", {}),
        ("COPY --chmod=0640 --chown=7:8 a.txt /v/", ["a.txt"], "/v/", CHOWN_CHMOD),
        ("COPY suid owned /s/", ["suid", "owned"], "/s/", {}),
        ("COPY . /all/", ["."], "/all/", {}),
    ]  # fmt: skip
    dockerfile = "FROM scratch\n" + "".join(step + "\n" for step, *_ in steps)
    buildah = Buildah(tmp_path / "buildah")
    result = buildah.build(ctx, dockerfile, "--layers")
    for (text, sources, dest, opts), created_by in zip(steps, result.created_by, strict=True):
        entries = resolve_sources(ctx, sources, NO_RULES)
        plan = copy_plan(entries, dest, "/", dest_is_dir_hint=False)
        digest = sources_digest(entries, plan, **opts)
        assert created_by == f"/bin/sh -c #(nop) COPY {digest} in {dest} ", text
    failing = {
        "COPY ../secret.txt /s": "possible escaping context directory",
        "COPY d/../../x /s": "possible escaping context directory",
        "COPY d/*.nothing /x/": "no such file or directory",
        "COPY nothere /x": "no such file or directory",
    }
    for step, message in failing.items():
        proc = buildah.bud(ctx, f"FROM scratch\n{step}\n", check=False)
        assert proc.returncode != 0 and message in proc.stderr, (step, proc.stderr)
        with pytest.raises(BuildError, match=message):
            resolve_sources(ctx, [step.split()[1]], NO_RULES)
