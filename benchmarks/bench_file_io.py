"""File I/O from async code: one worker-thread call against aiofiles, for the event log.

Not part of the test suite.  Run from the repository root::

    python benchmarks/bench_file_io.py                       # 300 commits per cell
    python benchmarks/bench_file_io.py --commits 100 --sizes 1 100

Every cell appends ``--commits`` batches of K events (K from ``--sizes``: the events one
store commit records) to a fresh log file from a task on the asyncio loop, and reports the
mean time per batch (best of ``--runs``): wall time, and in brackets the CPU time the
event loop's thread spent (what other tasks on the loop wait for).  "durable" adds the
``fsync`` the event log does when it is durable.  The ways of appending:

* ``in the commit's thread``: ``EventLog.append`` called directly, as the store does it
  (its commit already runs in one worker thread, so the append costs no hop of its own
  and no time on the event loop's thread);
* ``to_thread(append)``: ``await anyio.to_thread.run_sync(log.append, batch)``, one hop
  doing everything (the next ``seq`` from the file's tail, the rotation check, one
  ``os.write`` of complete lines, the ``fsync``);
* ``aiofiles, the log's steps``: the same steps as awaited aiofiles calls (open, fstat,
  seek + read of the tail, seek + read of the last byte, one write, fsync, close): what
  the log would look like written with aiofiles;
* ``aiofiles, one write``: open, one write of the batch, fsync, close (no ``seq``, no
  rotation: a lower bound for any aiofiles version);
* ``aiofiles, a write per event``: open, ``write`` + ``flush`` per event, fsync, close
  (the pattern to avoid).

Also the cost of one empty hop: ``anyio.to_thread.run_sync`` and aiofiles' executor
(``loop.run_in_executor``).  aiofiles needs asyncio's loop, so the benchmark runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from pathlib import Path

import aiofiles
import aiofiles.os
import anyio
import anyio.to_thread

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from bench_events import make_events  # noqa: E402

from aiopod import Event, EventLog, to_native_json  # noqa: E402

Appender = Callable[[Path, Sequence[Event], bool], Awaitable[None]]

_fstat = aiofiles.os.wrap(os.fstat)
_fsync = aiofiles.os.wrap(os.fsync)


def _lines(events: Sequence[Event], first_seq: int) -> bytes:
    out = []
    for i, e in enumerate(events):
        doc = to_native_json(
            Event(e.kind, e.type, e.id, e.name, e.time, e.attributes, first_seq + i)
        )
        out.append(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
    return b"".join(out)


async def in_commit_thread(path: Path, events: Sequence[Event], durable: bool) -> None:
    _logs.setdefault(path, EventLog(path, max_bytes=1 << 40)).append(events, durable=durable)


async def to_thread_append(path: Path, events: Sequence[Event], durable: bool) -> None:
    log = _logs.setdefault(path, EventLog(path, max_bytes=1 << 40))
    await anyio.to_thread.run_sync(lambda: log.append(events, durable=durable))


async def aiofiles_log_steps(path: Path, events: Sequence[Event], durable: bool) -> None:
    async with aiofiles.open(path, "a+b", buffering=0) as f:
        size = (await _fstat(f.fileno())).st_size
        last = 0
        if size:
            await f.seek(max(0, size - 16384))
            for line in reversed((await f.read()).split(b"\n")[:-1]):
                if line:
                    last = json.loads(line)["seq"]
                    break
            await f.seek(size - 1)
            newline = await f.read(1) == b"\n"
        data = _lines(events, last + 1)
        await f.write(data if not size or newline else b"\n" + data)
        if durable:
            await _fsync(f.fileno())


async def aiofiles_one_write(path: Path, events: Sequence[Event], durable: bool) -> None:
    async with aiofiles.open(path, "ab", buffering=0) as f:
        await f.write(_lines(events, 1))
        if durable:
            await _fsync(f.fileno())


async def aiofiles_write_per_event(path: Path, events: Sequence[Event], durable: bool) -> None:
    async with aiofiles.open(path, "ab") as f:
        for i, event in enumerate(events):
            await f.write(_lines([event], i + 1))
            await f.flush()
        if durable:
            await _fsync(f.fileno())


_logs: dict[Path, EventLog] = {}

WAYS: list[tuple[str, Appender]] = [
    ("in the commit's thread", in_commit_thread),
    ("to_thread(append)", to_thread_append),
    ("aiofiles, the log's steps", aiofiles_log_steps),
    ("aiofiles, one write", aiofiles_one_write),
    ("aiofiles, a write per event", aiofiles_write_per_event),
]


async def time_way(
    way: Appender, workdir: Path, batch: Sequence[Event], commits: int, durable: bool
) -> tuple[float, float]:
    """Seconds per commit: wall time, and CPU time of the event loop's thread."""
    path = workdir / f"log-{time.monotonic_ns()}.jsonl"
    started, loop_cpu = time.perf_counter(), time.thread_time()
    for _ in range(commits):
        await way(path, batch, durable)
    wall, loop_cpu = time.perf_counter() - started, time.thread_time() - loop_cpu
    path.unlink()
    _logs.pop(path, None)
    return wall / commits, loop_cpu / commits


async def empty_hops(count: int) -> tuple[float, float]:
    import asyncio

    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    for _ in range(count):
        await anyio.to_thread.run_sync(int)
    anyio_hop = (time.perf_counter() - started) / count
    started = time.perf_counter()
    for _ in range(count):
        await loop.run_in_executor(None, int)
    return anyio_hop, (time.perf_counter() - started) / count


async def bench(workdir: Path, sizes: Sequence[int], commits: int, runs: int) -> None:
    anyio_hop, executor_hop = min([await empty_hops(2000) for _ in range(runs)])
    print(
        f"one empty hop: anyio.to_thread {anyio_hop * 1e6:.0f} µs, "
        f"aiofiles' executor {executor_hop * 1e6:.0f} µs"
    )
    for _label, way in WAYS:  # warm up: imports, the thread pools, the page cache
        await time_way(way, workdir, make_events(10), 20, False)
    for durable in (False, True):
        print(
            f"\n{'durable (fsync)' if durable else 'not durable'}: µs per commit, "
            "wall (event loop thread's CPU)"
        )
        print(f"{'events per commit':<30}" + "".join(f"{k:>18}" for k in sizes))
        for label, way in WAYS:
            cells = []
            for k in sizes:
                batch = make_events(k)
                n = commits if k <= 100 else max(10, commits // 10)
                timings = [await time_way(way, workdir, batch, n, durable) for _ in range(runs)]
                cells.append(min(timings))
            # The first way runs in the store's commit thread: it costs the loop nothing.
            loop = [f"{c * 1e6:,.0f}" if way is not in_commit_thread else "-" for _, c in cells]
            print(
                f"{label:<30}"
                + "".join(
                    f"{f'{w * 1e6:,.0f} ({c})':>18}" for (w, _), c in zip(cells, loop, strict=True)
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", help="where the log files go (default: the temp dir)")
    args = parser.parse_args()
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("anyio", "aiofiles"))
    print(f"Python {sys.version.split()[0]}, {versions}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="aiopod-bench-file-io-", dir=args.dir) as tmp:
        anyio.run(bench, Path(tmp), args.sizes, args.commits, args.runs, backend="asyncio")


if __name__ == "__main__":
    main()
