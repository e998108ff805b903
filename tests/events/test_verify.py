"""The event log's hash chain: every way of tampering with the files is named by verify."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiopod.events import Event, EventKind, EventLog
from aiopod.events.log import EVENTS_FILE, Retention
from aiopod.events.verify import verify_log

IMAGE = "a" * 64
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def event(i: int) -> Event:
    return Event(
        EventKind.TAGGED, "image", IMAGE, f"localhost/app:{i}", time=T0 + timedelta(seconds=i)
    )


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    log = EventLog(tmp_path / "aiopod" / EVENTS_FILE)
    for i in range(1, 11):
        log.append([event(i)])
    return log


def lines(log: EventLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def rewrite(log: EventLog, new: list[bytes]) -> None:
    log.path.write_bytes(b"".join(new))


def test_an_untouched_log_verifies(log: EventLog) -> None:
    report = verify_log(log)
    assert report.ok
    assert (report.checked, report.first_seq, report.last_seq) == (10, 1, 10)


def test_an_edited_record_is_named(log: EventLog) -> None:
    content = lines(log)
    content[3] = content[3].replace(b"localhost/app:4", b"localhost/app:X")
    rewrite(log, content)
    problem = verify_log(log).problem
    assert problem is not None
    assert (problem.kind, problem.seq, problem.line) == ("edited", 4, 4)
    assert "record seq 4 was changed" in problem.message


def test_an_edited_last_record_is_caught_by_the_head(log: EventLog) -> None:
    content = lines(log)
    content[-1] = content[-1].replace(b"app:10", b"app:99")
    rewrite(log, content)
    problem = verify_log(log).problem
    assert problem is not None and (problem.kind, problem.seq) == ("edited", 10)


def test_a_dropped_record_is_named(log: EventLog) -> None:
    content = lines(log)
    del content[5]
    rewrite(log, content)
    problem = verify_log(log).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("dropped", 6)
    assert "records seq 6 are missing before record seq 7" in problem.message


def test_an_inserted_record_is_named(log: EventLog) -> None:
    content = lines(log)
    content.insert(7, content[2])  # a copy of seq 3 after seq 7
    rewrite(log, content)
    problem = verify_log(log).problem
    assert problem is not None
    assert (problem.kind, problem.seq, problem.line) == ("inserted", 3, 8)


def test_an_inserted_line_that_is_no_record_is_named(log: EventLog) -> None:
    content = lines(log)
    content.insert(2, b'{"note":"hello"}\n')
    rewrite(log, content)
    problem = verify_log(log).problem
    assert problem is not None and (problem.kind, problem.line) == ("inserted", 3)


def test_a_forged_record_with_the_next_seq_breaks_the_chain_after_it(log: EventLog) -> None:
    content = lines(log)
    forged = json.loads(content[4])
    forged["name"] = "localhost/forged:1"
    content[4] = json.dumps(forged, separators=(",", ":")).encode() + b"\n"
    rewrite(log, content)
    problem = verify_log(log).problem
    assert problem is not None and (problem.kind, problem.seq) == ("edited", 5)


def test_reordered_records_are_named(log: EventLog) -> None:
    content = lines(log)
    content[4], content[5] = content[5], content[4]
    rewrite(log, content)
    problem = verify_log(log).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("reordered", 6)


def test_a_truncated_log_is_named(log: EventLog) -> None:
    rewrite(log, lines(log)[:-2])
    problem = verify_log(log).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("truncated", 9)
    assert "records seq 9 to 10 are missing" in problem.message


def test_a_log_cut_in_the_middle_of_a_line_is_truncated(log: EventLog) -> None:
    data = log.path.read_bytes()
    log.path.write_bytes(data[: len(data) - 40])
    problem = verify_log(log).problem
    assert problem is not None and problem.kind == "truncated"


def test_swapped_segments_are_named(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "aiopod" / EVENTS_FILE, max_bytes=2048)
    for i in range(40):
        log.append([event(i)])
    first, second = (s.path for s in log.segments()[:2])
    swap = first.with_name("swap")
    first.rename(swap)
    second.rename(first)
    swap.rename(second)
    problem = verify_log(log).problem
    assert problem is not None and problem.kind == "reordered"


def test_the_chain_holds_across_segments_and_a_pruned_prefix(tmp_path: Path) -> None:
    log = EventLog(
        tmp_path / "aiopod" / EVENTS_FILE, max_bytes=2048, retention=Retention(segments=2)
    )
    for i in range(60):
        log.append([event(i)])
    report = verify_log(log)
    assert report.ok, report.problem
    assert report.first_seq > 1 and report.last_seq == 60
    assert any("were pruned" in note for note in report.notes)
    log.checkpoint_path.write_text(
        log.checkpoint_path.read_text().replace('"prev": "', '"prev": "0')
    )
    problem = verify_log(log).problem
    assert problem is not None and problem.kind == "edited"


def test_a_deleted_oldest_segment_without_checkpoint_is_dropped(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "aiopod" / EVENTS_FILE, max_bytes=2048)
    for i in range(40):
        log.append([event(i)])
    log.segments()[0].path.unlink()
    problem = verify_log(log).problem
    assert problem is not None and problem.kind == "dropped"


def test_since_checks_from_that_record_on(log: EventLog) -> None:
    content = lines(log)
    content[1] = content[1].replace(b"app:2", b"app:Z")
    rewrite(log, content)
    assert not verify_log(log).ok
    report = verify_log(log, since=4)
    assert report.ok
    assert (report.first_seq, report.last_seq, report.checked) == (4, 10, 7)
