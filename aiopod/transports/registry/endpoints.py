"""Where a pull reads an image from and a push writes it to.

The store side of the registry transport (pulling into the store, pushing from it) talks
to a repository only through these two protocols; the registry client implements them
for ``HOST/NAME`` on a registry.  Everything that crosses them is raw: manifest bytes as
received (their digest is the digest of these exact bytes) and blob bytes as stored.

Verification is split so that each side checks what it alone can:

* a source checks the transport: sizes it was promised (it never yields more than a
  descriptor's ``size``, and a manifest of a requested *digest* hashes to it), the size
  caps of manifests, and it never sends credentials to a host other than the registry;
* the puller checks the content: every blob's digest and size, the config's ``diff_ids``
  against the uncompressed layers, media types, platform selection and index depth.

Cancellation: every method may be cancelled; a cancelled transfer leaves nothing behind
at the destination that a later push would trust (a registry discards unfinished uploads).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

__all__ = ("BlobDescriptor", "FetchedManifest", "ImageDestination", "ImageSource")


@dataclass(frozen=True, slots=True)
class BlobDescriptor:
    """A blob as a manifest names it: its digest (``sha256:<hex>``), size and media type;
    ``urls`` as the manifest lists them (a puller does not fetch foreign URLs)."""

    digest: str
    size: int
    media_type: str = ""
    urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    """A manifest or index as received: the exact bytes, the media type the source gave
    for them, and ``digest``, the sha256 digest of those bytes."""

    data: bytes
    media_type: str
    digest: str


class ImageSource(Protocol):
    """A repository an image is pulled from."""

    @property
    def name(self) -> str:
        """The repository as podman names it (``registry.example:5000/team/app``)."""
        ...

    async def fetch_manifest(self, reference: str) -> FetchedManifest:
        """The manifest or index that *reference* (a tag or a ``sha256:`` digest) names.
        For a digest, the bytes are checked to hash to it.

        :raises aiopod.errors.ImageNotKnown: the repository has no such manifest.
        """
        ...

    def open_blob(self, blob: BlobDescriptor) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The blob's bytes as chunks (``async with source.open_blob(d) as chunks: async for
        chunk in chunks``).  Never more than ``blob.size`` bytes in all (more is an error);
        the caller checks the digest."""
        ...


class ImageDestination(Protocol):
    """A repository an image is pushed to."""

    @property
    def name(self) -> str:
        """The repository as podman names it."""
        ...

    async def has_blob(self, blob: BlobDescriptor) -> bool:
        """Whether the repository already holds the blob."""
        ...

    async def mount_blob(self, blob: BlobDescriptor, from_repository: str) -> bool:
        """Ask the registry to link the blob from another repository of the same registry
        (cross-repository mount); whether it did."""
        ...

    async def put_blob(self, blob: BlobDescriptor, chunks: AsyncIterable[bytes]) -> None:
        """Upload the blob's bytes (exactly ``blob.size`` of them, hashing to
        ``blob.digest``); the registry verifies the digest when the upload completes."""
        ...

    async def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> str:
        """Store a manifest (under *tag*, or only by its digest); returns its digest."""
        ...
