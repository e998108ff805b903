"""Text output as podman prints it: tab-aligned tables, human sizes and durations, JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

# Re-exported: the command line's one place for its text helpers.
from aiopod._text import human_duration, human_size, render_table

__all__ = (
    "go_time_string",
    "human_duration",
    "human_size",
    "print_template",
    "render_json",
    "render_table",
)


def render_json(value: Any, *, indent: str = "    ") -> str:
    """JSON as podman prints it (``images`` indents by 4, ``inspect`` by 5)."""
    return json.dumps(value, indent=indent, ensure_ascii=False) + "\n"


def go_time_string(moment: datetime) -> str:
    """Go's ``Time.String()`` of a UTC time: ``2026-12-06 05:19:06 +0000 UTC``."""
    from aiopod.events.formats import format_go_time

    return format_go_time(moment, UTC)


def print_template(
    text: str,
    rows: Sequence[Any],
    name: str,
    *,
    prefix: str = "",
    headers: Mapping[str, str] | None = None,
    heading: bool = True,
) -> None:
    """Print *rows* through the Go template *text* as podman's listings do
    (:func:`aiopod.cli.templates.render_listing`; *headers* for a ``table`` format, the
    header line left out without *heading*); a template error ends the command with
    podman's message after *prefix* (exit 125), after what was printed before it."""
    import click

    from aiopod.cli.app import fail
    from aiopod.cli.templates import render_listing
    from aiopod.errors import TemplateError

    try:
        output, error = render_listing(text, rows, name, headers=headers, heading=heading)
    except TemplateError as exc:
        fail(prefix + str(exc))
    click.echo(output, nl=False)
    if error is not None:
        fail(prefix + str(error))
