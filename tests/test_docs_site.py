"""The documentation site builds with ``mkdocs build --strict``, and its generated pages
(the command line reference and the table of errors, made by the hooks under
``docs/hooks/``) hold every command and every error class.

The site needs the ``docs`` extra (``pip install -e '.[docs]'``; the ``test`` extra
includes it); without mkdocs the tests skip locally, and fail in CI.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import aiopod

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "docs" / "hooks"


def load_hook(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", HOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is missing: install the docs extra (pip install -e '.[docs]')")
        pytest.skip("mkdocs is missing: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


def page_text(site: Path, page: str) -> str:
    return html.unescape((site / page / "index.html").read_text())


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table row of an HTML page, as text."""
    rows = re.findall(r"<tr>(.*?)</tr>", text, re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in rows
        if "<td" in row
    ]


def test_the_site_builds_strictly_and_holds_every_page(site: Path) -> None:
    for page in ("tour", "notebook", "policies", "events", "errors", "cli", "store", "api"):
        assert (site / page / "index.html").is_file(), page
    assert (site / "design" / "removal-rules" / "index.html").is_file()


def test_the_command_line_reference_documents_every_command(site: Path) -> None:
    text = page_text(site, "cli")
    names = [name for name, _, _ in load_hook("cli_reference").commands()]
    assert len(names) > 25
    for name in names:
        usage = f"Usage: {name} "
        assert usage in text, f"{name} is not in the command line reference"
    assert "<!-- cli-reference -->" not in text


def test_the_errors_page_lists_every_public_error_with_its_exit_status(site: Path) -> None:
    import aiopod.errors

    text = page_text(site, "errors")
    classes = load_hook("errors_table").error_classes()
    public = {name for name in aiopod.__all__ if isinstance(getattr(aiopod, name), type)}
    errors = {cls.__name__ for cls in classes}
    assert {n for n in public if issubclass(getattr(aiopod, n), BaseException)} <= errors
    for cls in classes:
        assert getattr(aiopod.errors, cls.__name__) is cls
        assert f"<code>{cls.__name__}</code>" in text, cls.__name__
    rows = {cells[0]: cells[1:] for cells in table_rows(text)}
    assert rows["ImageInUse"][:2] == ["ConflictError", "2"]
    assert rows["ImageNotKnown"][:2] == ["NotKnownError", "1"]
    assert rows["ManifestUnknown"][:2] == ["ImageNotKnown", "125"]
    assert rows["StoreLockTimeout"][:2] == ["StoreError, TimeoutError", "125"]


def test_the_api_reference_documents_every_public_name(site: Path) -> None:
    text = (site / "api" / "index.html").read_text()
    missing = [name for name in aiopod.__all__ if f'id="aiopod.{name}"' not in text]
    assert missing == []
    assert 'id="aiopod.sync.Runtime"' in text
