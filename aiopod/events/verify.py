"""Checking the event log's hash chain: ``aiopod events verify`` and ``rt.events.verify()``.

Every record holds ``prev``, the SHA-256 of the line before it (64 zeros for the first
record of a log never pruned; after pruning, the checkpoint names the first kept ``seq``
and its ``prev``), and ``seq`` goes up by one from line to line, across segments.
``events.head`` holds the last ``seq`` and the hash of its line.  :func:`verify_log`
walks the segments in order and reports the **first** record that breaks this:

``edited``
    a record's line is not what the next record's ``prev`` (or the head) says;
``dropped``
    ``seq`` jumps: records are missing;
``inserted``
    a line that is not a record, or a ``seq`` that appears twice;
``reordered``
    a record comes before one with a smaller ``seq`` (lines or segments swapped);
``truncated``
    the log ends before the head's ``seq``, or in the middle of a line.

This is tamper-*evident* against edits of the files, not proof against someone who
rewrites the whole chain and the head: keep a copy of the head (or forward the events,
``examples/auditor.py``) where the store's users cannot write.  Blocking; needs no lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiopod.events.log import GENESIS, EventLog, decode_line, line_hash
from aiopod.events.model import Event

__all__ = ("ProblemKind", "VerifyProblem", "VerifyReport", "verify_log")

ProblemKind = Literal["edited", "dropped", "inserted", "reordered", "truncated"]


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """The first place the chain breaks.

    :param kind: what happened to the log there (see the module docstring).
    :param seq: the ``seq`` of the record concerned (the first missing one when dropped).
    :param path: the file, and *line* the 1-based line number in it (0: no one line).
    :param message: a sentence saying what is wrong and where.
    """

    kind: ProblemKind
    seq: int
    path: Path
    line: int
    message: str


@dataclass(slots=True)
class VerifyReport:
    """What :func:`verify_log` found.

    :param checked: how many records were checked.
    :param first_seq: the first ``seq`` checked (0: none).
    :param last_seq: the last ``seq`` checked (0: none).
    :param problem: the first break of the chain, or None.
    """

    checked: int = 0
    first_seq: int = 0
    last_seq: int = 0
    problem: VerifyProblem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the chain is whole."""
        return self.problem is None


@dataclass(frozen=True, slots=True)
class _Line:
    path: Path
    number: int
    raw: bytes
    event: Event | None
    complete: bool


def _lines(log: EventLog) -> list[_Line]:
    out: list[_Line] = []
    for segment in log.segments():
        try:
            data = segment.path.read_bytes()
        except FileNotFoundError:
            continue
        parts = data.split(b"\n")
        tail = parts.pop()
        for number, raw in enumerate(parts, 1):
            out.append(_Line(segment.path, number, raw, decode_line(raw), True))
        if tail:
            out.append(_Line(segment.path, len(parts) + 1, tail, None, False))
    return out


def verify_log(log: EventLog, *, since: int | None = None) -> VerifyReport:
    """Check *log*'s chain from its start (or from the record with ``seq`` *since*)."""
    report = VerifyReport()
    try:
        checkpoint = log.checkpoint()
    except ValueError as exc:
        report.problem = VerifyProblem("edited", 0, log.checkpoint_path, 0, str(exc))
        return report
    lines = _lines(log)
    if since is None and checkpoint is not None:
        expected_seq, expected_prev = checkpoint.first_seq, checkpoint.prev
        report.notes.append(
            f"records before seq {checkpoint.first_seq} were pruned "
            f"(checkpoint of {checkpoint.pruned_at.isoformat()})"
        )
    elif since is None:
        expected_seq, expected_prev = 1, GENESIS
    else:
        expected_seq, expected_prev = 0, ""  # set by the first record from *since* on
    seen: dict[int, _Line] = {}
    previous: _Line | None = None
    for index, line in enumerate(lines):
        event = line.event
        if not line.complete:
            report.problem = _problem(
                "truncated", expected_seq, line, "the log ends in the middle of a record"
            )
            return report
        if event is None:
            report.problem = _problem(
                "inserted", expected_seq, line, "this line is not an event record"
            )
            return report
        if since is not None and event.seq < since:
            continue
        if expected_seq == 0:
            expected_seq, expected_prev = event.seq, event.prev or ""
            report.first_seq = event.seq
        if event.seq != expected_seq:
            report.problem = _out_of_sequence(event, expected_seq, line, lines[index + 1 :], seen)
            return report
        if event.prev != expected_prev:
            if previous is None:
                what = "the checkpoint" if checkpoint is not None and since is None else "the start"
                report.problem = _problem(
                    "dropped" if checkpoint is None and event.seq > 1 else "edited",
                    event.seq,
                    line,
                    f"record seq {event.seq} does not continue {what} of the chain",
                )
            else:
                report.problem = _problem(
                    "edited",
                    expected_seq - 1,
                    previous,
                    f"record seq {expected_seq - 1} was changed: its line is not the one "
                    f"record seq {event.seq} names as its predecessor",
                )
            return report
        if not report.first_seq:
            report.first_seq = event.seq
        seen[event.seq] = line
        previous = line
        expected_prev = line_hash(line.raw)
        expected_seq += 1
        report.checked += 1
        report.last_seq = event.seq
    head = log.head()
    if head is not None:
        head_seq, head_hash = head
        if head_seq > report.last_seq and (since is None or head_seq >= since):
            first_missing = report.last_seq + 1
            report.problem = VerifyProblem(
                "truncated",
                first_missing,
                log.path,
                0,
                f"records seq {first_missing} to {head_seq} are missing: the log was cut "
                f"short (events.head says the last record is seq {head_seq})",
            )
        elif head_seq in seen and line_hash(seen[head_seq].raw) != head_hash:
            report.problem = _problem(
                "edited",
                head_seq,
                seen[head_seq],
                f"record seq {head_seq} was changed: its line is not the one events.head names",
            )
    return report


def _problem(kind: ProblemKind, seq: int, line: _Line, message: str) -> VerifyProblem:
    return VerifyProblem(
        kind, seq, line.path, line.number, f"{line.path.name}:{line.number}: {message}"
    )


def _out_of_sequence(
    event: Event, expected: int, line: _Line, rest: list[_Line], seen: dict[int, _Line]
) -> VerifyProblem:
    if event.seq in seen:
        first = seen[event.seq]
        return _problem(
            "inserted",
            event.seq,
            line,
            f"record seq {event.seq} appears a second time (first at "
            f"{first.path.name}:{first.number})",
        )
    later = {ln.event.seq for ln in rest if ln.event is not None}
    if event.seq < expected or expected in later:
        return _problem(
            "reordered",
            event.seq,
            line,
            f"record seq {event.seq} comes where seq {expected} should: records or "
            "segments were reordered",
        )
    missing = (
        f"seq {expected}" if event.seq == expected + 1 else f"seq {expected} to {event.seq - 1}"
    )
    return _problem(
        "dropped", expected, line, f"records {missing} are missing before record seq {event.seq}"
    )
