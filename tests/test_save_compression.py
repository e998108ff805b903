"""``save`` with compression (``rt.save(compression=...)``, ``save --compress`` and
``--compression-format``): the uncompressed layers of an oci-archive or an oci-dir are
written compressed, the compressed ones as they are, the manifests say so, and the
images keep their IDs wherever the output is loaded: in aiopod, in podman and through
skopeo."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import anyio
import pytest
import zstandard
from conftest import store_of
from imagefactory import (
    DOCKER_CONFIG,
    OCI_LAYER_GZIP,
    child_image,
    compress,
    make_image,
    oci_layout_members,
    write_docker_archive,
    write_oci_archive,
    write_tar,
)
from peers import Podman, Tool, aiopod_env

from aiopod import (
    BlobDone,
    BlobProgress,
    BlobStarted,
    Event,
    EventKind,
    Runtime,
    SaveCompression,
    SaveFormat,
    UsageError,
)
from aiopod.transports import mediatypes as mt
from aiopod.transports.layer_compression import compress_blob
from aiopod.transports.oci_layout import write_oci_layout

pytestmark = pytest.mark.anyio

# Layers of some size, compressible (so that compression shows) and not all zeros.
BASE = make_image(
    "localhost/base:1",
    seed="compress-base",
    layers=[{"usr/lib/big": b"".join(b"line %d of the base\n" % i for i in range(60_000))}],
)
APP = child_image(BASE, "localhost/app:1", files={"app/data": os.urandom(1 << 16) * 8})
GZIPPED = make_image("localhost/gz:1", seed="already-gzipped")

KINDS: list[SaveCompression] = ["gzip", "zstd"]
OCI_FORMATS: list[SaveFormat] = ["oci-archive", "oci-dir"]


def output(tmp_path: Path, fmt: str, name: str = "out") -> Path:
    return tmp_path / (name if fmt == "oci-dir" else f"{name}.tar")


def layout_files(path: Path) -> dict[str, bytes]:
    """The files of an oci-archive or an OCI layout directory."""
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    with tarfile.open(path) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def uncompressed(data: bytes) -> bytes:
    if data.startswith(b"\x1f\x8b"):
        return gzip.decompress(data)
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifests(path: Path) -> dict[str, dict[str, Any]]:
    """{name: manifest} of a layout, every blob checked against its descriptor."""
    files = layout_files(path)
    result = {}
    for desc in json.loads(files["index.json"])["manifests"]:
        data = files["blobs/sha256/" + desc["digest"][7:]]
        assert digest(data) == desc["digest"] and len(data) == desc["size"]
        doc = json.loads(data)
        assert doc["mediaType"] == desc["mediaType"]
        for blob in [doc["config"], *doc["layers"]]:
            content = files["blobs/sha256/" + blob["digest"][7:]]
            assert digest(content) == blob["digest"] and len(content) == blob["size"]
        result[desc["annotations"]["org.opencontainers.image.ref.name"]] = doc
    return result


def layer_blobs(path: Path, doc: dict[str, Any]) -> list[bytes]:
    files = layout_files(path)
    return [files["blobs/sha256/" + layer["digest"][7:]] for layer in doc["layers"]]


async def load_all(rt: Runtime, tmp_path: Path) -> None:
    """BASE and APP (stored uncompressed, from a docker-archive) and GZIPPED (stored
    gzip-compressed, from an oci-archive)."""
    await rt.load(write_docker_archive(tmp_path / "in.tar", [BASE, APP]))
    await rt.load(write_oci_archive(tmp_path / "gz.tar", [GZIPPED], compression="gzip"))


@pytest.mark.parametrize("fmt", OCI_FORMATS)
@pytest.mark.parametrize("kind", KINDS)
async def test_uncompressed_layers_are_compressed_and_compressed_ones_kept(
    tmp_path: Path, kind: Any, fmt: Any
) -> None:
    out = output(tmp_path, fmt)
    async with Runtime(tmp_path / "store") as rt:
        await load_all(rt, tmp_path)
        await rt.save(out, ["app:1", "gz:1"], format=fmt, compression=kind)

    docs = manifests(out)
    app = docs["localhost/app:1"]
    assert app["config"]["digest"] == APP.config_digest  # the image ID is unchanged
    assert [layer["mediaType"] for layer in app["layers"]] == [mt.oci_layer_type(kind)] * 2
    blobs = layer_blobs(out, app)
    assert [digest(uncompressed(b)) for b in blobs] == list(APP.diff_ids)
    assert all(len(b) < len(layer) for b, layer in zip(blobs, APP.layers, strict=True))
    gz = docs["localhost/gz:1"]
    assert [layer["mediaType"] for layer in gz["layers"]] == [OCI_LAYER_GZIP]
    stored_gz = [digest(compress(layer, "gzip")) for layer in GZIPPED.layers]
    assert [layer["digest"] for layer in gz["layers"]] == stored_gz  # as stored

    async with Runtime(tmp_path / "again") as rt:
        loaded = await rt.load(out)
        assert {image.id for image in loaded} == {APP.id, GZIPPED.id}
        assert (await rt.check()).ok


async def test_without_compression_layers_are_written_as_stored(tmp_path: Path) -> None:
    out = tmp_path / "out.tar"
    async with Runtime(tmp_path / "store") as rt:
        await load_all(rt, tmp_path)
        await rt.save(out, ["app:1"], format="oci-archive")
    doc = manifests(out)["localhost/app:1"]
    assert [layer["digest"] for layer in doc["layers"]] == list(APP.diff_ids)  # as stored
    assert [digest(b) for b in layer_blobs(out, doc)] == list(APP.diff_ids)


async def test_a_compressed_save_is_reproducible_whatever_the_threads(tmp_path: Path) -> None:
    async with Runtime(tmp_path / "store") as rt:
        await load_all(rt, tmp_path)
        for name in ("one", "two"):
            await rt.save(
                tmp_path / f"{name}.tar", ["app:1"], format="oci-archive", compression="gzip"
            )
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()

    source = tmp_path / "layer.tar"
    source.write_bytes(APP.layers[0] * 20)
    for kind in KINDS:
        written = set()
        for threads in (1, 2, 4):
            target = tmp_path / f"{kind}-{threads}"
            written.add(compress_blob(source, kind, target, threads=threads))
            assert uncompressed(target.read_bytes()) == source.read_bytes()
        assert len(written) == 1, kind


async def test_a_docker_manifest_stays_docker_for_gzip_and_becomes_oci_for_zstd(
    tmp_path: Path,
) -> None:
    def docker_manifest(doc: dict[str, Any]) -> None:
        doc["mediaType"] = mt.DOCKER_MANIFEST
        doc["config"]["mediaType"] = DOCKER_CONFIG
        for layer in doc["layers"]:
            layer["mediaType"] = mt.DOCKER_LAYER_TAR

    def docker_index(doc: dict[str, Any]) -> None:
        for desc in doc["manifests"]:
            desc["mediaType"] = mt.DOCKER_MANIFEST

    members = oci_layout_members(
        [BASE], compression="none", manifest_hook=docker_manifest, index_hook=docker_index
    )
    async with Runtime(tmp_path / "store") as rt:
        await rt.load(write_tar(tmp_path / "in.tar", members))
        for kind in KINDS:
            await rt.save(
                tmp_path / f"{kind}.tar", ["base:1"], format="oci-archive", compression=kind
            )
    gz = manifests(tmp_path / "gzip.tar")["localhost/base:1"]
    assert gz["mediaType"] == mt.DOCKER_MANIFEST
    assert gz["config"]["mediaType"] == DOCKER_CONFIG
    assert [layer["mediaType"] for layer in gz["layers"]] == [mt.DOCKER_LAYER_GZIP]
    zst = manifests(tmp_path / "zstd.tar")["localhost/base:1"]
    assert zst["mediaType"] == mt.OCI_MANIFEST
    assert zst["config"] == {**gz["config"], "mediaType": mt.OCI_CONFIG}
    assert [layer["mediaType"] for layer in zst["layers"]] == [mt.OCI_LAYER_ZSTD]
    async with Runtime(tmp_path / "again") as rt:
        for kind in KINDS:
            [image] = await rt.load(tmp_path / f"{kind}.tar")
            assert image.id == BASE.id


async def test_compression_is_refused_for_a_docker_archive_and_unknown_kinds(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.tar"
    async with Runtime(tmp_path / "store") as rt:
        await load_all(rt, tmp_path)
        with pytest.raises(UsageError, match="docker-archive holds uncompressed layers"):
            await rt.save(out, ["app:1"], format="docker-archive", compression="gzip")
        with pytest.raises(UsageError, match="unknown compression 'lz4'"):
            await rt.save(out, ["app:1"], format="oci-archive", compression="lz4")  # type: ignore[arg-type]
    assert sorted(os.listdir(tmp_path)) == ["gz.tar", "in.tar", "store"]


async def test_the_records_name_the_stored_blobs(tmp_path: Path) -> None:
    records: list[Any] = []
    async with Runtime(tmp_path / "store") as rt:
        await load_all(rt, tmp_path)
        await rt.save(
            tmp_path / "out.tar",
            ["app:1"],
            format="oci-archive",
            compression="zstd",
            progress=records.append,
        )
    started = [r.digest for r in records if isinstance(r, BlobStarted)]
    assert started == [APP.config_digest, *APP.diff_ids]  # stored uncompressed
    assert [r.digest for r in records if isinstance(r, BlobDone)] == started
    for record in records:
        if isinstance(record, BlobProgress):
            assert record.digest in started and 0 < record.done <= record.total


@pytest.mark.parametrize("archive", [True, False])
def test_a_failed_compressed_save_leaves_nothing_behind(tmp_path: Path, archive: bool) -> None:
    """The writer, stopped by an error while it compresses (as a cancellation stops it,
    at its next chunk), leaves neither the output nor a staged layer."""
    state = anyio.run(_loaded_state, tmp_path)
    images = [(state.images[APP.id], ["localhost/app:1"])]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / ("out.tar" if archive else "layout")

    def refuse(record: object) -> None:
        if isinstance(record, BlobProgress) and record.digest == APP.diff_ids[1]:
            raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        write_oci_layout(
            target,
            images,
            lambda d: tmp_path / "store" / "blobs" / "sha256" / d.removeprefix("sha256:"),
            archive=archive,
            report=refuse,
            compression="gzip",
        )
    leftovers = [p.name for p in out_dir.rglob("*") if ".aiopod-" in p.name or p.name == "out.tar"]
    assert leftovers == []


async def _loaded_state(tmp_path: Path) -> Any:
    async with Runtime(tmp_path / "store") as rt:
        await load_all(rt, tmp_path)
        return await store_of(rt).snapshot()


async def test_a_read_only_store_saves_compressed_and_records_the_compression(
    tmp_path: Path,
) -> None:
    """Compressing stages nothing in the store: a read-only store saves too; a writable
    one's Saved events name the compression."""
    root = tmp_path / "store"
    async with Runtime(root) as rt:
        await load_all(rt, tmp_path)
        async with rt.events.subscribe(kinds=[EventKind.SAVED]) as events:
            await rt.save(tmp_path / "rw.tar", ["app:1"], format="oci-archive", compression="zstd")
            event = await events.receive()
        assert isinstance(event, Event)
        assert event.attributes["compression"] == "zstd"
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    async with Runtime(root, read_only=True) as rt:
        assert rt.read_only
        await rt.save(tmp_path / "ro", ["app:1"], format="oci-dir", compression="gzip")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    [doc] = manifests(tmp_path / "ro").values()
    assert doc["config"]["digest"] == APP.config_digest


# -- the command line ---------------------------------------------------------------------


def ours(root: Path, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "aiopod", "--root", str(root), *map(str, args)]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=aiopod_env(), timeout=120, check=False
    )


def test_the_command_line_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert (
        ours(root, "load", "-i", write_docker_archive(tmp_path / "in.tar", [BASE])).returncode == 0
    )
    out = tmp_path / "out.tar"
    for args, message in [
        (["--compress"], "--compress can only be set when --format is oci-archive or oci-dir"),
        (["--format", "oci-archive", "--compression-format", "lz4"], "unsupported compression"),
        (
            ["--format", "oci-archive", "--compress", "--uncompressed"],
            "cannot be used with --uncompressed",
        ),
    ]:
        proc = ours(root, "save", *args, "-o", out, "base:1")
        assert proc.returncode == 125, proc.stderr
        assert proc.stderr.startswith("Error: ") and message in proc.stderr, proc.stderr
        assert not out.exists()
    proc = ours(root, "save", "--format", "oci-archive", "--uncompressed", "-o", out, "base:1")
    assert proc.returncode == 0, proc.stderr


def test_save_to_standard_output_compresses_too(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert (
        ours(root, "load", "-i", write_docker_archive(tmp_path / "in.tar", [BASE])).returncode == 0
    )
    out = tmp_path / "piped.tar"
    with out.open("wb") as stdout:
        cmd = [sys.executable, "-m", "aiopod", "--root", str(root), "save", "-q", "--compress"]
        proc = subprocess.run(
            [*cmd, "--format", "oci-archive", "base:1"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=aiopod_env(),
            timeout=120,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    [doc] = manifests(out).values()
    assert [layer["mediaType"] for layer in doc["layers"]] == [mt.OCI_LAYER_GZIP]


# -- peers read what aiopod wrote ---------------------------------------------------------


def image_from_podman(tmp_path: Path, podman: Podman) -> tuple[Path, str]:
    """An image podman made (``podman import``) and saved as a docker-archive, and its ID."""
    rootfs = tmp_path / "rootfs.tar"
    write_tar(rootfs, {"etc/data": b"".join(b"row %d\n" % i for i in range(100_000))})
    podman("import", rootfs, "localhost/peer:1")
    archive = tmp_path / "peer.tar"
    podman("save", "-q", "-o", archive, "localhost/peer:1")
    return archive, podman.image_id("localhost/peer:1")


@pytest.mark.peer("podman", "skopeo")
@pytest.mark.parametrize("kind", KINDS)
def test_podman_and_skopeo_load_a_compressed_save_with_the_same_id(
    tmp_path: Path, kind: str, skopeo: Tool
) -> None:
    source = Podman.create(tmp_path / "source")
    target = Podman.create(tmp_path / "target")
    try:
        archive, image_id = image_from_podman(tmp_path, source)
        root = tmp_path / "store"
        assert ours(root, "load", "-i", archive).returncode == 0
        for fmt in OCI_FORMATS:
            out = output(tmp_path, fmt, f"{kind}-{fmt}")
            flags = ["--compress"] if kind == "gzip" else ["--compression-format", kind]
            proc = ours(root, "save", *flags, "--format", fmt, "-o", out, "localhost/peer:1")
            assert proc.returncode == 0, proc.stderr
            [doc] = manifests(out).values()
            assert [layer["mediaType"] for layer in doc["layers"]] == [mt.oci_layer_type(kind)]

            target("rmi", "-a", "-f")
            target("load", "-q", "-i", out)
            assert list(target.images()) == [image_id], fmt

            transport = "oci" if fmt == "oci-dir" else "oci-archive"
            copied = target.storage_ref("localhost/copied:1")
            skopeo("--insecure-policy", "copy", "-q", f"{transport}:{out}", copied)
            assert target.image_id("localhost/copied:1") == image_id, fmt
            assert list(target.images()) == [image_id], fmt
            config = json.loads(skopeo("inspect", "--config", f"{transport}:{out}").stdout)
            assert config["rootfs"]["diff_ids"] == json.loads(
                target("image", "inspect", "--format", "{{json .RootFS.Layers}}", image_id).stdout
            )

            again = tmp_path / f"again-{kind}-{fmt}"
            proc = ours(again, "load", "-i", out)
            assert proc.returncode == 0, proc.stderr
            proc = ours(again, "images", "--no-trunc", "-q")
            assert proc.stdout.split() == ["sha256:" + image_id], fmt
    finally:
        source.cleanup()
        target.cleanup()


@pytest.mark.peer("podman")
def test_podman_refuses_compress_outside_docker_dir_as_aiopod_does_for_docker_archive(
    tmp_path: Path,
) -> None:
    """podman's ``--compress`` is for docker-dir only (aiopod has no docker-dir): both
    refuse it for a docker-archive, with exit code 125."""
    podman = Podman.create(tmp_path / "podman")
    try:
        archive, _ = image_from_podman(tmp_path, podman)
        theirs = podman("save", "--compress", "-o", tmp_path / "x.tar", "peer:1", check=False)
        assert theirs.returncode == 125
        assert "--compress can only be set when --format is" in theirs.stderr
        root = tmp_path / "store"
        assert ours(root, "load", "-i", archive).returncode == 0
        mine = ours(root, "save", "--compress", "-o", tmp_path / "y.tar", "peer:1")
        assert mine.returncode == theirs.returncode
        assert "--compress can only be set when --format is" in mine.stderr
    finally:
        podman.cleanup()
