"""The client against Debian's docker-registry (distribution 2.8): pushes that skopeo reads
back and verifies, pulls of what skopeo pushed, podman's words for a missing manifest,
TLS with the CA in the home's certs.d and Basic authentication from an auth file, and
the runtime's one HTTP client."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from peers import Podman, Tool, file, tar_bytes

import aiopod
from aiopod import Credentials, ManifestUnknown, RuntimeStopped
from aiopod.transports.mediatypes import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from aiopod.transports.registry.client import with_context
from aiopod.transports.registry.endpoints import BlobDescriptor
from aiopod.transports.registry.repository import (
    RegistryOptions,
    RegistryRepository,
    open_repository,
)
from aiopod.transports.registry.transport import new_registry_client
from registry.conftest import FAST_RETRY
from registry.real_registries import SecureRegistry

pytestmark = [pytest.mark.anyio, pytest.mark.peer("docker-registry")]


def gzipped_layer(name: str, content: bytes) -> tuple[bytes, bytes]:
    """A layer of one file: (gzipped, uncompressed)."""
    raw = tar_bytes([file(name, content)])
    return gzip.compress(raw, mtime=0), raw


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def once(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 10_000):
        yield data[start : start + 10_000]


async def push_image(repo: RegistryRepository, tag: str) -> tuple[str, bytes, bytes]:
    """A one-layer OCI image; its manifest digest, manifest and layer."""
    layer, tar = gzipped_layer("hello.txt", b"hello from aiopod\n" * 5000)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
        }
    ).encode()
    for blob in (layer, config):
        descriptor = BlobDescriptor(sha256(blob), len(blob))
        if not await repo.has_blob(descriptor):
            await repo.put_blob(descriptor, once(blob))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(layer), "size": len(layer)}],
        }
    ).encode()
    return await repo.put_manifest(manifest, OCI_MANIFEST, tag), manifest, layer


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with new_registry_client() as client:
        yield client


async def insecure_repository(
    http: httpx.AsyncClient, name: str, *, chunk_size: int | None = None
) -> RegistryRepository:
    options = RegistryOptions(retry=FAST_RETRY)
    return await open_repository(
        http, name, options, insecure=True, push=True, chunk_size=chunk_size
    )


@pytest.mark.peer("skopeo")
@pytest.mark.parametrize("chunk_size", [None, 4096])
async def test_skopeo_reads_and_verifies_what_aiopod_pushed(
    http: httpx.AsyncClient, registry: str, skopeo: Tool, tmp_path: Path, chunk_size: int | None
) -> None:
    repo = await insecure_repository(http, f"{registry}/wire/pushed", chunk_size=chunk_size)
    digest, manifest, _ = await push_image(repo, f"c{chunk_size}")
    reference = f"docker://{registry}/wire/pushed:c{chunk_size}"
    raw = skopeo("inspect", "--tls-verify=false", "--raw", reference).stdout
    assert raw.encode() == manifest
    skopeo("copy", "--src-tls-verify=false", reference, f"oci:{tmp_path / 'copy'}:x")
    assert (await repo.fetch_manifest(digest)).data == manifest

    other = await insecure_repository(http, f"{registry}/wire/mounted")
    layer = json.loads(manifest)["layers"][0]
    assert await other.mount_blob(BlobDescriptor(layer["digest"], layer["size"]), "wire/pushed")


@pytest.mark.peer("skopeo")
async def test_aiopod_reads_what_skopeo_pushed(
    http: httpx.AsyncClient, registry: str, skopeo: Tool, tmp_path: Path
) -> None:
    source = await insecure_repository(http, f"{registry}/wire/source")
    await push_image(source, "1")
    skopeo(
        "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--format", "v2s2",
        f"docker://{registry}/wire/source:1", f"docker://{registry}/wire/by-skopeo:2",
    )  # fmt: skip
    repo = await insecure_repository(http, f"{registry}/wire/by-skopeo")
    fetched = await repo.fetch_manifest("2")
    assert fetched.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    document = json.loads(fetched.data)
    for descriptor in [document["config"], *document["layers"]]:
        blob = BlobDescriptor(descriptor["digest"], descriptor["size"])
        async with repo.open_blob(blob) as chunks:
            data = b"".join([chunk async for chunk in chunks])
        assert sha256(data) == blob.digest


@pytest.mark.peer("podman")
async def test_a_missing_image_fails_in_podmans_words(
    http: httpx.AsyncClient, registry: str, podman: Podman
) -> None:
    proc = podman("pull", "--tls-verify=false", f"{registry}/wire/nothere", check=False)
    repo = await insecure_repository(http, f"{registry}/wire/nothere")
    with pytest.raises(ManifestUnknown) as caught:
        await repo.fetch_manifest("latest")
    error = with_context(
        caught.value, f"initializing source docker://{registry}/wire/nothere:latest: "
    )
    assert f"Error: {error}\n" in proc.stderr
    assert isinstance(error, ManifestUnknown) and error.__cause__ is caught.value


async def test_tls_with_the_homes_certs_d_and_an_auth_file(
    tls_registry: SecureRegistry, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    certs = home / ".config" / "containers" / "certs.d"
    certs.mkdir(parents=True)
    (certs / tls_registry.address).symlink_to(tls_registry.host_cert_dir)
    authfile = tmp_path / "auth.json"
    credentials = Credentials(tls_registry.user, tls_registry.password)
    from aiopod.transports.registry.credentials import auth_files, store_credentials

    store_credentials(tls_registry.address, credentials, auth_files(authfile))
    options = RegistryOptions(authfile=authfile, retry=FAST_RETRY)
    async with new_registry_client(environ={"HOME": str(home)}) as http:
        repo = await open_repository(http, f"{tls_registry.address}/wire/tls", options, push=True)
        digest, _, _ = await push_image(repo, "1")
        assert repo.client.base_url.startswith("https://")
        assert (await repo.fetch_manifest("1")).digest == digest


async def test_the_runtime_keeps_one_client_and_closes_it(
    store: Path, basic_registry: SecureRegistry, tmp_path: Path
) -> None:
    authfile = tmp_path / "auth.json"
    async with aiopod.Runtime(store) as rt:
        client = rt._registry_client()
        outcome = await rt.login(
            basic_registry.address,
            basic_registry.user,
            basic_registry.password,
            authfile=authfile,
            tls_verify=False,
        )
        assert rt._registry_client() is client
        assert outcome.path == authfile and not outcome.reused
        assert await rt.logged_in_user(basic_registry.address, authfile=authfile) == "alice"
        assert (
            await rt.logout(basic_registry.address, authfile=authfile)
        ).key == basic_registry.address
    assert client.is_closed
    with pytest.raises(RuntimeStopped):
        rt._registry_client()
    stored = [p.read_bytes() for p in store.rglob("*") if p.is_file()]  # noqa: ASYNC240
    assert stored and not any(basic_registry.password.encode() in data for data in stored)
