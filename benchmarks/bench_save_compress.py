"""Save compression benchmark: ``save --format oci-archive`` with and without compression.

Not part of the test suite. Run from the repository root (as root, podman installed)::

    python benchmarks/bench_save_compress.py                  # 200 MiB, 3 runs
    python benchmarks/bench_save_compress.py --size-mib 20 --runs 1   # a quick run

The image is :mod:`bench_store`'s (a busybox base plus one layer holding one file of
``--size-mib`` MiB, stored uncompressed: loaded from a docker-archive), once with
compressible content (files under /usr) and once with random content.  Timed, each the
median wall time of ``--runs`` runs, with the size of the archive written:

* ``podman save --format oci-archive`` (podman gzip-compresses the layers of OCI outputs
  by default) and ``podman save --uncompressed``;
* ``aiopod save --format oci-archive`` (layers as stored), with ``--compress`` (gzip) and
  with ``--compression-format zstd``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_store import (
    IMAGE,
    MIB,
    Sample,
    aiopod_cmd,
    big_image,
    compressible_chunks,
    disk_size,
    podman_cmd,
    random_chunks,
    timed,
)
from peers import Podman, aiopod_env, write_busybox_rootfs


def measure(label: str, runs: int, run: Callable[[Path], Sample], workdir: Path) -> None:
    samples = []
    for _ in range(runs):
        out = workdir / "out.tar"
        try:
            sample = run(out)
            sample.output_bytes = disk_size(out)
            samples.append(sample)
        finally:
            out.unlink(missing_ok=True)
    seconds = statistics.median(s.seconds for s in samples)
    cpu = statistics.median(s.cpu_seconds for s in samples)
    size = max(s.output_bytes or 0 for s in samples) / MIB
    print(f"| {label:<44} | {seconds:8.2f} | {cpu:8.2f} | {size:9.1f} |", flush=True)


def bench(label: str, size: int, chunks: Iterator[bytes], workdir: Path, runs: int) -> None:
    archive = big_image(workdir, size, chunks, write_busybox_rootfs(workdir / "base.tar"))
    podman = Podman.create(workdir / "podman")
    root = workdir / "aiopod"
    try:
        timed(podman_cmd(podman, "load", "-q", "-i", archive), podman.env())
        timed(aiopod_cmd(root, "load", "-i", archive), aiopod_env())
        archive.unlink()

        def podman_save(extra: list[str]) -> Callable[[Path], Sample]:
            def run(out: Path) -> Sample:
                cmd = podman_cmd(podman, "save", "-q", *extra, "--format", "oci-archive", "-o", out)
                return timed([*cmd, IMAGE], podman.env())

            return run

        def aiopod_save(extra: list[str]) -> Callable[[Path], Sample]:
            def run(out: Path) -> Sample:
                cmd = aiopod_cmd(root, "save", *extra, "--format", "oci-archive", "-o", out)
                return timed([*cmd, IMAGE], aiopod_env())

            return run

        for name, extra in (("", []), (" --uncompressed", ["--uncompressed"])):
            measure(f"podman{name} {label}", runs, podman_save(extra), workdir)
        for name, extra in (
            ("", []),
            (" --compress", ["--compress"]),
            (" --compression-format zstd", ["--compression-format", "zstd"]),
        ):
            measure(f"aiopod{name} {label}", runs, aiopod_save(extra), workdir)
    finally:
        podman.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=200, help="payload layer size")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--workdir", type=Path, help="where to put stores (default: a temp dir)")
    args = parser.parse_args(argv)
    if shutil.which("podman") is None:
        parser.error("podman is not installed")
    print(
        f"save --format oci-archive of a {args.size_mib} MiB image, median of {args.runs} "
        f"runs, {os.cpu_count()} CPUs\n"
    )
    print(f"| {'save':<44} | {'wall s':>8} | {'CPU s':>8} | {'out MiB':>9} |")
    print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|{'-' * 11}|")
    for label, chunks in (("compressible", compressible_chunks), ("random", random_chunks)):
        workdir = Path(tempfile.mkdtemp(prefix="aiopod-bench-", dir=args.workdir))
        try:
            bench(label, args.size_mib * MIB, chunks(), workdir, args.runs)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
