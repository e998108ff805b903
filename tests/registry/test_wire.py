"""The registry client against a fake registry: the token flow, uploads, and what a hostile
or broken registry does (an endless blob, oversized bodies, foreign layer URLs, redirects
to another host, broken downloads, lying digests, server errors).  The R labels are those of
``docs/design/hostile-input.md``."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from aiopod import (
    AuthenticationFailed,
    Credentials,
    DigestMismatch,
    LimitExceeded,
    ManifestUnknown,
    RegistryRequestFailed,
    RegistryUnreachable,
    UnsupportedManifest,
)
from aiopod.transports.registry.endpoints import BlobDescriptor
from aiopod.transports.registry.repository import (
    RegistryOptions,
    RegistryRepository,
    open_repository,
)
from registry.conftest import FAST_RETRY
from registry.fake_registry import OCI_MANIFEST, FakeRegistry, digest_of

pytestmark = pytest.mark.anyio

PASSWORD = "pa55:word!"
CREDS = Credentials("bob", PASSWORD)


async def repository(
    http: httpx.AsyncClient,
    registry: FakeRegistry,
    name: str = "team/app",
    *,
    credentials: Credentials | None = None,
    push: bool = False,
    chunk_size: int | None = None,
) -> RegistryRepository:
    options = RegistryOptions(tls_verify=False, credentials=credentials, retry=FAST_RETRY)
    return await open_repository(
        http, f"{registry.address}/{name}", options, push=push, chunk_size=chunk_size
    )


async def read_blob(repo: RegistryRepository, descriptor: dict[str, object]) -> bytes:
    blob = BlobDescriptor(str(descriptor["digest"]), int(str(descriptor["size"])))
    async with repo.open_blob(blob) as chunks:
        return b"".join([chunk async for chunk in chunks])


def layer_of(manifest: bytes, index: int = 0) -> dict[str, object]:
    layer: dict[str, object] = json.loads(manifest)["layers"][index]
    return layer


async def chunks_of(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def descriptor_of(data: bytes) -> BlobDescriptor:
    return BlobDescriptor("sha256:" + hashlib.sha256(data).hexdigest(), len(data))


# --------------------------------------------------------------------------------------------
# pulling, and the token flow


async def test_a_pull_by_tag_and_by_digest_reads_the_exact_bytes(http, fake) -> None:
    digest, manifest = fake.add_image("team/app", "1", [b"layer-one", b"layer-two"])
    repo = await repository(http, fake)

    by_tag = await repo.fetch_manifest("1")
    by_digest = await repo.fetch_manifest(digest)

    assert by_tag.data == by_digest.data == manifest
    assert by_tag.digest == by_digest.digest == digest
    assert by_tag.media_type == OCI_MANIFEST
    assert await repo.manifest_digest("1") == digest
    assert await read_blob(repo, layer_of(manifest, 1)) == b"layer-two"


async def test_a_missing_tag_is_manifest_unknown_in_podmans_words(http, fake) -> None:
    repo = await repository(http, fake, "x")
    with pytest.raises(ManifestUnknown) as caught:
        await repo.fetch_manifest("latest")
    assert str(caught.value) == (
        f"reading manifest latest in {fake.address}/x: manifest unknown: manifest unknown"
    )
    assert isinstance(caught.value, LookupError)


async def test_bearer_tokens_are_fetched_once_per_scope_and_sent_only_as_bearer(http) -> None:
    from registry.fake_registry import serve_registry

    with serve_registry(auth="bearer", users={"bob": PASSWORD}) as registry:
        _, manifest = registry.add_image("team/app", "1", [b"a", b"b"])
        repo = await repository(http, registry, credentials=CREDS)
        await repo.fetch_manifest("1")
        await read_blob(repo, layer_of(manifest, 0))
        await read_blob(repo, layer_of(manifest, 1))

    assert registry.tokens_issued == [("bob", ("repository:team/app:pull",))]
    token_requests = registry.requests_to("/token")
    assert len(token_requests) == 1
    assert token_requests[0].headers["Authorization"].startswith("Basic ")
    for request in registry.requests:
        if "/token" not in request.path and request.path != "/v2/":
            assert request.headers["Authorization"].startswith("Bearer ")


async def test_an_anonymous_token_pulls_a_public_image(http) -> None:
    from registry.fake_registry import serve_registry

    with serve_registry(auth="bearer", anonymous=True) as registry:
        digest, _ = registry.add_image("library/app", "1", [b"public"])
        repo = await repository(http, registry, "library/app")
        assert (await repo.fetch_manifest("1")).digest == digest
    [token_request] = registry.requests_to("/token")
    assert "Authorization" not in token_request.headers


async def test_an_expired_token_is_renewed_once(http) -> None:
    from registry.fake_registry import serve_registry

    with serve_registry(auth="bearer", users={"bob": PASSWORD}, token_lifetime=1) as registry:
        registry.add_image("team/app", "1", [b"a"])
        repo = await repository(http, registry, credentials=CREDS)
        await repo.fetch_manifest("1")
        await anyio.sleep(1.2)  # the registry's token expired; the client believes it has 60 s
        await repo.fetch_manifest("1")
    assert len(registry.tokens_issued) == 2


async def test_a_push_asks_for_a_push_token_and_a_mount_for_both_repositories(http) -> None:
    from registry.fake_registry import serve_registry

    with serve_registry(auth="bearer", users={"bob": PASSWORD}) as registry:
        _, manifest = registry.add_image("team/base", "1", [b"shared layer"])
        repo = await repository(http, registry, credentials=CREDS, push=True)
        layer = layer_of(manifest)
        blob = BlobDescriptor(str(layer["digest"]), int(str(layer["size"])))
        assert await repo.mount_blob(blob, f"{registry.address}/team/base")
    scopes = [scope for _, scope in registry.tokens_issued]
    assert ("repository:team/app:pull,push", "repository:team/base:pull") in scopes


async def test_wrong_credentials_fail_without_showing_the_password(http) -> None:
    from registry.fake_registry import serve_registry

    with serve_registry(auth="bearer", users={"bob": "right"}) as registry:
        registry.add_image("team/app", "1", [b"a"])
        repo = await repository(http, registry, credentials=CREDS)
        with pytest.raises(AuthenticationFailed) as caught:
            await repo.fetch_manifest("1")
    assert "invalid username/password" in str(caught.value)
    for text in (str(caught.value), repr(caught.value), repr(repo.client), repr(CREDS), str(CREDS)):
        assert PASSWORD not in text
    assert isinstance(caught.value, PermissionError)


async def test_basic_authentication_sends_the_credentials_to_the_registry(http) -> None:
    from registry.fake_registry import serve_registry

    with serve_registry(auth="basic", users={"bob": PASSWORD}) as registry:
        digest, _ = registry.add_image("team/app", "1", [b"a"])
        repo = await repository(http, registry, credentials=CREDS)
        assert (await repo.fetch_manifest("1")).digest == digest
        anonymous = await repository(http, registry)
        with pytest.raises(AuthenticationFailed, match="unauthorized: authentication required"):
            await anonymous.fetch_manifest("1")


# --------------------------------------------------------------------------------------------
# hostile registries


async def test_an_endless_blob_is_cut_just_past_its_size(http, fake) -> None:
    """R4: the stream is refused once it passes the descriptor's size."""
    blob = BlobDescriptor(digest_of(b"small"), 5)
    fake.blobs[blob.digest] = b"small"
    fake.misbehave.endless_blobs.add(blob.digest)
    repo = await repository(http, fake)
    received = 0
    with pytest.raises(DigestMismatch, match="more than its size"):
        async with repo.open_blob(blob) as chunks:
            async for chunk in chunks:
                received += len(chunk)
    assert received <= blob.size


async def test_a_blob_announced_larger_than_its_descriptor_is_refused_before_reading(
    http, fake
) -> None:
    data = b"0123456789"
    fake.blobs[digest_of(data)] = data
    repo = await repository(http, fake)
    with pytest.raises(DigestMismatch, match="sends 10 bytes for a blob of 4"):
        await read_blob(repo, {"digest": digest_of(data), "size": 4})


async def test_a_blob_shorter_than_its_descriptor_is_refused(http, fake) -> None:
    data = b"0123456789"
    fake.blobs[digest_of(data)] = data
    repo = await repository(http, fake)
    with pytest.raises(DigestMismatch, match="sent 10 bytes of 20"):
        await read_blob(repo, {"digest": digest_of(data), "size": 20})


@pytest.mark.parametrize("which", ["manifest", "token", "error"])
async def test_oversized_manifest_token_and_error_bodies_are_refused(http, which) -> None:
    """R5: a manifest over 4 MiB, a token answer or error body over 1 MiB."""
    from registry.fake_registry import serve_registry

    auth = "bearer" if which == "token" else "none"
    with serve_registry(auth=auth, users={"bob": PASSWORD}) as registry:
        registry.add_image("team/app", "1", [b"a"])
        setattr(registry.misbehave, f"huge_{which}", True)
        repo = await repository(http, registry, credentials=CREDS)
        if which == "error":
            with pytest.raises(ManifestUnknown) as caught:
                await repo.fetch_manifest("missing")
            # The body was not read: podman's words for an answer without one.
            assert str(caught.value).endswith("received unexpected HTTP status: 404 Not Found")
        else:
            with pytest.raises(LimitExceeded, match="larger than the limit"):
                await repo.fetch_manifest("1")


async def test_layer_urls_are_never_fetched(http, fake, other_host) -> None:
    """R7: the blob comes from the registry; the URL's host sees no request."""
    foreign = f"{other_host.url}/v2/team/app/blobs/evil"
    _, manifest = fake.add_image("team/app", "1", [b"layer"], layer_urls=[foreign])
    repo = await repository(http, fake, credentials=CREDS)
    assert await read_blob(repo, layer_of(manifest)) == b"layer"
    assert other_host.requests == []


async def test_a_redirect_to_another_host_drops_the_credentials(http, other_host) -> None:
    """R8: the registry gets the credentials, the other host does not."""
    from registry.fake_registry import serve_registry

    with serve_registry(auth="basic", users={"bob": PASSWORD}) as registry:
        _, manifest = registry.add_image("team/app", "1", [b"redirected layer"])
        other_host.blobs.update(registry.blobs)
        registry.misbehave.redirect_blobs_to = other_host.url
        repo = await repository(http, registry, credentials=CREDS)
        assert await read_blob(repo, layer_of(manifest)) == b"redirected layer"
        [first] = registry.requests_to("/blobs/")
    assert first.headers["Authorization"].startswith("Basic ")
    [followed] = other_host.requests
    assert "Authorization" not in followed.headers


LARGE = bytes(range(256)) * 4096  # 1 MiB


async def test_a_broken_download_resumes_from_a_matching_206(http, fake) -> None:
    """R9: reset mid-blob, then Range answered correctly: the bytes are whole."""
    descriptor = fake.add_blob(LARGE)
    fake.misbehave.reset_blob_after = 300_000
    repo = await repository(http, fake)
    assert await read_blob(repo, descriptor) == LARGE
    [first, resumed] = fake.requests_to("/blobs/")
    assert "Range" not in first.headers
    assert resumed.headers["Range"].startswith("bytes=")
    assert int(resumed.headers["Range"][6:-1]) > 0


@pytest.mark.parametrize("answer", ["200", "wrong-range"])
async def test_a_broken_download_is_not_spliced_with_a_wrong_answer(http, fake, answer) -> None:
    """R9: a Range request answered with the whole blob (200) or another range fails."""
    descriptor = fake.add_blob(LARGE)
    fake.misbehave.reset_blob_after = 300_000
    fake.misbehave.resume_answer = answer
    repo = await repository(http, fake)
    with pytest.raises(RegistryRequestFailed, match="the download is not resumed"):
        await read_blob(repo, descriptor)


async def test_a_manifest_by_digest_must_hash_to_that_digest(http, fake) -> None:
    """R1."""
    digest, _ = fake.add_image("team/app", "1", [b"a"])
    fake.misbehave.manifest_bytes[digest] = b'{"schemaVersion":2,"layers":[]}'
    repo = await repository(http, fake)
    with pytest.raises(DigestMismatch, match="the manifest's digest is sha256:"):
        await repo.fetch_manifest(digest)


async def test_a_lying_docker_content_digest_is_refused(http, fake) -> None:
    """R2: the header is checked against the bytes."""
    fake.add_image("team/app", "1", [b"a"])
    fake.misbehave.lying_digest_header = True
    repo = await repository(http, fake)
    with pytest.raises(DigestMismatch, match="Docker-Content-Digest"):
        await repo.fetch_manifest("1")


async def test_a_malformed_digest_never_reaches_a_url(http, fake) -> None:
    repo = await repository(http, fake)
    for bad in ("sha256:../../etc/passwd", "sha256:ABC", "md5:" + "0" * 32):
        with pytest.raises(DigestMismatch, match="invalid digest"):
            await repo.fetch_manifest(bad)
    assert fake.requests == []


async def test_schema_1_is_refused_with_a_clear_error(http, fake) -> None:
    fake.add_manifest(
        "team/app",
        b'{"schemaVersion":1,"name":"team/app","tag":"1","fsLayers":[]}',
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "1",
    )
    repo = await repository(http, fake)
    with pytest.raises(UnsupportedManifest, match="Docker schema 1 images are not supported"):
        await repo.fetch_manifest("1")


# --------------------------------------------------------------------------------------------
# retries


async def test_server_errors_and_429_are_retried_honouring_retry_after(http, fake) -> None:
    digest, _ = fake.add_image("team/app", "1", [b"a"])
    fake.misbehave.failures = [(503, None), (429, "1")]
    repo = await repository(http, fake)
    started = time.monotonic()
    assert (await repo.fetch_manifest("1")).digest == digest
    assert time.monotonic() - started >= 0.9  # Retry-After: 1
    assert len(fake.requests_to("/manifests/1")) == 3


async def test_retries_end_after_three(http, fake) -> None:
    fake.add_image("team/app", "1", [b"a"])
    fake.misbehave.failures = [(500, None)] * 5
    repo = await repository(http, fake)
    with pytest.raises(RegistryRequestFailed, match="unavailable: try again") as caught:
        await repo.fetch_manifest("1")
    assert caught.value.status == 500
    assert len(fake.requests_to("/manifests/1")) == 4


async def test_not_found_and_unauthorized_are_not_retried(http) -> None:
    from registry.fake_registry import serve_registry

    with serve_registry(auth="basic", users={"bob": "right"}) as registry:
        repo = await repository(http, registry, credentials=CREDS)
        with pytest.raises(AuthenticationFailed):
            await repo.fetch_manifest("1")
        assert len(registry.requests_to("/manifests/")) == 1
    with serve_registry() as registry:
        repo = await repository(http, registry)
        with pytest.raises(ManifestUnknown):
            await repo.fetch_manifest("1")
        assert len(registry.requests_to("/manifests/")) == 1


async def test_a_dropped_connection_is_retried(http, fake) -> None:
    digest, _ = fake.add_image("team/app", "1", [b"a"])
    repo = await repository(http, fake)
    await repo.fetch_manifest("1")
    fake.misbehave.drop_connections = 1
    assert (await repo.fetch_manifest("1")).digest == digest


async def test_a_plain_http_registry_needs_tls_verify_false(http, fake) -> None:
    options = RegistryOptions(retry=FAST_RETRY)
    repo = await open_repository(http, f"{fake.address}/x", options)
    with pytest.raises(RegistryUnreachable) as caught:
        await repo.fetch_manifest("latest")
    assert str(caught.value) == (
        f"pinging container registry {fake.address}: Get "
        f'"https://{fake.address}/v2/": http: server gave HTTP response to HTTPS client'
    )


async def test_an_unreachable_registry_is_reported_after_the_retries(http, fake) -> None:
    address = fake.address
    fake_port_closed = address.rsplit(":", 1)[0] + ":1"
    options = RegistryOptions(tls_verify=False, retry=FAST_RETRY)
    repo = await open_repository(http, f"{fake_port_closed}/x", options)
    with pytest.raises(RegistryUnreachable) as caught:
        await repo.fetch_manifest("latest")
    assert str(caught.value).endswith(
        f'Get "http://{fake_port_closed}/v2/": dial tcp {fake_port_closed}: connect: '
        "connection refused"
    )
    assert isinstance(caught.value, ConnectionError)


# --------------------------------------------------------------------------------------------
# pushing


@pytest.mark.parametrize("chunk_size", [None, 1000])
@pytest.mark.parametrize("absolute", [False, True])
async def test_a_blob_and_manifest_push_round_trips(http, fake, chunk_size, absolute) -> None:
    fake.misbehave.absolute_locations = absolute
    data = bytes(range(256)) * 20
    blob = descriptor_of(data)
    repo = await repository(http, fake, push=True, chunk_size=chunk_size)

    assert not await repo.has_blob(blob)
    await repo.put_blob(blob, chunks_of(data, 777))
    assert await repo.has_blob(blob)
    assert fake.blobs[blob.digest] == data

    manifest = json.dumps({"schemaVersion": 2, "layers": [{"digest": blob.digest}]}).encode()
    digest = await repo.put_manifest(manifest, OCI_MANIFEST, "v1")
    assert digest == digest_of(manifest)
    assert (await repo.fetch_manifest("v1")).data == manifest

    patches = [r for r in fake.requests if r.method == "PATCH"]
    if chunk_size is None:
        assert patches == []
    else:
        assert [p.headers["Content-Range"] for p in patches[:2]] == ["0-999", "1000-1999"]
        assert len(patches) == 6


async def test_a_blob_with_the_wrong_digest_is_refused_by_the_registry(http, fake) -> None:
    repo = await repository(http, fake, push=True)
    blob = BlobDescriptor(digest_of(b"other"), 4)
    with pytest.raises(DigestMismatch, match="digest invalid"):
        await repo.put_blob(blob, chunks_of(b"data"))
    assert blob.digest not in fake.blobs
    assert [r.method for r in fake.requests if "/uploads/" in r.path][-1] == "DELETE"


async def test_chunks_longer_than_the_descriptor_are_refused(http, fake) -> None:
    repo = await repository(http, fake, push=True)
    with pytest.raises(DigestMismatch, match="more than its size"):
        await repo.put_blob(BlobDescriptor(digest_of(b"data"), 2), chunks_of(b"data"))


async def test_a_mount_that_the_registry_declines_cancels_its_upload(http, fake) -> None:
    repo = await repository(http, fake, push=True)
    assert not await repo.mount_blob(descriptor_of(b"nowhere"), "team/base")
    assert [r.method for r in fake.requests if "/uploads/" in r.path] == ["POST", "DELETE"]
