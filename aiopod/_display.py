"""How aiopod's objects show themselves in a notebook and in IPython.

IPython's display protocol needs no import of IPython: an object with ``_repr_html_``
is drawn as HTML by Jupyter, and one with ``_repr_pretty_(p, cycle)`` is printed by
IPython's pretty printer through ``p.text``.  :class:`Displayable` gives a class both from
two methods of its own, :meth:`~Displayable.display_text` and
:meth:`~Displayable.display_html`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any, Protocol

__all__ = ("Displayable", "PrettyPrinter", "html_table", "plural")


class PrettyPrinter(Protocol):
    """The part of IPython's ``RepresentationPrinter`` that :class:`Displayable` uses."""

    def text(self, obj: str) -> None: ...


class Displayable:
    """A mixin: ``_repr_pretty_`` prints :meth:`display_text`, ``_repr_html_`` returns
    :meth:`display_html` (by default the text, preformatted)."""

    __slots__ = ()

    def display_text(self) -> str:
        """The object as text, for IPython and ``print``-style displays."""
        raise NotImplementedError

    def display_html(self) -> str:
        """The object as an HTML fragment, for Jupyter."""
        return f"<pre>{escape(self.display_text())}</pre>"

    def _repr_pretty_(self, p: PrettyPrinter, cycle: bool) -> None:
        p.text(f"<{type(self).__name__} ...>" if cycle else self.display_text())

    def _repr_html_(self) -> str:
        return self.display_html()


def html_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None
) -> str:
    """An HTML table with escaped cells (``None`` shows as an empty cell)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if c is None else str(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def plural(count: int, noun: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
