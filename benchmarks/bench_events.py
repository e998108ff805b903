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
  (no fsync), then ``read`` of the whole log and ``last_seq`` from a fresh object;
* ``one commit of 10,000 removals``: the ``Deleted`` events of ``rmi`` of 10,000 images
  (names, digest, policy, options) appended as one batch, with the hash chain and the
  actor, without and with ``fsync`` (the runtime's log is durable: one fsync of the log and
  one of its head per commit);
* ``follow latency``: another process appends one event every ``--interval`` seconds
  (``--commits`` of them, each stamped with the wall clock just before its append); a
  subscription of :class:`~aiopod.events.stream.EventStream` in this process receives
  them; the latency is the receive time minus that stamp (p50, p99, max), with inotify
  and with the bounded poll.

Rates are events per second (for publish: events published, each delivered to every
subscriber that wants it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from aiopod import Event, EventBus, EventKind, EventLog, EventStream  # noqa: E402
from aiopod.events.watch import LogWatcher  # noqa: E402


def make_events(count: int) -> list[Event]:
    kinds = [EventKind.TAGGED] * 9 + [EventKind.UNTAGGED]
    return [
        Event(kinds[i % 10], "image", f"{i:064x}", f"localhost/bench:{i}", seq=i + 1)
        for i in range(count)
    ]


def percentile(values: Sequence[float], share: float) -> float:
    """The value below which *share* of *values* lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


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


def removal_events(count: int) -> list[Event]:
    return [
        Event(
            EventKind.DELETED,
            "image",
            f"{i:064x}",
            f"localhost/bench:{i}",
            names=(f"localhost/bench:{i}", f"quay.io/bench/x:{i}"),
            digest=f"sha256:{i:064x}",
            policy="libpod",
            options={"force": "true", "reason": "rmi"},
        )
        for i in range(count)
    ]


def bench_commit(count: int, runs: int) -> None:
    events = removal_events(count)
    with tempfile.TemporaryDirectory(prefix="aiopod-bench-commit-", dir=Path.cwd()) as tmp:
        for durable in (False, True):

            def one_commit(durable: bool = durable) -> float:
                log = EventLog(Path(tmp) / f"c-{time.monotonic_ns()}" / "events.jsonl")
                log.append(make_events(1))  # the log exists, as in a used store
                started = time.perf_counter()
                log.append(events, durable=durable)
                return time.perf_counter() - started

            label = f"one commit of {count:,} removals, " + ("fsync" if durable else "no fsync")
            report(label, count, best(runs, one_commit))


_WRITER = """
import sys, time
from aiopod import Event, EventKind, EventLog
log = EventLog(sys.argv[1])
interval, commits = float(sys.argv[2]), int(sys.argv[3])
time.sleep(0.5)  # let the follower start waiting
for i in range(commits):
    stamp = repr(time.time())
    log.append([Event(EventKind.TAGGED, "image", "a" * 64, f"localhost/x:{i}",
                      attributes={"stamp": stamp})], durable=True)
    time.sleep(interval)
"""


async def bench_follow(commits: int, interval: float, use_inotify: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="aiopod-bench-follow-", dir=Path.cwd()) as tmp:
        log = EventLog(Path(tmp) / "aiopod" / "events.jsonl")
        log.directory.mkdir(parents=True)
        stream = EventStream(log)
        latencies: list[float] = []
        watcher_kind = "inotify" if use_inotify else "poll"
        original = LogWatcher.__init__

        def watcher_init(self: LogWatcher, *args: object, **kwargs: object) -> None:
            kwargs["use_inotify"] = use_inotify
            original(self, *args, **kwargs)  # type: ignore[arg-type]

        LogWatcher.__init__ = watcher_init  # type: ignore[method-assign]
        try:
            async with stream.subscribe(since="start") as events:
                cmd = [sys.executable, "-c", _WRITER, str(log.path), str(interval), str(commits)]
                async with await anyio.open_process(cmd) as writer:
                    while len(latencies) < commits:
                        item = await events.receive()
                        if isinstance(item, Event):
                            latencies.append(time.time() - float(item.attributes["stamp"]))
                    await writer.wait()
        finally:
            LogWatcher.__init__ = original  # type: ignore[method-assign]
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        print(
            f"{'follow latency, other process, ' + watcher_kind:<44} "
            f"p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   max {max(latencies) * 1000:6.2f} ms"
            f"   ({commits} commits)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--removals", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--only", choices=["bus", "log", "commit", "follow"], default=None)
    args = parser.parse_args()
    events = make_events(args.events)
    print(f"{args.events:,} events, Python {sys.version.split()[0]}")
    if args.only in (None, "bus"):
        anyio.run(bench_bus, events, args.subscribers, args.batch, args.runs)
    if args.only in (None, "log"):
        bench_log(events, args.batch, args.runs)
    if args.only in (None, "commit"):
        bench_commit(args.removals, args.runs)
    if args.only in (None, "follow"):
        for use_inotify in (True, False):
            anyio.run(bench_follow, args.commits, args.interval, use_inotify)


if __name__ == "__main__":
    main()
