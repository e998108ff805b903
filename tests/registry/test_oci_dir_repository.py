"""The OCI layout directory as a repository: what it promises as an ImageSource (sizes,
digests, caps) and as an ImageDestination (nothing unverified appears under a digest)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from peers import SyntheticImage, directory, file, sha256_hex, synthetic_image, write_oci_layout

from aiopod import DigestMismatch, ImageNotKnown, LimitExceeded
from aiopod.transports import mediatypes as mt
from aiopod.transports.registry.endpoints import BlobDescriptor
from aiopod.transports.registry.oci_dir import OCILayoutRepository, parse_oci_reference
from registry.store_fixtures import blob_files, blob_path, layout_manifest

pytestmark = pytest.mark.anyio


def image(name: str, content: bytes = b"hello\n") -> SyntheticImage:
    return synthetic_image([name], [[directory("d"), file("d/f", content)]])


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_a_reference_is_split_at_its_first_colon() -> None:
    assert parse_oci_reference("/a/b:localhost/app:1") == (Path("/a/b"), "localhost/app:1")
    assert parse_oci_reference("/a/b") == (Path("/a/b"), "")


async def test_manifests_are_found_by_reference_by_digest_and_alone(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "l", [image("v1")])
    repository = OCILayoutRepository(layout)
    digest, _ = layout_manifest(layout, "v1")
    for reference in ("v1", digest, ""):
        fetched = await repository.fetch_manifest(reference)
        assert fetched.digest == digest
        assert fetched.data == blob_path(layout, digest).read_bytes()
    with pytest.raises(ImageNotKnown):
        await repository.fetch_manifest("v2")


async def test_the_empty_reference_needs_a_single_image(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "l", [image("a", b"1"), image("b", b"2")])
    with pytest.raises(ImageNotKnown, match="holds 2 images"):
        await OCILayoutRepository(layout).fetch_manifest("")


async def test_a_manifest_that_does_not_hash_to_its_digest_is_refused(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "l", [image("v1")])
    digest, manifest = layout_manifest(layout, "v1")
    blob_path(layout, digest).write_bytes(json.dumps(manifest, indent=1).encode())
    with pytest.raises(DigestMismatch):
        await OCILayoutRepository(layout).fetch_manifest(digest)


async def test_a_blob_never_yields_more_than_its_size(tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "l", [image("v1")])
    _, manifest = layout_manifest(layout, "v1")
    layer = manifest["layers"][0]
    path = blob_path(layout, layer["digest"])
    path.write_bytes(path.read_bytes() + b"more")
    blob = BlobDescriptor(layer["digest"], layer["size"], layer["mediaType"])
    received = b""
    with pytest.raises(LimitExceeded):
        async with OCILayoutRepository(layout).open_blob(blob) as chunks:
            async for chunk in chunks:
                received += chunk
    assert len(received) <= layer["size"]


async def test_put_blob_keeps_only_verified_blobs(tmp_path: Path) -> None:
    repository = OCILayoutRepository(tmp_path / "new")
    data = b"some blob"
    good = BlobDescriptor(f"sha256:{sha256_hex(data)}", len(data))
    await repository.put_blob(good, chunks_of(data[:4], data[4:]))
    assert await repository.has_blob(good)
    lying = BlobDescriptor(f"sha256:{sha256_hex(b'other')}", len(data))
    with pytest.raises(DigestMismatch):
        await repository.put_blob(lying, chunks_of(data))
    assert not await repository.has_blob(lying)
    assert blob_files(tmp_path / "new") == {good.digest}
    assert [p.name for p in (tmp_path / "new" / "blobs" / "sha256").iterdir()] == [
        good.digest.removeprefix("sha256:")
    ]


async def test_put_manifest_replaces_the_tag_and_skopeo_layouts_stay_valid(tmp_path: Path) -> None:
    repository = OCILayoutRepository(tmp_path / "new")
    first = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "n": 1}).encode()
    second = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "n": 2}).encode()
    one = await repository.put_manifest(first, mt.OCI_MANIFEST, "v1")
    await repository.put_manifest(first, mt.OCI_MANIFEST, "v2")
    two = await repository.put_manifest(second, mt.OCI_MANIFEST, "v1")
    index = json.loads((tmp_path / "new" / "index.json").read_text())
    tags = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
    }
    assert tags == {"v1": two, "v2": one}
    assert (tmp_path / "new" / "oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'
