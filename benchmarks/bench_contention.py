"""Contention benchmark: 4 command-line writers on one store, podman against aiopod.

Not part of the test suite. Run from the repository root (as root, podman installed)::

    python benchmarks/bench_contention.py                 # 4 writers × 40 operations, 3 runs
    python benchmarks/bench_contention.py --writers 8 --ops 20 --images 1000

Each writer is a process that runs ``--ops`` commands one after another against the same
store: ``tag IMAGE NAME`` and ``untag IMAGE NAME`` in turn, each on a name of its own, on
images of a store of ``--images`` one-layer images (loaded before, not timed).  Every
command takes the store's exclusive lock, so the writers queue for it: the figure is the
store's command throughput under contention (operations per second over the run's wall
time) and each command's latency (p50, p90).  podman runs the same commands on its own
isolated vfs store (``--root/--runroot``), writers of both alternating run by run.
Issue 12's target: aiopod ≥ 40 operations/s with 4 writers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "benchmarks"), str(REPO_ROOT / "tests")]

from bench_events import percentile  # noqa: E402
from bench_store import aiopod_cmd, podman_cmd, tar_of_one_file  # noqa: E402
from peers import Podman, aiopod_env, synthetic_image, write_docker_archive  # noqa: E402

TARGET_OPS = 40.0

WRITER = """
import subprocess, sys, time, json
prefix, ops, image, name = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
latencies = []
for i in range(ops):
    verb = "tag" if i % 2 == 0 else "untag"
    began = time.monotonic()
    subprocess.run([*prefix, verb, image, name], check=True, stdout=subprocess.DEVNULL)
    latencies.append(time.monotonic() - began)
print(json.dumps(latencies))
"""


def run_writers(
    prefix: Sequence[str], env: dict[str, str], writers: int, ops: int, images: Sequence[str]
) -> tuple[float, list[float]]:
    """(wall seconds, every command's latency) of *writers* processes running *ops*."""

    began = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                json.dumps([str(p) for p in prefix]),
                str(ops),
                images[w % len(images)],
                f"localhost/writer{w}:latest",
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    latencies: list[float] = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a writer failed (exit {proc.returncode})")
        latencies.extend(json.loads(out))
    return time.monotonic() - began, latencies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--ops", type=int, default=40, help="commands per writer")
    parser.add_argument("--images", type=int, default=100, help="images in the store")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-contention-"))
    podman = Podman.create(work / "podman")
    try:
        archive = write_docker_archive(
            work / "images.tar",
            [
                synthetic_image(
                    [f"localhost/img{i}:latest"], [tar_of_one_file(f"f{i}", f"image {i}".encode())]
                )
                for i in range(args.images)
            ],
        )
        root = work / "aiopod"
        env = aiopod_env()
        for cmd, tool_env in (
            (aiopod_cmd(root, "load", "-q", "-i", archive), env),
            (podman_cmd(podman, "load", "-q", "-i", archive), podman.env()),
        ):
            subprocess.run(cmd, env=tool_env, check=True, stdout=subprocess.DEVNULL)
        names = [f"localhost/img{i}:latest" for i in range(args.writers)]
        tools = {
            "podman": ([str(p) for p in podman_cmd(podman)], podman.env()),
            "aiopod": ([str(p) for p in aiopod_cmd(root)], env),
        }
        results: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in tools}
        for _ in range(args.runs):
            for name, (prefix, tool_env) in tools.items():
                results[name].append(run_writers(prefix, tool_env, args.writers, args.ops, names))
        total = args.writers * args.ops
        print(
            f"{args.writers} writers × {args.ops} commands (tag/untag), store of "
            f"{args.images} images, {args.runs} runs, {os.cpu_count()} CPUs"
        )
        print(f"{'':8} {'ops/s (median)':>15} {'p50 s':>8} {'p90 s':>8}")
        rates = {}
        for name, runs in results.items():
            rate = statistics.median(total / wall for wall, _ in runs)
            every = [lat for _, lats in runs for lat in lats]
            rates[name] = rate
            print(
                f"{name:8} {rate:15.1f} {percentile(every, 0.5):8.3f} {percentile(every, 0.9):8.3f}"
            )
        verdict = "PASS" if rates["aiopod"] >= TARGET_OPS else "MISS"
        print(
            f"aiopod / podman throughput: {rates['aiopod'] / rates['podman']:.2f}×; "
            f"target ≥ {TARGET_OPS:g} ops/s: {verdict}"
        )
    finally:
        podman.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
