"""Registry benchmark: aiopod vs podman and skopeo on pull and push against a local registry.

Not part of the test suite (``tests/test_bench_registry.py`` runs ``--quick`` so that it
keeps working). Run from the repository root (as root; podman, skopeo and docker-registry
installed)::

    python benchmarks/bench_registry.py                  # 200 MiB in 10 layers, 3 runs
    python benchmarks/bench_registry.py --quick          # a tiny image, 1 run (seconds)
    python benchmarks/bench_registry.py --only pull --runs 5 --profile

The benchmark starts its own ``docker-registry`` on 127.0.0.1 (``tests/peers.py``'s
``private_registry``; its access log counts the requests), writes an image of ``--size-mib``
MiB in ``--layers`` gzip layers (one file each: random bytes in half of them, system files
from /usr in the other half) as an OCI layout and publishes it with ``skopeo copy``. A
``registries.conf`` (``CONTAINERS_REGISTRIES_CONF``) marks the registry insecure for every
tool. Then, each cell the median wall time of ``--runs`` runs, the tools alternating, every
run into a fresh store (podman: ``--root/--runroot`` under the work dir, vfs); a ``runs:``
line under each row gives every run, and the median CPU time (user + system) of each tool,
which varies less than wall time on a shared machine:

(pull)   ``aiopod pull -q REF`` vs ``podman pull -q REF`` (target ≤ 0.5×) and vs
         ``skopeo copy docker://REF oci:DIR`` (≤ 1.5×; skopeo neither unpacks layers nor
         checks diff_ids);
(floor)  aiopod's pull vs the floor: a Python process that downloads the same blobs with
         one httpx client (6 at a time) and hashes them (sha256), writing nothing (≤ 1.5×);
(re)     ``aiopod pull`` of the image a store already has vs the CLI's start-up
         (``aiopod --version``): ≤ start-up + 50 ms;
(push)   each tool pushes the image it pulled (from its own store) to a new repository of
         the registry (≤ 0.5× podman); and the same image as a build leaves it, with
         uncompressed layers (put into the stores from an uncompressed OCI layout, not
         timed), which both tools must gzip while they push (≤ 0.5× podman);
(fleet)  ``--fleet`` (8) ``aiopod pull``s of the image at once into as many fresh stores:
         the total time and the requests the registry served, against podman's (info).

podman and skopeo run in a private mount namespace whose ``/var/lib/containers/cache`` (their
blob-info cache, as root) is a directory of the store's own (``isolated``): they never touch
the machine's, and a fresh store starts knowing nothing. With ``--profile`` aiopod's pull and push
are cProfiled in-process (``bench_remove.py``'s profiler: worker threads included).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "benchmarks"), str(REPO_ROOT / "tests")]

from bench_remove import (  # noqa: E402
    WIDTHS,
    Result,
    compare,
    fmt_s,
    median,
    print_profile,
    run_checked,
    seconds_list,
    table_line,
    verdict,
)
from bench_store import (  # noqa: E402
    MIB,
    Sample,
    aiopod_cmd,
    compressible_chunks,
    podman_cmd,
    random_chunks,
    timed,
)
from peers import Podman, aiopod_env, private_registry  # noqa: E402

Arg = str | os.PathLike[str]

#: Targets: aiopod's time at most this share of the peer's.
TARGET_PULL_PODMAN, TARGET_PULL_SKOPEO, TARGET_PUSH, TARGET_FLOOR = 0.5, 1.5, 0.5, 1.5
#: Re-pulling a present image may take at most the CLI's start-up plus this.
REPULL_SLACK = 0.050
CONCURRENCY = 6  # the floor's parallel downloads, as aiopod's and podman's default
REPOSITORY = "bench/image"
TAG = "1"
OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
_REQUEST = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) /v2/')


# --------------------------------------------------------------------------------------------
# The image: written as two OCI layouts (gzip layers to publish, uncompressed ones for push)


@dataclasses.dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclasses.dataclass
class Published:
    """The image in the registry: its reference, and the blobs a pull downloads."""

    address: str
    reference: str
    blobs: list[Blob]
    gzip_layout: Path
    plain_layout: Path

    @property
    def total(self) -> int:
        return sum(b.size for b in self.blobs)


def _architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class _BlobWriter:
    """A file under ``blobs/sha256/`` of a layout, named by its digest once complete."""

    def __init__(self, layout: Path) -> None:
        self.dir = layout / "blobs" / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp = self.dir / f".tmp-{os.getpid()}"
        self.out = self.tmp.open("wb")
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        if data:
            self.out.write(data)
            self.hash.update(data)
            self.size += len(data)

    def close(self) -> Blob:
        self.out.close()
        digest = self.hash.hexdigest()
        self.tmp.rename(self.dir / digest)
        return Blob(f"sha256:{digest}", self.size)


def write_blob(layout: Path, data: bytes) -> Blob:
    writer = _BlobWriter(layout)
    writer.write(data)
    return writer.close()


def write_layer(
    gzip_layout: Path, plain_layout: Path, index: int, size: int, chunks: Iterator[bytes]
) -> tuple[Blob, Blob]:
    """One layer holding ``layer-INDEX/data.bin`` of ``size`` bytes from ``chunks``, as a tar
    in *plain_layout* and gzipped (level 1) in *gzip_layout*: (gzip blob, tar blob)."""
    gz, plain = _BlobWriter(gzip_layout), _BlobWriter(plain_layout)
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)

    def emit(data: bytes) -> None:
        plain.write(data)
        gz.write(compressor.compress(data))

    info = tarfile.TarInfo(f"layer-{index}/data.bin")
    info.size, info.mode, info.mtime = size, 0o644, 946684800
    emit(info.tobuf(format=tarfile.PAX_FORMAT))
    remaining = size
    for chunk in chunks:
        piece = chunk[:remaining]
        emit(piece)
        remaining -= len(piece)
        if remaining == 0:
            break
    emit(b"\0" * (-size % tarfile.BLOCKSIZE) + b"\0" * (2 * tarfile.BLOCKSIZE))
    gz.write(compressor.flush())
    return gz.close(), plain.close()


def write_layouts(workdir: Path, size: int, layers: int) -> tuple[Path, Path, list[Blob]]:
    """The image as an OCI layout with gzip layers and one with uncompressed layers (same
    config, so the same image ID); returns both and the gzip layout's blobs (config first)."""
    gzip_layout, plain_layout = workdir / "layout-gzip", workdir / "layout-plain"
    random, compressible = random_chunks(), compressible_chunks()
    gz_layers: list[Blob] = []
    plain_layers: list[Blob] = []
    for i in range(layers):
        layer_size = size // layers + (1 if i < size % layers else 0)
        gz, plain = write_layer(
            gzip_layout, plain_layout, i, layer_size, random if i % 2 == 0 else compressible
        )
        gz_layers.append(gz)
        plain_layers.append(plain)
    config = json.dumps(
        {
            "architecture": _architecture(),
            "os": "linux",
            "created": "2000-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [b.digest for b in plain_layers]},
            "history": [{"created_by": f"bench layer {i}"} for i in range(layers)],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    for layout, layer_blobs, media_type in (
        (gzip_layout, gz_layers, OCI_GZIP),
        (plain_layout, plain_layers, OCI_TAR),
    ):
        config_blob = write_blob(layout, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_blob.digest,
                    "size": config_blob.size,
                },
                "layers": [
                    {"mediaType": media_type, "digest": b.digest, "size": b.size}
                    for b in layer_blobs
                ],
            },
            separators=(",", ":"),
        ).encode()
        manifest_blob = write_blob(layout, manifest)
        (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (layout / "index.json").write_text(
            json.dumps(
                {
                    "schemaVersion": 2,
                    "manifests": [
                        {
                            "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": manifest_blob.digest,
                            "size": manifest_blob.size,
                            "annotations": {"org.opencontainers.image.ref.name": "bench"},
                        }
                    ],
                }
            )
        )
    return gzip_layout, plain_layout, [Blob(*_config_of(gzip_layout)), *gz_layers]


def _config_of(layout: Path) -> tuple[str, int]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    config = json.loads((layout / "blobs" / "sha256" / digest).read_bytes())["config"]
    return config["digest"], config["size"]


# --------------------------------------------------------------------------------------------
# The floor: one httpx client downloading and hashing the blobs (a worker subprocess)


async def floor_download(url: str, blobs: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """Download *blobs* from ``URL/blobs/DIGEST``, :data:`CONCURRENCY` at a time, hashing
    each; check digest and size. Returns the seconds it took and the bytes."""
    import httpx

    limiter = anyio.CapacityLimiter(CONCURRENCY)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=300) as client:

        async def one(digest: str, size: int) -> None:
            async with limiter:
                sha = hashlib.sha256()
                count = 0
                async with client.stream("GET", f"{url}/blobs/{digest}") as response:
                    response.raise_for_status()
                    async for chunk in response.aiter_raw():
                        sha.update(chunk)
                        count += len(chunk)
                if f"sha256:{sha.hexdigest()}" != digest or count != size:
                    raise RuntimeError(f"the floor downloaded something else for {digest}")

        async with anyio.create_task_group() as group:
            for digest, size in blobs:
                group.start_soon(one, digest, size)
    return {"seconds": time.perf_counter() - started, "bytes": sum(s for _, s in blobs)}


def floor_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--floor-worker", required=True, help="http://HOST/v2/NAME")
    parser.add_argument("blobs", nargs="+", help="DIGEST:SIZE")
    args = parser.parse_args(argv)
    blobs = [(b.rsplit(":", 1)[0], int(b.rsplit(":", 1)[1])) for b in args.blobs]
    print(json.dumps(anyio.run(floor_download, args.floor_worker, blobs)))
    return 0


# --------------------------------------------------------------------------------------------
# The benchmark


def table_header() -> str:
    rule = "|" + "|".join("-" * (w + 2) for w in WIDTHS) + "|"
    columns = ["", "operation", "peer", "aiopod", "ratio", "target", ""]
    return f"{table_line(columns)}\n{rule}"


def isolated(cache: Path, *cmd: Arg) -> list[Arg]:
    """*cmd* in a private mount namespace where ``/var/lib/containers/cache`` (where
    containers/image keeps its blob-info cache as root) is the directory *cache*: podman
    and skopeo then never read or write the machine's cache, and a fresh store starts
    with an empty one. (``/var/lib/containers``, else ``/var/lib``, is shadowed by an
    empty tmpfs first.)"""
    shadow = "/var/lib/containers" if os.path.isdir("/var/lib/containers") else "/var/lib"
    script = (
        'mount -t tmpfs tmpfs "$0" && mkdir -p /var/lib/containers/cache && '
        'mount --bind "$1" /var/lib/containers/cache && shift && exec "$@"'
    )
    cache.mkdir(parents=True, exist_ok=True)
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, shadow, cache, *cmd]


@dataclasses.dataclass
class Bench:
    workdir: Path
    runs: int
    profile: bool
    registries_conf: Path
    log: Path
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

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(base if base is not None else os.environ)
        env["CONTAINERS_REGISTRIES_CONF"] = str(self.registries_conf)
        return env

    def requests(self) -> int:
        """Requests the registry has logged so far."""
        with self.log.open(errors="replace") as f:
            return sum(1 for line in f if _REQUEST.search(line))

    # -- the tools ---------------------------------------------------------------------------

    def new_podman(self, kind: str) -> Podman:
        return Podman.create(self.fresh(f"podman-{kind}"))

    def podman(self, podman: Podman, *args: Arg) -> Sample:
        return timed(self.podman_cmd(podman, *args), self.env(podman.env()))

    def podman_cmd(self, podman: Podman, *args: Arg) -> list[Arg]:
        """podman on its own store, with its own blob-info cache (``cache`` beside it)."""
        return isolated(podman.base / "cache", *podman_cmd(podman, *args))

    def skopeo_cmd(self, cache: Path, *args: Arg) -> list[Arg]:
        """skopeo, its blob-info cache in *cache* (it reads ``--registries-conf``, not
        ``CONTAINERS_REGISTRIES_CONF``)."""
        conf: list[Arg] = ["--registries-conf", self.registries_conf]
        return isolated(cache, "skopeo", "--insecure-policy", *conf, *args)

    def aiopod(self, root: Path, command: str, *args: Arg) -> Sample:
        return timed(self.aiopod_cmd(root, command, *args), self.env(aiopod_env()))

    def aiopod_cmd(self, root: Path, command: str, *args: Arg) -> list[Arg]:
        """``aiopod --root ROOT COMMAND --tls-verify=false ARGS`` (aiopod's pull and push
        let the flag's default override ``registries.conf``'s ``insecure``)."""
        return aiopod_cmd(root, command, "--tls-verify=false", *args)

    def drop_podman(self, podman: Podman) -> None:
        podman.cleanup()
        shutil.rmtree(podman.base, ignore_errors=True)

    def alternate(self, *tools: Callable[[], Sample]) -> list[list[Sample]]:
        """``runs`` runs of each tool, alternating (drift in the machine hits all alike)."""
        samples: list[list[Sample]] = [[] for _ in tools]
        for _ in range(self.runs):
            for i, tool in enumerate(tools):
                samples[i].append(tool())
        return samples

    def runs_note(self, **samples: list[Sample]) -> None:
        parts = [
            f"{name} {seconds_list([s.seconds for s in runs])} (CPU "
            f"{median([s.cpu_seconds for s in runs]):.2f} s, peak RSS "
            f"{max(s.max_rss_kib for s in runs) / 1024:.0f} MiB)"
            for name, runs in samples.items()
        ]
        self.note("runs: " + "; ".join(parts))

    def row(
        self, part: str, operation: str, peer: float, aiopod: float, target: float, of: str
    ) -> Result:
        return self.add(compare(part, operation, peer, aiopod, target, of))

    # -- pull --------------------------------------------------------------------------------

    def bench_pull(self, image: Published) -> tuple[float, float]:
        """(pull) and (floor); returns aiopod's median and its requests per pull."""
        ref = image.reference
        aiopod_requests: list[int] = []

        def aiopod_run() -> Sample:
            root = self.fresh("aiopod-pull") / "store"
            before = self.requests()
            try:
                return self.aiopod(root, "pull", "-q", ref)
            finally:
                aiopod_requests.append(self.requests() - before)
                shutil.rmtree(root.parent, ignore_errors=True)

        def podman_run() -> Sample:
            podman = self.new_podman("pull")
            try:
                return self.podman(podman, "pull", "-q", ref)
            finally:
                self.drop_podman(podman)

        def skopeo_run() -> Sample:
            out = self.fresh("skopeo-pull")
            try:
                layout = f"oci:{out / 'layout'}:bench"
                cmd = self.skopeo_cmd(out / "cache", "copy", "-q", f"docker://{ref}", layout)
                return timed(cmd, self.env())
            finally:
                shutil.rmtree(out, ignore_errors=True)

        def floor_run() -> Sample:
            url = f"http://{image.address}/v2/{REPOSITORY}"
            blobs = [f"{b.digest}:{b.size}" for b in image.blobs]
            cmd: list[Arg] = [sys.executable, __file__, "--floor-worker", url, *blobs]
            return timed(cmd, self.env(aiopod_env()))

        a, p, s, f = self.alternate(aiopod_run, podman_run, skopeo_run, floor_run)
        am, pm, sm, fm = (median([x.seconds for x in runs]) for runs in (a, p, s, f))
        size = f"{image.total / MIB:.0f} MiB"
        self.row("(a)", f"pull {size}, fresh store, vs podman pull", pm, am,
                 TARGET_PULL_PODMAN, "podman")  # fmt: skip
        self.row("(a)", f"pull {size}, fresh store, vs skopeo copy to oci:", sm, am,
                 TARGET_PULL_SKOPEO, "skopeo")  # fmt: skip
        self.row("(b)", "pull vs the floor (httpx download + sha256)", fm, am,
                 TARGET_FLOOR, "floor")  # fmt: skip
        self.runs_note(aiopod=a, podman=p, skopeo=s, floor=f)
        self.note(
            f"throughput: aiopod {image.total / MIB / am:.0f} MiB/s, podman "
            f"{image.total / MIB / pm:.0f}, skopeo {image.total / MIB / sm:.0f}, floor "
            f"{image.total / MIB / fm:.0f}; registry requests per aiopod pull: "
            f"{seconds_list(aiopod_requests).replace('.000', '')}"
        )
        if self.profile:
            root = self.fresh("aiopod-profile") / "store"
            args = ["pull", "--tls-verify=false", "-q", ref]
            self.profile_cli(root, args, "aiopod pull (fresh store)")
        return am, median([float(n) for n in aiopod_requests])

    def bench_repull(self, image: Published) -> None:
        root = self.fresh("aiopod-repull") / "store"
        podman = self.new_podman("repull")
        try:
            self.aiopod(root, "pull", "-q", image.reference)
            self.podman(podman, "pull", "-q", image.reference)
            a, s, i, p = self.alternate(
                lambda: self.aiopod(root, "pull", "-q", image.reference),
                lambda: timed([sys.executable, "-m", "aiopod", "--version"], aiopod_env()),
                lambda: timed(aiopod_cmd(root, "images", "-q"), aiopod_env()),
                lambda: self.podman(podman, "pull", "-q", image.reference),
            )
            am, sm, im, pm = (median([x.seconds for x in runs]) for runs in (a, s, i, p))
            for startup, what, target in (
                (sm, "aiopod --version", True),
                (im, "aiopod images -q (info)", False),
            ):
                self.add(
                    Result(
                        "(c)",
                        f"re-pull of a present image vs {what}",
                        fmt_s(startup),
                        fmt_s(am),
                        f"{1000 * (am - startup):+.0f}ms",
                        f"≤ start-up + {1000 * REPULL_SLACK:.0f} ms" if target else "",
                        verdict(am <= startup + REPULL_SLACK) if target else "",
                    )
                )
            self.runs_note(aiopod=a, version=s, images=i, podman_repull=p)
            self.note(f"podman's re-pull: {pm:.3f} s (aiopod / podman {am / pm:.2f})")
        finally:
            shutil.rmtree(root.parent, ignore_errors=True)
            self.drop_podman(podman)

    # -- push --------------------------------------------------------------------------------

    def bench_push(self, image: Published, label: str, source: str, ref: str) -> None:
        """Each tool, in a fresh store that got the image from *source* (setup, not timed),
        pushes it (*ref*) to a new repository. Fresh stores each run: a store that pushed
        an image once knows where its blobs are (podman's blob-info cache) and mounts them
        the next time."""
        pushes = iter(range(1, 1000))
        slug = re.sub(r"[^a-z0-9]+", "-", label).strip("-")

        def destination(tool: str) -> str:
            return f"{image.address}/bench/push-{tool}-{slug}-{next(pushes)}:{TAG}"

        def aiopod_run() -> Sample:
            root = self.fresh("aiopod-push") / "store"
            try:
                self.aiopod(root, "pull", "-q", source)  # oci: ignores --tls-verify
                return self.aiopod(root, "push", ref, destination("aiopod"))
            finally:
                shutil.rmtree(root.parent, ignore_errors=True)

        def podman_run() -> Sample:
            podman = self.new_podman("push")
            try:
                self.podman(podman, "pull", "-q", source)
                return self.podman(podman, "push", ref, destination("podman"))
            finally:
                self.drop_podman(podman)

        a, p = self.alternate(aiopod_run, podman_run)
        am, pm = median([x.seconds for x in a]), median([x.seconds for x in p])
        self.row("(d)", f"push of {label} to a new repository", pm, am, TARGET_PUSH,
                 "podman")  # fmt: skip
        self.runs_note(aiopod=a, podman=p)
        if self.profile:
            root = self.fresh("aiopod-profile") / "store"
            self.aiopod(root, "pull", "-q", source)
            args = ["push", "--tls-verify=false", ref, destination("aiopod")]
            self.profile_cli(root, args, f"aiopod push of {label}")

    # -- the fleet ---------------------------------------------------------------------------

    def bench_fleet(self, image: Published, count: int, single_requests: float) -> None:
        def fleet(cmds: Sequence[tuple[list[Arg], dict[str, str]]]) -> tuple[float, int]:
            before = self.requests()
            started = time.perf_counter()
            procs = [
                subprocess.Popen(
                    [os.fspath(c) for c in cmd],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    env=env,
                )
                for cmd, env in cmds
            ]
            failed = [p.communicate()[1] for p in procs if p.wait() != 0]
            elapsed = time.perf_counter() - started
            if failed:
                raise RuntimeError(f"{len(failed)} of {count} pulls failed: {failed[0][-2000:]!r}")
            return elapsed, self.requests() - before

        def aiopod_fleet() -> tuple[float, int]:
            roots = [self.fresh("aiopod-fleet") / "store" for _ in range(count)]
            try:
                cmds = [(self.aiopod_cmd(r, "pull", "-q", image.reference), self.env(aiopod_env()))
                        for r in roots]  # fmt: skip
                return fleet(cmds)
            finally:
                for root in roots:
                    shutil.rmtree(root.parent, ignore_errors=True)

        def podman_fleet() -> tuple[float, int]:
            stores = [self.new_podman("fleet") for _ in range(count)]
            try:
                cmds = [(self.podman_cmd(p, "pull", "-q", image.reference), self.env(p.env()))
                        for p in stores]  # fmt: skip
                return fleet(cmds)
            finally:
                for podman in stores:
                    self.drop_podman(podman)

        a: list[tuple[float, int]] = []
        p: list[tuple[float, int]] = []
        for _ in range(self.runs):
            a.append(aiopod_fleet())
            p.append(podman_fleet())
        am, pm = median([x[0] for x in a]), median([x[0] for x in p])
        self.add(
            Result(
                "(e)",
                f"{count} pulls at once into {count} fresh stores (info)",
                fmt_s(pm),
                fmt_s(am),
                f"{am / pm:.3f}",
            )
        )
        self.note(
            f"runs: aiopod {seconds_list([x[0] for x in a])}, podman "
            f"{seconds_list([x[0] for x in p])}; registry requests: aiopod "
            f"{[x[1] for x in a]} ({single_requests:.0f} for one pull), podman "
            f"{[x[1] for x in p]}; {count * image.total / MIB:.0f} MiB served each time, "
            f"aiopod {count * image.total / MIB / am:.0f} MiB/s"
        )

    # -- profiles ----------------------------------------------------------------------------

    def profile_cli(self, root: Path, args: Sequence[str], label: str) -> None:
        """cProfile one aiopod command in-process (``bench_remove.py --profile-cli``)."""
        out = self.fresh("profile") / "cli.prof"
        worker = REPO_ROOT / "benchmarks" / "bench_remove.py"
        cmd: list[Arg] = [sys.executable, worker, "--profile-cli", root, "--profile", out]
        run_checked([*cmd, "--", *args], self.env(aiopod_env()))
        print_profile(out, label)
        print(f"\n{table_header()}", flush=True)


def publish(bench: Bench, address: str, size: int, layers: int) -> Published:
    started = time.perf_counter()
    inputs = bench.fresh("inputs")
    gzip_layout, plain_layout, blobs = write_layouts(inputs, size, layers)
    reference = f"{address}/{REPOSITORY}:{TAG}"
    cmd = bench.skopeo_cmd(inputs / "cache", "copy", "-q", f"oci:{gzip_layout}:bench",
                           f"docker://{reference}")  # fmt: skip
    run_checked(cmd, bench.env())
    image = Published(address, reference, blobs, gzip_layout, plain_layout)
    bench.note(
        f"setup (not timed): {layers} layers, {size / MIB:.0f} MiB of content, "
        f"{image.total / MIB:.1f} MiB gzipped, written and published with skopeo in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return image


def versions() -> str:
    found = []
    for cmd in (["podman", "--version"], ["skopeo", "--version"]):
        found.append(run_checked(cmd).strip())
    found.append("docker-registry " + run_checked(["docker-registry", "--version"]).split()[-1])
    return ", ".join(found)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--floor-worker"]:
        return floor_main(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--size-mib", type=int, default=200, help="the image's content")
    parser.add_argument("--layers", type=int, default=10, help="the image's layers")
    parser.add_argument("--fleet", type=int, default=8, help="concurrent pulls of (fleet)")
    parser.add_argument("--quick", action="store_true", help="4 MiB, 4 layers, 1 run, fleet 2")
    parser.add_argument("--only", choices=["pull", "re", "push", "fleet"], action="append")
    parser.add_argument("--profile", action="store_true", help="cProfile aiopod's pull/push")
    parser.add_argument("--workdir", type=Path, help="where to put stores (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.size_mib, args.layers, args.fleet = 1, 4, 4, 2
    for tool in ("podman", "skopeo", "docker-registry", "unshare"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    parts = args.only or ["pull", "re", "push", "fleet"]

    # Lower-case hex only: aiopod and podman name an image pulled from oci:PATH after PATH.
    parent = Path(args.workdir or tempfile.gettempdir())
    workdir = parent / f"aiopod-bench-registry-{os.urandom(4).hex()}"
    workdir.mkdir(parents=True)
    started = time.perf_counter()
    try:
        log = workdir / "registry.log"
        with private_registry(log) as address:
            conf = workdir / "registries.conf"
            conf.write_text(f'[[registry]]\nlocation = "{address}"\ninsecure = true\n')
            bench = Bench(workdir, args.runs, args.profile, conf, log)
            print(
                f"podman, skopeo vs aiopod, registry: {args.size_mib} MiB in {args.layers} "
                f"layers, median of {args.runs} runs, {os.cpu_count()} CPUs; {versions()}; "
                f"work dir {workdir}\n"
            )
            print(table_header(), flush=True)
            image = publish(bench, address, args.size_mib * MIB, args.layers)
            single = 0.0
            if "pull" in parts:
                _, single = bench.bench_pull(image)
            if "re" in parts:
                bench.bench_repull(image)
            if "push" in parts:
                image_id = image.blobs[0].digest.removeprefix("sha256:")
                bench.bench_push(image, "a pulled image", image.reference, image_id)
                plain = f"oci:{image.plain_layout}:bench"
                bench.bench_push(image, "uncompressed layers (as built)", plain, image_id)
            if "fleet" in parts:
                bench.bench_fleet(image, args.fleet, single)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{table_header()}")
    for result in bench.results:
        print(table_line(result.cells()))
    print(
        f"\nratio = aiopod / peer (below 1: aiopod is faster); re-pull: aiopod's time minus "
        f"the start-up; total {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
