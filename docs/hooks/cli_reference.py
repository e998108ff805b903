"""MkDocs hook: the command line reference, generated from the click app itself.

``docs/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it with
the ``--help`` of every command and sub-command, so that the page cannot drift from the
commands (``tests/test_docs_site.py`` checks that every command is on the built page).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click

MARKER = "<!-- cli-reference -->"


def commands() -> Iterator[tuple[str, click.Command, click.Context]]:
    """Every command of ``aiopod`` (groups first), with its full name and context."""
    from aiopod.cli.app import cli, load_commands

    load_commands()

    def walk(
        command: click.Command, name: str, parent: click.Context | None
    ) -> Iterator[tuple[str, click.Command, click.Context]]:
        settings = command.context_settings if parent is None else {}  # -h, --help
        ctx = click.Context(command, info_name=name.rsplit(" ", 1)[-1], parent=parent, **settings)
        yield name, command, ctx
        if isinstance(command, click.Group):
            for sub in sorted(command.list_commands(ctx)):
                child = command.get_command(ctx, sub)
                if child is not None and not child.hidden:
                    yield from walk(child, f"{name} {sub}", ctx)

    yield from walk(cli, "aiopod", None)


def reference() -> str:
    """The markdown of the reference: one section per command with its help."""
    parts = []
    for name, command, ctx in commands():
        help_text = command.get_help(ctx)
        parts.append(f"## `{name}`\n\n```text\n{help_text}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, reference())
    return markdown
