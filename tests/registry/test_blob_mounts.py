"""A push mounts the blobs a registry already holds in another repository instead of
uploading them (``POST …/blobs/uploads/?mount=DIGEST&from=NAME``), using where the store saw
them: the repositories it pulled them from or pushed them to."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from peers import Podman

from aiopod import Runtime
from registry.fake_registry import FakeRegistry, RecordedRequest

pytestmark = pytest.mark.anyio


def rootfs_tarball(path: Path, content: bytes) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("etc/motd")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return path


def held(fake: FakeRegistry, repository: str) -> set[str]:
    return {digest for name, digest in fake.members if name == repository}


def uploads(fake: FakeRegistry, repository: str) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.path.startswith(f"/v2/{repository}/blobs/uploads/")]


def mounts(fake: FakeRegistry, repository: str) -> list[dict[str, list[str]]]:
    queries = [parse_qs(urlsplit(r.path).query) for r in uploads(fake, repository)]
    return [q for q in queries if "mount" in q]


def blob_uploads(fake: FakeRegistry, repository: str) -> list[RecordedRequest]:
    """Requests that carried blob bytes (a mount request carries none)."""
    return [r for r in uploads(fake, repository) if r.method in ("PUT", "PATCH")]


@pytest.fixture
def scoped(fake: FakeRegistry) -> FakeRegistry:
    fake.repository_scoped_blobs = True
    return fake


async def publish(tmp_path: Path, registry: FakeRegistry, name: str) -> str:
    """Push a one-layer image to *name* from a store of its own; the image ID."""
    async with Runtime(tmp_path / "publisher") as rt:
        image = await rt.import_image(rootfs_tarball(tmp_path / "rootfs.tar", b"hi\n"), name)
        await rt.push(name, f"{registry.address}/{name}", tls_verify=False)
    return image.id


async def test_a_pulled_image_pushed_to_another_repository_is_mounted_not_uploaded(
    tmp_path: Path, scoped: FakeRegistry
) -> None:
    await publish(tmp_path, scoped, "team/base:1")
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(f"{scoped.address}/team/base:1", tls_verify=False)
        scoped.requests.clear()
        digest = await rt.push(image.id, f"{scoped.address}/team/app:1", tls_verify=False)

    blobs = held(scoped, "team/base")
    assert len(blobs) == 2  # the config and the layer
    assert {m["mount"][0] for m in mounts(scoped, "team/app")} == blobs
    assert {m["from"][0] for m in mounts(scoped, "team/app")} == {"team/base"}
    assert blob_uploads(scoped, "team/app") == []
    assert held(scoped, "team/app") == blobs
    assert ("team/app", "1") in scoped.manifests
    assert digest == image.digest


async def test_blobs_a_store_pushed_are_mounted_into_the_next_repository(
    tmp_path: Path, scoped: FakeRegistry
) -> None:
    async with Runtime(tmp_path / "store") as rt:
        await rt.import_image(rootfs_tarball(tmp_path / "rootfs.tar", b"hi\n"), "app:1")
        await rt.push("app:1", f"{scoped.address}/team/one:1", tls_verify=False)
        assert blob_uploads(scoped, "team/one") != []
        scoped.requests.clear()
        await rt.push("app:1", f"{scoped.address}/team/two:1", tls_verify=False)
    assert blob_uploads(scoped, "team/two") == []
    assert {m["from"][0] for m in mounts(scoped, "team/two")} == {"team/one"}


async def test_a_refused_mount_falls_back_to_an_upload(
    tmp_path: Path, scoped: FakeRegistry
) -> None:
    await publish(tmp_path, scoped, "team/base:1")
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(f"{scoped.address}/team/base:1", tls_verify=False)
        blobs = held(scoped, "team/base")
        scoped.members -= {("team/base", b) for b in blobs}  # deleted there since
        scoped.requests.clear()
        await rt.push(image.id, f"{scoped.address}/team/app:1", tls_verify=False)
    assert len(mounts(scoped, "team/app")) == 2  # asked, refused: uploaded instead
    assert len(blob_uploads(scoped, "team/app")) == 2
    assert held(scoped, "team/app") == blobs


async def test_no_mount_is_asked_of_another_registry(
    tmp_path: Path, scoped: FakeRegistry, other_host: FakeRegistry
) -> None:
    other_host.repository_scoped_blobs = True
    await publish(tmp_path, scoped, "team/base:1")
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(f"{scoped.address}/team/base:1", tls_verify=False)
        await rt.push(image.id, f"{other_host.address}/team/app:1", tls_verify=False)
    assert mounts(other_host, "team/app") == []
    assert len(blob_uploads(other_host, "team/app")) == 2


@pytest.mark.parametrize("damage", [b"{not json", b'{"sha256:x": 1}', b"\xff" * 64])
async def test_a_damaged_location_table_is_read_as_empty_and_rewritten(
    tmp_path: Path, scoped: FakeRegistry, damage: bytes
) -> None:
    await publish(tmp_path, scoped, "team/base:1")
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(f"{scoped.address}/team/base:1", tls_verify=False)
        (tmp_path / "store" / "aiopod" / "blob-locations.json").write_bytes(damage)
        await rt.push(image.id, f"{scoped.address}/team/app:1", tls_verify=False)
        assert (await rt.check()).ok
    assert held(scoped, "team/app") == held(scoped, "team/base")  # mounted by name, or sent
    table = json.loads((tmp_path / "store" / "aiopod" / "blob-locations.json").read_bytes())
    assert {d for d, repos in table.items() if repos[0] == f"{scoped.address}/team/app"} == (
        held(scoped, "team/app")
    )


@pytest.mark.peer("docker-registry", "podman")
async def test_docker_registry_mounts_and_podman_pulls_the_mounted_image(
    tmp_path: Path, registry: str, podman: Podman
) -> None:
    base = f"{registry}/mounts-{tmp_path.name}/base:1".lower()
    app = f"{registry}/mounts-{tmp_path.name}/app:1".lower()
    async with Runtime(tmp_path / "publisher") as rt:
        await rt.import_image(rootfs_tarball(tmp_path / "rootfs.tar", b"hi\n"), base)
        await rt.push(base, tls_verify=False)
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(base, tls_verify=False)
        await rt.push(image.id, app, tls_verify=False)
    podman("pull", "-q", "--tls-verify=false", app)
    inspected = json.loads(podman("image", "inspect", app).stdout)[0]
    assert inspected["Id"] == image.id
    assert inspected["Digest"] == image.digest
