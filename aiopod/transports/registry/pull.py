"""Pulling an image from an :class:`~aiopod.transports.registry.endpoints.ImageSource` into
the store.

Every hazard of ``docs/design/hostile-input.md`` section R that the content can carry is
checked here, before anything is committed:

1. the manifest (at most 4 MiB, strict JSON without duplicate keys) is identified by the
   sha256 of its exact bytes, which must equal the digest asked for (R1) and is never
   taken from what the source claims (R2); an index is resolved to one platform's
   manifest, at most 8 levels deep (R10), each level checked the same way;
2. the config (at most 4 MiB, R5) must hash to its descriptor's digest and size;
   ``rootfs.diff_ids`` must be valid digests, as many as the layers;
3. each layer not already in the store is streamed into the staging area while it is
   hashed and decompressed (memory bounded, whatever its size); its bytes must hash to
   its digest and have its size (R3, R4), and what it uncompresses to must hash to its
   diff_id (R6).  Layer media types are OCI/Docker tar, gzip or zstd; a layer's ``urls``
   are never fetched (R7).  At most ``concurrency`` layers transfer at once.

Blobs the store already has are not transferred again (a layer by its digest, the config
when an image has its ID), so pulling an image that is present reads only its manifest.
Layers are stored as pulled (compressed); the image ID is the config's digest.

Cancellation and failure: nothing reaches the store until the final transaction (which
takes the store's exclusive lock briefly); before it, cancelling stops the transfers and
the staging area is removed, so the store is as it was.  A blob the pull counted on
finding in the store that another process removed meanwhile is fetched on a second try.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from aiopod._platforms import Platform
from aiopod.errors import DigestMismatch, InvalidArchive, NoMatchingPlatform
from aiopod.events.model import Event, EventKind
from aiopod.storage.digest import sha256_digest
from aiopod.storage.ingest import StagedBlob, StagingArea
from aiopod.storage.records import ImageRecord, LayerRecord, StoreState
from aiopod.storage.store import Store
from aiopod.storage.threads import run_to_completion
from aiopod.transports import mediatypes as mt
from aiopod.transports.candidate import (
    LayerBlob,
    assemble_record,
    check_layer,
    check_layer_count,
    validate_config,
)
from aiopod.transports.documents import check_descriptor, check_document, image_descriptors
from aiopod.transports.jsonutil import MiB, parse_json_object
from aiopod.transports.load import merge_image
from aiopod.transports.registry.blobstream import stage_blob
from aiopod.transports.registry.concurrency import run_limited
from aiopod.transports.registry.endpoints import BlobDescriptor, FetchedManifest, ImageSource
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
from aiopod.transports.source import ArchiveLimits

__all__ = (
    "DEFAULT_CONCURRENCY",
    "MAX_DOCUMENT",
    "MAX_INDEX_DEPTH",
    "PulledImage",
    "ResolvedManifest",
    "pull_image",
    "resolve_manifest",
)

#: How many layers transfer at once (podman's default).
DEFAULT_CONCURRENCY = 6
#: The largest manifest, index or config accepted (R5).
MAX_DOCUMENT = 4 * MiB
#: How many indexes deep a manifest may be nested (R10).
MAX_INDEX_DEPTH = 8

_SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)


@dataclass(frozen=True, slots=True)
class ResolvedManifest:
    """The image manifest a reference leads to on this platform.

    ``digest`` is the sha256 of ``data``; ``index_digests`` are the digests of the indexes
    passed through on the way, outermost first (podman records them as digests of the
    image too, so ``RepoDigests`` names them).
    """

    data: bytes
    media_type: str
    digest: str
    doc: dict[str, Any]
    index_digests: tuple[str, ...] = ()

    @property
    def top_digest(self) -> str:
        """The digest of what the reference names (the outermost index, or the manifest)."""
        return self.index_digests[0] if self.index_digests else self.digest


@dataclass(slots=True)
class PulledImage:
    """What a pull stored: the image's record and the events recorded with it;
    ``transferred`` lists the digests of the blobs that came from the source."""

    record: ImageRecord
    events: list[Event]
    transferred: list[str] = field(default_factory=list)


def _served_type(fetched: FetchedManifest, doc: dict[str, Any]) -> str:
    served = fetched.media_type.partition(";")[0].strip()
    declared = doc.get("mediaType")
    if served in _SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise InvalidArchive(
            "the image has a Docker schema 1 manifest, which aiopod does not pull: "
            "push it again with a current tool (it then gets a schema 2 or OCI manifest)"
        )
    if served in mt.MANIFEST_TYPES or served in mt.INDEX_TYPES:
        return served
    if isinstance(declared, str):
        return declared
    # An OCI document without mediaType, served as a generic type: its fields decide.
    return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST


def _matches(descriptor: dict[str, Any], wanted: Platform) -> bool:
    platform = descriptor.get("platform")
    if not isinstance(platform, dict):
        return False
    return (
        platform.get("os") == wanted.os
        and platform.get("architecture") == wanted.architecture
        and (platform.get("variant") or "") == wanted.variant
    )


def _choose(doc: dict[str, Any], media_type: str, wanted: Sequence[Platform], what: str) -> Any:
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidArchive(f"{what} has no manifests list")
    descriptors = [check_descriptor(m, f"{what} manifests[{i}]") for i, m in enumerate(manifests)]
    for platform in wanted:
        for descriptor in descriptors:
            if _matches(descriptor, platform):
                return descriptor
    first = wanted[0]
    kind = "manifest list" if media_type == mt.DOCKER_MANIFEST_LIST else "image index"
    raise NoMatchingPlatform(
        f"no image found in {kind} for architecture {first.architecture}, "
        f'variant "{first.variant}", OS {first.os}'
    )


async def resolve_manifest(
    source: ImageSource, reference: str, wanted: Sequence[Platform]
) -> ResolvedManifest:
    """Fetch the manifest *reference* (a tag or a digest) names in *source*, following
    indexes to the first of the *wanted* platforms they offer.

    :raises ~aiopod.errors.DigestMismatch: a manifest does not hash to the digest that
        named it, or has another size than its descriptor (R1).
    :raises ~aiopod.errors.LimitExceeded: a document over 4 MiB (R5).
    :raises ~aiopod.errors.InvalidArchive: malformed, schema 1, or nested too deep (R10).
    :raises ~aiopod.errors.NoMatchingPlatform: an index offers none of *wanted*.
    """
    expected_digest = reference if reference.startswith("sha256:") else None
    expected_size: int | None = None
    index_digests: list[str] = []
    fetched = await source.fetch_manifest(reference)
    for _ in range(MAX_INDEX_DEPTH + 1):
        digest = sha256_digest(fetched.data)
        what = f"manifest {digest}"
        if expected_digest is not None and digest != expected_digest:
            raise DigestMismatch(f"manifest {expected_digest} has content with digest {digest}")
        if expected_size is not None and len(fetched.data) != expected_size:
            raise DigestMismatch(
                f"{what} is {len(fetched.data)} bytes, its descriptor says {expected_size}"
            )
        doc = parse_json_object(fetched.data, what=what, max_size=MAX_DOCUMENT)
        media_type = _served_type(fetched, doc)
        check_document(doc, media_type, what)
        if media_type in mt.MANIFEST_TYPES:
            return ResolvedManifest(fetched.data, media_type, digest, doc, tuple(index_digests))
        if media_type not in mt.INDEX_TYPES:
            raise InvalidArchive(f"{what} has unsupported media type {media_type!r}")
        index_digests.append(digest)
        chosen = _choose(doc, media_type, wanted, f"index {digest}")
        if chosen["mediaType"] not in mt.MANIFEST_TYPES | mt.INDEX_TYPES:
            raise InvalidArchive(
                f"index {digest} lists a manifest of unsupported type {chosen['mediaType']!r}"
            )
        expected_digest, expected_size = chosen["digest"], chosen["size"]
        fetched = await source.fetch_manifest(chosen["digest"])
    raise InvalidArchive(
        f"{reference}: indexes nest more than {MAX_INDEX_DEPTH} levels deep (or nest themselves)"
    )


def _blob(descriptor: dict[str, Any]) -> BlobDescriptor:
    urls = descriptor.get("urls")
    return BlobDescriptor(
        digest=descriptor["digest"],
        size=descriptor["size"],
        media_type=descriptor["mediaType"],
        urls=tuple(u for u in urls if isinstance(u, str)) if isinstance(urls, list) else (),
    )


def _staged_bytes(area: StagingArea, data: bytes) -> StagedBlob:
    return area.ingest(io.BytesIO(data), max_size=len(data), max_uncompressed=len(data))


def _read_present(path: Path, size: int) -> bytes | None:
    """The bytes of a blob the store holds, or None if it is gone or has another size."""
    try:
        data: bytes = path.read_bytes()
    except FileNotFoundError:
        return None
    return data if len(data) == size else None


class _Pull:
    """One pull's transfers into one staging area."""

    def __init__(
        self,
        store: Store,
        source: ImageSource,
        area: StagingArea,
        state: StoreState,
        *,
        concurrency: int,
        progress: TransferCallback | None,
        limits: ArchiveLimits,
    ) -> None:
        self.store = store
        self.source = source
        self.area = area
        self.state = state
        self.concurrency = concurrency
        self.progress = progress
        self.limits = limits
        self.transferred: list[str] = []
        #: Blobs transferred into the staging area, by digest.
        self.staged: dict[str, StagedBlob] = {}
        #: Blobs the record needs that the store already has.
        self.reused: set[str] = set()

    def report(self, record: TransferRecord) -> None:
        if self.progress is not None:
            self.progress(record)

    async def fetch(self, blob: BlobDescriptor, max_uncompressed: int) -> StagedBlob:
        def progress(done: int) -> None:
            self.report(BlobProgress(blob.digest, done, blob.size))

        staged = await stage_blob(
            self.source, blob, self.area, max_uncompressed=max_uncompressed, on_progress=progress
        )
        self.transferred.append(blob.digest)
        self.staged[blob.digest] = staged
        self.report(BlobDone(blob.digest, blob.size))
        return staged

    def present_layers(self) -> dict[str, LayerRecord]:
        layers: dict[str, LayerRecord] = {}
        for record in self.state.images.values():
            for layer in record.layers:
                layers.setdefault(layer.digest, layer)
        return layers

    async def config(self, blob: BlobDescriptor, what: str) -> tuple[StagedBlob, dict[str, Any]]:
        if blob.size > MAX_DOCUMENT:
            raise InvalidArchive(f"{what}: config is {blob.size} bytes, more than {MAX_DOCUMENT}")
        present = self.state.images.get(blob.digest.removeprefix("sha256:"))
        data = None
        if present is not None and present.config_size == blob.size:
            path = self.store.blob_path(blob.digest)
            data = await anyio.to_thread.run_sync(_read_present, path, blob.size)
        if data is not None and sha256_digest(data) == blob.digest:
            self.reused.add(blob.digest)
            staged = StagedBlob(blob.digest, blob.size, path, "none", blob.digest, blob.size)
        else:
            staged = await self.fetch(blob, blob.size)
            data = await anyio.to_thread.run_sync(staged.path.read_bytes)
        doc = parse_json_object(data, what=f"config {blob.digest}", max_size=MAX_DOCUMENT)
        return staged, doc

    async def layers(
        self, blobs: Sequence[BlobDescriptor], diff_ids: Sequence[str], what: str
    ) -> list[LayerRecord]:
        present = self.present_layers()
        records: list[LayerRecord | None] = [None] * len(blobs)
        transfers = []

        def transfer(index: int, blob: BlobDescriptor) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                staged = await self.fetch(blob, self.limits.max_uncompressed_bytes)
                layer = LayerBlob(staged, blob.media_type)
                records[index] = check_layer(index, layer, diff_ids[index], what=what)

            return call

        for index, blob in enumerate(blobs):
            existing = present.get(blob.digest)
            self.report(BlobStarted(blob.digest, blob.size, "blob", existing is not None))
            if existing is None:
                transfers.append(transfer(index, blob))
            else:
                records[index] = self.reuse(index, blob, existing, diff_ids[index], what)
        await run_limited(transfers, self.concurrency)
        return [record for record in records if record is not None]

    def reuse(
        self, index: int, blob: BlobDescriptor, existing: LayerRecord, diff_id: str, what: str
    ) -> LayerRecord:
        if existing.diff_id != diff_id:
            raise InvalidArchive(
                f"{what}: layer {index} ({blob.digest}) uncompresses to "
                f"{existing.diff_id}, but the config's diff_id is {diff_id}"
            )
        compression = mt.LAYER_COMPRESSION.get(blob.media_type)
        if (
            compression != mt.LAYER_COMPRESSION.get(existing.media_type)
            or existing.size != blob.size
        ):
            raise InvalidArchive(
                f"{what}: layer {index} ({blob.digest}) is declared {blob.media_type} "
                f"of {blob.size} bytes, but that blob is {existing.media_type} of {existing.size}"
            )
        self.reused.add(blob.digest)
        self.report(BlobDone(blob.digest, blob.size))
        return LayerRecord(
            blob.digest, blob.media_type, blob.size, diff_id, existing.uncompressed_size
        )


def _image_parts(
    resolved: ResolvedManifest,
) -> tuple[BlobDescriptor, list[BlobDescriptor], str]:
    what = f"manifest {resolved.digest}"
    config, layers = image_descriptors(resolved.doc, what)
    image = f"image {config['digest'].removeprefix('sha256:')[:12]}"
    return _blob(config), [_blob(layer) for layer in layers], image


async def _stage(
    pull: _Pull, resolved: ResolvedManifest, name: str | None
) -> tuple[ImageRecord, list[StagedBlob]]:
    config_blob, layer_blobs, what = _image_parts(resolved)
    config, config_doc = await pull.config(config_blob, what)
    diff_ids = validate_config(config_doc, what=what)
    check_layer_count(diff_ids, len(layer_blobs), what=what)
    layers = await pull.layers(layer_blobs, diff_ids, what)
    skipped = config_blob.digest in pull.reused
    pull.report(BlobStarted(config_blob.digest, config_blob.size, "config", skipped))
    manifest = await anyio.to_thread.run_sync(_staged_bytes, pull.area, resolved.data)
    record, manifest = assemble_record(
        config,
        config_doc,
        layers,
        pull.area,
        names=[name] if name else [],
        manifest=manifest,
        manifest_media_type=resolved.media_type,
    )
    record = replace(record, digests=(resolved.digest, *resolved.index_digests))
    return record, [manifest, *pull.staged.values()]


class _BlobsVanished(Exception):
    """Blobs the pull counted on were removed from the store before the commit."""


async def _commit(
    store: Store, record: ImageRecord, blobs: list[StagedBlob], reused: set[str], event_name: str
) -> tuple[ImageRecord, list[Event]]:
    async with store.transaction() as txn:
        referenced = txn.state.referenced_blobs()
        if any(digest not in referenced for digest in reused):
            raise _BlobsVanished()
        merged = merge_image(txn, record, blobs)
        txn.emit([Event(EventKind.PULLED, "image", merged.id, event_name)])
    return merged, txn.recorded


async def pull_image(
    store: Store,
    source: ImageSource,
    resolved: ResolvedManifest,
    *,
    name: str | None,
    event_name: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: TransferCallback | None = None,
    limits: ArchiveLimits | None = None,
) -> PulledImage:
    """Store the image of *resolved* (from :func:`resolve_manifest`), named *name*.

    The ``Pulled`` event carries *event_name* (podman's: the reference as the user gave it,
    fully qualified).  An image already in the store (same ID) keeps its record and gains
    the name and the digests.  Takes the store's exclusive lock only for the commit.
    """
    limits = limits or ArchiveLimits()
    for attempt in range(2):
        area: StagingArea = await anyio.to_thread.run_sync(store.new_staging_area)
        try:
            pull = _Pull(
                store,
                source,
                area,
                await store.snapshot() if attempt == 0 else _EMPTY_STATE,
                concurrency=concurrency,
                progress=progress,
                limits=limits,
            )
            if attempt == 0:
                pull.report(CopyStarted())
            record, blobs = await _stage(pull, resolved, name)
            pull.report(ManifestWriting())
            try:
                merged, events = await _commit(store, record, blobs, pull.reused, event_name)
            except _BlobsVanished:
                continue  # the second attempt takes nothing from the store
            pull.report(SignaturesStoring())
            return PulledImage(merged, events, pull.transferred)
        finally:
            await run_to_completion(area.close)
    raise AssertionError("the second attempt reuses no blob, so it cannot lose one")


_EMPTY_STATE = StoreState()
