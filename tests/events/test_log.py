"""The persistent event log: seq continuity across objects and processes, partial lines,
rotation, filters, and following another process's appends."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from peers import aiopod_env

import aiopod.events.log as log_module
from aiopod.events import Event, EventFilter, EventKind, EventLog
from aiopod.events.log import EVENTS_FILE, GENESIS, Retention
from aiopod.events.model import Actor, redact_command_line

IMAGE = "a" * 64
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
ACTOR = Actor(1000, 1000, 42, datetime(2026, 1, 2, tzinfo=UTC), "aiopod rmi a", "box")


def event(i: int, kind: EventKind = EventKind.TAGGED, *, when: datetime | None = None) -> Event:
    return Event(kind, "image", IMAGE, f"localhost/app:{i}", time=when or T0 + timedelta(seconds=i))


def append_in_subprocess(path: Path, start: int, count: int, max_bytes: int = 1 << 24) -> None:
    """Append events from another process (as another aiopod process would)."""
    code = (
        "import sys\n"
        "from aiopod.events import Event, EventKind, EventLog\n"
        "log = EventLog(sys.argv[1], max_bytes=int(sys.argv[4]))\n"
        "for i in range(int(sys.argv[2]), int(sys.argv[2]) + int(sys.argv[3])):\n"
        "    log.append([Event(EventKind.UNTAGGED, 'image', 'b' * 64, f'localhost/x:{i}')])\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(path), str(start), str(count), str(max_bytes)],
        check=True,
        env=aiopod_env(),
        timeout=60,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "aiopod" / EVENTS_FILE


def test_for_store_is_the_store_metadata_file(tmp_path: Path) -> None:
    assert EventLog.for_store(tmp_path).path == tmp_path / "aiopod" / "events.jsonl"


def test_append_numbers_events_consecutively_and_returns_them(path: Path) -> None:
    log = EventLog(path)
    first = log.append([event(1), event(2)])
    second = log.append([event(3)])
    assert [e.seq for e in first + second] == [1, 2, 3]
    assert first[0] == dataclasses.replace(event(1), seq=1, actor=log.actor, prev=GENESIS)
    assert log.append([]) == []
    assert list(log.read()) == first + second
    assert path.stat().st_mode & 0o777 == 0o600


def test_each_line_is_one_native_json_object_chained_to_the_one_before(path: Path) -> None:
    log = EventLog(path, actor=ACTOR)
    log.append([event(1), Event(EventKind.DELETED, "image", IMAGE, time=T0, names=("a:1",))])
    lines = path.read_bytes().splitlines()
    actor = {
        "uid": 1000,
        "gid": 1000,
        "pid": 42,
        "started": "2026-01-02T00:00:00+00:00",
        "command": "aiopod rmi a",
        "host": "box",
    }
    assert [json.loads(line) for line in lines] == [
        {
            "seq": 1,
            "action": "tag",
            "kind": "Tagged",
            "type": "image",
            "id": IMAGE,
            "name": "localhost/app:1",
            "names": [],
            "time": "2026-01-02T03:04:06.123456Z",
            "attributes": {},
            "actor": actor,
            "prev": GENESIS,
        },
        {
            "seq": 2,
            "action": "remove",
            "kind": "Deleted",
            "type": "image",
            "id": IMAGE,
            "name": None,
            "names": ["a:1"],
            # Never earlier than the record before it; when it was made is kept.
            "time": "2026-01-02T03:04:06.123456Z",
            "started": "2026-01-02T03:04:05.123456Z",
            "attributes": {},
            "actor": actor,
            "prev": hashlib.sha256(lines[0]).hexdigest(),
        },
    ]
    assert log.head() == (2, hashlib.sha256(lines[1]).hexdigest())


def test_seq_continues_across_log_objects_and_processes(path: Path) -> None:
    EventLog(path).append([event(1), event(2)])
    EventLog(path).append([event(3)])
    append_in_subprocess(path, 0, 3)
    mine = EventLog(path)
    mine.append([event(4)])
    append_in_subprocess(path, 3, 1)
    mine.append([event(5)])  # the cached tail is stale: it must re-read it
    assert [e.seq for e in EventLog(path).read()] == list(range(1, 10))


def test_a_partly_written_last_line_is_skipped_and_the_next_append_starts_a_new_line(
    path: Path,
) -> None:
    log = EventLog(path)
    log.append([event(1)])
    with path.open("ab") as f:
        f.write(b'{"seq":2,"kind":"Tagged","type":"im')  # a crash in the middle of a write
    assert [e.seq for e in EventLog(path).read()] == [1]
    assert EventLog(path).last_seq() == 1
    appended = EventLog(path).append([event(3)])
    assert [e.seq for e in appended] == [2]
    assert [e.seq for e in log.read()] == [1, 2]
    # The torn line is cut off, so the chain stays whole.
    assert path.read_bytes().count(b"\n") == 2
    assert b'"im\n' not in path.read_bytes()


def test_lines_that_are_not_events_are_skipped(path: Path) -> None:
    log = EventLog(path)
    log.append([event(1)])
    with path.open("ab") as f:
        f.write(b"not json\n[1,2]\n{}\n" + b'{"seq":9,"kind":"Nope"}\n')
    log.append([event(2)])
    assert [(e.seq, e.name) for e in log.read()] == [(1, "localhost/app:1"), (2, "localhost/app:2")]


def test_a_missing_log_is_empty(path: Path) -> None:
    log = EventLog(path)
    assert list(log.read()) == []
    assert log.last_seq() == 0


def test_the_last_seq_of_a_large_log_is_read_from_its_tail(path: Path) -> None:
    EventLog(path, max_bytes=1 << 30).append([event(i) for i in range(100_000)])
    fresh = EventLog(path)
    started = time.perf_counter()
    assert fresh.last_seq() == 100_000
    assert [e.seq for e in fresh.append([event(0)])] == [100_001]
    assert time.perf_counter() - started < 0.05


def test_rotation_seals_segments_and_seq_and_chain_continue(path: Path) -> None:
    log = EventLog(path, max_bytes=4096)
    for i in range(200):
        log.append([event(i)])
    segments = log.segments()
    assert len(segments) > 3
    assert [s.path.name for s in segments[:-1]] == [
        f"events.{s.first:016d}.jsonl" for s in segments[:-1]
    ]
    assert segments[0].first == 1
    assert all(s.path.stat().st_size <= 4096 for s in segments)
    assert [e.seq for e in log.read()] == list(range(1, 201))  # nothing is lost
    previous = GENESIS
    for segment in segments:
        for line in segment.path.read_bytes().splitlines():
            assert json.loads(line)["prev"] == previous
            previous = hashlib.sha256(line).hexdigest()


def test_retention_prunes_old_segments_and_leaves_a_checkpoint(path: Path) -> None:
    log = EventLog(path, max_bytes=4096, retention=Retention(segments=2))
    for i in range(200):
        log.append([event(i)])
    sealed = log.segments()[:-1]
    assert len(sealed) == 2
    first_kept = sealed[0].first
    assert first_kept is not None and first_kept > 1
    checkpoint = log.checkpoint()
    assert checkpoint is not None
    assert checkpoint.first_seq == first_kept
    first_line = sealed[0].path.read_bytes().split(b"\n", 1)[0]
    assert checkpoint.prev == json.loads(first_line)["prev"]
    assert [e.seq for e in log.read()] == list(range(first_kept, 201))


def test_retention_by_bytes_and_by_age(path: Path) -> None:
    by_size = EventLog(path, max_bytes=4096, retention=Retention(bytes=9000))
    for i in range(200):
        by_size.append([event(i)])
    assert sum(s.path.stat().st_size for s in by_size.segments()[:-1]) <= 9000
    old = path.parent / "old" / EVENTS_FILE
    by_age = EventLog(old, max_bytes=4096, retention=Retention(age=timedelta(hours=1)))
    for i in range(30):
        by_age.append([event(i)])
    for segment in by_age.segments()[:-1]:
        os.utime(segment.path, (time.time() - 7200, time.time() - 7200))
    for i in range(30, 60):
        by_age.append([event(i)])
    checkpoint = by_age.checkpoint()
    assert checkpoint is not None
    assert next(e.seq for e in by_age.read()) == checkpoint.first_seq


def test_seq_continues_after_a_rotation_left_the_live_file_empty(path: Path) -> None:
    EventLog(path).append([event(1), event(2)])
    os.replace(path, path.with_name("events.0000000000000001.jsonl"))
    path.touch()
    assert EventLog(path).last_seq() == 2
    assert [e.seq for e in EventLog(path).append([event(3)])] == [3]
    assert [e.seq for e in EventLog(path).read()] == [1, 2, 3]


def test_a_batch_larger_than_max_bytes_is_written_whole(path: Path) -> None:
    log = EventLog(path, max_bytes=1000)
    log.append([event(0)])
    log.append([event(i) for i in range(1, 50)])
    assert [e.seq for e in log.read()] == list(range(1, 51))


def test_durable_appends_are_fsynced(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    EventLog(path).append([event(1)])
    assert synced == []
    EventLog(path, durable=True).append([event(2)])
    assert len(synced) == 1
    EventLog(path).append([event(3)], durable=True)
    assert len(synced) == 2


def test_read_filters_by_time_seq_and_filter(path: Path) -> None:
    log = EventLog(path)
    log.append(
        [
            event(1),
            event(2, EventKind.UNTAGGED),
            event(3),
            event(4, EventKind.UNTAGGED),
        ]
    )
    assert [e.seq for e in log.read(after_seq=2)] == [3, 4]
    assert [e.seq for e in log.read(since=T0 + timedelta(seconds=2))] == [3, 4]
    assert [e.seq for e in log.read(until=T0 + timedelta(seconds=2))] == [1]
    untags = EventFilter.build(kinds=["untag"])
    assert [e.seq for e in log.read(filter=untags)] == [2, 4]


async def collect(log: EventLog, count: int, **options: object) -> list[Event]:
    got: list[Event] = []
    with anyio.fail_after(30):
        async with contextlib.aclosing(log.follow(poll_interval=0.01, **options)) as events:  # type: ignore[arg-type]
            async for e in events:
                got.append(e)
                if len(got) == count:
                    break
    return got


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_follow_yields_logged_events_then_another_process_appends(
    path: Path, anyio_backend: str
) -> None:
    log = EventLog(path)
    log.append([event(1), event(2)])
    got: list[Event] = []
    async with anyio.create_task_group() as tg:

        async def follow() -> None:
            got.extend(await collect(log, 6))

        tg.start_soon(follow)
        await anyio.sleep(0.05)
        await anyio.to_thread.run_sync(append_in_subprocess, path, 0, 4)
    assert [e.seq for e in got] == [1, 2, 3, 4, 5, 6]
    assert [e.kind for e in got[2:]] == [EventKind.UNTAGGED] * 4


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_follow_waits_for_the_log_to_exist(path: Path, anyio_backend: str) -> None:
    log = EventLog(path)
    async with anyio.create_task_group() as tg:
        got: list[Event] = []

        async def follow() -> None:
            got.extend(await collect(log, 1))

        tg.start_soon(follow)
        await anyio.sleep(0.05)
        log.append([event(1)])
    assert [e.seq for e in got] == [1]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_follow_survives_rotations_by_another_process(path: Path, anyio_backend: str) -> None:
    log = EventLog(path, max_bytes=2048)
    log.append([event(1)])
    got: list[Event] = []
    async with anyio.create_task_group() as tg:

        async def follow() -> None:
            got.extend(await collect(log, 40))

        tg.start_soon(follow)
        await anyio.sleep(0.05)
        # 39 appends of ~170 bytes: about three rotations while the follower polls.
        for start in range(0, 39, 3):
            await anyio.to_thread.run_sync(append_in_subprocess, path, start, 3, 2048)
    assert [e.seq for e in got] == list(range(1, 41))


def test_a_cursor_whose_file_a_rotation_renamed_unseen_reads_its_last_lines(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race a follower meets when another process rotates: the segments are listed,
    the live file is renamed to a sealed segment and a new live file made, then the
    listed live name is looked at -- the renamed file, the one the cursor reads, is in
    no listing.  The cursor lists again rather than go on to the new live file and skip
    what was appended to its file before the rotation."""
    log = EventLog(path, max_bytes=2048)
    log.append([event(1)])
    seen, cursor = log.cursor(0).scan()
    assert [e.seq for e in seen] == [1]
    for i in range(2, 25):  # about 12 fit in a file: rotations, the first file sealed
        log.append([event(i)])
    assert cursor.file is not None
    inodes = {s.path: (s.path.stat().st_dev, s.path.stat().st_ino) for s in log.segments()}
    # The file the cursor was reading, sealed by a rotation:
    [renamed] = [p for p, inode in inodes.items() if inode == cursor.file]
    assert renamed != path
    real = log_module._segments
    missed: list[Path] = []

    def listing_during_the_rotation(directory: Path, live: Path) -> list[Any]:
        segments = real(directory, live)
        if not missed:
            missed.append(renamed)
            return [s for s in segments if s.path != renamed]
        return segments

    monkeypatch.setattr(log_module, "_segments", listing_during_the_rotation)
    got: list[int] = []
    while True:
        batch, cursor = cursor.scan()
        if not batch:
            break
        got += [e.seq for e in batch]
    assert missed == [renamed]
    assert got == list(range(2, 25))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_follow_ends_when_until_passes(path: Path, anyio_backend: str) -> None:
    log = EventLog(path)
    log.append([event(1, when=datetime.now(UTC) - timedelta(seconds=1))])
    until = datetime.now(UTC) + timedelta(seconds=0.3)
    started = time.perf_counter()
    with anyio.fail_after(10):
        got = [e async for e in log.follow(until=until, poll_interval=0.01)]
    assert [e.seq for e in got] == [1]
    assert 0.2 < time.perf_counter() - started < 5


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_follow_can_be_cancelled_while_polling(path: Path, anyio_backend: str) -> None:
    log = EventLog(path)
    with anyio.move_on_after(0.1) as scope:
        async with contextlib.aclosing(log.follow(poll_interval=0.01)) as events:
            async for _ in events:
                pass
    assert scope.cancelled_caught


def test_a_follower_that_misses_two_rotations_still_reads_every_event(path: Path) -> None:
    log = EventLog(path, max_bytes=2048)
    log.append([event(1)])
    batch, cursor = log.cursor().scan()
    assert [e.seq for e in batch] == [1]
    for i in range(2, 30):  # ~5 events a file: rotations before the next scan
        log.append([event(i)])
    seen: list[int] = []
    while True:
        batch, cursor = cursor.scan()
        if not batch:
            break
        seen.extend(e.seq for e in batch)
    assert seen == list(range(2, 30))


def test_a_cursor_is_a_value_a_dropped_scan_moves_nothing(path: Path) -> None:
    log = EventLog(path)
    log.append([event(1), event(2)])
    cursor = log.cursor()
    first, _ = cursor.scan()
    again, after = cursor.scan()
    assert first == again
    assert after.scan() == ([], after)


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["aiopod", "pull", "--creds", "u:pw", "x"], ["aiopod", "pull", "--creds", "***", "x"]),
        (["aiopod", "push", "--creds=u:pw", "x"], ["aiopod", "push", "--creds=***", "x"]),
        (
            ["aiopod", "login", "-p", "pw", "-u", "u", "r"],
            ["aiopod", "login", "-p", "***", "-u", "u", "r"],
        ),
        (["aiopod", "login", "-ppw", "r"], ["aiopod", "login", "-p***", "r"]),
        (
            ["aiopod", "login", "--password-stdin", "r"],
            ["aiopod", "login", "--password-stdin", "r"],
        ),
    ],
)
def test_the_recorded_command_line_never_holds_a_password(
    args: list[str], shown: list[str]
) -> None:
    assert redact_command_line(args) == shown
