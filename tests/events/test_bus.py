"""The event bus: ordering, per-subscriber filters, Lagged on overflow, no stalls, closing,
use across "notebook cells" (tasks), cancellation, and throughput."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import anyio
import anyio.lowlevel
import pytest

from aiopod.errors import RuntimeStopped, UsageError
from aiopod.events import Event, EventBus, EventFilter, EventKind, Lagged, Subscription

pytestmark = [pytest.mark.anyio, pytest.mark.both_backends]  # the core API, on both


IMAGE = "a" * 64
OTHER = "b" * 64
CONTAINER = "c" * 64
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def tagged(i: int, image: str = IMAGE) -> Event:
    return Event(EventKind.TAGGED, "image", image, f"localhost/app:{i}", time=WHEN, seq=i)


def drain(sub: Subscription) -> list[Event | Lagged]:
    items: list[Event | Lagged] = []
    while True:
        try:
            items.append(sub.receive_nowait())
        except anyio.WouldBlock:
            return items


def seqs(items: Sequence[Event | Lagged]) -> list[int | str]:
    return [f"lagged {i.missed}" if isinstance(i, Lagged) else i.seq for i in items]


async def test_every_subscriber_gets_every_event_in_publish_order() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    bus.publish([tagged(1), tagged(2)])
    bus.publish([tagged(3)])
    bus.publish([])
    assert seqs(drain(first)) == [1, 2, 3]
    assert [await second.receive() for _ in range(3)] == [tagged(1), tagged(2), tagged(3)]


async def test_a_subscription_sees_only_what_is_published_after_it_subscribed() -> None:
    bus = EventBus()
    bus.publish([tagged(1)])
    sub = bus.subscribe()
    bus.publish([tagged(2)])
    assert seqs(drain(sub)) == [2]


async def test_filters_are_per_subscriber() -> None:
    bus = EventBus()
    untags = bus.subscribe(kinds=["untag"])
    by_kind = bus.subscribe(kinds=[EventKind.DELETED, "Tagged"])
    containers = bus.subscribe(types=["container"])
    other_image = bus.subscribe(images=[OTHER[:12]])
    by_name = bus.subscribe(names=["app:1"])
    by_container = bus.subscribe(containers=["web"])
    everything = bus.subscribe()
    events = [
        tagged(1),
        Event(EventKind.UNTAGGED, "image", IMAGE, "localhost/app:1", seq=2),
        Event(EventKind.DELETED, "image", OTHER, seq=3),
        Event(EventKind.CREATED, "container", CONTAINER, "web", seq=4),
        Event(EventKind.REMOVED, "container", CONTAINER, "web", seq=5),
    ]
    bus.publish(events)
    assert seqs(drain(untags)) == [2]
    assert seqs(drain(by_kind)) == [1, 3]
    assert seqs(drain(containers)) == [4, 5]
    assert seqs(drain(other_image)) == [3]
    assert seqs(drain(by_name)) == [1, 2]
    assert seqs(drain(by_container)) == [4, 5]
    assert seqs(drain(everything)) == [1, 2, 3, 4, 5]


async def test_keyword_filters_and_a_prepared_filter_are_anded() -> None:
    bus = EventBus()
    sub = bus.subscribe(types=["image"], filter=EventFilter.build(kinds=["tag", "untag"]))
    bus.publish(
        [
            tagged(1),
            Event(EventKind.DELETED, "image", IMAGE, seq=2),
            Event(EventKind.UNTAGGED, "image", IMAGE, "localhost/app:1", seq=3),
        ]
    )
    assert seqs(drain(sub)) == [1, 3]


async def test_overflow_drops_the_oldest_and_reports_exactly_how_many() -> None:
    bus = EventBus()
    sub = bus.subscribe(buffer=4)
    bus.publish([tagged(i) for i in range(1, 11)])
    assert sub.pending == 4
    assert seqs(drain(sub)) == ["lagged 6", 7, 8, 9, 10]
    assert sub.dropped == 6


async def test_lagged_comes_right_before_the_oldest_event_still_buffered() -> None:
    bus = EventBus()
    sub = bus.subscribe(buffer=3)
    bus.publish([tagged(1), tagged(2), tagged(3)])
    assert await sub.receive() == tagged(1)
    bus.publish([tagged(4), tagged(5), tagged(6)])  # 2 and 3 are pushed out
    bus.publish([tagged(7)])  # and then 4
    assert seqs(drain(sub)) == ["lagged 3", 5, 6, 7]
    bus.publish([tagged(8)])
    assert seqs(drain(sub)) == [8]


async def test_a_subscriber_that_never_reads_does_not_stall_the_publisher() -> None:
    bus = EventBus()
    stuck = bus.subscribe(buffer=16)
    live = bus.subscribe(buffer=16)
    started = time.perf_counter()
    for i in range(1, 50_001):
        bus.publish([tagged(i)])
    assert time.perf_counter() - started < 2.0
    assert stuck.pending == 16  # bounded memory
    assert seqs(drain(live)) == ["lagged 49984", *range(49_985, 50_001)]


async def test_an_unmatched_event_does_not_count_as_missed() -> None:
    bus = EventBus()
    sub = bus.subscribe(kinds=["untag"], buffer=1)
    bus.publish([tagged(i) for i in range(100)])
    assert sub.pending == 0
    assert drain(sub) == []


async def test_closing_the_bus_ends_iteration_after_what_is_buffered() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish([tagged(1), tagged(2)])
    bus.close()
    assert [e async for e in sub] == [tagged(1), tagged(2)]
    with pytest.raises(anyio.EndOfStream):
        sub.receive_nowait()
    bus.publish([tagged(3)])  # ignored
    assert bus.subscriber_count == 0


async def test_closing_the_bus_wakes_a_waiting_iterator() -> None:
    bus = EventBus()
    received: list[Event | Lagged] = []
    async with anyio.create_task_group() as tg:
        sub = bus.subscribe()

        async def consume() -> None:
            async for item in sub:
                received.append(item)

        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        bus.publish([tagged(1)])
        await anyio.wait_all_tasks_blocked()
        bus.close()
    assert received == [tagged(1)]


async def test_closing_the_subscription_ends_a_waiting_iterator_and_unsubscribes() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    done = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            async for _ in sub:
                pass
            done.set()

        tg.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        await sub.aclose()
    assert done.is_set()
    assert sub.closed
    assert bus.subscriber_count == 0
    with pytest.raises(anyio.ClosedResourceError):
        await sub.receive()
    await sub.aclose()  # idempotent


async def test_the_context_manager_closes_the_subscription() -> None:
    bus = EventBus()
    async with bus.subscribe() as sub:
        assert bus.subscriber_count == 1
    assert sub.closed
    assert bus.subscriber_count == 0


async def test_subscribing_to_a_closed_bus_is_runtime_stopped() -> None:
    bus = EventBus()
    bus.close()
    with pytest.raises(RuntimeStopped):
        bus.subscribe()


async def test_a_buffer_must_hold_at_least_one_event() -> None:
    with pytest.raises(UsageError):
        EventBus().subscribe(buffer=0)


async def test_subscribe_in_one_cell_and_iterate_in_a_later_one() -> None:
    """A notebook: cell 1 subscribes (and ends), cell 2 publishes, cell 3 iterates."""
    bus = EventBus()
    cells: dict[str, Subscription] = {}

    async def cell_1() -> None:
        cells["sub"] = bus.subscribe(types=["image"])

    async def cell_2() -> None:
        bus.publish([tagged(1), tagged(2)])

    got: list[Event | Lagged] = []

    async def cell_3() -> None:
        async for item in cells["sub"]:
            got.append(item)
            if len(got) == 3:
                break

    async with anyio.create_task_group() as tg:
        tg.start_soon(cell_1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(cell_2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(cell_3)
        await anyio.wait_all_tasks_blocked()
        bus.publish([tagged(3)])
    assert seqs(got) == [1, 2, 3]
    await cells["sub"].aclose()


async def test_a_cancelled_wait_leaves_the_subscription_usable() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    with anyio.move_on_after(0.05) as scope:
        await sub.receive()
    assert scope.cancelled_caught
    bus.publish([tagged(1)])
    assert await sub.receive() == tagged(1)
    # Cancelled again while waiting, from another task this time.
    async with anyio.create_task_group() as tg:
        tg.start_soon(sub.receive)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    bus.publish([tagged(2)])
    assert await sub.receive() == tagged(2)


async def test_receive_is_a_cancellation_point_that_loses_nothing() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish([tagged(1)])
    with anyio.CancelScope() as scope:
        scope.cancel()
        await sub.receive()
        pytest.fail("receive did not notice the cancellation")
    assert seqs(drain(sub)) == [1]


async def test_a_consumer_of_a_full_buffer_lets_other_tasks_run() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish([tagged(i) for i in range(1000)])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.lowlevel.checkpoint()
        for _ in range(1000):
            await sub.receive()
        tg.cancel_scope.cancel()
    assert ticks >= 1000 // 64


async def test_receive_nowait_raises_would_block_when_empty() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    with pytest.raises(anyio.WouldBlock):
        sub.receive_nowait()
    sub.close()
    with pytest.raises(anyio.ClosedResourceError):
        sub.receive_nowait()


async def test_several_tasks_receiving_from_one_subscription_share_its_events() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    got: list[Event | Lagged] = []
    async with anyio.create_task_group() as tg:
        for _ in range(3):

            async def take() -> None:
                got.append(await sub.receive())

            tg.start_soon(take)
        await anyio.wait_all_tasks_blocked()
        bus.publish([tagged(1), tagged(2), tagged(3)])
    assert sorted(e.seq for e in got if isinstance(e, Event)) == [1, 2, 3]


async def test_publishing_100k_events_to_10_subscribers_takes_under_2_seconds() -> None:
    bus = EventBus()
    subs = [bus.subscribe(buffer=100_000) for _ in range(10)]
    events = [tagged(i) for i in range(1, 100_001)]
    started = time.perf_counter()
    for event in events:
        bus.publish((event,))
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{100_000 / elapsed:,.0f} events/s"
    for sub in subs:
        assert sub.pending == 100_000
    started = time.perf_counter()
    total = sum(len(drain(sub)) for sub in subs)
    assert total == 1_000_000
    assert time.perf_counter() - started < 2.0
