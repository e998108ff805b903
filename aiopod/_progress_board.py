"""What a progress display shows, whatever draws it: bars and lines made from records.

Every ``progress=`` record of aiopod (a pull's or a push's transfer records, a load's,
an import's or a save's archive records, a build's records, a check's counts) is applied
to a :class:`ProgressBoard`, which keeps:

* one :class:`Bar` per blob (``Copying blob 9dcb8fc3c411`` as podman labels it, bytes
  done of the total, ``done`` once verified or written, ``skipped: already exists`` for
  a blob the destination has) and one per count that is not about a blob (a load's
  ``Reading images.tar``, a check's ``Verifying blobs``, a removal's ``Removing images``);
* the lines of the other records (``Trying to pull …``, ``Writing manifest to image
  destination``, a build's steps and output), the most recent :data:`KEPT_LINES` of them.

:meth:`ProgressBoard.apply` says what a record changed, so that a display redraws only
that: the terminal's bars (:mod:`aiopod.cli.progress_display`) and the notebook's live
display (:mod:`aiopod.notebook`) are two drawings of the same board.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

from aiopod.transports.registry.progress import (
    BlobDone,
    BlobProgress,
    BlobStarted,
    CopyStarted,
    ManifestWriting,
)

__all__ = ("KEPT_LINES", "SHORT_DIGEST", "Bar", "Change", "ProgressBoard")

#: How many hex digits of a digest a bar's label shows (podman's short form).
SHORT_DIGEST = 12

#: How many of the latest lines a board keeps.
KEPT_LINES = 200


@dataclass(slots=True)
class Bar:
    """One bar: its label, bytes done of the total (``None``: unknown) and its state
    (``""`` while it runs, ``done``, or ``skipped: already exists``); ``unit`` names what
    it counts when that is not bytes (a removal's ``images``)."""

    label: str
    done: int
    total: int | None
    state: str = ""
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What applying one record changed: the bars (by key) and the line it added."""

    bars: tuple[str, ...] = ()
    line: str = ""

    @property
    def counts_only(self) -> bool:
        """Whether only a count moved (a display may wait before redrawing)."""
        return not self.line and len(self.bars) == 1


def _count_label(record: object) -> str:
    """The label of a count that is not about a blob."""
    label = getattr(record, "label", None)
    if isinstance(label, str):
        return label
    path = getattr(record, "path", None)
    if isinstance(path, str):
        return f"Reading {os.path.basename(path) or path}"
    return "Verifying blobs"


class ProgressBoard:
    """The bars and lines of one or more operations' records (see the module)."""

    def __init__(self) -> None:
        self.bars: dict[str, Bar] = {}
        self.lines: deque[str] = deque(maxlen=KEPT_LINES)

    def apply(self, record: object) -> Change:
        """Apply *record* (any of aiopod's progress records); return what changed."""
        bars = self.bars
        if isinstance(record, BlobStarted):
            label = f"Copying {record.kind} {record.digest.removeprefix('sha256:')[:SHORT_DIGEST]}"
            if record.skipped:
                bars[record.digest] = Bar(
                    label, record.size, record.size, "skipped: already exists"
                )
            else:
                bars[record.digest] = Bar(label, 0, record.size)
            return Change((record.digest,))
        if isinstance(record, BlobProgress):
            bar = bars.get(record.digest)
            if bar is None:
                return Change()
            bar.done, bar.total = record.done, record.total
            return Change((record.digest,))
        if isinstance(record, BlobDone):
            return Change(self._finish([record.digest], record.size))
        done, total = getattr(record, "done", None), getattr(record, "total", None)
        if isinstance(done, int) and not hasattr(record, "digest"):
            key = "count:" + _count_label(record)
            unit = getattr(record, "unit", None)
            bar = bars.setdefault(
                key,
                Bar(_count_label(record), 0, None, unit=unit if isinstance(unit, str) else None),
            )
            bar.done, bar.total = done, total if isinstance(total, int) else None
            return Change((key,))
        finished: tuple[str, ...] = ()
        if isinstance(record, ManifestWriting | CopyStarted):
            # The archive is read, or every blob is in place.
            finished = self._finish(list(bars), None)
        text = str(getattr(record, "text", "") or "").rstrip("\n")
        if text:
            self.lines.extend(text.split("\n"))
        return Change(finished, text)

    def _finish(self, keys: list[str], size: int | None) -> tuple[str, ...]:
        """Mark the bars of *keys* ``done`` (one that was skipped keeps saying so)."""
        changed = []
        for key in keys:
            bar = self.bars.get(key)
            if bar is None or bar.state:
                continue
            total = bar.total if size is None else size
            if total is None:
                total = bar.done
            bar.done, bar.total, bar.state = total, total, "done"
            changed.append(key)
        return tuple(changed)
