"""Every code example of the README and of the documentation site runs as written.

Each page (``README.md`` and ``docs/*.md``; the design notes hold no examples) is run as
a notebook would run it: its ``python`` blocks in order, in one namespace, compiled with
top-level ``await`` and awaited on the test's event loop, and its ``sh`` blocks' lines
that call ``aiopod`` in a shell, at the same point of the page.  Everything happens in
a temporary directory that holds what the examples name (``app.tar``, a docker-archive
of ``localhost/app:1``; ``rootfs.tar``; a build context ``ctx``), with ``HOME`` and
``AIOPOD_ROOT`` there too, the ``aiopod`` command of this Python on ``PATH``, and every
``/tmp/`` path of an example moved into it.

A page can say more about a block with an HTML comment just before it (invisible on
GitHub and on the site), ``<!-- snippet: WORD reason -->``:

``skip``
    not run, for the reason given (an example that needs a remote registry; the
    registry tests under ``tests/registry/`` run the same calls against a local one).
    Keep these rare.
``script``
    a script, not a notebook cell: run in a worker thread, where no event loop runs
    (``aiopod.sync`` refuses to block a running loop, as in a notebook).

Lines of an ``sh`` block that do not start with ``aiopod`` (``pip install ...``) are not
run; blocks in other languages (``text`` for synopses) are not code.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from imagefactory import child_image, make_image, rootfs_tarball, write_docker_archive

import aiopod

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

BASE = make_image("localhost/base:1", seed="docs-base")
APP = child_image(BASE, "localhost/app:1", files={"app/main": b"print('hi')\n"})

_TMP = re.compile(r"(?<![\w.])/tmp/")
_BLOCK = re.compile(
    r"(?:<!--\s*snippet:\s*(?P<word>\w+)(?P<reason>[^>]*)-->\s*\n)?"
    r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```\s*$",
    re.M | re.S,
)


@dataclass(frozen=True)
class Snippet:
    page: Path
    line: int
    lang: str
    code: str
    mark: str | None
    reason: str


def snippets(page: Path) -> list[Snippet]:
    """The fenced blocks of *page*, with their marks."""
    text = page.read_text()
    found = []
    for m in _BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("code"))
        mark = m.group("word")
        if mark is not None and mark not in ("skip", "script"):
            raise AssertionError(f"{page.name}:{line}: unknown snippet mark {mark!r}")
        reason = (m.group("reason") or "").strip()
        if mark == "skip":
            assert reason, f"{page.name}:{line}: a skipped snippet says why"
        found.append(Snippet(page, line, m.group("lang"), m.group("code"), mark, reason))
    return found


def shell_commands(snippet: Snippet) -> list[str]:
    """The lines of an ``sh`` block that call aiopod (comments dropped)."""
    commands = []
    for raw in snippet.code.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line.startswith("aiopod "):
            commands.append(line)
    return commands


def prepare(work: Path) -> None:
    """The files the examples name."""
    work.mkdir()
    write_docker_archive(work / "app.tar", [APP])
    rootfs_tarball(work / "rootfs.tar", {"etc/hostname": b"aiopod\n"})
    (work / "ctx").mkdir()
    (work / "ctx" / "greeting").write_text("hello\n")
    (work / "ctx" / "Containerfile").write_text(
        "FROM scratch\nARG GREETING=hello\nCOPY greeting /greeting\n"
    )
    (work / "tmp").mkdir()


async def run_cell(snippet: Snippet, source: str, namespace: dict[str, Any]) -> None:
    """Run *source* as IPython runs a cell (or, marked ``script``, as a script)."""
    filename = f"{snippet.page.name}:{snippet.line}"
    if snippet.mark == "script":
        code = compile(source, filename, "exec")
        await anyio.to_thread.run_sync(exec, code, namespace)
        return
    code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        await result


async def run_shell(snippet: Snippet, command: str, work: Path, env: dict[str, str]) -> None:
    argv = shlex.split(_TMP.sub(f"{work}/tmp/", command))
    result = await anyio.run_process(argv, cwd=work, env=env, check=False)
    assert result.returncode == 0, (
        f"{snippet.page.name}:{snippet.line}: {command!r} exited {result.returncode}\n"
        f"{result.stdout.decode()}{result.stderr.decode()}"
    )


@pytest.mark.asyncio
@pytest.mark.skipif(os.geteuid() != 0, reason="the build examples apply layers as root")
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
async def test_every_example_of_the_page_runs_as_written(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    prepare(work)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIOPOD_ROOT", str(tmp_path / "default-store"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    path = os.environ.get("PATH", "")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{path}")  # aiopod
    env = dict(os.environ)

    namespace: dict[str, Any] = {"__name__": "__main__"}
    ran = 0
    try:
        for snippet in snippets(page):
            if snippet.mark == "skip":
                continue
            if snippet.lang == "python":
                source = _TMP.sub(f"{work}/tmp/", snippet.code)
                await run_cell(snippet, source, namespace)
                ran += 1
            elif snippet.lang == "sh":
                commands = shell_commands(snippet)
                for command in commands:
                    await run_shell(snippet, command, work, env)
                ran += bool(commands)
    finally:
        for value in namespace.values():
            if isinstance(value, aiopod.Runtime):
                await value.aclose()
    assert ran or page.name == "api.md", f"{page.name} ran no example"


def test_the_marks_are_read_and_skips_say_why(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n```python\nx = 1\n```\n\n<!-- snippet: skip needs a registry -->\n"
        "```python\nawait rt.pull('x')\n```\n\n<!-- snippet: script -->\n```python\ny = 2\n```\n"
        "\n```sh\npip install x\naiopod images   # list\n```\n\n```text\naiopod [-a]\n```\n"
    )
    found = snippets(page)
    assert [(s.lang, s.mark, s.reason) for s in found] == [
        ("python", None, ""),
        ("python", "skip", "needs a registry"),
        ("python", "script", ""),
        ("sh", None, ""),
        ("text", None, ""),
    ]
    assert shell_commands(found[3]) == ["aiopod images"]
    page.write_text("<!-- snippet: skip -->\n```python\nx\n```\n")
    with pytest.raises(AssertionError, match="says why"):
        snippets(page)


def test_the_pages_hold_examples_and_few_are_skipped() -> None:
    every = [s for page in PAGES for s in snippets(page) if s.lang in ("python", "sh")]
    skipped = [s for s in every if s.mark == "skip"]
    assert len(every) >= 20
    assert len(skipped) <= 3, [f"{s.page.name}:{s.line}" for s in skipped]
