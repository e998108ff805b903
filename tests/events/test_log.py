"""The persistent event log: seq continuity across objects and processes, partial lines,
rotation, filters, and following another process's appends."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from peers import aiopod_env

from aiopod.events import Event, EventFilter, EventKind, EventLog
from aiopod.events.log import EVENTS_FILE

IMAGE = "a" * 64
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


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
    assert first[0] == dataclasses.replace(event(1), seq=1)
    assert log.append([]) == []
    assert list(log.read()) == first + second
    assert path.stat().st_mode & 0o777 == 0o600


def test_each_line_is_one_native_json_object(path: Path) -> None:
    EventLog(path).append([event(1), Event(EventKind.DELETED, "image", IMAGE, time=T0)])
    lines = path.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "seq": 1,
            "kind": "Tagged",
            "type": "image",
            "id": IMAGE,
            "name": "localhost/app:1",
            "time": "2026-01-02T03:04:06.123456Z",
            "attributes": {},
        },
        {
            "seq": 2,
            "kind": "Deleted",
            "type": "image",
            "id": IMAGE,
            "name": None,
            "time": "2026-01-02T03:04:05.123456Z",
            "attributes": {},
        },
    ]


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
    assert path.read_bytes().count(b"\n") == 3


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


def test_rotation_keeps_one_old_file_and_seq_continues(path: Path) -> None:
    log = EventLog(path, max_bytes=4096)
    for i in range(200):
        log.append([event(i)])
    rotated = path.with_name(EVENTS_FILE + ".1")
    assert rotated.exists()
    assert path.stat().st_size <= 4096
    assert rotated.stat().st_size <= 4096
    assert sorted(p.name for p in path.parent.iterdir()) == [EVENTS_FILE, EVENTS_FILE + ".1"]
    read = [e.seq for e in log.read()]
    assert read == list(range(read[0], 201))  # contiguous up to the newest
    assert read[0] > 1  # the oldest are gone


def test_seq_continues_after_a_rotation_left_the_live_file_empty(path: Path) -> None:
    EventLog(path).append([event(1), event(2)])
    os.replace(path, path.with_name(EVENTS_FILE + ".1"))
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
    from aiopod.events.log import _Tail

    log = EventLog(path, max_bytes=2048)
    log.append([event(1)])
    tail = _Tail(log, 0)
    try:
        assert [e.seq for e in tail.poll()] == [1]
        for i in range(2, 30):  # ~12 events a file: two rotations before the next poll
            log.append([event(i)])
        seen: list[int] = []
        while batch := tail.poll():
            seen.extend(e.seq for e in batch)
    finally:
        tail.close()
    assert seen == list(range(2, 30))
