"""Pushing an image from the store to an
:class:`~aiopod.transports.registry.endpoints.ImageDestination`.

For each layer, in parallel (at most ``concurrency`` at a time): the blob to send is the
stored one, or the stored one compressed (or recompressed) in a worker thread into the
staging area first, so that its digest and size are known before the upload starts (as
containers/image does); a blob the destination already has is not sent (a registry
destination the runtime wraps in
:class:`~aiopod.transports.registry.blob_locations.MountingDestination` first mounts
what another repository of the registry holds).  Then the config, then the manifest: the
stored one, byte for byte, when every layer went as stored (so a pulled image keeps its
digest), else the stored manifest with the new layer descriptors, of the same type (a
Docker manifest becomes OCI only when its layers are zstd, which Docker manifests cannot
describe).

Compression (``compression=``):

* ``None`` (podman's default): uncompressed layers are gzip-compressed, compressed ones go
  as stored;
* ``"gzip"`` or ``"zstd"``: every layer goes in that compression (recompressed when stored
  otherwise), as ``podman push --compression-format``;
* ``"none"``: every layer goes exactly as stored.

Memory is bounded whatever the layer sizes: blobs stream from files in 1 MiB chunks.

Locking and cancellation: the caller holds the store's shared lock for the whole push
(no blob can be deleted meanwhile); a cancelled push stops its compressions at their next
chunk and its uploads where they are (a registry discards unfinished uploads), and the
staging area is removed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import anyio
import anyio.to_thread

from aiopod.errors import AiopodError, InvalidArchive, UsageError
from aiopod.storage.ingest import CHUNK, StagingArea
from aiopod.storage.records import ImageRecord, LayerRecord
from aiopod.storage.store import Store
from aiopod.storage.threads import run_to_completion, run_until_stopped
from aiopod.transports import mediatypes as mt
from aiopod.transports.layer_compression import (
    compress_blob,
    layer_media_type,
    rewrite_manifest,
)
from aiopod.transports.registry.client import with_context
from aiopod.transports.registry.concurrency import run_limited
from aiopod.transports.registry.endpoints import BlobDescriptor, ImageDestination
from aiopod.transports.registry.progress import (
    BlobDone,
    BlobProgress,
    BlobStarted,
    CopyStarted,
    ManifestWriting,
    SignaturesStoring,
    TransferCallback,
    TransferRecord,
)

__all__ = ("COMPRESSIONS", "Compression", "push_image", "write_digestfile")

Compression = Literal["gzip", "zstd", "none"]
COMPRESSIONS: tuple[Compression, ...] = ("gzip", "zstd", "none")


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A layer as it is sent: its descriptor and the file holding its bytes."""

    blob: BlobDescriptor
    path: Path
    changed: bool


def _target_compression(layer: LayerRecord, compression: Compression | None) -> str:
    stored = mt.LAYER_COMPRESSION.get(layer.media_type, "none")
    if compression is None:
        return "gzip" if stored == "none" else stored
    if compression == "none":
        return stored
    return compression


def _compress(source: Path, kind: str, area: StagingArea) -> tuple[Path, str, int]:
    """Write *source*'s uncompressed content, compressed with *kind*, into *area*; return
    the file, its digest and its size.  Blocking; stops at the next chunk if cancelled."""
    target = area.new_path(".layer")
    digest, size = compress_blob(source, "zstd" if kind == "zstd" else "gzip", target)
    return target, digest, size


async def _file_chunks(
    path: Path, blob: BlobDescriptor, shown_as: str, progress: TransferCallback | None
) -> AsyncIterator[bytes]:
    stream: BinaryIO = await anyio.to_thread.run_sync(path.open, "rb")
    done = 0
    try:
        while chunk := await anyio.to_thread.run_sync(stream.read, CHUNK):
            yield chunk
            done += len(chunk)
            if progress is not None:
                progress(BlobProgress(shown_as, done, blob.size))
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(stream.close)


class _Push:
    def __init__(
        self,
        store: Store,
        destination: ImageDestination,
        area: StagingArea,
        *,
        manifest_type: str,
        compression: Compression | None,
        progress: TransferCallback | None,
    ) -> None:
        self.store = store
        self.destination = destination
        self.area = area
        self.manifest_type = manifest_type
        self.compression = compression
        self.progress = progress

    def report(self, record: TransferRecord) -> None:
        if self.progress is not None:
            self.progress(record)

    async def outgoing(self, layer: LayerRecord) -> _Outgoing:
        stored_kind = mt.LAYER_COMPRESSION.get(layer.media_type, "none")
        kind = _target_compression(layer, self.compression)
        source = self.store.blob_path(layer.digest)
        if kind == stored_kind:
            blob = BlobDescriptor(layer.digest, layer.size, layer.media_type)
            return _Outgoing(blob, source, False)
        path, digest, size = await run_until_stopped(_compress, source, kind, self.area)
        return _Outgoing(
            BlobDescriptor(digest, size, layer_media_type(self.manifest_type, kind)), path, True
        )

    async def send(self, blob: BlobDescriptor, path: Path, shown_as: str) -> None:
        """Send *blob* unless the destination has it; its progress records name it
        *shown_as* (the stored digest its ``BlobStarted`` named, before compression)."""
        try:
            present = await self.destination.has_blob(blob)
        except AiopodError as exc:
            raise with_context(exc, f"trying to reuse blob {shown_as} at destination: ") from exc
        if not present:
            await self.destination.put_blob(blob, _file_chunks(path, blob, shown_as, self.progress))
        self.report(BlobDone(shown_as, blob.size))


def _manifest(
    record: ImageRecord, stored: bytes, layers: list[_Outgoing], manifest_type: str
) -> tuple[bytes, str]:
    if not any(layer.changed for layer in layers):
        return stored, record.manifest_media_type
    described = [(o.blob.media_type, o.blob.digest, o.blob.size) for o in layers]
    return rewrite_manifest(record, stored, described, manifest_type)


async def push_image(
    store: Store,
    record: ImageRecord,
    destination: ImageDestination,
    tag: str | None,
    *,
    compression: Compression | None = None,
    concurrency: int = 6,
    progress: TransferCallback | None = None,
) -> str:
    """Push the image of *record* to *destination* (under *tag*, or by digest only);
    return the digest of the manifest pushed.

    The caller holds the store's shared lock (``store.reading()``) until this returns.

    :raises ~aiopod.errors.UsageError: an unknown *compression*.
    """
    if compression is not None and compression not in COMPRESSIONS:
        raise UsageError(f"unknown compression {compression!r}: use gzip, zstd or none")
    manifest_type = record.manifest_media_type
    if manifest_type not in mt.MANIFEST_TYPES:
        raise InvalidArchive(f"image {record.id} has a manifest of type {manifest_type!r}")
    zstd = any(_target_compression(layer, compression) == "zstd" for layer in record.layers)
    if manifest_type == mt.DOCKER_MANIFEST and zstd:
        manifest_type = mt.OCI_MANIFEST
    area: StagingArea = await anyio.to_thread.run_sync(store.new_staging_area)
    try:
        push = _Push(
            store,
            destination,
            area,
            manifest_type=manifest_type,
            compression=compression,
            progress=progress,
        )
        push.report(CopyStarted())
        outgoing: list[_Outgoing | None] = [None] * len(record.layers)

        def layer(index: int, stored: LayerRecord) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                prepared = await push.outgoing(stored)
                await push.send(prepared.blob, prepared.path, stored.digest)
                outgoing[index] = prepared

            return call

        for stored in record.layers:
            push.report(BlobStarted(stored.digest, stored.size))
        await run_limited([layer(i, stored) for i, stored in enumerate(record.layers)], concurrency)
        config_type = mt.DOCKER_CONFIG if manifest_type == mt.DOCKER_MANIFEST else mt.OCI_CONFIG
        config = BlobDescriptor(record.config_digest, record.config_size, config_type)
        push.report(BlobStarted(config.digest, config.size, "config"))
        await push.send(config, store.blob_path(config.digest), config.digest)
        stored_manifest = await anyio.to_thread.run_sync(
            store.blob_path(record.manifest_digest).read_bytes
        )
        data, media_type = _manifest(
            record, stored_manifest, [o for o in outgoing if o is not None], manifest_type
        )
        push.report(ManifestWriting())
        digest = await destination.put_manifest(data, media_type, tag)
        expected = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise InvalidArchive(
                f"{destination.name} stored the manifest as {digest}, but its digest is {expected}"
            )
        push.report(SignaturesStoring())
        return digest
    finally:
        await run_to_completion(area.close)


def write_digestfile(path: str | os.PathLike[str], digest: str) -> None:
    """Write *digest* to *path* as podman's ``--digestfile`` does (no newline). Blocking."""
    Path(path).write_text(digest, encoding="ascii")
