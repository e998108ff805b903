"""Build benchmark: buildah vs aiopod on ``build`` (COPY of a big context, the layer cache,
RUN steps).

Not part of the test suite. Run from the repository root (as root, buildah and podman
installed)::

    python benchmarks/bench_build.py                         # 2,000 files + 200 MiB, 3 runs
    python benchmarks/bench_build.py --files 200 --big-mib 20 --runs 3     # a quick run
    python benchmarks/bench_build.py --profile               # and profile every miss

What is measured, each on isolated roots under a temporary directory (buildah with
``--root/--runroot --storage-driver vfs``, ``bud --isolation chroot``; aiopod's CLI,
``python -m aiopod --root R build``):

(a) ``FROM scratch`` + ``COPY . /data/`` of a context of ``--files`` files of 4 KiB (random
    content, in 20 directories) plus one file of ``--big-mib`` MiB, once with random and
    once with compressible content (system files from /usr); every run builds into a
    fresh, empty store; target: aiopod ≤ 0.5× buildah;
(b) the same rebuilt with the cache (``--layers``, nothing changed): the first ``--layers``
    build of a store is setup, then every run is a cache hit in that store; target
    ≤ 0.3× buildah's cache hit;
(c) ``--steps`` (default 10) ``RUN echo N > /fN`` steps on a busybox base (the same rootfs
    tar imported into both stores, ``podman import`` and ``aiopod import``; setup, in a
    fresh store every run); target ≤ 1.0× buildah; and the same with ``--layers``
    (information: buildah then commits every step).

A reference row gives the start-up floor (``images -q`` on an empty store), and a note the
cost of creating 2,000 small files on the work dir's file system.

Cold: before every timed build the benchmark runs ``sync`` and ``echo 3 >
/proc/sys/vm/drop_caches`` (not timed), for both tools alike; ``--warm`` skips that.
(b) also reports warm runs (caches not dropped) as information. Each cell is the
median wall time of ``--runs`` runs (buildah and aiopod alternating); ``ratio`` is aiopod /
buildah. With ``--profile`` every miss is timed by phases and cProfiled in-process (a
subprocess of this benchmark running ``await rt.build(...)``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "benchmarks"), str(REPO_ROOT / "tests")]

from bench_remove import (  # noqa: E402
    WIDTHS,
    Result,
    compare,
    dump_profile,
    fmt_s,
    median,
    print_profile,
    profiling,
    run_checked,
    seconds_list,
    table_line,
)
from bench_store import (  # noqa: E402
    MIB,
    Sample,
    aiopod_cmd,
    compressible_chunks,
    podman_cmd,
    random_chunks,
    timed,
    write_payload,
)
from peers import Podman, aiopod_env, write_busybox_rootfs  # noqa: E402

from aiopod import Runtime  # noqa: E402

Arg = str | os.PathLike[str]

#: Targets: aiopod's time at most this share of buildah's.
TARGET_A, TARGET_B, TARGET_C = 0.5, 0.3, 1.0
FILE_SIZE = 4096
DIRS = 20
TAG = "localhost/bench-build:latest"
BASE = "localhost/bench-busybox:latest"
VARIANTS: dict[str, Callable[[], Iterator[bytes]]] = {
    "random": random_chunks,
    "compressible": compressible_chunks,
}


def time_creates(directory: Path, count: int) -> float:
    """Seconds to create ``count`` files of 4 KiB in a new directory (removed afterwards)."""
    directory.mkdir()
    data = os.urandom(FILE_SIZE)
    try:
        started = time.perf_counter()
        for i in range(count):
            fd = os.open(directory / f"f{i:05d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(directory)


def drop_caches() -> None:
    """Write back dirty pages, then drop the page cache, dentries and inodes."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


# --------------------------------------------------------------------------------------------
# Inputs


def write_copy_context(directory: Path, files: int, big: int, chunks: Iterator[bytes]) -> int:
    """(a)/(b)'s context: ``files`` random 4 KiB files in 20 directories, ``big.bin`` of
    ``big`` bytes from ``chunks`` and the Dockerfile. Returns the bytes of content."""
    for d in range(min(DIRS, files)):
        (directory / f"dir{d:02d}").mkdir(parents=True)
    for i in range(files):
        (directory / f"dir{i % DIRS:02d}" / f"file{i:05d}.bin").write_bytes(os.urandom(FILE_SIZE))
    write_payload(directory / "big.bin", big, chunks)
    (directory / "Dockerfile").write_text("FROM scratch\nCOPY . /data/\n")
    return files * FILE_SIZE + big


def write_run_context(directory: Path, steps: int) -> None:
    """(c)'s context: a Dockerfile of ``steps`` RUN steps on the imported busybox base."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"FROM {BASE}", *(f"RUN echo {i} > /f{i}" for i in range(1, steps + 1))]
    (directory / "Dockerfile").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# The two builders


@dataclasses.dataclass
class Buildah:
    """buildah (and podman, for ``import``) on one private vfs store (``peers.Podman``)."""

    podman: Podman

    @classmethod
    def create(cls, base: Path) -> Buildah:
        return cls(Podman.create(base))

    def env(self) -> dict[str, str]:
        env = self.podman.env()
        for name in ("BUILDAH_LAYERS", "BUILDAH_ISOLATION", "BUILDAH_FORMAT"):
            env.pop(name, None)
        return env

    def bud(self, context: Path, *, layers: bool, quiet: bool = True) -> list[Arg]:
        return [
            "buildah",
            *self.podman.storage_args(),
            "bud",
            "--isolation",
            "chroot",
            "--pull=never",
            f"--layers={'true' if layers else 'false'}",
            *(["-q"] if quiet else []),
            "-t",
            TAG,
            context,
        ]

    def build(self, context: Path, *, layers: bool) -> Sample:
        return timed(self.bud(context, layers=layers), self.env())

    def build_output(self, context: Path, *, layers: bool) -> str:
        return run_checked(self.bud(context, layers=layers, quiet=False), self.env())

    def import_base(self, tar: Path) -> None:
        run_checked(podman_cmd(self.podman, "import", "-q", tar, BASE), self.env())

    def drop(self) -> None:
        self.podman.cleanup()
        shutil.rmtree(self.podman.base, ignore_errors=True)


@dataclasses.dataclass
class Aiopod:
    root: Path

    def cmd(self, context: Path, *, layers: bool, quiet: bool = True) -> list[Arg]:
        flags = [*(["--layers"] if layers else []), *(["-q"] if quiet else [])]
        return aiopod_cmd(self.root, "build", *flags, "-t", TAG, context)

    def build(self, context: Path, *, layers: bool) -> Sample:
        return timed(self.cmd(context, layers=layers), aiopod_env())

    def build_output(self, context: Path, *, layers: bool) -> str:
        return run_checked(self.cmd(context, layers=layers, quiet=False), aiopod_env())

    def import_base(self, tar: Path) -> None:
        run_checked(aiopod_cmd(self.root, "import", tar, BASE), aiopod_env())

    def drop(self) -> None:
        shutil.rmtree(self.root.parent, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# In-process work: the build worker (a subprocess of the benchmark), phases and profiles


def _job_name(func: Callable[..., Any]) -> str:
    inner = getattr(func, "func", func)  # functools.partial
    module = str(getattr(inner, "__module__", "") or "").rsplit(".", 1)[-1]
    name = getattr(inner, "__qualname__", None) or repr(inner)
    return f"{module}.{name}" if module else name


@contextlib.contextmanager
def phase_timer() -> Iterator[dict[str, list[float]]]:
    """Wall time of every piece of work a build hands to a worker thread
    (``anyio.to_thread.run_sync``, by function) and of its main async steps (the executor's
    module-level functions and methods, patched here for the duration: aiopod's code is
    not changed). The async steps include the thread work they await."""
    from aiopod.builder import copying, executor, layer_cache

    times: dict[str, list[float]] = {}

    def record(label: str, started: float) -> None:
        times.setdefault(label, []).append(time.perf_counter() - started)

    original_run_sync = anyio.to_thread.run_sync

    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original_run_sync(func, *args, **kwargs)
        finally:
            record(f"thread {_job_name(func)}", started)

    def timed_async(label: str, func: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                record(label, started)

        return wrapper

    targets: list[tuple[Any, str, str]] = [
        (copying, "copy_step", "async COPY/ADD step (copy_step)"),
        (executor._Build, "_run", "async RUN step (_Build._run)"),
        (executor._Build, "use_cache", "async cache lookup and adopt (_Build.use_cache)"),
        (layer_cache.LayerCache, "find", "async cache lookup (LayerCache.find)"),
        (executor._Build, "add_layer", "async layer write (_Build.add_layer)"),
        (executor, "run_isolated", "async RUN process (run_isolated)"),
        (executor, "create_container", "async working container (create_container)"),
        (executor, "commit_image", "async commit (commit_image)"),
        (executor, "execute_plan", "async cleanup (execute_plan)"),
        (Runtime, "_snapshot", "async store snapshot after the build (Runtime._snapshot)"),
    ]
    saved: list[tuple[Any, str, Any]] = [(anyio.to_thread, "run_sync", original_run_sync)]
    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]
    for owner, name, label in targets:
        original = getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, timed_async(label, original))
    try:
        yield times
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


async def worker_build(
    root: Path, context: Path, layers: bool, cold: bool, profile: Path | None
) -> dict[str, Any]:
    """One ``await rt.build(...)``, timed inside this process: by phases, or cProfiled
    (into ``profile``, with ``bench_remove``'s profiler: the worker threads included)."""
    # What rt.build imports lazily, imported now: the in-process time is the build's work
    # alone (the CLI's time minus this one is start-up, imports and opening the store).
    from aiopod.builder import copying, executor  # noqa: F401

    if cold:
        drop_caches()
    started = time.perf_counter()
    async with Runtime(root=root) as rt:
        opened = time.perf_counter() - started
        with contextlib.ExitStack() as stack:
            profilers = stack.enter_context(profiling()) if profile else []
            phases = {} if profile else stack.enter_context(phase_timer())
            started = time.perf_counter()
            image = await rt.build(context, tags=[TAG], layers=layers)
            wall = time.perf_counter() - started
        started = time.perf_counter()
    closed = time.perf_counter() - started
    if profile:
        dump_profile(profilers, profile, wall)
    return {"open": opened, "build": wall, "close": closed, "image": image.id, "phases": phases}


def worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", type=Path, required=True, help="the aiopod store")
    parser.add_argument("--context", type=Path, required=True)
    parser.add_argument("--layers", action="store_true")
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args(argv)
    result = anyio.run(
        worker_build, args.worker, args.context, args.layers, args.cold, args.profile
    )
    print(json.dumps(result))
    return 0


def print_phases(result: dict[str, Any], label: str) -> None:
    wall = float(result["build"])
    print(
        f"\nphases of {label}: `await rt.build(...)` took {wall:.3f} s in-process. Async "
        "steps include the thread work they await; shares are of the build's wall time."
    )
    print(f"  {'total s':>8} {'share':>6} {'calls':>5}  phase")
    rows = sorted(result["phases"].items(), key=lambda kv: -sum(kv[1]))
    for name, seconds in rows:
        total = sum(seconds)
        print(f"  {total:8.3f} {100 * total / wall:5.1f}% {len(seconds):5d}  {name}")


def import_times(stderr: str) -> tuple[float, int, dict[str, float]]:
    """From ``python -X importtime``: the total import time, the number of modules and the
    own import time by group (``aiopod.<subpackage>``, else the top-level package)."""
    total = 0.0
    modules = 0
    groups: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        modules += 1
        if not name.startswith("  "):  # one space: a top-level import
            total += int(cumulative) / 1e6
        parts = name.strip().split(".")
        group = ".".join(parts[:2]) if parts[0] == "aiopod" else parts[0]
        groups[group] = groups.get(group, 0.0) + int(own) / 1e6
    return total, modules, groups


# --------------------------------------------------------------------------------------------
# The benchmark


def table_header() -> str:
    rule = "|" + "|".join("-" * (w + 2) for w in WIDTHS) + "|"
    columns = ["", "operation", "buildah", "aiopod", "ratio", "target", ""]
    return f"{table_line(columns)}\n{rule}"


def peak_mib(samples: Sequence[Sample]) -> float:
    return max(s.max_rss_kib for s in samples) / 1024


@dataclasses.dataclass
class Bench:
    workdir: Path
    runs: int
    cold: bool
    profile: bool
    results: list[Result] = dataclasses.field(default_factory=list)
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

    def settle(self, cold: bool | None = None) -> None:
        """Before a timed build: drop the caches (when cold)."""
        if self.cold if cold is None else cold:
            drop_caches()

    def new_buildah(self, kind: str) -> Buildah:
        return Buildah.create(self.fresh(f"buildah-{kind}"))

    def new_aiopod(self, kind: str) -> Aiopod:
        return Aiopod(self.fresh(f"aiopod-{kind}") / "store")

    def alternate(
        self, buildah_run: Callable[[], Sample], aiopod_run: Callable[[], Sample]
    ) -> tuple[list[Sample], list[Sample]]:
        """``runs`` runs of each, alternating (so drift in the machine hits both alike)."""
        b: list[Sample] = []
        a: list[Sample] = []
        for _ in range(self.runs):
            b.append(buildah_run())
            a.append(aiopod_run())
        return b, a

    def row(
        self,
        part: str,
        operation: str,
        samples: tuple[list[Sample], list[Sample]],
        target: float | None,
    ) -> Result:
        b_samples, a_samples = samples
        b = median([s.seconds for s in b_samples])
        a = median([s.seconds for s in a_samples])
        if target is None:
            result = self.add(Result(part, operation, fmt_s(b), fmt_s(a), f"{a / b:.3f}"))
        else:
            result = self.add(compare(part, operation, b, a, target, "buildah"))
        self.note(
            f"runs: buildah {seconds_list([s.seconds for s in b_samples])}; aiopod "
            f"{seconds_list([s.seconds for s in a_samples])}; peak RSS buildah "
            f"{peak_mib(b_samples):.0f} MiB, aiopod {peak_mib(a_samples):.0f} MiB"
        )
        return result

    def profile_miss(
        self,
        label: str,
        prepare: Callable[[], Path],
        context: Path,
        *,
        layers: bool,
        cli: float,
    ) -> None:
        """Time the phases of one in-process build, then cProfile another; ``prepare``
        returns the store to build in (in the state the timed runs started from)."""
        if not self.profile:
            self.note(f"missed: {label} (--profile to profile)")
            return
        print(f"\n== profiling the miss: {label}", flush=True)
        base: list[Arg] = [sys.executable, __file__, "--worker"]
        flags: list[Arg] = ["--context", context, *(["--layers"] if layers else [])]
        flags += ["--cold"] if self.cold else []
        results = [
            json.loads(run_checked([*base, prepare(), *flags], aiopod_env()).splitlines()[-1])
            for _ in range(self.runs)
        ]
        phases = sorted(results, key=lambda r: float(r["build"]))[(len(results) - 1) // 2]
        self.print_cli_breakdown(label, prepare, context, layers, cli, results)
        print_phases(phases, label)
        out = self.fresh("profile") / "build.prof"
        run_checked([*base, prepare(), *flags, "--profile", out], aiopod_env())
        print_profile(out, f"{label}: await rt.build(...) under cProfile")
        print(f"\n{table_header()}", flush=True)

    def print_cli_breakdown(
        self,
        label: str,
        prepare: Callable[[], Path],
        context: Path,
        layers: bool,
        cli: float,
        workers: Sequence[dict[str, Any]],
    ) -> None:
        """Where a CLI build's time goes: the interpreter (``python -c pass``), the imports
        (more CLI runs under ``python -X importtime``), and the workers' open, build and
        close of the runtime (medians of ``runs`` each); the rest is the CLI's own work and
        the process exit."""
        bare_runs: list[float] = []
        walls: list[float] = []
        found: list[tuple[float, int, dict[str, float]]] = []
        for _ in range(self.runs):
            self.settle()
            bare_runs.append(timed([sys.executable, "-c", "pass"], aiopod_env()).seconds)
            cmd = Aiopod(prepare()).cmd(context, layers=layers)
            cmd[1:1] = ["-X", "importtime"]
            self.settle()
            started = time.perf_counter()
            proc = subprocess.run(
                [os.fspath(c) for c in cmd],
                env=aiopod_env(),
                capture_output=True,
                text=True,
                check=True,
            )
            walls.append(time.perf_counter() - started)
            found.append(import_times(proc.stderr))
        bare = median(bare_runs)
        imports, modules, groups = sorted(found, key=lambda f: f[0])[(len(found) - 1) // 2]
        opened, built, closed = (
            median([float(w[k]) for w in workers]) for k in ("open", "build", "close")
        )
        rest = cli - bare - imports - opened - built - closed
        build_runs = seconds_list([float(w["build"]) for w in workers])
        state = "cold" if self.cold else "warm"
        ranked = sorted(groups.items(), key=lambda kv: -kv[1])[:8]
        print(
            f"\nwhere the CLI's {cli:.3f} s (median) of {label} go, medians of {self.runs} "
            f"runs each, {state}:\n"
            f"  {bare:7.3f} s  the interpreter (`python -c pass`)\n"
            f"  {imports:7.3f} s  imports: {modules} modules (`python -X importtime`; those CLI "
            f"runs took {seconds_list(walls)} s); own time by group: "
            + ", ".join(f"{g} {t:.3f}" for g, t in ranked)
            + f"\n  {opened:7.3f} s  opening the runtime (the store)\n"
            f"  {built:7.3f} s  `await rt.build(...)` in-process, runs {build_runs} (the "
            "phases below are of the median run)\n"
            f"  {closed:7.3f} s  closing the runtime\n"
            f"  {rest:7.3f} s  the rest: the CLI's own work, exit, and run-to-run noise"
        )

    # -- reference: the start-up floor of every cell -----------------------------------------

    def bench_startup(self, files: int) -> None:
        buildah = self.new_buildah("ref")
        aiopod = self.new_aiopod("ref")
        try:
            env = buildah.env()
            b_cmd: list[Arg] = ["buildah", *buildah.podman.storage_args(), "images", "-q"]
            a_cmd = aiopod_cmd(aiopod.root, "images", "-q")
            run_checked(b_cmd, env)
            run_checked(a_cmd, aiopod_env())

            def buildah_run() -> Sample:
                self.settle()
                return timed(b_cmd, env)

            def aiopod_run() -> Sample:
                self.settle()
                return timed(a_cmd, aiopod_env())

            samples = self.alternate(buildah_run, aiopod_run)
            state = "cold" if self.cold else "warm"
            self.row("ref", f"images -q, empty store: start-up floor, {state}", samples, None)
            count = max(files, 100)
            here = [time_creates(self.fresh("creates") / "files", count) for _ in range(3)]
            shm = ""
            if os.path.isdir("/dev/shm"):
                with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
                    shm = f"; in /dev/shm (tmpfs) {time_creates(Path(tmp) / 'files', count):.3f} s"
            self.note(
                f"the file system: creating {count} files of 4 KiB took {seconds_list(here)} s "
                f"in the work dir ({1000 * median(here) / count:.2f} ms a file){shm}; both tools "
                "pay that for every file they create in a root file system or a store"
            )
        finally:
            buildah.drop()
            aiopod.drop()

    # -- (a) COPY of a big context into a fresh store ----------------------------------------

    def bench_copy(self, label: str, context: Path) -> None:
        def buildah_run() -> Sample:
            buildah = self.new_buildah("a")
            try:
                self.settle()
                return buildah.build(context, layers=False)
            finally:
                buildah.drop()

        def aiopod_run() -> Sample:
            aiopod = self.new_aiopod("a")
            try:
                self.settle()
                return aiopod.build(context, layers=False)
            finally:
                aiopod.drop()

        samples = self.alternate(buildah_run, aiopod_run)
        row = self.row("(a)", f"COPY . /data/, {label}, fresh store", samples, TARGET_A)
        if row.verdict == "MISS":
            roots: list[Aiopod] = []

            def prepare() -> Path:
                roots.append(self.new_aiopod("profile-a"))
                return roots[-1].root

            try:
                cli = median([s.seconds for s in samples[1]])
                self.profile_miss(f"(a) {label}", prepare, context, layers=False, cli=cli)
            finally:
                for aiopod in roots:
                    aiopod.drop()

    # -- (b) the same, a cache hit -----------------------------------------------------------

    def bench_cache(self, label: str, context: Path) -> None:
        buildah = self.new_buildah("b")
        aiopod = self.new_aiopod("b")
        try:
            self.settle()
            setup_b = buildah.build(context, layers=True).seconds
            self.settle()
            try:
                setup_a = aiopod.build(context, layers=True).seconds
            except RuntimeError as exc:
                # aiopod 89e988a-7f1d5e1: an uncached COPY under --layers committed its layer
                # (the staged file moved into the store), then applied it from the staged path.
                error = [line for line in str(exc).splitlines() if line.startswith("Error:")]
                self.note(
                    f"aiopod's first build --layers FAILED ({error[-1] if error else exc}); "
                    "its setup is a build without --layers instead (the cache accepts that "
                    "image, as buildah's does)"
                )
                self.settle()
                setup_a = aiopod.build(context, layers=False).seconds
            for name, builder in (("buildah", buildah), ("aiopod", aiopod)):
                output = builder.build_output(context, layers=True)
                if "Using cache" not in output:
                    raise RuntimeError(f"{name}: the rebuild did not use the cache:\n{output}")
            self.note(
                f"setup (not timed): the first --layers build: buildah {setup_b:.3f} s, aiopod "
                f"{setup_a:.3f} s{' (cold)' if self.cold else ''}; one rebuild each checked "
                "for 'Using cache'"
            )

            def buildah_run(cold: bool) -> Callable[[], Sample]:
                def run() -> Sample:
                    self.settle(cold)
                    return buildah.build(context, layers=True)

                return run

            def aiopod_run(cold: bool) -> Callable[[], Sample]:
                def run() -> Sample:
                    self.settle(cold)
                    return aiopod.build(context, layers=True)

                return run

            samples = self.alternate(buildah_run(self.cold), aiopod_run(self.cold))
            state = "cold" if self.cold else "warm"
            row = self.row(
                "(b)", f"--layers rebuild, cache hit, {label}, {state}", samples, TARGET_B
            )
            if self.cold:
                warm = self.alternate(buildah_run(False), aiopod_run(False))
                self.row("(b)", "  the same, warm (caches not dropped; info)", warm, None)
            if row.verdict == "MISS":
                cli = median([s.seconds for s in samples[1]])
                self.profile_miss(
                    f"(b) {label}", lambda: aiopod.root, context, layers=True, cli=cli
                )
        finally:
            buildah.drop()
            aiopod.drop()

    # -- (c) RUN steps on a busybox base -----------------------------------------------------

    def bench_run(self, steps: int) -> None:
        inputs = self.fresh("inputs-c")
        tar = write_busybox_rootfs(inputs / "busybox.tar")
        context = inputs / "context"
        write_run_context(context, steps)

        def build_with(
            new: Callable[[str], Buildah | Aiopod], layers: bool
        ) -> Callable[[], Sample]:
            """A fresh store of one tool (``new_buildah`` or ``new_aiopod``), the base
            imported (not timed), then the timed build."""

            def run() -> Sample:
                tool = new("c")
                try:
                    tool.import_base(tar)
                    self.settle()
                    return tool.build(context, layers=layers)
                finally:
                    tool.drop()

            return run

        def buildah_run(layers: bool) -> Callable[[], Sample]:
            return build_with(self.new_buildah, layers)

        def aiopod_run(layers: bool) -> Callable[[], Sample]:
            return build_with(self.new_aiopod, layers)

        samples = self.alternate(buildah_run(False), aiopod_run(False))
        operation = f"{steps} RUN steps on busybox, fresh store"
        row = self.row("(c)", operation, samples, TARGET_C)
        with_layers = self.alternate(buildah_run(True), aiopod_run(True))
        self.row("(c)", "  the same with --layers (no cache yet; info)", with_layers, None)
        if row.verdict == "MISS":
            roots: list[Aiopod] = []

            def prepare() -> Path:
                roots.append(self.new_aiopod("profile-c"))
                roots[-1].import_base(tar)
                return roots[-1].root

            try:
                cli = median([s.seconds for s in samples[1]])
                self.profile_miss("(c)", prepare, context, layers=False, cli=cli)
            finally:
                for aiopod in roots:
                    aiopod.drop()
        shutil.rmtree(inputs, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return worker_main(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--files", type=int, default=2000, help="4 KiB files of (a), (b)")
    parser.add_argument("--big-mib", type=int, default=200, help="the big file of (a), (b)")
    parser.add_argument("--steps", type=int, default=10, help="RUN steps of (c)")
    parser.add_argument(
        "--variant",
        choices=list(VARIANTS),
        action="append",
        help="content of the big file (default: both)",
    )
    parser.add_argument("--only", choices=["a", "b", "c"], action="append", help="some parts")
    parser.add_argument("--warm", action="store_true", help="do not drop the caches")
    parser.add_argument("--profile", action="store_true", help="profile aiopod on each miss")
    parser.add_argument("--workdir", type=Path, help="where to put stores (default: a temp dir)")
    args = parser.parse_args(argv)
    for tool in ("podman", "buildah"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    if not args.warm and not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        parser.error("cannot write /proc/sys/vm/drop_caches (run as root, or use --warm)")
    parts = args.only or ["a", "b", "c"]
    variants = args.variant or list(VARIANTS)

    workdir = Path(tempfile.mkdtemp(prefix="aiopod-bench-build-", dir=args.workdir))
    bench = Bench(workdir, args.runs, not args.warm, args.profile)
    caches = "warm (caches not dropped)" if args.warm else "cold (sync + drop_caches before each)"
    print(
        f"buildah vs aiopod, build: {args.files} × 4 KiB + {args.big_mib} MiB (a, b), "
        f"{args.steps} RUN steps (c), median of {args.runs} runs, {caches}, "
        f"{os.cpu_count()} CPUs; work dir {workdir}\n"
    )
    print(table_header(), flush=True)
    started = time.perf_counter()
    try:
        bench.bench_startup(args.files)
        if "a" in parts or "b" in parts:
            for variant in variants:
                context = bench.fresh(f"context-{variant}")
                size = write_copy_context(
                    context, args.files, args.big_mib * MIB, VARIANTS[variant]()
                )
                label = f"{size / MIB:.0f} MiB {variant}"
                if "a" in parts:
                    bench.bench_copy(label, context)
                if "b" in parts:
                    bench.bench_cache(label, context)
                shutil.rmtree(context)
        if "c" in parts:
            bench.bench_run(args.steps)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{table_header()}")
    for result in bench.results:
        print(table_line(result.cells()))
    print(
        f"\nratio = aiopod / buildah (below 1: aiopod is faster); total "
        f"{time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
