"""Text output as podman prints it: tab-aligned tables, human sizes and durations, JSON."""

from __future__ import annotations

import json
from typing import Any

# Re-exported: the command line's one place for its text helpers.
from aiopod._text import human_duration, human_size, render_table

__all__ = ("human_duration", "human_size", "render_json", "render_table")


def render_json(value: Any, *, indent: str = "    ") -> str:
    """JSON as podman prints it (``images`` indents by 4, ``inspect`` by 5)."""
    return json.dumps(value, indent=indent, ensure_ascii=False) + "\n"
