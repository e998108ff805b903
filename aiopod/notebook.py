"""Notebook helpers: a live progress display, and pictures of the store.

A live display for any call that takes ``progress=`` (load, import, save, pull, push,
build, check)::

    import aiopod.notebook

    progress = aiopod.notebook.live_progress()
    await rt.load("app.tar", progress=progress)

:class:`LiveProgress` is a ``progress=`` callable.  In IPython or Jupyter it shows one
output that is updated in place (an IPython display handle): a bar per blob (``Copying
blob 9dcb8fc3c411``, bytes done of the total, ``done``) and the latest lines (``Writing
manifest to image destination``, a build's steps); as HTML in Jupyter, as text in a
terminal IPython.  Redraws are at most :data:`REFRESH_INTERVAL` apart, and the last
state is always drawn: a record that is not a byte count redraws at once, and
:meth:`LiveProgress.close` (or the end of a ``with`` block) draws what is left.  Without
IPython (a plain script) it prints each record's line, podman's, to standard error.
IPython is not a dependency of aiopod: it is imported only when a display is made.

:func:`plot_store` draws the store (``await rt.disk_usage()``: each image's size, split
into what it shares with other images and what only it has, as ``system df -v`` counts
them) with matplotlib, an optional extra (``pip install 'aiopod[plot]'``);
without it the call says so (:class:`~aiopod.errors.MissingExtra`).  Importing this
module imports neither IPython nor matplotlib.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from aiopod._display import Displayable
from aiopod._progress_board import Bar, ProgressBoard
from aiopod._text import human_size

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from aiopod._usage import DiskUsage

__all__ = (
    "REFRESH_INTERVAL",
    "DisplayHandle",
    "LiveProgress",
    "ProgressView",
    "live_progress",
    "plot_store",
)

#: The shortest time between two redraws of a live display, in seconds.
REFRESH_INTERVAL = 0.1

#: How many of the latest lines a live display shows.
SHOWN_LINES = 8

#: How many characters wide a text bar is.
TEXT_BAR_WIDTH = 30


class DisplayHandle(Protocol):
    """The part of IPython's ``DisplayHandle`` a live display uses."""

    def update(self, obj: Any) -> None: ...


#: IPython's ``IPython.display.display`` as a live display calls it.
DisplayFunction = Callable[..., "DisplayHandle | None"]


def _ipython_display() -> DisplayFunction | None:
    """``IPython.display.display`` when IPython runs this code, else ``None``."""
    ipython = sys.modules.get("IPython")
    if ipython is None or getattr(ipython, "get_ipython", lambda: None)() is None:
        return None
    from IPython.display import display

    return display


def _amount(bar: Bar) -> str:
    if bar.unit is not None:
        return f"{bar.done}/{bar.total} {bar.unit}" if bar.total is not None else str(bar.done)
    if bar.total is None:
        return human_size(bar.done)
    return f"{human_size(bar.done)} / {human_size(bar.total)}"


class ProgressView(Displayable):
    """One drawing of a board's bars and latest lines (what a display handle shows)."""

    __slots__ = ("bars", "lines")

    def __init__(self, bars: Sequence[Bar], lines: Sequence[str]) -> None:
        self.bars = [Bar(b.label, b.done, b.total, b.state, b.unit) for b in bars]
        self.lines = list(lines)[-SHOWN_LINES:]

    def display_text(self) -> str:
        rows = []
        for bar in self.bars:
            part = bar.done / bar.total if bar.total else (1.0 if bar.state else 0.0)
            filled = round(part * TEXT_BAR_WIDTH)
            drawn = "#" * filled + "-" * (TEXT_BAR_WIDTH - filled)
            rows.append(f"{bar.label} [{drawn}] {_amount(bar)} {bar.state}".rstrip())
        return "\n".join([*self.lines, *rows])

    def display_html(self) -> str:
        rows = []
        for bar in self.bars:
            value = f' value="{bar.done}" max="{bar.total}"' if bar.total else ""
            if bar.state and not bar.total:
                value = ' value="1" max="1"'
            rows.append(
                f"<tr><td><code>{escape(bar.label)}</code></td>"
                f"<td><progress{value}></progress></td>"
                f"<td>{escape(_amount(bar))}</td><td>{escape(bar.state)}</td></tr>"
            )
        lines = "".join(f"{escape(line)}\n" for line in self.lines)
        pre = f"<pre>{lines}</pre>" if lines else ""
        table = f"<table>{''.join(rows)}</table>" if rows else ""
        return f"<div>{pre}{table}</div>"


class LiveProgress:
    """A ``progress=`` callable that draws a live display (see the module).

    *display* is the function that shows an object and returns its handle, as
    ``IPython.display.display(obj, display_id=True)`` (found when IPython runs this code);
    with none, each record's line goes to *stream* (standard error by default).  Call it
    from the event loop's thread, as aiopod does with a ``progress=`` callable."""

    def __init__(
        self,
        *,
        display: DisplayFunction | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.board = ProgressBoard()
        self._display = display if display is not None else _ipython_display()
        self._stream = stream
        self._clock = clock
        self._handle: DisplayHandle | None = None
        self._drawn = float("-inf")
        self._stale = False

    def __call__(self, record: object) -> None:
        change = self.board.apply(record)
        if self._display is None:
            text = str(getattr(record, "text", "") or "")
            if text:  # podman's line, as the command line prints it
                stream = self._stream if self._stream is not None else sys.stderr
                stream.write(text)
                stream.flush()
            return
        now = self._clock()
        if change.counts_only and now - self._drawn < REFRESH_INTERVAL:
            self._stale = True
            return
        self._draw(now)

    def view(self) -> ProgressView:
        """What the display shows now."""
        return ProgressView(list(self.board.bars.values()), list(self.board.lines))

    def _draw(self, now: float) -> None:
        assert self._display is not None
        self._drawn, self._stale = now, False
        view = self.view()
        if self._handle is None:
            self._handle = self._display(view, display_id=True)
            if self._handle is None:  # IPython without a shell: no handle to update
                self._display = None
        else:
            self._handle.update(view)

    def close(self) -> None:
        """Draw what was not drawn yet (a byte count held back by the refresh limit)."""
        if self._display is not None and self._stale:
            self._draw(self._clock())

    def __enter__(self) -> LiveProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def live_progress(**options: Any) -> LiveProgress:
    """A new :class:`LiveProgress` (one per call that reports progress, or several calls
    sharing one display)."""
    return LiveProgress(**options)


def plot_store(usage: DiskUsage, *, title: str | None = None) -> Figure:
    """A bar chart of the store: a bar per image (``usage`` is ``await
    rt.disk_usage()``), the part it shares with other images stacked under the part only
    it has; the title says how many images, their size and how much of it is shared.

    Returns a matplotlib ``Figure`` (Jupyter draws it; ``fig.savefig(...)`` writes it);
    no pyplot state is touched.

    :raises ~aiopod.errors.MissingExtra: matplotlib is not installed.
    """
    from aiopod._plots import store_figure

    return store_figure(usage, title=title)
