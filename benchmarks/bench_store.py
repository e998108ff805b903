"""Store benchmark: podman vs aiopod (the CLI, ``python -m aiopod``) on load, save and images.

Not part of the test suite. Run from the repository root (as root, podman installed)::

    python benchmarks/bench_store.py                      # 200 MiB, 3 runs, 1000 images
    python benchmarks/bench_store.py --size-mib 20 --runs 3 --images 100   # a quick run

What is measured, each on isolated roots under a temporary directory:

(a) ``load`` of a two-layer image (a busybox base plus one layer holding one file of
    ``--size-mib`` MiB), from the docker-archive and the oci-archive that podman saved;
    every run loads into a fresh, empty store;
(b) ``save`` of that image in each format (docker-archive, oci-archive, oci-dir);
(a, b) once with random (incompressible) content and once with compressible content
    (system binaries and libraries from /usr concatenated);
(c) ``images`` on a store of ``--images`` one-layer images (loaded from one multi-image
    docker-archive generated here), and that load itself.

Each cell is the median wall time of ``--runs`` runs (``time.perf_counter`` around the
subprocess); peak RSS is the command's own, from GNU time (or busybox time) ``%M``,
the max over the runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from peers import (  # noqa: E402
    Podman,
    aiopod_env,
    synthetic_image,
    write_busybox_rootfs,
    write_docker_archive,
)

MIB = 1024 * 1024
IMAGE = "localhost/bench:1"


# --------------------------------------------------------------------------------------------
# Running and timing commands


@dataclasses.dataclass
class Sample:
    seconds: float
    max_rss_kib: int
    output_bytes: int | None = None  # the size of what a save wrote
    cpu_seconds: float = 0.0  # the command's user + system time (its children's included)


def disk_size(path: Path) -> int:
    """Bytes in a file, or in all files under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def rss_wrapper() -> list[str]:
    """A ``time`` that reports the child's own peak RSS (``%M``, KiB) into a file.

    ``wait4``'s ``ru_maxrss`` on a direct child is useless here: at ``exec`` Linux folds in
    the peak RSS of the forked copy of *this* (large) Python process. GNU time or busybox
    time fork from a small process, so their ``%M`` is the command's own.
    """
    if os.access("/usr/bin/time", os.X_OK):
        return ["/usr/bin/time"]
    if shutil.which("busybox"):
        return ["busybox", "time"]  # adds busybox's own ~5 MiB floor
    raise SystemExit("need /usr/bin/time (package time) or busybox for peak RSS")


def timed(cmd: Sequence[str | os.PathLike[str]], env: dict[str, str] | None = None) -> Sample:
    """Run ``cmd`` to completion; its wall time, its own peak RSS and its CPU time."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss,
    ):
        wrapped = [*rss_wrapper(), "-f", "%U %S %M", "-o", rss.name, *(os.fspath(c) for c in cmd)]
        start = time.perf_counter()
        returncode = subprocess.run(
            wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, check=False
        ).returncode
        elapsed = time.perf_counter() - start
        if returncode != 0:
            out.seek(0)
            err.seek(0)
            raise RuntimeError(
                f"exit {returncode}: {' '.join(map(str, cmd))}\n"
                f"{out.read().decode(errors='replace')[-2000:]}\n"
                f"{err.read().decode(errors='replace')[-2000:]}"
            )
        user, system, max_rss_kib = rss.read().split()[-3:]
    return Sample(elapsed, int(max_rss_kib), cpu_seconds=float(user) + float(system))


def aiopod_cmd(root: Path, *args: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
    return [sys.executable, "-m", "aiopod", "--root", root, *args]


def podman_cmd(podman: Podman, *args: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
    return [
        "podman",
        *podman.storage_args(),
        "--tmpdir",
        str(podman.tmpdir),
        "--events-backend",
        "none",
        "--cgroup-manager",
        "cgroupfs",
        *args,
    ]


@dataclasses.dataclass
class Row:
    operation: str
    podman: list[Sample] = dataclasses.field(default_factory=list)
    aiopod: list[Sample] = dataclasses.field(default_factory=list)

    @staticmethod
    def median(samples: list[Sample]) -> float:
        return statistics.median(s.seconds for s in samples)

    @staticmethod
    def peak_mib(samples: list[Sample]) -> float:
        return max(s.max_rss_kib for s in samples) / 1024

    @staticmethod
    def output_mib(samples: list[Sample]) -> str:
        sizes = [s.output_bytes for s in samples if s.output_bytes is not None]
        return f"{max(sizes) / MIB:10.1f}" if sizes else f"{'':10}"

    def format(self) -> str:
        p, a = self.median(self.podman), self.median(self.aiopod)
        return (
            f"| {self.operation:<38} | {p:9.3f} | {a:9.3f} | {a / p:6.2f} "
            f"| {self.peak_mib(self.podman):10.1f} | {self.peak_mib(self.aiopod):10.1f} "
            f"| {self.output_mib(self.podman)} | {self.output_mib(self.aiopod)} |"
        )


HEADER = (
    f"| {'operation':<38} | {'podman s':>9} | {'aiopod s':>9} | {'ratio':>6} "
    f"| {'podman RSS':>10} | {'aiopod RSS':>10} | {'podman out':>10} | {'aiopod out':>10} |\n"
    f"|{'-' * 40}|{'-' * 11}|{'-' * 11}|{'-' * 8}|{'-' * 12}|{'-' * 12}|{'-' * 12}|{'-' * 12}|"
)


# --------------------------------------------------------------------------------------------
# Inputs


def compressible_chunks() -> Iterator[bytes]:
    """System binaries and libraries (regular files under /usr, sorted), forever."""
    while True:
        found = False
        for top in ("/usr/lib", "/usr/bin", "/usr/libexec", "/usr/share"):
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames.sort()
                for name in sorted(filenames):
                    path = os.path.join(dirpath, name)
                    if os.path.islink(path) or not os.path.isfile(path):
                        continue
                    try:
                        with open(path, "rb") as f:
                            data = f.read()
                    except OSError:
                        continue
                    if data:
                        found = True
                        yield data
        if not found:
            raise RuntimeError("no readable files under /usr for compressible content")


def random_chunks() -> Iterator[bytes]:
    while True:
        yield os.urandom(MIB)


def write_payload(path: Path, size: int, chunks: Iterator[bytes]) -> None:
    remaining = size
    with open(path, "wb") as out:
        for chunk in chunks:
            piece = chunk[:remaining]
            out.write(piece)
            remaining -= len(piece)
            if remaining == 0:
                break


def write_layer(path: Path, payload: Path) -> str:
    """A one-file layer tar (``data/payload.bin``); returns its sha256 (the diff_id hex)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, is_dir in (("data", True), ("data/payload.bin", False)):
            ti = tarfile.TarInfo(name)
            ti.mtime = 946684800
            ti.uname = ti.gname = ""
            if is_dir:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = payload.stat().st_size, 0o644
                with open(payload, "rb") as f:
                    tf.addfile(ti, f)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def write_big_image_archive(dest: Path, base: Path, layer: Path, layer_hex: str) -> None:
    """docker-archive: base layer + payload layer, streamed from disk (no big bytes in RAM)."""
    base_hex = hashlib.sha256(base.read_bytes()).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2000-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {
                "type": "layers",
                "diff_ids": [f"sha256:{base_hex}", f"sha256:{layer_hex}"],
            },
            "history": [
                {"created": "2000-01-01T00:00:00Z", "created_by": "base"},
                {"created": "2000-01-01T00:00:00Z", "created_by": "payload"},
            ],
        },
        sort_keys=True,
    ).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = [
        {
            "Config": f"{config_hex}.json",
            "RepoTags": [IMAGE],
            "Layers": [f"{base_hex}.tar", f"{layer_hex}.tar"],
        }
    ]
    small = {f"{config_hex}.json": config, "manifest.json": json.dumps(manifest).encode()}
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        tf.add(base, f"{base_hex}.tar")
        tf.add(layer, f"{layer_hex}.tar")
        for name, data in small.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))


def big_image(directory: Path, size: int, chunks: Iterator[bytes], base: Path) -> Path:
    """``directory/image.tar``: a docker-archive of *base* plus a layer of *size* bytes of
    *chunks* (the payload and the layer tar are written on the way, then removed)."""
    payload = directory / "payload.bin"
    write_payload(payload, size, chunks)
    layer = directory / "layer.tar"
    layer_hex = write_layer(layer, payload)
    payload.unlink()
    archive = directory / "image.tar"
    write_big_image_archive(archive, base, layer, layer_hex)
    layer.unlink()
    return archive


# --------------------------------------------------------------------------------------------
# The benchmark


@dataclasses.dataclass
class Bench:
    workdir: Path
    runs: int
    rows: list[Row] = dataclasses.field(default_factory=list)
    _counter: int = 0

    def fresh(self, kind: str) -> Path:
        self._counter += 1
        path = self.workdir / f"{kind}-{self._counter}"
        path.mkdir(parents=True)
        return path

    def new_podman(self) -> Podman:
        return Podman.create(self.fresh("podman"))

    @staticmethod
    def drop_podman(podman: Podman) -> None:
        podman.cleanup()
        shutil.rmtree(podman.base, ignore_errors=True)

    def row(self, operation: str) -> Row:
        row = Row(operation)
        self.rows.append(row)
        return row

    def measure(
        self,
        operation: str,
        podman_run: Callable[[], Sample],
        aiopod_run: Callable[[], Sample],
    ) -> Row:
        """Alternate podman and aiopod runs (so drift in the machine hits both alike)."""
        row = self.row(operation)
        for _ in range(self.runs):
            row.podman.append(podman_run())
            row.aiopod.append(aiopod_run())
        print(row.format(), flush=True)
        return row

    # (a) load into an empty store, every run

    def bench_load(self, label: str, archive: Path) -> None:
        def podman_run() -> Sample:
            podman = self.new_podman()
            try:
                return timed(podman_cmd(podman, "load", "-q", "-i", archive), podman.env())
            finally:
                self.drop_podman(podman)

        def aiopod_run() -> Sample:
            root = self.fresh("aiopod") / "store"
            try:
                return timed(aiopod_cmd(root, "load", "-i", archive), aiopod_env())
            finally:
                shutil.rmtree(root.parent, ignore_errors=True)

        self.measure(f"load {label}", podman_run, aiopod_run)

    # (b) save from a store that holds the image

    def bench_save(self, label: str, podman: Podman, aiopod_root: Path, fmt: str) -> None:
        def output() -> Path:
            return self.fresh("out") / ("dir" if fmt == "oci-dir" else "archive.tar")

        def podman_run() -> Sample:
            out = output()
            try:
                cmd = podman_cmd(podman, "save", "-q", "--format", fmt, "-o", out, IMAGE)
                sample = timed(cmd, podman.env())
                sample.output_bytes = disk_size(out)
                return sample
            finally:
                shutil.rmtree(out.parent, ignore_errors=True)

        def aiopod_run() -> Sample:
            out = output()
            try:
                cmd = aiopod_cmd(aiopod_root, "save", "--format", fmt, "-o", out, IMAGE)
                sample = timed(cmd, aiopod_env())
                sample.output_bytes = disk_size(out)
                return sample
            finally:
                shutil.rmtree(out.parent, ignore_errors=True)

        self.measure(f"save {fmt} {label}", podman_run, aiopod_run)

    def bench_big_image(self, label: str, size: int, chunks: Iterator[bytes], base: Path) -> None:
        inputs = self.fresh(f"inputs-{label}")
        archive = big_image(inputs, size, chunks, base)

        # The stores the save benchmarks read from, and the archives podman writes.
        podman = self.new_podman()
        aiopod_root = self.fresh("aiopod") / "store"
        try:
            timed(podman_cmd(podman, "load", "-q", "-i", archive), podman.env())
            timed(aiopod_cmd(aiopod_root, "load", "-i", archive), aiopod_env())
            archives = {}
            for fmt in ("docker-archive", "oci-archive"):
                archives[fmt] = inputs / f"podman-{fmt}.tar"
                cmd = podman_cmd(podman, "save", "-q", "--format", fmt, "-o", archives[fmt], IMAGE)
                timed(cmd, podman.env())
            archive.unlink()
            for fmt, path in archives.items():
                self.bench_load(f"{fmt} {label}", path)
            for fmt in ("docker-archive", "oci-archive", "oci-dir"):
                self.bench_save(label, podman, aiopod_root, fmt)
        finally:
            self.drop_podman(podman)
            shutil.rmtree(aiopod_root.parent, ignore_errors=True)
            shutil.rmtree(inputs, ignore_errors=True)

    def bench_command(self, label: str, podman: Podman, aiopod_root: Path, args: list[str]) -> None:
        def podman_run() -> Sample:
            return timed(podman_cmd(podman, *args), podman.env())

        def aiopod_run() -> Sample:
            return timed(aiopod_cmd(aiopod_root, *args), aiopod_env())

        self.measure(label, podman_run, aiopod_run)

    # (c) images on a big store

    def bench_images(self, count: int) -> None:
        inputs = self.fresh("inputs-many")
        archive = inputs / "many.tar"
        images = [
            synthetic_image(
                [f"localhost/many/img{i:05d}:latest"],
                [tar_of_one_file(f"id/{i:05d}", f"image {i}\n".encode())],
            )
            for i in range(count)
        ]
        write_docker_archive(archive, images)
        podman = self.new_podman()
        aiopod_root = self.fresh("aiopod") / "store"
        try:
            row = self.row(f"load {count} one-layer images (once)")
            row.podman.append(timed(podman_cmd(podman, "load", "-q", "-i", archive), podman.env()))
            row.aiopod.append(timed(aiopod_cmd(aiopod_root, "load", "-i", archive), aiopod_env()))
            print(row.format(), flush=True)
            listed = subprocess.run(
                aiopod_cmd(aiopod_root, "images", "-q", "--no-trunc"),
                env=aiopod_env(),
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            if len(set(listed)) != count:
                raise RuntimeError(f"aiopod lists {len(set(listed))} images, expected {count}")
            for args in (["images"], ["images", "--format", "json"]):
                self.bench_command(f"{' '.join(args)} ({count} images)", podman, aiopod_root, args)
        finally:
            self.drop_podman(podman)
            shutil.rmtree(aiopod_root.parent, ignore_errors=True)
            shutil.rmtree(inputs, ignore_errors=True)


def tar_of_one_file(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mtime = 946684800
        tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=200, help="payload layer size")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--images", type=int, default=1000, help="images for the images test")
    parser.add_argument(
        "--only",
        choices=["random", "compressible", "images"],
        action="append",
        help="run only these parts (repeatable; default: all)",
    )
    parser.add_argument("--workdir", type=Path, help="where to put stores (default: a temp dir)")
    args = parser.parse_args(argv)
    if shutil.which("podman") is None:
        parser.error("podman is not installed")
    parts = args.only or ["random", "compressible", "images"]

    workdir = Path(tempfile.mkdtemp(prefix="aiopod-bench-", dir=args.workdir))
    bench = Bench(workdir, args.runs)
    print(
        f"podman vs aiopod — payload {args.size_mib} MiB, {args.images} images, "
        f"median of {args.runs} runs, {os.cpu_count()} CPUs; work dir {workdir}\n"
    )
    print(HEADER, flush=True)
    started = time.perf_counter()
    try:
        base = write_busybox_rootfs(workdir / "base.tar")
        size = args.size_mib * MIB
        if "random" in parts:
            bench.bench_big_image("random", size, random_chunks(), base)
        if "compressible" in parts:
            bench.bench_big_image("compressible", size, compressible_chunks(), base)
        if "images" in parts:
            bench.bench_images(args.images)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\nratio = aiopod / podman (below 1: aiopod is faster); RSS = peak RSS (MiB); "
        f"out = size of what save wrote (MiB); "
        f"total {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
