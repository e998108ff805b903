"""Pushing an image to another repository of the registry it came from mounts its blobs
(``POST …/blobs/uploads/?mount=&from=``) instead of uploading them, as podman does with
its blob-info cache; a repository that does not hold them falls back to an upload."""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

import pytest
from peers import directory, file, synthetic_image

from aiopod import Runtime
from aiopod.transports.registry.blob_locations import mount_sources
from registry.fake_registry import FakeRegistry

pytestmark = pytest.mark.anyio


def publish(fake: FakeRegistry, name: str, count: int = 3) -> bytes:
    """An image of *count* gzip layers as ``NAME:1`` on *fake*; its manifest."""
    tars = [
        [directory(f"d{i}"), file(f"d{i}/f", random.Random(i).randbytes(2048))]
        for i in range(count)
    ]
    image = synthetic_image([name], tars)
    layers = [gzip.compress(layer, mtime=0) for layer in image.layers]
    _, manifest = fake.add_image(name, "1", layers, config=image.config)
    return manifest


def uploads(fake: FakeRegistry, name: str) -> list[str]:
    """The requests that sent blob bytes to repository *name*."""
    return [
        f"{r.method} {r.path}"
        for r in fake.requests_to(f"/v2/{name}/blobs/uploads/")
        if r.method in ("PUT", "PATCH")
    ]


def mounts(fake: FakeRegistry, name: str) -> list[str]:
    return [r.path for r in fake.requests_to(f"/v2/{name}/blobs/uploads/?mount=")]


async def test_a_pulled_image_pushed_to_another_repository_is_mounted_not_uploaded(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    manifest = publish(fake, "team/app")
    async with Runtime(tmp_path / "store") as rt:
        await rt.pull(f"{fake.address}/team/app:1", tls_verify=False)
        digest = await rt.push(
            f"{fake.address}/team/app:1", f"{fake.address}/team/copy:2", tls_verify=False
        )
    assert fake.manifests[("team/copy", "2")][0] == manifest
    assert digest == f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    assert len(mounts(fake, "team/copy")) == 4  # three layers and the config
    assert all("from=team%2Fapp" in m for m in mounts(fake, "team/copy"))
    assert uploads(fake, "team/copy") == []


async def test_a_name_whose_repository_lacks_the_blobs_falls_back_to_uploading(
    fake: FakeRegistry, tmp_path: Path
) -> None:
    manifest = publish(fake, "team/app")
    async with Runtime(tmp_path / "store") as rt:
        await rt.pull(f"{fake.address}/team/app:1", tls_verify=False)
        await rt.tag(f"{fake.address}/team/app:1", f"{fake.address}/team/empty:1")
        await rt.untag(f"{fake.address}/team/empty:1", f"{fake.address}/team/app:1")
        (tmp_path / "store" / "aiopod" / "blob-locations.json").unlink()  # pulled, forgotten
        await rt.push(
            f"{fake.address}/team/empty:1", f"{fake.address}/team/new:1", tls_verify=False
        )
    assert fake.manifests[("team/new", "1")][0] == manifest
    assert len(mounts(fake, "team/new")) == 4  # asked, refused (the upload it opened is deleted)
    assert len(uploads(fake, "team/new")) == 4


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_mount_the_registry_refuses_falls_back_to_uploading(
    fake: FakeRegistry, tmp_path: Path, status: int
) -> None:
    manifest = publish(fake, "team/app")
    async with Runtime(tmp_path / "store") as rt:
        await rt.pull(f"{fake.address}/team/app:1", tls_verify=False)
        fake.misbehave.refuse_mounts = status
        await rt.push(f"{fake.address}/team/app:1", f"{fake.address}/team/copy:1", tls_verify=False)
    assert fake.manifests[("team/copy", "1")][0] == manifest
    assert len(mounts(fake, "team/copy")) == 4
    assert len(uploads(fake, "team/copy")) == 4


def test_mount_sources_are_the_images_other_repositories_on_the_same_registry() -> None:
    names = [
        "reg.example:5000/team/app:1",
        "reg.example:5000/team/app:2",
        "reg.example:5000/team/dest:1",
        "other.example/team/app:1",
        "localhost/local:latest",
    ]
    assert mount_sources(names, "reg.example:5000/team/dest") == ["reg.example:5000/team/app"]
    assert mount_sources(names, "elsewhere.example/x") == []
