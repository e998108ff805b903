"""Fixtures and helpers for the store side of pull and push (tests/registry/test_pull*.py,
test_push*.py, test_build_pull.py, test_oci_dir_repository.py).

The scenarios take their repository from the ``published`` fixture: it publishes an OCI
layout directory (what every peer can write) as a repository and returns the reference
``rt.pull`` takes, in two kinds: ``oci-dir`` (the layout itself, ``oci:DIR:TAG``) and
``registry`` (the layout copied by skopeo, digests preserved, into the test session's
``docker-registry``, marked insecure in a ``registries.conf`` of the test's own).

``watch(rt)`` wraps whatever repository a pull or push locates
(:mod:`aiopod.transports.registry.locate`) in a :class:`CountingRepository`, which records
every manifest fetch, blob open and upload, the most blobs open at once, and can hold a
blob after its first chunk (to cancel a pull in the middle of a layer).

Test modules import the fixtures explicitly (``from store_fixtures import
fixture_published  # noqa: F401``): this directory has no conftest of its own.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from peers import run

from aiopod import Runtime
from aiopod.transports.registry import locate
from aiopod.transports.registry.endpoints import BlobDescriptor, FetchedManifest
from aiopod.transports.registry.target import Repository, RepositoryTarget

REPOSITORY_KINDS = ["oci-dir", "registry"]


@dataclasses.dataclass
class CountingRepository:
    """A repository that records what is asked of the one it wraps."""

    inner: Repository
    manifests: list[str] = dataclasses.field(default_factory=list)
    opened: list[str] = dataclasses.field(default_factory=list)
    uploaded: list[str] = dataclasses.field(default_factory=list)
    open_now: int = 0
    most_open: int = 0
    #: When set, every blob stops after its first chunk until ``release`` is set.
    hold: bool = False
    first_chunk: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    release: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    #: Seconds each blob waits after its first chunk (to make transfers overlap).
    delay: float = 0.0

    @property
    def name(self) -> str:
        return self.inner.name

    async def fetch_manifest(self, reference: str) -> FetchedManifest:
        self.manifests.append(reference)
        return await self.inner.fetch_manifest(reference)

    def open_blob(self, blob: BlobDescriptor) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return self._open(blob)

    @asynccontextmanager
    async def _open(self, blob: BlobDescriptor) -> AsyncIterator[AsyncIterator[bytes]]:
        self.opened.append(blob.digest)
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            async with self.inner.open_blob(blob) as chunks:
                yield self._chunks(chunks)
        finally:
            self.open_now -= 1

    async def _chunks(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        first = True
        async for chunk in chunks:
            yield chunk
            if first:
                first = False
                self.first_chunk.set()
                if self.delay:
                    await anyio.sleep(self.delay)
                if self.hold:
                    await self.release.wait()

    async def has_blob(self, blob: BlobDescriptor) -> bool:
        return await self.inner.has_blob(blob)

    async def mount_blob(self, blob: BlobDescriptor, from_repository: str) -> bool:
        return await self.inner.mount_blob(blob, from_repository)

    async def put_blob(self, blob: BlobDescriptor, chunks: AsyncIterable[bytes]) -> None:
        self.uploaded.append(blob.digest)
        await self.inner.put_blob(blob, chunks)

    async def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> str:
        return await self.inner.put_manifest(data, media_type, tag)


def watch(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> CountingRepository:
    """Make every repository a pull or push locates from now on go through one
    :class:`CountingRepository` (so a test sees every call of *rt*'s pulls and pushes)."""
    counting = CountingRepository(inner=None)  # type: ignore[arg-type]  # set at each open
    original_pull, original_push = locate.locate_pull, locate.locate_push

    def counted(target: RepositoryTarget) -> RepositoryTarget:
        counting.inner = target.repository
        return dataclasses.replace(target, repository=counting)

    async def locate_pull(http: Any, text: str, options: Any) -> locate.PullLocations:
        located = await original_pull(http, text, options)
        attempts = tuple(
            dataclasses.replace(a, targets=tuple(counted(t) for t in a.targets))
            for a in located.attempts
        )
        return dataclasses.replace(located, attempts=attempts)

    async def locate_push(http: Any, text: str, options: Any) -> RepositoryTarget:
        return counted(await original_push(http, text, options))

    monkeypatch.setattr(locate, "locate_pull", locate_pull)
    monkeypatch.setattr(locate, "locate_push", locate_push)
    return counting


Publish = Callable[[Path, str], str]

layout_only = pytest.mark.parametrize("published", ["oci-dir"], indirect=True)
"""For a test that serves content a registry refuses to store (a blob unlike its digest,
a manifest over the registry's limit, indexes in indexes): it reads it from a tampered OCI
layout.  The same hostile cases over HTTP are in ``test_wire.py`` against
``fake_registry``."""


@pytest.fixture(name="published", params=REPOSITORY_KINDS)
def fixture_published(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Publish:
    """``publish(layout, ref_name)`` → the reference ``rt.pull`` takes for that image."""
    if request.param == "oci-dir":
        return lambda layout, ref_name: f"oci:{layout}:{ref_name}"
    address: str = request.getfixturevalue("registry")
    conf = tmp_path / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{address}"\ninsecure = true\n')
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
    repositories: dict[Path, str] = {}  # one repository per layout: republishing replaces

    def publish(layout: Path, ref_name: str) -> str:
        repository = repositories.setdefault(
            layout, f"{address}/published-{tmp_path.name}-{len(repositories)}".lower()
        )
        name = f"{repository}:{ref_name}"
        run(
            ["skopeo", "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
             f"oci:{layout}:{ref_name}", f"docker://{name}"]
        )  # fmt: skip
        return name

    return publish


def blob_files(root: Path) -> set[str]:
    """The digests of the blobs a store (or layout) holds."""
    blobs = root / "blobs" / "sha256"
    return {f"sha256:{p.name}" for p in blobs.iterdir()} if blobs.is_dir() else set()


def staging_leftovers(root: Path) -> list[str]:
    """What a pull left in the store's staging directory (nothing, after any pull)."""
    tmp = root / "aiopod" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def layout_manifest(layout: Path, ref_name: str) -> tuple[str, dict[str, Any]]:
    """(digest, manifest) of the image *ref_name* of an OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    for descriptor in index["manifests"]:
        if (descriptor.get("annotations") or {}).get("org.opencontainers.image.ref.name") == (
            ref_name
        ):
            digest = descriptor["digest"]
            path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
            return digest, json.loads(path.read_bytes())
    raise KeyError(ref_name)


def blob_path(layout: Path, digest: str) -> Path:
    """The file of a blob in an OCI layout (or store)."""
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
