"""Removal benchmark: podman vs aiopod on ``rmi``, the removal API and the event bus.

Not part of the test suite. Run from the repository root (as root, podman and buildah
installed)::

    python benchmarks/bench_remove.py                        # 1,000 / 10,000 images (~10 min)
    python benchmarks/bench_remove.py --images 200 --big 2000 --runs 3    # quick (~2.5 min)
    python benchmarks/bench_remove.py --profile              # and cProfile every miss

What is measured, each on isolated roots under a temporary directory (podman and buildah
with ``--root/--runroot --storage-driver vfs`` and their own tmpdir and lock files):

(a) ``rmi -a -f`` on a store of ``--images`` distinct one-layer images, each used by one
    container: even ones by a runtime container (``podman create IMG true`` /
    ``aiopod create IMG true``), odd ones by a storage-only one (``buildah from IMG`` /
    ``aiopod from IMG``); podman's CLI against aiopod's CLI;
(b) ``rmi NAME`` of the one tagged image of a store (no containers), CLI against CLI;
(c) ``await rt.remove_images(all=True, force=True)`` on (a)'s store in one process, timed
    inside the process, against (a)'s podman time;
(d) ``rmi NAME`` of one image from image-only stores of 100, ``--images`` and ``--big``
    images (podman: 100 and ``--images``; ``--podman-big`` tries ``--big`` too);
(e) the event bus's publish rate to 10 subscribers (in-process), and (c) with 10
    subscribers of which one never reads, against (c) with none.

The stores of (a), (b) and (c) are built once (loading the images and creating the
containers is setup, not timed), saved with ``cp -a`` and restored at the same paths
before every run (podman's database records its root, run root and tmpdir, so all three
are copied); (d) at ``--images`` reuses (a)'s stores without their containers, and each of
its runs removes a different image. Each cell is the median wall time of ``--runs`` runs
(at least 5 for (b)), podman and aiopod runs alternating; ``ratio`` is aiopod / podman.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "benchmarks"), str(REPO_ROOT / "tests")]

from bench_events import make_events  # noqa: E402
from bench_store import Sample, aiopod_cmd, podman_cmd, tar_of_one_file, timed  # noqa: E402
from peers import (  # noqa: E402
    Podman,
    aiopod_env,
    synthetic_image,
    unmount_under,
    write_docker_archive,
)

from aiopod import EventBus, Lagged, Runtime  # noqa: E402

Arg = str | os.PathLike[str]

#: The (a)/(b)/(c) targets: aiopod's time at most this share of podman's.
TARGET_A, TARGET_B, TARGET_C = 0.5, 1.0, 0.25


def target_d(big: int) -> float:
    """(d): removing one image from *big* images within this factor of from 100 (issue 12:
    1.5× at 10,000 images, 2× at 100,000)."""
    return 1.5 if big <= 10_000 else 2.0


#: (e): events per second published to 10 subscribers.
TARGET_E = 100_000
#: (e): "about the same": with subscribers at most this factor (plus 50 ms) of without.
STALL_FACTOR, STALL_SLACK = 1.25, 0.05
#: The buffer of the subscriber that never reads: small, so that it overflows during the
#: removal (the default, 4096, would hold every event of a 1,000-image removal).
SILENT_BUFFER = 64
SMALL = 100  # (d): the small store
#: Images an archive (aiopod reads a manifest.json of at most 1 MiB: about 4,800 images).
ARCHIVE_CHUNK = 2000


def image_name(i: int) -> str:
    return f"localhost/rm/img{i:05d}:latest"


def write_images_archives(directory: Path, count: int) -> list[Path]:
    """docker-archives of ``count`` distinct one-layer images (a layer: one tiny file), at
    most :data:`ARCHIVE_CHUNK` images an archive."""
    archives = []
    for start in range(0, count, ARCHIVE_CHUNK):
        images = [
            synthetic_image(
                [image_name(i)], [tar_of_one_file(f"id/{i:05d}", f"image {i}\n".encode())]
            )
            for i in range(start, min(count, start + ARCHIVE_CHUNK))
        ]
        archives.append(write_docker_archive(directory / f"images-{start}.tar", images))
    return archives


def load_images(store: PodmanStore | AiopodStore, archives: Sequence[Path]) -> float:
    """Load the archives one after the other; the seconds it took."""
    return sum(store.timed("load", "-q", "-i", archive).seconds for archive in archives)


def run_checked(cmd: Sequence[Arg], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [os.fspath(c) for c in cmd],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"exit {proc.returncode}: {' '.join(str(c) for c in cmd)}\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return proc.stdout


def copy_tree(source: Path, target: Path) -> None:
    run_checked(["cp", "-a", "--reflink=auto", source, target])


# --------------------------------------------------------------------------------------------
# Stores that can be saved once and restored before every run


@dataclasses.dataclass
class Snapshot:
    """Copies of some directories, restored at the same paths with ``cp -a``."""

    live: list[Path]
    saved: Path

    @classmethod
    def take(cls, live: Sequence[Path], saved: Path) -> Snapshot:
        saved.mkdir(parents=True, exist_ok=True)
        for i, directory in enumerate(live):
            copy_tree(directory, saved / str(i))
        return cls(list(live), saved)

    def restore(self) -> float:
        """Put the saved copies back; returns the seconds it took."""
        started = time.perf_counter()
        for i, directory in enumerate(self.live):
            unmount_under(directory)
            shutil.rmtree(directory)
            copy_tree(self.saved / str(i), directory)
        return time.perf_counter() - started


@dataclasses.dataclass
class PodmanStore:
    """podman and buildah on one private vfs store (``bench_store``'s ``Podman``).

    podman's container locks are files in its tmpdir (``lock_type = "file"``), not the
    machine-wide shared-memory segment: a restored copy of the store then finds exactly
    the locks its database names, and nothing here touches the locks of other podman
    users on the machine.
    """

    podman: Podman

    @classmethod
    def create(cls, base: Path) -> PodmanStore:
        podman = Podman.create(base)
        (base / "containers.conf").write_text('[engine]\nlock_type = "file"\n')
        return cls(podman)

    def env(self) -> dict[str, str]:
        env = self.podman.env()
        env["CONTAINERS_CONF"] = str(self.podman.base / "containers.conf")
        return env

    def cmd(self, *args: Arg) -> list[Arg]:
        return podman_cmd(self.podman, *args)

    def __call__(self, *args: Arg) -> str:
        return run_checked(self.cmd(*args), self.env())

    def buildah(self, *args: Arg) -> str:
        return run_checked(["buildah", *self.podman.storage_args(), *args], self.env())

    def timed(self, *args: Arg) -> Sample:
        return timed(self.cmd(*args), self.env())

    def snapshot(self, saved: Path) -> Snapshot:
        p = self.podman
        return Snapshot.take([p.root, p.runroot, p.tmpdir], saved)

    def counts(self) -> tuple[int, int]:
        """(images, containers including storage-only ones)."""
        images = self("images", "-a", "-q", "--no-trunc").split()
        containers = self("ps", "-a", "--external", "-q", "--no-trunc").split()
        return len(images), len(containers)

    def drop(self) -> None:
        self.podman.cleanup()
        shutil.rmtree(self.podman.base, ignore_errors=True)


@dataclasses.dataclass
class AiopodStore:
    root: Path

    def cmd(self, *args: Arg) -> list[Arg]:
        return aiopod_cmd(self.root, *args)

    def __call__(self, *args: Arg) -> str:
        return run_checked(self.cmd(*args), aiopod_env())

    def timed(self, *args: Arg) -> Sample:
        return timed(self.cmd(*args), aiopod_env())

    def snapshot(self, saved: Path) -> Snapshot:
        return Snapshot.take([self.root], saved)

    def counts(self) -> tuple[int, int]:
        images = self("images", "-a", "-q", "--no-trunc").split()
        containers = json.loads(self("ps", "-a", "--external", "--format", "json"))
        return len(images), len(containers)


async def create_aiopod_containers(root: Path, count: int) -> None:
    """Setup for (a): ``aiopod create IMG true`` for even images, ``aiopod from IMG`` for
    odd ones, through the API in one process (what those commands call)."""
    async with Runtime(root=root) as rt:
        for i in range(count):
            if i % 2 == 0:
                await rt.create_container(image_name(i), ["true"])
            else:
                await rt.create_working_container(image_name(i))


def create_podman_containers(store: PodmanStore, count: int) -> None:
    for i in range(count):
        if i % 2 == 0:
            store("create", image_name(i), "true")
        else:
            store.buildah("from", "--pull=never", "--quiet", image_name(i))


# --------------------------------------------------------------------------------------------
# In-process work: the API worker (a subprocess of the benchmark) and a profiler


@contextlib.contextmanager
def profiling() -> Iterator[list[cProfile.Profile]]:
    """cProfile this thread, and every function aiopod hands to a worker thread meanwhile
    (``anyio.to_thread.run_sync``: the file system work), each call with its own profiler.

    Worker threads run alongside the event loop, which waits in ``epoll`` meanwhile: their
    time adds to the main thread's, so shares of the wall time can sum to more than 100%.
    """
    profilers: list[cProfile.Profile] = []
    original = anyio.to_thread.run_sync

    def profiled(func: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            profiler = cProfile.Profile()
            profiler.enable()
            try:
                return func(*args)
            finally:
                profiler.disable()
                profilers.append(profiler)

        return run

    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await original(profiled(func), *args, **kwargs)

    main = cProfile.Profile()
    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
    main.enable()
    try:
        yield profilers
    finally:
        main.disable()
        anyio.to_thread.run_sync = original
        profilers.insert(0, main)


def dump_profile(profilers: Sequence[cProfile.Profile], path: Path, wall: float) -> None:
    """Merge the profiles into ``path``; ``path.wall``: the wall time, the number of pieces
    of thread work and their summed time."""
    stats = pstats.Stats(profilers[0])
    in_threads = 0.0
    for other in profilers[1:]:
        piece = pstats.Stats(other)
        in_threads += piece.total_tt  # type: ignore[attr-defined]
        stats.add(piece)
    stats.dump_stats(path)
    path.with_suffix(".wall").write_text(f"{wall} {len(profilers) - 1} {in_threads}\n")


async def api_remove(
    root: Path, subscribers: int, silent: int, profile: Path | None
) -> dict[str, Any]:
    """(c)/(e): remove every image through the API, timed inside this process."""
    started = time.perf_counter()
    async with Runtime(root=root) as rt:
        opened = time.perf_counter() - started
        quiet = [rt.events.subscribe(buffer=SILENT_BUFFER) for _ in range(silent)]
        readers = [rt.events.subscribe() for _ in range(subscribers - silent)]
        received = [0] * len(readers)
        missed = [0] * len(readers)

        async def drain(i: int) -> None:
            async for item in readers[i]:
                if isinstance(item, Lagged):
                    missed[i] += item.missed
                else:
                    received[i] += 1

        async with anyio.create_task_group() as group:
            for i in range(len(readers)):
                group.start_soon(drain, i)
            await anyio.wait_all_tasks_blocked()
            with profiling() if profile else _nothing() as profilers:
                start = time.perf_counter()
                report = await rt.remove_images(all=True, force=True)
                removed = time.perf_counter() - start
            rt.events.close()  # the readers end once they have everything
        drained = time.perf_counter() - start
    if profile:
        dump_profile(profilers, profile, removed)
    return {
        "open": opened,
        "remove": removed,
        "drained": drained,
        "deleted": len(report.deleted),
        "containers": len(report.removed_containers),
        "errors": [str(e) for e in report.errors],
        "events": len(report.events),
        "received": received,
        "missed": missed,
        "silent_pending": [s.pending for s in quiet],
        "silent_dropped": [s.dropped for s in quiet],
    }


@contextlib.contextmanager
def _nothing() -> Iterator[list[cProfile.Profile]]:
    yield []


def profile_cli(root: Path, args: Sequence[str], out: Path) -> None:
    """``aiopod --root ROOT ARGS`` in this process under the profiler.

    The CLI's modules are imported first, outside the profile: start-up (the interpreter
    and the imports) is measured separately with ``python -X importtime``.
    """
    from aiopod.cli import (  # noqa: F401  (what main() imports to register the commands)
        container_commands,
        event_commands,
        image_commands,
        main as cli_main,
        removal_commands,
        system_commands,
    )

    before = set(sys.modules)
    started = time.perf_counter()
    with profiling() as profilers:
        try:
            cli_main(["--root", str(root), *args])
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise
    dump_profile(profilers, out, time.perf_counter() - started)
    out.with_suffix(".modules").write_text("\n".join(sorted(set(sys.modules) - before)))


def worker_main(argv: Sequence[str]) -> int:
    """The benchmark's own subprocesses: ``--api-worker ROOT`` and ``--profile-cli ROOT``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-worker", type=Path)
    parser.add_argument("--profile-cli", type=Path)
    parser.add_argument("--subscribers", type=int, default=0)
    parser.add_argument("--silent", type=int, default=0)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.api_worker:
        result = anyio.run(api_remove, args.api_worker, args.subscribers, args.silent, args.profile)
        print(json.dumps(result))
    else:
        rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
        with contextlib.redirect_stdout(io.StringIO()):
            profile_cli(args.profile_cli, rest, args.profile)
    return 0


# --------------------------------------------------------------------------------------------
# Reading profiles


def print_profile(path: Path, label: str, top: int = 15) -> None:
    """The profile's heaviest functions by own time, and aiopod's by cumulative time, each
    with its share of the wall time of the profiled call."""
    wall_text, pieces, threads_text = path.with_suffix(".wall").read_text().split()
    wall, in_threads = float(wall_text), float(threads_text)
    stats = pstats.Stats(str(path))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    rows = [
        (tottime, cumtime, calls, _short(*key))
        for key, (_cc, calls, tottime, cumtime, _callers) in raw.items()
    ]
    imports = sum(r[1] for r in rows if r[3].endswith("(_find_and_load)"))
    waiting = sum(r[0] for r in rows if r[3].startswith("<method 'poll' of 'select.epoll"))
    print(
        f"\nprofile of {label}: {wall:.3f} s wall in the call. Imports done during it "
        f"{imports:.3f} s ({100 * imports / wall:.0f}%); the event loop waits in epoll "
        f"{waiting:.3f} s ({100 * waiting / wall:.0f}%) while {pieces} pieces of work run in "
        f"worker threads, {in_threads:.3f} s in all ({100 * in_threads / wall:.0f}%). Shares "
        "below add the threads' time to the main thread's, so they can sum past 100%."
    )
    header = f"  {'own s':>7} {'own %':>6} {'cum s':>7} {'cum %':>6} {'calls':>7}  function"

    def show(selected: list[tuple[float, float, int, str]]) -> None:
        print(header)
        for tottime, cumtime, calls, where in selected[:top]:
            print(
                f"  {tottime:7.3f} {100 * tottime / wall:5.1f}% {cumtime:7.3f} "
                f"{100 * cumtime / wall:5.1f}% {calls:7d}  {where}"
            )

    modules = path.with_suffix(".modules")
    if modules.exists():
        names = modules.read_text().split()
        print(f"  modules imported during the call: {len(names)}: {by_package(names)}")
    print("  -- by own time --")
    show(sorted(rows, reverse=True))
    print("  -- aiopod's functions by cumulative time --")
    show(sorted((r for r in rows if r[3].startswith("aiopod/")), key=lambda r: -r[1]))


def by_package(names: Sequence[str], weights: Sequence[float] | None = None) -> str:
    """``pkg count`` (or ``pkg total`` with weights), largest first."""
    totals: dict[str, float] = {}
    for i, name in enumerate(names):
        package = name.split(".")[0]
        totals[package] = totals.get(package, 0.0) + (weights[i] if weights else 1)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    if weights:
        return ", ".join(f"{package} {total:.3f} s" for package, total in ranked[:8])
    return ", ".join(f"{package} {total:g}" for package, total in ranked[:12])


def _short(filename: str, line: int, name: str) -> str:
    if filename == "~":
        return name  # a built-in
    marker = f"{os.sep}aiopod{os.sep}"
    if "site-packages" in filename:
        filename = filename.split("site-packages" + os.sep, 1)[1]
    elif marker in filename:
        filename = filename[filename.rindex(marker) + 1 :]
    else:
        filename = os.path.basename(filename)
    return f"{filename}:{line}({name})"


def print_startup(root: Path, runs: int) -> None:
    """Where a CLI call's fixed cost goes: the interpreter, then the imports."""
    bare = median(
        [timed([sys.executable, "-c", "pass"], aiopod_env()).seconds for _ in range(runs)]
    )
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aiopod", "--root", root, "images", "-q"],
        env=aiopod_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    top_level: list[tuple[int, str]] = []  # (cumulative µs, name)
    own_times: list[tuple[int, str]] = []  # (self µs, name), every module
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        own_times.append((int(own), name.strip()))
        if not name.startswith("  "):  # one space: a top-level import
            top_level.append((int(cumulative), name.strip()))
    total = sum(micros for micros, _ in top_level)
    print(
        f"\nstart-up of a CLI call (`aiopod images -q`, empty store): `python -c pass` "
        f"{bare:.3f} s; imports {total / 1e6:.3f} s (python -X importtime, "
        f"{len(own_times)} modules); largest top-level imports (cumulative):"
    )
    for micros, module in sorted(top_level, reverse=True)[:6]:
        print(f"  {micros / 1e6:7.3f} s  {module}")
    names = [name for _, name in own_times]
    seconds = [micros / 1e6 for micros, _ in own_times]
    print(f"  own import time by package: {by_package(names, seconds)}")
    print("  modules with the largest own import time:")
    for micros, module in sorted(own_times, reverse=True)[:12]:
        print(f"  {micros / 1e6:7.3f} s  {module}")


# --------------------------------------------------------------------------------------------
# Results


def fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


@dataclasses.dataclass
class Result:
    part: str
    operation: str
    podman: str = ""
    aiopod: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""

    def cells(self) -> list[str]:
        return [
            self.part,
            self.operation,
            self.podman,
            self.aiopod,
            self.ratio,
            self.target,
            self.verdict,
        ]


COLUMNS = ["", "operation", "podman", "aiopod", "ratio", "target", ""]
WIDTHS = [3, 58, 15, 14, 6, 22, 4]


def table_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(f"{c:<{w}}" for c, w in zip(cells, WIDTHS, strict=True)) + " |"


def table_header() -> str:
    rule = "|" + "|".join("-" * (w + 2) for w in WIDTHS) + "|"
    return f"{table_line(COLUMNS)}\n{rule}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def seconds_list(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def compare(part: str, operation: str, p: float, a: float, target: float, of: str) -> Result:
    """A row aiopod / podman with its target (aiopod at most ``target`` × podman)."""
    return Result(
        part,
        operation,
        fmt_s(p),
        fmt_s(a),
        f"{a / p:.3f}",
        f"≤ {target:g}× {of}",
        verdict(a <= target * p),
    )


# --------------------------------------------------------------------------------------------
# The benchmark


@dataclasses.dataclass
class Loaded:
    """podman and aiopod stores holding the same ``count`` images, and copies of them
    (shared by (a) and (d): loading 1,000 images into podman takes minutes)."""

    count: int
    podman: PodmanStore
    aiopod: AiopodStore
    saved_podman: Snapshot
    saved_aiopod: Snapshot

    def restore(self) -> None:
        self.saved_podman.restore()
        self.saved_aiopod.restore()


Profile = Callable[[], None]


@dataclasses.dataclass
class Bench:
    workdir: Path
    runs: int
    profile: bool
    results: list[Result] = dataclasses.field(default_factory=list)
    startup_root: Path | None = None  # an empty aiopod store (for print_startup)
    _counter: int = 0

    def fresh(self, kind: str) -> Path:
        self._counter += 1
        path = self.workdir / f"{kind}-{self._counter}"
        path.mkdir(parents=True)
        return path

    def add(self, result: Result) -> Result:
        self.results.append(result)
        print(table_line(result.cells()), flush=True)
        return result

    def note(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def profile_misses(self, misses: Sequence[tuple[str, Profile]]) -> None:
        """Profile each miss now (while its stores exist), if ``--profile`` was given."""
        if not misses:
            return
        if not self.profile:
            self.note(f"missed: {', '.join(m[0] for m in misses)} (--profile to profile)")
            return
        for label, run in misses:
            print(f"\n== profiling the miss: {label}", flush=True)
            run()
        print(f"\n{table_header()}", flush=True)

    # -- running aiopod in-process (a subprocess of this benchmark) --------------------------

    def api_worker(
        self, root: Path, *, subscribers: int = 0, silent: int = 0, profile: Path | None = None
    ) -> dict[str, Any]:
        cmd: list[Arg] = [sys.executable, __file__, "--api-worker", root]
        cmd += ["--subscribers", str(subscribers), "--silent", str(silent)]
        if profile is not None:
            cmd += ["--profile", profile]
        result: dict[str, Any] = json.loads(run_checked(cmd, aiopod_env()).splitlines()[-1])
        return result

    def profile_cli(self, root: Path, args: Sequence[str], label: str) -> None:
        if self.startup_root is not None:
            print_startup(self.startup_root, self.runs)  # once: it is the same every time
            self.startup_root = None
        out = self.fresh("profile") / "cli.prof"
        cmd: list[Arg] = [sys.executable, __file__, "--profile-cli", root, "--profile", out]
        run_checked([*cmd, "--", *args], aiopod_env())
        print_profile(out, f"{label}: aiopod {' '.join(args)} (the command's work)")

    def profile_api(self, root: Path, label: str) -> None:
        out = self.fresh("profile") / "api.prof"
        self.api_worker(root, profile=out)
        print_profile(out, f"{label}: await rt.remove_images(all=True, force=True)")

    # -- reference: the start-up floor of every CLI cell -------------------------------------

    def bench_startup(self) -> None:
        podman = PodmanStore.create(self.fresh("podman-ref"))
        aiopod = AiopodStore(self.fresh("aiopod-ref") / "store")
        try:
            podman("images")
            aiopod("images")
            runs = max(5, self.runs)
            p_times, a_times = [], []
            for _ in range(runs):
                p_times.append(podman.timed("images", "-q").seconds)
                a_times.append(aiopod.timed("images", "-q").seconds)
            p, a = median(p_times), median(a_times)
            self.add(Result("ref", "images -q, empty store (start-up floor)", fmt_s(p), fmt_s(a)))
            self.startup_root = aiopod.root
        finally:
            podman.drop()

    # -- (b) one rmi of one tagged image -----------------------------------------------------

    def bench_one(self) -> None:
        [archive] = write_images_archives(self.fresh("inputs-b"), 1)
        name = image_name(0)
        podman = PodmanStore.create(self.fresh("podman-b"))
        aiopod = AiopodStore(self.fresh("aiopod-b") / "store")
        try:
            podman("load", "-q", "-i", archive)
            aiopod("load", "-q", "-i", archive)
            saved_p = podman.snapshot(self.fresh("saved-podman-b"))
            saved_a = aiopod.snapshot(self.fresh("saved-aiopod-b"))
            p_times: list[float] = []
            a_times: list[float] = []
            for _ in range(max(5, self.runs)):
                saved_p.restore()
                p_times.append(podman.timed("rmi", name).seconds)
                saved_a.restore()
                a_times.append(aiopod.timed("rmi", name).seconds)
            p, a = median(p_times), median(a_times)
            row = self.add(
                compare(
                    "(b)", "rmi NAME, one tagged image, no containers", p, a, TARGET_B, "podman"
                )
            )
            self.note(f"runs: podman {seconds_list(p_times)}; aiopod {seconds_list(a_times)}")

            def profile_b() -> None:
                saved_a.restore()
                self.profile_cli(aiopod.root, ["rmi", name], "(b)")

            self.profile_misses([("(b)", profile_b)] if row.verdict == "MISS" else [])
        finally:
            podman.drop()

    # -- (a), (c) and the second half of (e): removing every image of a store --------------

    def load_both(self, count: int) -> Loaded:
        """podman and aiopod stores holding the same ``count`` images, saved with ``cp -a``."""
        inputs = self.fresh("inputs-many")
        archives = write_images_archives(inputs, count)
        podman = PodmanStore.create(self.fresh("podman-many"))
        aiopod = AiopodStore(self.fresh("aiopod-many") / "store")
        load_p = load_images(podman, archives)
        load_a = load_images(aiopod, archives)
        shutil.rmtree(inputs)
        saved_p = podman.snapshot(self.fresh("saved-podman-many"))
        saved_a = aiopod.snapshot(self.fresh("saved-aiopod-many"))
        self.note(
            f"setup (not timed): load of {count} images: podman {load_p:.1f} s, aiopod "
            f"{load_a:.1f} s"
        )
        return Loaded(count, podman, aiopod, saved_p, saved_a)

    def bench_all(self, loaded: Loaded) -> None:
        count, podman, aiopod = loaded.count, loaded.podman, loaded.aiopod
        loaded.restore()
        started = time.perf_counter()
        create_podman_containers(podman, count)
        create_p = time.perf_counter() - started
        t0 = time.perf_counter()
        anyio.run(create_aiopod_containers, aiopod.root, count)
        create_a = time.perf_counter() - t0
        for label, store in (("podman", podman), ("aiopod", aiopod)):
            if store.counts() != (count, count):
                raise RuntimeError(f"{label} setup: {store.counts()} != {(count, count)}")
        saved_p = podman.snapshot(self.fresh("saved-podman-a"))
        saved_a = aiopod.snapshot(self.fresh("saved-aiopod-a"))
        self.note(
            f"setup (not timed): {count} containers: podman+buildah {create_p:.1f} s, "
            f"aiopod (API) {create_a:.1f} s; with the copies "
            f"{time.perf_counter() - started:.0f} s"
        )

        p_times: list[float] = []
        a_times: list[float] = []
        api_times: list[float] = []
        restores: list[float] = []
        for run in range(self.runs):
            restores.append(saved_p.restore())
            p_times.append(podman.timed("rmi", "-a", "-f").seconds)
            restores.append(saved_a.restore())
            a_times.append(aiopod.timed("rmi", "-a", "-f").seconds)
            if run == 0:
                for label, store in (("podman", podman), ("aiopod", aiopod)):
                    if store.counts() != (0, 0):
                        raise RuntimeError(f"{label} rmi -a -f left {store.counts()}")
            saved_a.restore()
            result = self.api_worker(aiopod.root)
            if result["deleted"] != count or result["errors"]:
                raise RuntimeError(f"API removal: {result}")
            api_times.append(result["remove"])
        p, a, c = median(p_times), median(a_times), median(api_times)
        runtime = count // 2 + count % 2
        row_a = self.add(
            compare(
                "(a)",
                f"rmi -a -f: {count} images, {runtime} create + {count - runtime} from",
                p,
                a,
                TARGET_A,
                "podman",
            )
        )
        row_c = self.add(
            compare("(c)", "API remove_images(all=True, force=True), same", p, c, TARGET_C, "(a)")
        )
        self.note(
            f"runs: podman {seconds_list(p_times)}; aiopod CLI {seconds_list(a_times)}; "
            f"API {seconds_list(api_times)} (+ open {result['open']:.3f} s); "
            f"restore (cp -a) {median(restores):.1f} s"
        )
        row_e = self.bench_stall(saved_a, aiopod.root, count)

        def profile_a() -> None:
            saved_a.restore()
            self.profile_cli(aiopod.root, ["rmi", "-a", "-f"], "(a)")

        def profile_c() -> None:
            saved_a.restore()
            self.profile_api(aiopod.root, "(c)")

        misses = [("(a)", profile_a)] if row_a.verdict == "MISS" else []
        misses += [("(c)", profile_c)] if row_c.verdict == "MISS" else []
        misses += [("(e) removal with subscribers", profile_c)] if row_e.verdict == "MISS" else []
        self.profile_misses(misses)

    def bench_stall(self, saved: Snapshot, root: Path, count: int) -> Result:
        """(e): the removal with 10 subscribers, one never reading, against none."""
        without: list[float] = []
        with_subs: list[float] = []
        drained: list[float] = []
        last: dict[str, Any] = {}
        for _ in range(self.runs):
            saved.restore()
            without.append(self.api_worker(root)["remove"])
            saved.restore()
            last = self.api_worker(root, subscribers=10, silent=1)
            if last["deleted"] != count:
                raise RuntimeError(f"API removal with subscribers: {last}")
            with_subs.append(last["remove"])
            drained.append(last["drained"])
        w, s = median(without), median(with_subs)
        row = self.add(
            Result(
                "(e)",
                f"API removal of {count}: 10 subscribers (1 never reads) / 0",
                "",
                f"{s:.3f} / {w:.3f}",
                f"{s / w:.3f}",
                f"≤ {STALL_FACTOR:g}× (+{STALL_SLACK * 1000:.0f} ms)",
                verdict(s <= STALL_FACTOR * w + STALL_SLACK),
            )
        )
        self.note(
            f"{last['events']} events; each of 9 readers received {last['received'][0]} "
            f"(missed {max(last['missed'])}), all drained {median(drained):.3f} s after the call "
            f"began; the silent subscriber (buffer {SILENT_BUFFER}) holds "
            f"{last['silent_pending'][0]}, dropped {last['silent_dropped'][0]}"
        )
        return row

    # -- (d) one rmi from stores of 100, --images and --big images ---------------------------

    def bench_scaling(
        self, sizes: Sequence[int], podman_sizes: Sequence[int], loaded: Loaded | None
    ) -> None:
        small, big = min(sizes), max(sizes)
        loads: list[str] = []
        a_med: dict[int, float] = {}
        p_med: dict[int, float] = {}
        roots: dict[int, Path] = {}
        for n in sizes:
            podman: PodmanStore | None = None
            if loaded is not None and n == loaded.count:
                loaded.restore()
                aiopod = loaded.aiopod
                podman = loaded.podman if n in podman_sizes else None
                loads.append(f"{n}: the stores of (a) without their containers")
            else:
                archives = write_images_archives(self.fresh(f"inputs-d{n}"), n)
                aiopod = AiopodStore(self.fresh(f"aiopod-d{n}") / "store")
                loads.append(f"aiopod {n}: {load_images(aiopod, archives):.1f} s")
                if n in podman_sizes:
                    podman = PodmanStore.create(self.fresh(f"podman-d{n}"))
                    loads.append(f"podman {n}: {load_images(podman, archives):.1f} s")
                shutil.rmtree(archives[0].parent)
            roots[n] = aiopod.root
            try:
                # rmi of a different image each run (the store shrinks by one a run).
                p_times: list[float] = []
                a_times: list[float] = []
                for i in range(self.runs):
                    if podman is not None:
                        p_times.append(podman.timed("rmi", image_name(i)).seconds)
                    a_times.append(aiopod.timed("rmi", image_name(i)).seconds)
            finally:
                if podman is not None and (loaded is None or podman is not loaded.podman):
                    podman.drop()
            a_med[n] = median(a_times)
            operation = f"rmi NAME, store of {n} images"
            if podman is not None:
                p_med[n] = median(p_times)
                self.add(
                    Result(
                        "(d)",
                        operation,
                        fmt_s(p_med[n]),
                        fmt_s(a_med[n]),
                        f"{a_med[n] / p_med[n]:.3f}",
                    )
                )
            else:
                self.add(Result("(d)", operation, "skipped", fmt_s(a_med[n])))
        self.note(f"setup (not timed), load: {'; '.join(loads)}")
        skipped = [n for n in sizes if n not in podman_sizes]
        if skipped:
            self.note(
                f"podman skipped at {', '.join(map(str, skipped))} images: loading that many into "
                "containers/storage takes too long (--podman-big to try)"
            )
        scale = a_med[big] / a_med[small]
        top = max(p_med, default=small)
        podman_scale = f"{top}/{small}: {p_med[top] / p_med[small]:.2f}×" if top != small else ""
        row = self.add(
            Result(
                "(d)",
                f"rmi NAME, time at {big} images / at {small} images",
                podman_scale,
                f"{scale:.2f}×",
                "",
                f"≤ {target_d(big):g}×",
                verdict(scale <= target_d(big)),
            )
        )

        def profile_d() -> None:
            for n in (small, big):
                self.profile_cli(roots[n], ["rmi", image_name(self.runs)], f"(d) {n} images")

        self.profile_misses([("(d)", profile_d)] if row.verdict == "MISS" else [])
        for n, root in roots.items():
            if loaded is None or n != loaded.count:
                shutil.rmtree(root.parent, ignore_errors=True)

    # -- (e), first half: the bus on its own -------------------------------------------------

    def bench_bus(self, count: int, subscribers: int, batch: int) -> None:
        events = make_events(count)

        def publish(per_call: int) -> float:
            bus = EventBus()
            subs = [bus.subscribe(buffer=count) for _ in range(subscribers)]
            started = time.perf_counter()
            if per_call == 1:
                for event in events:
                    bus.publish((event,))
            else:
                for i in range(0, count, per_call):
                    bus.publish(events[i : i + per_call])
            elapsed = time.perf_counter() - started
            if not all(s.pending == count for s in subs):
                raise RuntimeError("a subscriber is missing events")
            return elapsed

        async def end_to_end() -> float:
            """Reader tasks (default buffers) drain while the publisher publishes."""
            bus = EventBus()
            subs = [bus.subscribe() for _ in range(subscribers)]
            got = [0] * subscribers

            async def drain(i: int) -> None:
                async for item in subs[i]:
                    got[i] += item.missed if isinstance(item, Lagged) else 1

            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for i in range(subscribers):
                    group.start_soon(drain, i)
                for i in range(0, count, batch):
                    bus.publish(events[i : i + batch])
                    await anyio.lowlevel.checkpoint()
                bus.close()
            if got != [count] * subscribers:
                raise RuntimeError(f"readers got {got}, expected {count} each")
            return time.perf_counter() - started

        single = count / median([publish(1) for _ in range(self.runs)])
        batched = count / median([publish(batch) for _ in range(self.runs)])
        both = count / median([anyio.run(end_to_end) for _ in range(self.runs)])
        self.add(
            Result(
                "(e)",
                f"bus.publish, 1 event a call, {subscribers} subscribers",
                "",
                f"{single:,.0f}/s",
                "",
                f"≥ {TARGET_E:,} events/s",
                verdict(single >= TARGET_E),
            )
        )
        self.add(Result("(e)", f"bus.publish, {batch} events a call", "", f"{batched:,.0f}/s"))
        self.add(
            Result("(e)", f"publish + {subscribers} reader tasks draining", "", f"{both:,.0f}/s")
        )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--api-worker"], ["--profile-cli"]):
        return worker_main(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="images of (a), (c), (d)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--big", type=int, default=10_000, help="the big store of (d)")
    parser.add_argument("--podman-big", action="store_true", help="(d): podman at --big too")
    parser.add_argument("--events", type=int, default=100_000, help="events for (e)")
    parser.add_argument("--profile", action="store_true", help="cProfile aiopod on each miss")
    parser.add_argument(
        "--only", choices=["a", "b", "d", "e"], action="append", help="parts ((c) is in (a))"
    )
    parser.add_argument("--workdir", type=Path, help="where to put stores (default: a temp dir)")
    args = parser.parse_args(argv)
    for tool in ("podman", "buildah", "cp"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    parts = args.only or ["a", "b", "d", "e"]

    workdir = Path(tempfile.mkdtemp(prefix="aiopod-bench-rm-", dir=args.workdir))
    bench = Bench(workdir, args.runs, args.profile)
    print(
        f"podman vs aiopod, removal: {args.images} images (a, c), {args.big} (d), median of "
        f"{args.runs} runs, {os.cpu_count()} CPUs, podman lock_type=file; work dir {workdir}\n"
    )
    print(table_header(), flush=True)
    started = time.perf_counter()
    loaded: Loaded | None = None
    try:
        bench.bench_startup()
        if "b" in parts:
            bench.bench_one()
        loaded = bench.load_both(args.images) if "a" in parts or "d" in parts else None
        if loaded is not None and "a" in parts:
            bench.bench_all(loaded)
        if "d" in parts:
            sizes = sorted({SMALL, args.images, args.big})
            podman_sizes = [n for n in sizes if n != args.big or args.podman_big]
            bench.bench_scaling(sizes, podman_sizes, loaded)
        if "e" in parts:
            bench.bench_bus(args.events, 10, 100)
    finally:
        if loaded is not None:
            loaded.podman.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{table_header()}")
    for result in bench.results:
        print(table_line(result.cells()))
    print(
        "\nratio = aiopod / podman (below 1: aiopod is faster); (d)'s last row: the time at the "
        f"biggest store / the time at the smallest; total {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
