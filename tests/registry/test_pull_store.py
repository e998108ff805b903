"""Pulling into the store: what is verified, what is transferred, what a failure leaves.

Images are built in Python (``peers.synthetic_image``) and published as the ``published``
fixture's repository (an OCI layout directory today; a registry once the client lands).
Hostile content follows ``docs/design/hostile-input.md`` section R; every failing pull
must leave the store as it was: no image, no blob, nothing staged, ``system check`` clean.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import anyio
import pytest
from peers import Entry, directory, file, sha256_hex, synthetic_image, write_oci_layout

from aiopod import (
    DigestMismatch,
    Event,
    EventKind,
    ImageNotKnown,
    InvalidArchive,
    LimitExceeded,
    Runtime,
    UnsafeLayer,
)
from registry.store_fixtures import (
    Publish,
    blob_files,
    blob_path,
    fixture_published,  # noqa: F401
    layout_manifest,
    layout_only,
    staging_leftovers,
    watch,
)

pytestmark = pytest.mark.anyio


def layers(count: int, size: int = 4096) -> list[list[Entry]]:
    """*count* distinct layers, each a file of *size* random (incompressible) bytes."""
    return [
        [directory(f"d{i}"), file(f"d{i}/f", random.Random(i).randbytes(size))]
        for i in range(count)
    ]


def write_image(
    tmp_path: Path,
    count: int = 3,
    *,
    name: str = "v1",
    size: int = 4096,
    diff_ids: list[str] | None = None,
) -> Path:
    layout = tmp_path / "layout"
    image = synthetic_image([name], layers(count, size), diff_ids=diff_ids)
    write_oci_layout(layout, [image])
    return layout


def replace_manifest(layout: Path, data: bytes) -> str:
    """Make *data* the manifest of the layout's (only) image; return its digest."""
    digest = f"sha256:{sha256_hex(data)}"
    blob_path(layout, digest).write_bytes(data)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0].update(digest=digest, size=len(data))
    (layout / "index.json").write_text(json.dumps(index))
    return digest


async def assert_store_unchanged(rt: Runtime, blobs_before: set[str]) -> None:
    assert await rt.images(all=True) == []
    assert blob_files(rt.root) == blobs_before
    assert staging_leftovers(rt.root) == []
    report = await rt.check()
    assert report.problems == []


async def test_a_pulled_image_has_the_config_digest_as_id_and_the_manifest_as_digest(
    tmp_path: Path, published: Publish
) -> None:
    layout = write_image(tmp_path)
    digest, manifest = layout_manifest(layout, "v1")
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(published(layout, "v1"))
        assert image.id == manifest["config"]["digest"].removeprefix("sha256:")
        assert image.digest == digest
        assert digest in image.digests
        # Layers are stored as pulled: the compressed blobs, under their own digests.
        assert {d["digest"] for d in manifest["layers"]} <= blob_files(rt.root)
        inspected = await rt.inspect_image(image.id)
        assert inspected["Digest"] == digest
        assert inspected["RepoDigests"] == [f"{image.names[0].rsplit(':', 1)[0]}@{digest}"]
        assert (await rt.check()).problems == []


async def test_pulling_a_present_image_transfers_only_the_manifest(
    tmp_path: Path, published: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = write_image(tmp_path, 4)
    async with Runtime(tmp_path / "store") as rt:
        counting = watch(rt, monkeypatch)
        first = await rt.pull(published(layout, "v1"))
        assert len(counting.opened) == 5  # four layers and the config
        counting.opened.clear()
        counting.manifests.clear()
        again = await rt.pull(published(layout, "v1"))
        assert again.id == first.id
        assert counting.opened == []
        assert len(counting.manifests) == 1


async def test_layers_already_in_the_store_are_not_transferred_again(
    tmp_path: Path, published: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = layers(2)
    base = synthetic_image(["base"], shared)
    child = synthetic_image(["child"], [*shared, [file("extra", b"more")]])
    layout = write_oci_layout(tmp_path / "layout", [base, child])
    _, child_manifest = layout_manifest(layout, "child")
    async with Runtime(tmp_path / "store") as rt:
        counting = watch(rt, monkeypatch)
        await rt.pull(published(layout, "base"))
        counting.opened.clear()
        await rt.pull(published(layout, "child"))
        assert counting.opened == [
            child_manifest["config"]["digest"],
            child_manifest["layers"][2]["digest"],
        ]


async def test_policy_missing_does_not_contact_the_source_for_a_present_name(
    tmp_path: Path, published: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = write_image(tmp_path)
    async with Runtime(tmp_path / "store") as rt:
        counting = watch(rt, monkeypatch)
        first = await rt.pull(published(layout, "v1"), policy="missing")
        counting.manifests.clear()
        again = await rt.pull(published(layout, "v1"), policy="missing")
        assert again.id == first.id
        assert counting.manifests == []


async def test_policy_newer_pulls_only_when_the_source_digest_differs(
    tmp_path: Path, published: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = write_image(tmp_path)
    async with Runtime(tmp_path / "store") as rt:
        counting = watch(rt, monkeypatch)
        first = await rt.pull(published(layout, "v1"))
        counting.opened.clear()
        same = await rt.pull(published(layout, "v1"), policy="newer")
        assert same.id == first.id and counting.opened == []
        # The same name now names another image: newer pulls it.
        write_oci_layout(layout, [synthetic_image(["v1"], layers(1), labels={"n": "2"})])
        newer = await rt.pull(published(layout, "v1"), policy="newer")
        assert newer.id != first.id
        assert counting.opened


async def test_pulling_by_digest_records_the_digest(tmp_path: Path) -> None:
    layout = write_image(tmp_path)
    digest, _ = layout_manifest(layout, "v1")
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(f"oci:{layout}:{digest}")
        assert image.digest == digest
        assert (await rt.get_image(f"{image.names[0].rsplit(':', 1)[0]}@{digest}")).id == image.id


async def test_a_pull_emits_a_pulled_event_naming_the_reference(
    tmp_path: Path, published: Publish
) -> None:
    layout = write_image(tmp_path)
    reference = published(layout, "v1")
    async with Runtime(tmp_path / "store") as rt, rt.events.subscribe() as stream:
        image = await rt.pull(reference)
        with anyio.fail_after(5):
            event = await stream.__anext__()
        assert isinstance(event, Event)
        assert (event.kind, event.id, event.name) == (EventKind.PULLED, image.id, reference)
        logged = [e for e in rt.event_log.read() if e.kind == EventKind.PULLED]
        assert [(e.id, e.name) for e in logged] == [(image.id, reference)]


async def test_layers_transfer_concurrently_at_most_six_at_a_time(
    tmp_path: Path, published: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = write_image(tmp_path, 10, size=3 << 20)  # several chunks each
    async with Runtime(tmp_path / "store") as rt:
        counting = watch(rt, monkeypatch)
        counting.delay = 0.2
        await rt.pull(published(layout, "v1"))
        assert counting.most_open == 6


async def test_cancelling_in_the_middle_of_a_layer_leaves_the_store_unchanged(
    tmp_path: Path, published: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = write_image(tmp_path, 3, size=3 << 20)
    async with Runtime(tmp_path / "store") as rt:
        before = blob_files(rt.root)
        counting = watch(rt, monkeypatch)
        counting.hold = True
        async with anyio.create_task_group() as group:
            group.start_soon(rt.pull, published(layout, "v1"))
            with anyio.fail_after(10):
                await counting.first_chunk.wait()
            group.cancel_scope.cancel()
        await assert_store_unchanged(rt, before)


@pytest.mark.parametrize("which", ["config", "layer"])
@layout_only
async def test_r3_a_blob_whose_bytes_differ_from_its_digest_is_refused(
    tmp_path: Path, published: Publish, which: str
) -> None:
    layout = write_image(tmp_path)
    _, manifest = layout_manifest(layout, "v1")
    descriptor = manifest["config"] if which == "config" else manifest["layers"][1]
    victim = blob_path(layout, descriptor["digest"])
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    async with Runtime(tmp_path / "store") as rt:
        before = blob_files(rt.root)
        # A damaged gzip stream may be caught by its own checksum before the digest is.
        with pytest.raises((DigestMismatch, UnsafeLayer)):
            await rt.pull(published(layout, "v1"))
        await assert_store_unchanged(rt, before)


@layout_only
async def test_r4_a_blob_longer_than_its_descriptor_is_cut_off(
    tmp_path: Path, published: Publish
) -> None:
    layout = write_image(tmp_path)
    _, manifest = layout_manifest(layout, "v1")
    victim = blob_path(layout, manifest["layers"][0]["digest"])
    victim.write_bytes(victim.read_bytes() + b"\0" * (2 << 20))
    async with Runtime(tmp_path / "store") as rt:
        before = blob_files(rt.root)
        with pytest.raises((LimitExceeded, DigestMismatch)):
            await rt.pull(published(layout, "v1"))
        await assert_store_unchanged(rt, before)


async def test_r6_a_config_whose_diff_ids_are_not_the_layers_is_refused(
    tmp_path: Path, published: Publish
) -> None:
    wrong = [f"sha256:{sha256_hex(b'not the layer %d' % i)}" for i in range(3)]
    layout = write_image(tmp_path, 3, diff_ids=wrong)
    async with Runtime(tmp_path / "store") as rt:
        before = blob_files(rt.root)
        with pytest.raises(InvalidArchive, match="diff_id"):
            await rt.pull(published(layout, "v1"))
        await assert_store_unchanged(rt, before)


async def test_r6_more_diff_ids_than_layers_is_refused(tmp_path: Path, published: Publish) -> None:
    real = synthetic_image(["v1"], layers(2))
    extra = [*real.diff_ids, sha256_hex(b"x")]
    layout = write_image(tmp_path, 2, diff_ids=[f"sha256:{d}" for d in extra])
    async with Runtime(tmp_path / "store") as rt:
        with pytest.raises(InvalidArchive, match="3 diff_ids but there are 2 layers"):
            await rt.pull(published(layout, "v1"))
        assert await rt.images(all=True) == []


def nest(layout: Path, digest: str, size: int, media_type: str, depth: int) -> tuple[str, int]:
    """Wrap the manifest *digest* in *depth* indexes (each for this platform)."""
    from aiopod._platforms import local_architecture

    for _ in range(depth):
        doc = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": media_type,
                    "digest": digest,
                    "size": size,
                    "platform": {"os": "linux", "architecture": local_architecture()},
                }
            ],
        }
        data = json.dumps(doc).encode()
        digest, size = f"sha256:{sha256_hex(data)}", len(data)
        media_type = "application/vnd.oci.image.index.v1+json"
        blob_path(layout, digest).write_bytes(data)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": media_type,
                "digest": digest,
                "size": size,
                "annotations": {"org.opencontainers.image.ref.name": "nested"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return digest, size


@layout_only
async def test_r10_indexes_nested_within_the_limit_are_followed(
    tmp_path: Path, published: Publish
) -> None:
    layout = write_image(tmp_path)
    digest, manifest = layout_manifest(layout, "v1")
    size = blob_path(layout, digest).stat().st_size
    nest(layout, digest, size, "application/vnd.oci.image.manifest.v1+json", 8)
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(published(layout, "nested"))
        assert image.id == manifest["config"]["digest"].removeprefix("sha256:")
        assert image.digest == digest
        assert len(image.digests) == 9  # the manifest and the eight indexes above it


@layout_only
async def test_r10_indexes_nested_too_deep_are_refused(tmp_path: Path, published: Publish) -> None:
    layout = write_image(tmp_path)
    digest, _ = layout_manifest(layout, "v1")
    size = blob_path(layout, digest).stat().st_size
    nest(layout, digest, size, "application/vnd.oci.image.manifest.v1+json", 50)
    async with Runtime(tmp_path / "store") as rt:
        before = blob_files(rt.root)
        with pytest.raises(InvalidArchive, match="nest more than 8 levels"):
            await rt.pull(published(layout, "nested"))
        await assert_store_unchanged(rt, before)


@layout_only
async def test_r5_a_manifest_over_4_mib_is_refused(tmp_path: Path, published: Publish) -> None:
    layout = write_image(tmp_path)
    _, manifest = layout_manifest(layout, "v1")
    manifest["annotations"] = {"padding": "x" * (4 << 20)}
    replace_manifest(layout, json.dumps(manifest).encode())
    async with Runtime(tmp_path / "store") as rt:
        with pytest.raises(LimitExceeded):
            await rt.pull(published(layout, "v1"))
        assert await rt.images(all=True) == []


async def test_a7_a_manifest_with_a_duplicate_key_is_refused(
    tmp_path: Path, published: Publish
) -> None:
    layout = write_image(tmp_path)
    _, manifest = layout_manifest(layout, "v1")
    text = json.dumps(manifest)
    data = text.replace('"layers":', '"layers": [], "layers":', 1).encode()
    replace_manifest(layout, data)
    async with Runtime(tmp_path / "store") as rt:
        with pytest.raises(InvalidArchive, match="duplicate key 'layers'"):
            await rt.pull(published(layout, "v1"))


async def test_a_layer_of_an_unsupported_media_type_is_refused(
    tmp_path: Path, published: Publish
) -> None:
    layout = write_image(tmp_path)
    _, manifest = layout_manifest(layout, "v1")
    manifest["layers"][0]["mediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    manifest["layers"][0]["urls"] = ["http://127.0.0.1:9/never-fetched"]
    replace_manifest(layout, json.dumps(manifest).encode())
    async with Runtime(tmp_path / "store") as rt:
        with pytest.raises(InvalidArchive, match="unsupported media type"):
            await rt.pull(published(layout, "v1"))


@layout_only
async def test_r7_layer_urls_are_never_fetched(
    tmp_path: Path, published: Publish, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = write_image(tmp_path)
    _, manifest = layout_manifest(layout, "v1")
    manifest["layers"][0]["urls"] = ["http://127.0.0.1:9/attacker"]
    changed = replace_manifest(layout, json.dumps(manifest).encode())
    async with Runtime(tmp_path / "store") as rt:
        counting = watch(rt, monkeypatch)
        image = await rt.pull(published(layout, "v1"))
        # The layer came from the repository, by its digest (port 9 would refuse anyway).
        assert manifest["layers"][0]["digest"] in counting.opened
        assert image.digest == changed


async def test_a_layer_compressed_otherwise_than_its_media_type_says_is_refused(
    tmp_path: Path, published: Publish
) -> None:
    layout = write_image(tmp_path)
    _, manifest = layout_manifest(layout, "v1")
    plain = gzip.decompress(blob_path(layout, manifest["layers"][0]["digest"]).read_bytes())
    plain_digest = f"sha256:{sha256_hex(plain)}"
    blob_path(layout, plain_digest).write_bytes(plain)
    manifest["layers"][0].update(digest=plain_digest, size=len(plain))  # still says +gzip
    replace_manifest(layout, json.dumps(manifest).encode())
    async with Runtime(tmp_path / "store") as rt:
        with pytest.raises(InvalidArchive, match="none-compressed"):
            await rt.pull(published(layout, "v1"))


async def test_a_missing_reference_is_image_not_known(tmp_path: Path, published: Publish) -> None:
    layout = write_image(tmp_path)
    async with Runtime(tmp_path / "store") as rt:
        with pytest.raises(ImageNotKnown):
            await rt.pull(published(layout, "v1").rsplit(":", 1)[0] + ":nope")
