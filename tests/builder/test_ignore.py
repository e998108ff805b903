"""``.containerignore``/``.dockerignore`` rules (aiopod.builder.sources.ignore) against a table of
cases, Go's ``filepath.Match`` and ``filepath.Clean``, and buildah itself.

The differential tests build ``FROM scratch`` + ``COPY . /c/`` with buildah on a private
store under ``tmp_path`` and compare the unpacked file list (umoci), the history digest
and the layer's diff_id with what aiopod computes for the same context and ignore file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from conftest_context import Buildah, layer_members, make_tree
from hypothesis import given, settings, strategies as st

from aiopod.builder.layers.copy_layer import write_copy_layer
from aiopod.builder.sources.content_digest import sources_digest
from aiopod.builder.sources.context import resolve_sources
from aiopod.builder.sources.copy_plan import copy_plan
from aiopod.builder.sources.ignore import IgnoreRules, go_clean, go_match
from aiopod.errors import BuildError

# (ignore file text, path, excluded?)
CASES = [
    # Anchored at the context root (observed: buildah copied sub/secret.txt and
    # sub/deep/x.log; gitignore engines would not).
    ("secret.txt", "secret.txt", True),
    ("secret.txt", "sub/secret.txt", False),
    ("*.log", "x.log", True),
    ("*.log", "sub/deep/x.log", False),
    ("*.log", "x.log/inside", True),
    # A pattern matches what is below a path it matches.
    ("sub", "sub", True),
    ("sub", "sub/deep/f", True),
    ("sub", "subway", False),
    ("sub", "a/sub", False),
    ("a/*/c", "a/b/c", True),
    ("a/*/c", "a/b/c/d", True),
    ("a/*/c", "a/b/x/c", False),
    # Slashes and cleaning.
    ("sub/", "sub/a", True),
    ("/sub", "sub/a", True),
    ("///sub///", "sub", True),
    ("./sub", "sub/a", True),
    ("a//b/../c", "a/c", True),
    ("a//b/../c", "a/b", False),
    ("dir/../x", "x", True),
    ("../x", "x", False),
    # Wildcards: * and ? stop at /, ** crosses any number of directories.
    ("*", "anything", True),
    ("*", "a/b", True),  # through its parent "a"
    ("?.txt", "a.txt", True),
    ("?.txt", "ab.txt", False),
    ("a?c", "a/c", False),
    ("*.txt", ".hidden.txt", True),
    ("**/x.log", "x.log", True),
    ("**/x.log", "a/b/x.log", True),
    ("**/x.log", "a/x.logs", False),
    ("a/**", "a/x/y", True),
    ("a/**", "a", False),
    ("**", "deep/er/path", True),
    ("a**b", "ab", True),
    ("a**b", "ax/b", True),
    ("a**b", "axb", False),  # ** becomes "any directories": a(.*/)?b
    ("**/", "x", True),
    # Classes and escapes.
    ("[ab].txt", "a.txt", True),
    ("[ab].txt", "c.txt", False),
    ("[^a].txt", "b.txt", True),
    ("[^a].txt", "a.txt", False),
    ("[a-c]*", "beta", True),
    ("[a-c]*", "delta", False),
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    ("we\\[ird\\].txt", "we[ird].txt", True),
    ("a.b", "aXb", False),
    ("a.b", "a.b", True),
    ("c++", "c++", True),
    ("$x", "$x", True),
    # Exceptions: the last matching line decides.
    ("*\n!keep", "keep", False),
    ("*\n!keep", "keep/inner", False),
    ("*\n!keep", "other", True),
    ("!keep\n*", "keep", True),
    ("sub\n!sub/keep", "sub/keep", False),
    ("sub\n!sub/keep", "sub/other", True),
    ("sub\n!sub/keep", "sub", True),
    ("src\n!src/main.go\nsrc/main.go", "src/main.go", True),
    ("!/sub/x\nsub", "sub/x", True),
    ("sub\n!/sub/x", "sub/x", False),
    # Comments, blank lines and white space.
    ("# secret.txt", "secret.txt", False),
    ("# secret.txt", "# secret.txt", False),
    (" # x", "# x", True),  # not a comment: '#' is not in the first column
    ("\n\n  \n", "a", False),
    ("  spaced.txt  ", "spaced.txt", True),
    ("a\r", "a", True),
    ("\ta\t", "a", True),
    # buildah cuts slashes before it trims white space: " /x" keeps its slash and can
    # never match a relative path.
    ("  /x/y  ", "x/y", False),
    ("/x/y", "x/y", True),
]


@pytest.mark.parametrize(("text", "path", "expected"), CASES)
def test_table(text: str, path: str, expected: bool) -> None:
    rules = IgnoreRules.parse(text)
    assert rules.excluded(path) is expected, (text, path)


def test_paths_are_cleaned_and_the_root_is_never_excluded() -> None:
    rules = IgnoreRules.parse("a\n**")
    assert rules.excluded("./a/")
    assert rules.excluded("/a")
    assert not rules.excluded(".")
    assert not rules.excluded("")
    assert not IgnoreRules().excluded("anything")
    assert not IgnoreRules()


@pytest.mark.parametrize("text", ["!", "[", "a[", "[]", "[]a]", "a\\", "[-x]", "[x-]", "[a-b-c]"])
def test_malformed_patterns_are_errors(text: str) -> None:
    with pytest.raises(BuildError):
        IgnoreRules.parse(text)


def test_a_lone_bang_after_trimming_slashes_is_an_error() -> None:
    # "!/" loses its slash first, leaving "!" (buildah: 'illegal exclusion pattern: "!"').
    with pytest.raises(BuildError, match="illegal exclusion pattern"):
        IgnoreRules.parse("!/")


def test_may_contain_included() -> None:
    rules = IgnoreRules.parse("sub\nbuild\n!sub/keep.txt\n!build/out/x")
    assert rules.has_exceptions
    assert rules.may_contain_included("sub")
    assert rules.may_contain_included("build/out")
    assert not rules.may_contain_included("other")
    # buildah's walk compares strings, not components: "su" is entered too.
    assert rules.may_contain_included("su")
    # For a directory named as a COPY source buildah wants the full component.
    assert not rules.may_contain_included("su", top_level=True)
    assert rules.may_contain_included("sub", top_level=True)
    # A wildcard in the exception hides what is under an excluded directory.
    assert not IgnoreRules.parse("sub\n!*/keep.txt").may_contain_included("sub")
    assert not IgnoreRules.parse("sub").may_contain_included("sub")


@settings(max_examples=200, deadline=None)
@given(
    pattern=st.lists(st.sampled_from(["a", "b", "ab", "x.y"]), min_size=1, max_size=3),
    path=st.lists(st.sampled_from(["a", "b", "ab", "x.y"]), min_size=1, max_size=4),
)
def test_literal_patterns_exclude_exactly_the_path_and_below(
    pattern: list[str], path: list[str]
) -> None:
    rules = IgnoreRules.from_patterns(["/".join(pattern)])
    expected = path[: len(pattern)] == pattern
    assert rules.excluded("/".join(path)) is expected


# -- Go's filepath.Match and Clean ----------------------------------------------------------------

MATCH = [
    ("*", "abc", True),
    ("*", "", True),
    ("*", "a/b", False),
    ("*", ".hidden", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c", "axxbyyc", True),
    ("a*b*c", "axxbyyd", False),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("a?c", "a☺c", True),
    ("a??c", "a☺c", False),
    ("[abc]", "b", True),
    ("[a-c]x", "bx", True),
    ("[a-c]x", "dx", False),
    ("[^a-c]x", "dx", True),
    ("[^a-c]x", "bx", False),
    ("[\\]]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "y", False),
    ("[α-ω]", "λ", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("\\a", "a", True),
    ("[/]", "/", True),  # a class may match '/', unlike ? and *
    ("[z-a]", "m", False),  # an inverted range matches nothing
    ("[^z-a]", "m", True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), MATCH)
def test_go_match(pattern: str, name: str, expected: bool) -> None:
    assert go_match(pattern, name) is expected


@pytest.mark.parametrize(
    "pattern",
    ["[", "a[", "[^", "[^bc", "[]", "[]a]", "[-]", "[x-]", "[-x]", "\\", "a\\", "[a-b-c]"],
)
def test_go_match_errors(pattern: str) -> None:
    with pytest.raises(ValueError):
        go_match(pattern, "a")
    with pytest.raises(ValueError):  # whatever the name: the whole pattern is checked
        go_match(pattern, "zzz")


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("", "."),
        (".", "."),
        ("a/./b", "a/b"),
        ("a//b", "a/b"),
        ("a/../b", "b"),
        ("a/..", "."),
        ("../a", "../a"),
        ("../../a/../b", "../../b"),
        ("/../a", "/a"),
        ("/..", "/"),
        ("//a//", "/a"),
        ("a/b/../../..", ".."),
    ],
)
def test_go_clean(path: str, clean: str) -> None:
    assert go_clean(path) == clean


# -- finding the ignore file ----------------------------------------------------------------------


def test_containerignore_wins_over_dockerignore(tmp_path: Path) -> None:
    ctx = make_tree(tmp_path / "ctx", {".containerignore": "a\n", ".dockerignore": "b\n"})
    rules = IgnoreRules.load(ctx)
    assert rules.excluded("a") and not rules.excluded("b")
    assert rules.source == ctx / ".containerignore"
    (ctx / ".containerignore").unlink()
    rules = IgnoreRules.load(ctx)
    assert rules.excluded("b") and not rules.excluded("a")
    (ctx / ".dockerignore").unlink()
    assert not IgnoreRules.load(ctx)


def test_ignorefile_overrides(tmp_path: Path) -> None:
    ctx = make_tree(tmp_path / "ctx", {".containerignore": "a\n"})
    other = tmp_path / "other.ignore"
    other.write_text("c\n")
    rules = IgnoreRules.load(ctx, other)
    assert rules.excluded("c") and not rules.excluded("a")
    with pytest.raises(BuildError):
        IgnoreRules.load(ctx, tmp_path / "missing.ignore")


def test_containerfile_specific_ignore_file(tmp_path: Path) -> None:
    ctx = make_tree(
        tmp_path / "ctx",
        {
            ".containerignore": "a\n",
            "Containerfile.build.containerignore": "b\n",
            "Containerfile.build.dockerignore": "c\n",
        },
    )
    # Next to the Containerfile, .dockerignore wins (buildah 1.28 checks it second).
    rules = IgnoreRules.load(ctx, containerfiles=[Path("Containerfile.build")])
    assert rules.excluded("c") and not rules.excluded("b") and not rules.excluded("a")
    rules = IgnoreRules.load(ctx, containerfiles=[Path("Containerfile.other")])
    assert rules.excluded("a")


def test_an_ignore_file_symlink_resolves_inside_the_context(tmp_path: Path) -> None:
    outside = make_tree(tmp_path / "outside", {"ignore": "a\n"})
    ctx = make_tree(tmp_path / "ctx", {".dockerignore@": str(outside / "ignore")})
    assert not IgnoreRules.load(ctx)  # <ctx>/<tmp>/outside/ignore does not exist
    make_tree(ctx, {str(outside / "ignore").lstrip("/"): "b\n"}, mtime=None)
    rules = IgnoreRules.load(ctx)
    assert rules.excluded("b") and not rules.excluded("a")


def test_an_ignore_file_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    ctx = make_tree(tmp_path / "ctx", {".containerignore/": 0o755})
    with pytest.raises(BuildError):
        IgnoreRules.load(ctx)


# -- against buildah ------------------------------------------------------------------------------

CONTEXT = {
    "a.txt": "a",
    "b.log": "b",
    "secret.txt": "s",
    "space name.txt": "sp",
    "we[ird].txt": "w",
    ".hidden": "h",
    ".git/config": "g",
    "sub/secret.txt": "s2",
    "sub/deep/x.log": "x",
    "sub/keep.txt": "k",
    "sub/other.txt": "o",
    "docs/readme.md": "r",
    "docs/api/index.md": "i",
    "build/out.bin": "ob",
    "build/keep/me.txt": "m",
    "node_modules/pkg/index.js": "j",
    "src/main.go": "mg",
    "src/util_test.go": "t",
    "x/y/z/deep.txt": "d",
    "link@": "a.txt",
    "sub/dangling@": "/nowhere",
}

IGNORE_FILES = {
    "top-level-only": "secret.txt\n*.log\n",
    "exception-inside": "sub\n!sub/keep.txt\n",
    "double-star": "**/*.log\n**/secret.txt\n.git\nnode_modules\n",
    "all-but": "*\n!src\n!docs/**\n",
    "mixed": "docs/*/index.md\nbuild/**\n!build/keep\n# comment\n  /x/y  \n",
    "wildcard-exception": "sub\n!*/keep.txt\n",
    "last-wins": "src\n!src/main.go\nsrc/main.go\n",
    "escapes": "*.txt\n!we\\[ird\\].txt\n!space name.txt\n",
    "walk-prefix": "s*\n!su*/keep.txt\n!sub/deep\n",
}


def _our_copy(ctx: Path, rules: IgnoreRules) -> tuple[set[str], str, str]:
    entries = resolve_sources(ctx, ["."], rules)
    plan = copy_plan(entries, "/c/", "/", dest_is_dir_hint=False)
    out = io.BytesIO()
    info = write_copy_layer(
        entries, plan, chown=None, chmod=None, timestamp=0, out=out, walk_order=True
    )
    files = {m.name.rstrip("/") for m in layer_members(out.getvalue())}
    return files, sources_digest(entries, plan), info.diff_id


@pytest.mark.peer("buildah", "umoci")
@pytest.mark.parametrize("case", sorted(IGNORE_FILES))
def test_differential_against_buildah(tmp_path: Path, case: str) -> None:
    ctx = make_tree(tmp_path / "ctx", CONTEXT)
    ignore = tmp_path / f"{case}.ignore"
    ignore.write_text(IGNORE_FILES[case])
    buildah = Buildah(tmp_path / "buildah")
    dockerfile = "FROM scratch\nCOPY . /c/\n"
    theirs = buildah.unpacked_files(
        ctx, dockerfile, "--ignorefile", str(ignore), "--timestamp", "0"
    )
    result = buildah.build(ctx, dockerfile, "--ignorefile", str(ignore), "--timestamp", "0")
    ours, digest, diff_id = _our_copy(ctx, IgnoreRules.load(ctx, ignore))
    assert ours == theirs, (sorted(ours - theirs), sorted(theirs - ours))
    assert result.created_by[-1] == f"/bin/sh -c #(nop) COPY {digest} in /c/ "
    assert result.diff_ids == [diff_id]


@pytest.mark.peer("buildah", "umoci")
def test_differential_containerignore_precedence(tmp_path: Path) -> None:
    ctx = make_tree(
        tmp_path / "ctx",
        {**CONTEXT, ".containerignore": "*.txt\n", ".dockerignore": "sub\n"},
    )
    buildah = Buildah(tmp_path / "buildah")
    theirs = buildah.unpacked_files(ctx, "FROM scratch\nCOPY . /c/\n")
    ours, _, _ = _our_copy(ctx, IgnoreRules.load(ctx))
    assert ours == theirs
    assert "c/sub/keep.txt" in ours and "c/a.txt" not in ours
    assert "c/.dockerignore" in ours and "c/.containerignore" in ours


def test_no_host_path_is_touched(tmp_path: Path) -> None:
    """Loading rules only ever reads inside the context (sanity for the helpers above)."""
    ctx = make_tree(tmp_path / "ctx", {".dockerignore@": "../../../../../../etc/hostname"})
    before = os.stat(tmp_path)
    assert not IgnoreRules.load(ctx)
    assert os.stat(tmp_path).st_mtime_ns == before.st_mtime_ns
