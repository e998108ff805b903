"""``rt.events``: one stream of every process's events, in seq order, exactly once.

A subscriber sees the commits of its own process (the fast path) and of other processes
(read from the log), in the log's order; one that falls behind is told ``Lagged`` and then
gets the very events it could not hold, from the log; it can start from the log's start
or resume after a seq.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from imagefactory import load_images, make_image
from peers import aiopod, aiopod_env

from aiopod import Event, Lagged, Runtime, StreamSubscription

pytestmark = pytest.mark.anyio

ONE = make_image("localhost/one:latest", seed="one")


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with Runtime(tmp_path / "store") as runtime:
        await load_images(runtime, tmp_path, ONE)
        yield runtime


async def take(
    subscription: StreamSubscription, count: int, seconds: float = 20, *, lagged: bool = False
) -> list[Event]:
    """The next *count* events (``Lagged`` markers allowed only with *lagged*)."""
    out: list[Event] = []
    with anyio.fail_after(seconds):
        while len(out) < count:
            item = await subscription.receive()
            if lagged and isinstance(item, Lagged):
                continue
            assert isinstance(item, Event), item
            out.append(item)
    return out


async def nothing_more(subscription: StreamSubscription, seconds: float = 0.3) -> None:
    with anyio.move_on_after(seconds):
        item = await subscription.receive()
        raise AssertionError(f"unexpected {item}")


def logged(rt: Runtime, after: int = 0) -> list[Event]:
    return list(rt.event_log.read(after_seq=after))


async def test_own_commits_arrive_with_their_log_records(rt: Runtime) -> None:
    async with rt.events.subscribe() as events:
        await rt.tag("one", "two", "three")
        await rt.untag("one", "localhost/two:latest")
        received = await take(events, 3)
        await nothing_more(events)
    start = received[0].seq - 1
    assert received == logged(rt, start)
    assert [e.action for e in received] == ["tag", "tag", "untag"]
    assert [e.seq for e in received] == [start + 1, start + 2, start + 3]


async def test_another_process_s_commits_arrive_in_seq_order(rt: Runtime) -> None:
    async with rt.events.subscribe() as events:
        await anyio.to_thread.run_sync(
            lambda: aiopod("tag", "one", "cli:1", root=rt.root, check=True)
        )
        await rt.tag("one", "api:1")
        await anyio.to_thread.run_sync(lambda: aiopod("rmi", "cli:1", root=rt.root, check=True))
        received = await take(events, 3)
        await nothing_more(events)
    assert [(e.action, e.name) for e in received] == [
        ("tag", "localhost/cli:1"),
        ("tag", "localhost/api:1"),
        ("untag", "localhost/cli:1"),
    ]
    assert received == logged(rt, received[0].seq - 1)
    cli = received[0].actor
    assert cli is not None and "tag one cli:1" in cli.command
    assert cli.pid != received[1].actor.pid  # type: ignore[union-attr]


async def test_four_writer_processes_each_event_exactly_once_in_order(
    rt: Runtime, tmp_path: Path
) -> None:
    script = (
        "import sys, anyio, aiopod\n"
        "async def main():\n"
        "    async with aiopod.Runtime(sys.argv[1]) as rt:\n"
        "        for i in range(25):\n"
        "            await rt.tag('one', f'w{sys.argv[2]}:{i}')\n"
        "anyio.run(main)\n"
    )
    async with rt.events.subscribe(since="now", buffer=16) as events:
        writers = [
            await anyio.open_process(
                [sys.executable, "-c", script, str(rt.root), str(n)], env=aiopod_env()
            )
            for n in range(4)
        ]
        for i in range(25):
            await rt.tag("one", f"self:{i}")
        received = await take(events, 125, seconds=60, lagged=True)
        for writer in writers:
            assert await writer.wait() == 0
        await nothing_more(events)
    assert received == logged(rt, received[0].seq - 1)
    assert len({e.name for e in received}) == 125


async def test_a_slow_subscriber_is_told_lagged_then_gets_the_rest_from_the_log(
    rt: Runtime,
) -> None:
    async with rt.events.subscribe(buffer=2) as events:
        await rt.tag("one", "a", "b")  # fills the buffer
        await rt.tag("one", "c", "d", "e")  # does not fit: left to the log
        items: list[Event | Lagged] = []
        with anyio.fail_after(10):
            while len([i for i in items if isinstance(i, Event)]) < 5:
                items.append(await events.receive())
        await nothing_more(events)
    assert [i if isinstance(i, Lagged) else i.name for i in items] == [
        "localhost/a:latest",
        "localhost/b:latest",
        Lagged(3),
        "localhost/c:latest",
        "localhost/d:latest",
        "localhost/e:latest",
    ]
    assert events.dropped == 3


async def test_since_start_replays_the_log_and_since_seq_resumes(rt: Runtime) -> None:
    await rt.tag("one", "x")
    await rt.untag("one", "localhost/x:latest")
    history = logged(rt)
    async with rt.events.subscribe(since="start") as events:
        assert await take(events, len(history)) == history
    middle = history[len(history) // 2].seq
    async with rt.events.subscribe(since=middle) as events:
        assert await take(events, len(history) - middle) == history[middle:]
        await rt.tag("one", "y")
        [new] = await take(events, 1)
    assert new.seq == history[-1].seq + 1


async def test_now_skips_what_another_process_committed_before(rt: Runtime) -> None:
    await anyio.to_thread.run_sync(lambda: aiopod("tag", "one", "before", root=rt.root, check=True))
    async with rt.events.subscribe() as events:
        await rt.tag("one", "after")
        [event] = await take(events, 1)
        await nothing_more(events)
    assert event.name == "localhost/after:latest"


async def test_filters_apply_to_both_paths(rt: Runtime) -> None:
    async with rt.events.subscribe(kinds=["untag"]) as events:
        await rt.tag("one", "p", "q")
        await anyio.to_thread.run_sync(
            lambda: aiopod("untag", "one", "p", root=rt.root, check=True)
        )
        await rt.untag("one", "localhost/q:latest")
        received = await take(events, 2)
        await nothing_more(events)
    assert [e.name for e in received] == ["localhost/p:latest", "localhost/q:latest"]


async def test_a_cancelled_receive_loses_nothing(rt: Runtime) -> None:
    async with rt.events.subscribe() as events:
        with anyio.move_on_after(0.05) as scope:
            await events.receive()
        assert scope.cancelled_caught
        await anyio.to_thread.run_sync(lambda: aiopod("tag", "one", "k", root=rt.root, check=True))
        [event] = await take(events, 1)
        await nothing_more(events)
    assert event.name == "localhost/k:latest"


async def test_closing_the_runtime_ends_iteration_after_committed_events(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path / "s")
    await runtime.open()
    await load_images(runtime, tmp_path, ONE)
    events = runtime.events.subscribe(since="start")
    await runtime.aclose()
    with anyio.fail_after(10):
        seen = [item async for item in events]
    assert seen == list(runtime.event_log.read())
    assert seen
