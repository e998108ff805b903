"""MkDocs hook: the table of errors and exit codes, generated from :mod:`aiopod.errors`.

``docs/errors.md`` holds the marker ``<!-- errors-table -->``; this hook replaces it with
one row per error class of :mod:`aiopod.errors` (its bases, the exit status the command
line gives it through :mod:`aiopod.cli.exit_codes`, and the first paragraph of its
docstring), so that the page cannot drift from the code.  ``tests/test_docs_site.py``
checks that every public error class is on the built page.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

MARKER = "<!-- errors-table -->"
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def error_classes() -> list[type[BaseException]]:
    """Every public exception class :mod:`aiopod.errors` defines, in its order."""
    import aiopod.errors

    return [
        value
        for name, value in vars(aiopod.errors).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == "aiopod.errors"
        and not name.startswith("_")
    ]


def exit_status(cls: type[BaseException]) -> str:
    """The command line's exit status for an error of *cls* (podman's)."""
    from aiopod.cli.exit_codes import EXIT_CODES, OTHER_ERROR
    from aiopod.errors import BuildError

    for klass in cls.__mro__:
        if klass in EXIT_CODES:
            return str(EXIT_CODES[klass])  # type: ignore[index]
    if issubclass(cls, BuildError):
        return f"{OTHER_ERROR}, or a failed RUN's status"
    return str(OTHER_ERROR)


def table() -> str:
    rows = [
        "| Error | Derives from | Exit | What it means, what to do |",
        "|---|---|---:|---|",
    ]
    for cls in error_classes():
        bases = ", ".join(f"`{base.__name__}`" for base in cls.__bases__)
        doc = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        doc = _ROLE.sub(r"`\1`", doc).replace("|", "\\|")
        rows.append(f"| `{cls.__name__}` | {bases} | {exit_status(cls)} | {doc} |")
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, table())
    return markdown
