"""buildah's content summary of COPY/ADD sources (aiopod.builder.sources.content_digest):
what changes it and what does not, and equality with the summaries buildah records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest_context import Buildah, make_tree, sample_context

from aiopod.builder.sources.content_digest import sources_digest
from aiopod.builder.sources.context import resolve_sources
from aiopod.builder.sources.copy_plan import copy_plan
from aiopod.builder.sources.ignore import IgnoreRules
from aiopod.errors import BuildError

NO_RULES = IgnoreRules()


# -- the content digest ---------------------------------------------------------------------------


def test_digest_is_deterministic_and_sensitive_to_content_and_mode(tmp_path: Path) -> None:
    ctx = sample_context(tmp_path)
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
    ctx = sample_context(tmp_path)
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
