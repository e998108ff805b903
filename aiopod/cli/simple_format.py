"""``--format`` for reports, in the simple form of podman's Go templates: ``{{.Field}}``.

A format is text with ``{{.Field}}`` (spaces allowed inside the braces) for a row's
fields, and ``\\t`` (typed as a backslash and a ``t``) is a tab; a format that starts
with ``table`` prints the fields' headers first and aligns the tab-separated columns as
podman's tabwriter does; ``json`` is left to the command.  Anything else in braces
(pipes, functions, ``range``) is refused with a message naming it: only this simple
form is supported for now.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from aiopod._text import render_table
from aiopod.errors import UsageError

__all__ = ("render_format",)

_ACTION = re.compile(r"{{(.*?)}}")
_FIELD = re.compile(r"\s*\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*")


def render_format(
    template: str,
    rows: Sequence[Mapping[str, str]],
    headers: Mapping[str, str],
    *,
    name: str,
    type_name: str,
    ranged: bool = True,
) -> str:
    """*rows* through *template*; *headers* maps each field to its column header (the
    fields a row has are its keys).  *name* and *type_name* are the template's and the
    row type's names in podman's error for an unknown field (``history``,
    ``images.historyReporter``); *ranged* whether podman runs the format once per row
    (a list) rather than on one object (``info``).  A field may be a path
    (``{{.Store.GraphRoot}}``): the rows' keys are then such paths.

    :raises ~aiopod.errors.UsageError: the template uses more than ``{{.Field}}``, or a
        field the rows do not have.
    """
    text = template.replace(r"\t", "\t").replace(r"\n", "\n")
    table = text.startswith("table")
    if table:
        text = text.removeprefix("table").lstrip(" ")
    for found in _ACTION.finditer(text):
        match = _FIELD.fullmatch(found[1])
        if match is None:
            raise UsageError(
                f"template action {found[0]} is not supported: use the simple {{{{.Field}}}} form"
            )
        if match[1] not in headers:
            # podman wraps a list's format in "{{range .}}", and counts from 1.
            column = (len("{{range .}}") if ranged else 0) + found.start() + 2
            raise UsageError(
                f'template: {name}:1:{column}: executing "{name}" at <.{match[1]}>: '
                f"can't evaluate field {match[1]} in type {type_name}"
            )

    def fill(values: Mapping[str, str]) -> str:
        return _ACTION.sub(lambda m: values[_FIELD.fullmatch(m[1])[1]], text)  # type: ignore[index]

    lines = [fill(headers)] if table else []
    lines += [fill(row) for row in rows]
    if table:  # only a table is aligned; otherwise a tab is printed as it is
        return render_table([line.split("\t") for line in lines])
    return "".join(line + "\n" for line in lines)
