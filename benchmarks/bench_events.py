"""Event benchmark: the bus's publish rate, a consumer's drain rate, the log's append/read.

Not part of the test suite. Run from the repository root::

    python benchmarks/bench_events.py                    # 100,000 events, 10 subscribers
    python benchmarks/bench_events.py --events 20000 --subscribers 100

What is measured (best of ``--runs`` runs, ``time.perf_counter``):

* ``publish 1 event/call``: ``bus.publish((event,))`` for each event, every subscriber
  unfiltered with a buffer large enough to keep everything (the worst case for the
  publisher: every event is stored N times);
* ``publish N-event batches``: the same events in batches of ``--batch``;
* ``publish, filtered``: half of the subscribers filter on ``kinds=["untag"]`` (which
  matches a tenth of the events), the other half take everything;
* ``drain``: one subscriber takes everything with ``receive_nowait()``, and with
  ``await receive()`` (which lets other tasks run every 64 items);
* ``log append``: ``EventLog.append`` in batches of ``--batch`` and one event at a time
  (no fsync), then ``read`` of the whole log and ``last_seq`` from a fresh object.

Rates are events per second (for publish: events published, each delivered to every
subscriber that wants it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from aiopod import Event, EventBus, EventKind, EventLog  # noqa: E402


def make_events(count: int) -> list[Event]:
    kinds = [EventKind.TAGGED] * 9 + [EventKind.UNTAGGED]
    return [
        Event(kinds[i % 10], "image", f"{i:064x}", f"localhost/bench:{i}", seq=i + 1)
        for i in range(count)
    ]


def best(runs: int, body: Callable[[], float]) -> float:
    return min(body() for _ in range(runs))


def report(label: str, count: int, seconds: float) -> None:
    print(f"{label:<44} {count / seconds:>14,.0f} events/s   ({seconds * 1000:8.1f} ms)")


async def bench_bus(events: list[Event], subscribers: int, batch: int, runs: int) -> None:
    n = len(events)

    def publish_single() -> float:
        bus = EventBus()
        subs = [bus.subscribe(buffer=n) for _ in range(subscribers)]
        started = time.perf_counter()
        for event in events:
            bus.publish((event,))
        elapsed = time.perf_counter() - started
        assert all(s.pending == n for s in subs)
        return elapsed

    def publish_batches() -> float:
        bus = EventBus()
        subs = [bus.subscribe(buffer=n) for _ in range(subscribers)]
        started = time.perf_counter()
        for i in range(0, n, batch):
            bus.publish(events[i : i + batch])
        elapsed = time.perf_counter() - started
        assert all(s.pending == n for s in subs)
        return elapsed

    def publish_filtered() -> float:
        bus = EventBus()
        for i in range(subscribers):
            bus.subscribe(buffer=n, kinds=["untag"] if i % 2 else None)
        started = time.perf_counter()
        for event in events:
            bus.publish((event,))
        return time.perf_counter() - started

    report(f"publish 1 event/call to {subscribers} subscribers", n, best(runs, publish_single))
    report(f"publish {batch}-event batches to {subscribers}", n, best(runs, publish_batches))
    report(
        f"publish 1/call, {subscribers // 2} of {subscribers} filtered",
        n,
        best(runs, publish_filtered),
    )

    bus = EventBus()
    timings: list[float] = []
    for _ in range(runs):
        sub = bus.subscribe(buffer=n)
        bus.publish(events)
        started = time.perf_counter()
        while True:
            try:
                sub.receive_nowait()
            except anyio.WouldBlock:
                break
        timings.append(time.perf_counter() - started)
        sub.close()
    report("drain with receive_nowait()", n, min(timings))
    timings = []
    for _ in range(runs):
        sub = bus.subscribe(buffer=n)
        bus.publish(events)
        started = time.perf_counter()
        for _ in range(n):
            await sub.receive()
        timings.append(time.perf_counter() - started)
        sub.close()
    report("drain with await receive()", n, min(timings))


def bench_log(events: list[Event], batch: int, runs: int) -> None:
    n = len(events)
    with tempfile.TemporaryDirectory(prefix="aiopod-bench-events-") as tmp:

        def append_batches() -> float:
            log = EventLog(Path(tmp) / f"batches-{time.monotonic_ns()}.jsonl", max_bytes=1 << 30)
            started = time.perf_counter()
            for i in range(0, n, batch):
                log.append(events[i : i + batch])
            return time.perf_counter() - started

        report(f"log append, {batch}-event batches", n, best(runs, append_batches))
        single = min(n, 10_000)

        def append_single() -> float:
            log = EventLog(Path(tmp) / f"single-{time.monotonic_ns()}.jsonl", max_bytes=1 << 30)
            started = time.perf_counter()
            for event in events[:single]:
                log.append([event])
            return time.perf_counter() - started

        report("log append, 1 event/call", single, best(runs, append_single))
        path = Path(tmp) / "read.jsonl"
        EventLog(path, max_bytes=1 << 30).append(events)

        def read_all() -> float:
            started = time.perf_counter()
            count = sum(1 for _ in EventLog(path).read())
            assert count == n
            return time.perf_counter() - started

        report("log read (whole file)", n, best(runs, read_all))

        def last_seq() -> float:
            started = time.perf_counter()
            assert EventLog(path).last_seq() == n
            return time.perf_counter() - started

        print(f"{'log last_seq from a fresh object':<44} {best(runs, last_seq) * 1e6:>14,.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    events = make_events(args.events)
    print(f"{args.events:,} events, Python {sys.version.split()[0]}")
    anyio.run(bench_bus, events, args.subscribers, args.batch, args.runs)
    bench_log(events, args.batch, args.runs)


if __name__ == "__main__":
    main()
