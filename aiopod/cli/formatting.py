"""Text output as podman prints it: tab-aligned tables, human sizes and durations, JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = (
    "go_time_string",
    "human_duration",
    "human_size",
    "print_template",
    "render_json",
    "render_table",
)


def render_table(rows: Sequence[Sequence[str]]) -> str:
    """Align columns as Go's tabwriter does in podman (min width 12, padding 2)."""
    if not rows:
        return ""
    widths = [0] * max(len(r) for r in rows)
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell) + 2, 12)
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + row[-1])
    return "\n".join(lines) + "\n"


def human_size(size: float) -> str:
    """Decimal units with three significant digits: ``1.99 MB``, ``5.63 kB``, ``512 B``."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000.0
        index += 1
    return f"{_go_g(size, 3)} {units[index]}"


def _go_g(value: float, precision: int) -> str:
    # Go's %.3g: shortest form with 3 significant digits, no trailing zeros.
    if value == 0:
        return "0"
    text = f"{value:.{precision}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent):+03d}"
    return text


def human_duration(created: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the words of go-units' HumanDuration (``2 minutes ago``)."""
    if created is None:
        return "N/A"
    now = now or datetime.now(UTC)
    seconds = (now - created).total_seconds()
    if seconds < 1:
        text = "Less than a second"
    elif seconds < 2:
        text = "1 second"
    elif seconds < 60:
        text = f"{int(seconds)} seconds"
    elif (minutes := seconds / 60) < 2:
        text = "About a minute"
    elif minutes < 60:
        text = f"{int(minutes)} minutes"
    elif (hours := math.floor(minutes / 60 + 0.5)) == 1:
        text = "About an hour"
    elif hours < 48:
        text = f"{hours} hours"
    elif hours < 24 * 7 * 2:
        text = f"{hours // 24} days"
    elif hours < 24 * 30 * 2:
        text = f"{hours // 24 // 7} weeks"
    elif hours < 24 * 365 * 2:
        text = f"{hours // 24 // 30} months"
    else:
        text = f"{hours // 24 // 365} years"
    return text + " ago"


def render_json(value: Any, *, indent: str = "    ") -> str:
    """JSON as podman prints it (``images`` indents by 4, ``inspect`` by 5)."""
    return json.dumps(value, indent=indent, ensure_ascii=False) + "\n"


def go_time_string(moment: datetime) -> str:
    """Go's ``Time.String()`` of a UTC time: ``2026-12-06 05:19:06 +0000 UTC``."""
    from aiopod.events.formats import format_go_time

    return format_go_time(moment, UTC)


def print_template(text: str, rows: Sequence[Any], name: str, *, prefix: str = "") -> None:
    """Print *rows* through the Go template *text* as podman's listings do
    (:func:`aiopod.cli.templates.render_list`); a template error ends the command with
    podman's message after *prefix* (exit 125)."""
    import click

    from aiopod.cli.app import fail
    from aiopod.cli.templates import render_list
    from aiopod.errors import TemplateError

    try:
        click.echo(render_list(text, rows, name), nl=False)
    except TemplateError as exc:
        fail(prefix + str(exc))
