"""Pushing from the store, read back by skopeo and podman.

* an image loaded from a docker-archive (uncompressed layers) is pushed with its layers
  gzip-compressed, podman's default: ``skopeo inspect`` sees the digest push returned and
  ``podman pull`` of the result gives the same image ID; the command line prints podman's
  lines for the same push;
* ``--compression-format zstd`` pushes zstd layers that pull back to the same image;
* a pulled image (compressed layers) is pushed byte for byte: the same manifest digest;
* a second push uploads nothing the destination has; ``--digestfile``; ``Pushed`` events.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from peers import (
    Podman,
    Tool,
    aiopod_ok,
    directory,
    file,
    synthetic_image,
    write_docker_archive,
    write_oci_layout,
)

from aiopod import Event, EventKind, Runtime
from aiopod.transports import mediatypes as mt
from registry.store_fixtures import blob_files, layout_manifest, watch

pytestmark = pytest.mark.anyio

NAME = "localhost/pushed:1"


IMAGE = synthetic_image(
    [NAME],
    [
        [directory("etc"), file("etc/os-release", b"ID=test\n")],
        [directory("app"), file("app/data", bytes(range(256)) * 512)],
    ],
)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A docker-archive of IMAGE: its layers are stored uncompressed when loaded."""
    return write_docker_archive(tmp_path / "image.tar", [IMAGE])


def podman_image_id(tmp_path: Path, reference: str) -> str:
    podman = Podman.create(tmp_path / "reader")
    try:
        return podman("pull", "-q", reference).stdout.strip()
    finally:
        podman.cleanup()


@pytest.mark.peer("podman", "skopeo")
async def test_a_pushed_image_reads_back_in_skopeo_and_podman(
    archive: Path, tmp_path: Path, skopeo: Tool
) -> None:
    layout = tmp_path / "out"
    async with Runtime(tmp_path / "store") as rt:
        [image] = await rt.load(archive)
        digest = await rt.push(NAME, f"oci:{layout}:v1")
    info = json.loads(skopeo("inspect", f"oci:{layout}:v1").stdout)
    assert info["Digest"] == digest
    _, manifest = layout_manifest(layout, "v1")
    assert [layer["mediaType"] for layer in manifest["layers"]] == [mt.OCI_LAYER_GZIP] * 2
    assert podman_image_id(tmp_path, f"oci:{layout}:v1") == image.id


@pytest.mark.peer("podman")
async def test_zstd_layers_pull_back_to_the_same_image(archive: Path, tmp_path: Path) -> None:
    layout = tmp_path / "out"
    async with Runtime(tmp_path / "store") as rt:
        [image] = await rt.load(archive)
        await rt.push(NAME, f"oci:{layout}:z", compression="zstd")
    _, manifest = layout_manifest(layout, "z")
    assert [layer["mediaType"] for layer in manifest["layers"]] == [mt.OCI_LAYER_ZSTD] * 2
    async with Runtime(tmp_path / "other") as rt:
        assert (await rt.pull(f"oci:{layout}:z")).id == image.id
    assert podman_image_id(tmp_path, f"oci:{layout}:z") == image.id


async def test_a_pulled_image_is_pushed_byte_for_byte(archive: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    async with Runtime(tmp_path / "store") as rt:
        await rt.load(archive)
        pushed = await rt.push(NAME, f"oci:{first}:v1")
    async with Runtime(tmp_path / "other") as rt:
        image = await rt.pull(f"oci:{first}:v1")
        again = await rt.push(image.id, f"oci:{second}:v1")
    assert again == pushed == image.digest
    assert blob_files(second) == blob_files(first)


async def test_a_second_push_uploads_nothing_the_destination_has(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = tmp_path / "out"
    async with Runtime(tmp_path / "store") as rt:
        await rt.load(archive)
        counting = watch(rt, monkeypatch)
        first = await rt.push(NAME, f"oci:{layout}:v1")
        assert len(counting.uploaded) == 3  # two layers and the config
        counting.uploaded.clear()
        assert await rt.push(NAME, f"oci:{layout}:v2") == first
        assert counting.uploaded == []
    assert layout_manifest(layout, "v1")[0] == layout_manifest(layout, "v2")[0] == first


async def test_push_writes_the_digestfile_and_a_pushed_event(archive: Path, tmp_path: Path) -> None:
    layout, digestfile = tmp_path / "out", tmp_path / "digest"
    async with Runtime(tmp_path / "store") as rt:
        [image] = await rt.load(archive)
        async with rt.events.subscribe(kinds=[EventKind.PUSHED]) as stream:
            digest = await rt.push(NAME, f"oci:{layout}:v1", digestfile=digestfile)
            event = await stream.__anext__()
    assert digestfile.read_text() == digest  # no newline, as podman writes it
    assert isinstance(event, Event)
    assert (event.id, event.name) == (image.id, f"oci:{layout}:v1")


def lines_in_order(stderr: str) -> list[str]:
    """podman's lines with its ``Copying blob`` lines sorted: podman starts its layer
    copies side by side, and prints each line as a copy starts, in no fixed order."""
    lines = stderr.splitlines()
    blobs = sorted(line for line in lines if line.startswith("Copying blob "))
    first = next(i for i, line in enumerate(lines) if line.startswith("Copying blob "))
    rest = [line for line in lines if not line.startswith("Copying blob ")]
    return [*rest[:first], *blobs, *rest[first:]]


@pytest.mark.peer("podman")
def test_the_command_line_prints_podmans_lines(tmp_path: Path, store: Path) -> None:
    # An OCI source with uncompressed layers: podman keeps its manifest type when it
    # pushes to an OCI layout (a docker-archive's image would get a re-serialised config).
    source = write_oci_layout(tmp_path / "source", [IMAGE], compress=False)
    name = f"localhost{source}"
    podman = Podman.create(tmp_path / "podman")
    try:
        podman("pull", "-q", f"oci:{source}:{NAME}")
        theirs = podman("push", name, f"oci:{tmp_path / 'theirs'}:v1")
    finally:
        podman.cleanup()
    aiopod_ok("pull", "-q", f"oci:{source}:{NAME}", root=store)
    ours = aiopod_ok("push", name, f"oci:{tmp_path / 'ours'}:v1", root=store)
    assert ours.stdout == theirs.stdout == ""
    assert lines_in_order(ours.stderr) == lines_in_order(theirs.stderr)
    quiet = aiopod_ok("push", "-q", name, f"oci:{tmp_path / 'quiet'}:v1", root=store)
    assert (quiet.stdout, quiet.stderr) == ("", "")


async def test_progress_of_a_compressed_layer_names_the_blob_it_started_with(
    archive: Path, tmp_path: Path
) -> None:
    """A layer gzip-compressed on the way reports its bytes under the stored digest its
    ``Copying blob`` line named (a display keys its bars by it)."""
    from aiopod.transports.registry.progress import BlobDone, BlobProgress, BlobStarted

    records: list[object] = []
    async with Runtime(tmp_path / "store") as rt:
        await rt.load(archive)
        await rt.push(NAME, f"oci:{tmp_path / 'out'}:v1", progress=records.append)
    started = {r.digest for r in records if isinstance(r, BlobStarted)}
    reported = {r.digest for r in records if isinstance(r, BlobProgress | BlobDone)}
    assert reported == started and len(started) == len(IMAGE.layers) + 1
