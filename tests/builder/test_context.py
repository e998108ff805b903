"""COPY/ADD source resolution (aiopod.builder.sources.context), with the hostile cases B1 and
B2 of hostile-input.md.

Contexts live under ``tmp_path``.  Symlinks that would reach a host path if followed on the
host point either at a directory of the test (``<tmp_path>/host``) or, in tests that only
read, at ``/etc``; nothing is ever written through them.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from conftest_context import layer_members, make_tree, sample_context

from aiopod.builder.layers.copy_layer import write_copy_layer
from aiopod.builder.sources.content_digest import sources_digest
from aiopod.builder.sources.context import SourceEntry, resolve_sources
from aiopod.builder.sources.copy_plan import copy_plan
from aiopod.builder.sources.ignore import IgnoreRules
from aiopod.errors import BuildError

NO_RULES = IgnoreRules()


def _names(entries: list[SourceEntry]) -> list[str]:
    return [e.relpath for e in entries]


# -- globs and plain sources ----------------------------------------------------------------------


def test_globs_follow_go_filepath_match(tmp_path: Path) -> None:
    ctx = sample_context(tmp_path)
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
    ctx = sample_context(tmp_path)
    with pytest.raises(BuildError, match=r"'/d/\*\.nothing': no such file or directory"):
        resolve_sources(ctx, ["d/*.nothing"], NO_RULES)
    with pytest.raises(BuildError, match=r"'/nothere': no such file or directory"):
        resolve_sources(ctx, ["nothere"], NO_RULES)
    with pytest.raises(BuildError, match="syntax error in pattern"):
        resolve_sources(ctx, ["["], NO_RULES)


def test_dot_and_slash_forms(tmp_path: Path) -> None:
    ctx = sample_context(tmp_path)
    for source in (".", "./", "/", "d/..", "./d/../"):
        [entry] = resolve_sources(ctx, [source], NO_RULES)
        assert entry.relpath == "." and entry.is_dir
    [entry] = resolve_sources(ctx, ["./d//sub/"], NO_RULES)
    assert entry.relpath == "d/sub"


def test_a_directory_source_is_walked_sorted_with_symlinks_kept(tmp_path: Path) -> None:
    ctx = sample_context(tmp_path)
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
    ctx = sample_context(tmp_path)
    [entry] = resolve_sources(ctx, ["/d/x.txt"], NO_RULES)
    assert entry.relpath == "d/x.txt"


# -- B1: sources never leave the context ----------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    ["../secret.txt", "../../etc/passwd", "d/../../secret.txt", "/../secret.txt", "..", "../"],
)
def test_b1_escaping_sources_are_errors(tmp_path: Path, source: str) -> None:
    ctx = sample_context(tmp_path)
    (tmp_path / "secret.txt").write_text("secret")
    with pytest.raises(BuildError, match="possible escaping context directory"):
        resolve_sources(ctx, [source], NO_RULES)


def test_b1_an_absolute_host_path_is_looked_up_in_the_context(tmp_path: Path) -> None:
    ctx = sample_context(tmp_path)
    with pytest.raises(BuildError, match=r"'/etc/shadow': no such file or directory"):
        resolve_sources(ctx, ["/etc/shadow"], NO_RULES)


def test_b1_climbing_back_into_the_context_is_allowed(tmp_path: Path) -> None:
    # buildah joins and cleans lexically: ../ctx/a.txt is <ctx>/a.txt.
    ctx = sample_context(tmp_path)
    [entry] = resolve_sources(ctx, ["../ctx/a.txt"], NO_RULES)
    assert entry.relpath == "a.txt"


# -- B2: symlinks resolve inside the context ------------------------------------------------------


def test_b2_leak_to_etc_is_resolved_inside_the_context(tmp_path: Path) -> None:
    ctx = sample_context(tmp_path, {"leak@": "/etc", "abs-link@": "/etc/passwd"})
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
    ctx = sample_context(
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
    ctx = sample_context(
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
    ctx = sample_context(tmp_path)
    rules = IgnoreRules.parse("*.md\nd/sub\n")
    [entry] = resolve_sources(ctx, ["."], rules)
    names = [m.relname for m in entry.members]
    assert "c.md" not in names and "d/sub" not in names and "d/sub/y.txt" not in names
    assert "d/x.txt" in names and "a.txt" in names
    assert _names(resolve_sources(ctx, ["*"], rules)) == [
        ".hidden.txt", "[x].txt", "a.txt", "b.txt", "d", "e"
    ]  # fmt: skip


def test_an_excluded_directory_is_walked_for_exceptions(tmp_path: Path) -> None:
    ctx = sample_context(tmp_path)
    rules = IgnoreRules.parse("d\n!d/sub/y.txt\n")
    [entry] = resolve_sources(ctx, ["."], rules)
    names = [m.relname for m in entry.members]
    assert "d/sub/y.txt" in names
    assert "d" not in names and "d/sub" not in names and "d/x.txt" not in names
    # Named directly, the excluded directory is still copied for its exception.
    [entry] = resolve_sources(ctx, ["d"], rules)
    assert [m.relname for m in entry.members] == ["sub/y.txt"]


def test_a_source_whose_matches_are_all_excluded_is_an_error(tmp_path: Path) -> None:
    ctx = sample_context(tmp_path)
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
    ctx = sample_context(tmp_path, {"secret.txt": "s", "alias@": "secret.txt", "ok.txt": "o"})
    rules = IgnoreRules.parse("secret.txt")
    with pytest.raises(BuildError, match="no items matching glob"):
        resolve_sources(ctx, ["alias"], rules)


# -- archives -------------------------------------------------------------------------------------


def test_archives_are_recognised_for_add(tmp_path: Path) -> None:
    import gzip
    import tarfile

    ctx = sample_context(tmp_path, {"plain.txt": "not an archive"})
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
