"""Where blobs were seen on registries, so that a push can mount instead of upload.

A registry links a blob it holds in one repository into another without a transfer
(``POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=OTHER``), but only if it is asked with
the repository that holds it.  Like podman's blob info cache, :class:`BlobLocations`
remembers, per blob digest, the registry repositories it was pulled from or pushed to;
:class:`MountingDestination` asks a registry to mount a blob from one of them, or from
the repositories the image is named in on that registry (:func:`mount_sources`: where a
pulled or tagged image's stored blobs are), before it falls back to uploading it.

The table lives in the store, ``<root>/aiopod/blob-locations.json``: at most
:data:`MAX_BLOBS` digests (the least recently recorded evicted first), each with at most
:data:`MAX_REPOSITORIES` repositories (the most recent first).  It is a cache only: a
missing, unreadable or corrupt file is read as empty and a failed write is ignored, so it
never fails a pull or a push; a wrong entry costs one refused mount request.  Writes are
atomic (not fsynced); two processes writing at once may lose some of each other's new
entries, never corrupt the file.

Blocking and locking: file I/O runs in worker threads; an :class:`anyio.Lock` orders the
updates of one runtime.  Cancelling :meth:`BlobLocations.record` may drop the update.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterable, Iterable, Sequence
from pathlib import Path
from typing import Final

import anyio

from aiopod._reference import normalize_docker
from aiopod.errors import InvalidReference, RegistryError
from aiopod.storage.fsutil import atomic_write
from aiopod.transports.registry.endpoints import BlobDescriptor, ImageDestination

__all__ = (
    "FILE_NAME",
    "MAX_BLOBS",
    "MAX_MOUNT_ATTEMPTS",
    "MAX_REPOSITORIES",
    "BlobLocations",
    "MountingDestination",
    "mount_sources",
)

FILE_NAME: Final = "blob-locations.json"
MAX_BLOBS: Final = 20_000
MAX_REPOSITORIES: Final = 4
#: Repositories a push asks to mount one blob from before it uploads it.
MAX_MOUNT_ATTEMPTS: Final = 3
_MAX_FILE_SIZE: Final = 16 * 1024 * 1024

_Table = dict[str, list[str]]


def _registry_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def mount_sources(names: Sequence[str], destination: str) -> list[str]:
    """The repositories among *names* (an image's names) on the registry of *destination*
    (``HOST/PATH``), other than *destination* itself, in order."""
    registry = _registry_of(destination)
    sources: list[str] = []
    for name in names:
        try:
            ref = normalize_docker(name)
        except InvalidReference:
            continue
        if ref.domain == registry and ref.name != destination and ref.name not in sources:
            sources.append(ref.name)
    return sources


def _valid(table: object) -> _Table:
    if not isinstance(table, dict):
        return {}
    return {
        digest: [r for r in repos if isinstance(r, str) and "/" in r][:MAX_REPOSITORIES]
        for digest, repos in table.items()
        if isinstance(digest, str) and digest.startswith("sha256:") and isinstance(repos, list)
    }


class BlobLocations:
    """The blob → repositories table of one store (see the module).

    :param meta_dir: the store's metadata directory (``<root>/aiopod``).
    """

    def __init__(self, meta_dir: str | os.PathLike[str], *, max_blobs: int = MAX_BLOBS) -> None:
        self.path = Path(meta_dir) / FILE_NAME
        self.max_blobs = max_blobs
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"BlobLocations({str(self.path)!r})"

    def _load(self) -> _Table:
        try:
            with open(self.path, "rb") as file:
                data = file.read(_MAX_FILE_SIZE + 1)
            if len(data) > _MAX_FILE_SIZE:
                return {}
            return _valid(json.loads(data))
        except (OSError, ValueError):
            return {}

    def _store(self, table: _Table) -> None:
        data = json.dumps(table, separators=(",", ":")).encode()
        with contextlib.suppress(OSError):  # a cache: the next pull or push records again
            atomic_write(self.path, data, durable=False)

    async def repositories(self, digest: str) -> list[str]:
        """The repositories *digest* was last seen in, the most recent first."""
        table = await anyio.to_thread.run_sync(self._load)
        return list(table.get(digest, ()))

    async def record(self, repository: str, digests: Iterable[str]) -> None:
        """Remember that *repository* (``HOST[:PORT]/PATH``) holds each of *digests*."""
        wanted = list(dict.fromkeys(digests))
        if not wanted:
            return

        def update() -> None:
            table = self._load()
            for digest in wanted:
                repos = [repository, *(r for r in table.pop(digest, ()) if r != repository)]
                table[digest] = repos[:MAX_REPOSITORIES]  # re-inserted: the newest
            for stale in list(table)[: max(0, len(table) - self.max_blobs)]:
                del table[stale]
            self._store(table)

        async with self._lock:
            await anyio.to_thread.run_sync(update)


class MountingDestination:
    """A registry repository as a push destination that mounts the blobs it lacks from
    other repositories of the same registry known to hold them (:class:`BlobLocations`),
    and records where every blob it checked, mounted or received now is.

    *named_in* are the pushed image's names and *stored* the digests of its blobs as
    stored: those blobs are also asked of the image's repositories on the registry.  A
    mount the registry refuses or fails (no pull access to the other repository, a
    registry without mounts) is not an error: the blob is uploaded instead.
    """

    def __init__(
        self,
        inner: ImageDestination,
        locations: BlobLocations,
        *,
        named_in: Sequence[str] = (),
        stored: Iterable[str] = (),
    ) -> None:
        self.inner = inner
        self.locations = locations
        self.named_in = mount_sources(named_in, inner.name)
        self.stored = frozenset(stored)
        self.mounted: list[str] = []
        self._present: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    def __repr__(self) -> str:
        return f"MountingDestination({self.inner!r})"

    async def has_blob(self, blob: BlobDescriptor) -> bool:
        """Whether the repository holds the blob, after asking the registry to mount it
        from a repository known to hold it."""
        if await self.inner.has_blob(blob):
            self._present.append(blob.digest)
            return True
        registry = _registry_of(self.name)
        sources = [
            r
            for r in await self.locations.repositories(blob.digest)
            if r != self.name and _registry_of(r) == registry
        ]
        if blob.digest in self.stored:
            sources += [r for r in self.named_in if r not in sources]
        for source in sources[:MAX_MOUNT_ATTEMPTS]:
            try:
                mounted = await self.inner.mount_blob(blob, source)
            except RegistryError:
                continue
            if mounted:
                self.mounted.append(blob.digest)
                self._present.append(blob.digest)
                return True
        return False

    async def mount_blob(self, blob: BlobDescriptor, from_repository: str) -> bool:
        return await self.inner.mount_blob(blob, from_repository)

    async def put_blob(self, blob: BlobDescriptor, chunks: AsyncIterable[bytes]) -> None:
        await self.inner.put_blob(blob, chunks)
        self._present.append(blob.digest)

    async def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> str:
        """Store the manifest, then record where the blobs it names now are."""
        digest = await self.inner.put_manifest(data, media_type, tag)
        await self.locations.record(self.name, self._present)
        return digest
