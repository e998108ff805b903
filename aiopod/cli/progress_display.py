"""Transfer progress on standard error: bars on a terminal, podman's plain lines elsewhere.

:func:`transfer_display` turns the records a transfer reports
(:mod:`aiopod.transports.registry.progress`) into output on a text stream:

* when the stream is an interactive terminal (rich's test: a TTY whose ``TERM`` is not
  ``dumb``), one progress bar per blob, as podman draws them: ``Copying blob
  9dcb8fc3c411`` with a bar, bytes done of the total and the speed, ``done`` when the
  blob is verified, ``skipped: already exists`` for a blob the destination has; the
  other records' lines (``Trying to pull …``, ``Writing manifest to image destination``
  …) are printed above the bars;
* otherwise each record's :attr:`text`, exactly podman's lines when its standard error
  is not a terminal.

A load's or an import's reading of its archive (:class:`~aiopod.ArchiveRead`, which
podman does not show) is one more bar on a terminal (``Reading images.tar``), nothing
elsewhere; so is a check's verifying of the blobs (``Verifying blobs``).

The bars and lines are those of a :class:`aiopod._progress_board.ProgressBoard` (the
notebook's live display draws the same board).  The display is a context manager: the
bars are drawn by the callable it yields, in the thread that calls it (no refresh
thread; redraws are at most :data:`REFRESH_INTERVAL` apart), and are drawn one last time
and released when the block ends, whatever ends it.  Standard output is never touched,
so a command can print its result there after the block.  The commands whose transfers
report these records show them this way: pull, push, load, save and import (and
``system check`` and ``rmi -a`` their counts, as bars: ``Verifying blobs``,
``Removing containers``, ``Removing images``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO, TypeAlias

from aiopod._progress_board import ProgressBoard
from aiopod.transports.registry.progress import TransferRecord

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn, Task, TaskID

    from aiopod.removal.progress import RemovalRecord
    from aiopod.storage.check import CheckProgress
    from aiopod.transports.archive_progress import ArchiveRead

#: What the display shows: a transfer's records, a load's reading of its archive, a
#: check's bytes verified and a removal's counts.
DisplayedRecord: TypeAlias = "TransferRecord | ArchiveRead | CheckProgress | RemovalRecord"

__all__ = ("REFRESH_INTERVAL", "DisplayedRecord", "TransferDisplay", "transfer_display")

#: The shortest time between two redraws of the bars, in seconds.
REFRESH_INTERVAL = 0.1


def _terminal_gone_is_ignored() -> contextlib.suppress:
    """A stream that cannot be written (a closed pipe, a terminal that hung up) loses
    the progress, not the transfer."""
    return contextlib.suppress(OSError, ValueError)


def _write_line(stream: TextIO, text: str) -> None:
    with _terminal_gone_is_ignored():
        stream.write(text)
        stream.flush()


def _amount_columns() -> tuple[ProgressColumn, ProgressColumn]:
    """The amount and the speed columns: bytes (done of total, per second), or for a bar
    that counts something else (its task's ``unit``) ``done/total unit`` and no speed."""
    from rich.progress import DownloadColumn, TransferSpeedColumn
    from rich.text import Text

    class Amount(DownloadColumn):
        def render(self, task: Task) -> Text:
            unit = task.fields.get("unit")
            if unit is None:
                return super().render(task)
            total = "?" if task.total is None else f"{task.total:.0f}"
            return Text(f"{task.completed:.0f}/{total} {unit}", style="progress.download")

    class Speed(TransferSpeedColumn):
        def render(self, task: Task) -> Text:
            if task.fields.get("unit") is not None:
                return Text("")
            return super().render(task)

    amount: ProgressColumn = Amount()
    speed: ProgressColumn = Speed()
    return amount, speed


class TransferDisplay:
    """Bars for the blobs of one or more transfers on an interactive terminal.

    Call it with each record (from the event loop's thread: it never blocks for longer
    than a write to the terminal); :meth:`close` draws the final state and stops."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        console = Console(file=stream, highlight=False)
        amount, speed = _amount_columns()
        self._progress: Progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            amount,
            speed,
            TextColumn("{task.fields[state]}"),
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._board = ProgressBoard()
        self._tasks: dict[str, TaskID] = {}
        self._drawn = 0.0
        with _terminal_gone_is_ignored():
            self._progress.start()

    @staticmethod
    def is_wanted(stream: TextIO) -> bool:
        """Whether *stream* is a terminal that can show bars (rich's own test)."""
        try:
            if not stream.isatty():
                return False
        except (OSError, ValueError):
            return False
        from rich.console import Console

        return Console(file=stream).is_interactive

    def __call__(self, record: DisplayedRecord) -> None:
        progress = self._progress
        change = self._board.apply(record)
        for key in change.bars:
            bar = self._board.bars[key]
            task = self._tasks.get(key)
            if task is None:
                self._tasks[key] = progress.add_task(
                    bar.label, total=bar.total, completed=bar.done, state=bar.state, unit=bar.unit
                )
            else:
                progress.update(task, completed=bar.done, total=bar.total, state=bar.state)
        if change.line:
            with _terminal_gone_is_ignored():
                progress.console.print(change.line, markup=False, highlight=False, soft_wrap=True)
        now = time.monotonic()
        if now - self._drawn >= REFRESH_INTERVAL or not change.counts_only:
            self._drawn = now
            with _terminal_gone_is_ignored():
                progress.refresh()

    def close(self) -> None:
        """Draw the bars' final state and release the terminal."""
        with _terminal_gone_is_ignored():
            self._progress.stop()


@contextlib.contextmanager
def transfer_display(
    stream: TextIO, *, quiet: bool = False
) -> Iterator[Callable[[DisplayedRecord], None] | None]:
    """A progress callback for the block's transfers on *stream* (bars on a terminal,
    podman's lines elsewhere; see the module), or ``None`` with *quiet*."""
    if quiet:
        yield None
        return
    if not TransferDisplay.is_wanted(stream):

        def plain(record: DisplayedRecord) -> None:
            if record.text:
                _write_line(stream, record.text)

        yield plain
        return
    display = TransferDisplay(stream)
    try:
        yield display
    finally:
        display.close()
