"""Start-up: ``import aiopod`` and the command line import only what is used.

The public names of :mod:`aiopod` are re-exported lazily and the CLI imports a command's
module when the command is named; these tests keep both complete and lazy.
"""

from __future__ import annotations

import json
import subprocess
import sys

import aiopod
from aiopod.cli import app

SHOW_MODULES = (
    "import sys, json; {code}; "
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('aiopod'))))"
)


def modules_after(code: str) -> set[str]:
    """The aiopod modules a fresh interpreter holds after running *code*."""
    out = subprocess.run(
        [sys.executable, "-c", SHOW_MODULES.format(code=code)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_every_public_name_resolves() -> None:
    for name in aiopod.__all__:
        assert getattr(aiopod, name) is not None, name
    assert set(aiopod.__all__) <= set(dir(aiopod))
    assert aiopod.Runtime.__module__ == "aiopod._runtime"


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:  # mypy rejects the name too: it sees the re-exports, not the lazy __getattr__
        aiopod.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_import_aiopod_imports_only_the_errors() -> None:
    assert modules_after("import aiopod") == {"aiopod", "aiopod.errors"}
    assert "aiopod._runtime" in modules_after("import aiopod; aiopod.Runtime")


def test_the_command_map_names_every_command() -> None:
    app.load_commands()
    assert sorted(app.cli.commands) == sorted(app.COMMAND_MODULES)


def test_a_command_imports_only_its_own_module() -> None:
    loaded = modules_after(
        "from aiopod.cli.app import cli; import click; cli.get_command(click.Context(cli), 'build')"
    )
    assert "aiopod.cli.build_commands" in loaded
    assert not {"aiopod.cli.image_commands", "aiopod.cli.event_commands"} & loaded
    assert not any(m.startswith(("aiopod.transports", "aiopod._runtime")) for m in loaded)
    # "image" needs the module that adds "image rm" and "image prune" too.
    loaded = modules_after(
        "from aiopod.cli.app import cli; import click; cli.get_command(click.Context(cli), 'image')"
    )
    assert {"aiopod.cli.image_commands", "aiopod.cli.removal_commands"} <= loaded


def test_the_command_line_as_a_program_keeps_trio_and_httpxs_cli_out() -> None:
    code = (
        "import sys, json, contextlib\n"
        "from aiopod.cli import app\n"
        "sys.argv = ['aiopod', '--version']\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(sys.stderr):\n"
        "    app.main()\n"
        "import httpx, httpcore\n"
        "print(json.dumps([sys.modules[m] is None for m in app.UNUSED_IMPORTS]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == [True, True]
    # Called with arguments (in-process, as tests and embedders do), it changes nothing.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from aiopod.cli import app\n"
         "try: app.main(['--version'])\nexcept SystemExit: pass\n"
         "print('trio' in sys.modules and sys.modules['trio'] is None)"],
        check=True, capture_output=True, text=True,
    ).stdout.split()[-1]  # fmt: skip
    assert loaded == "False"
