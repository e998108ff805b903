"""Committing a build step's result as an image in the store.

The new image is the base image's layers (already in the store) plus the layers the
build wrote (uncompressed tars in a staging area: their digest is their diff_id), a
config serialised from :class:`~aiopod.builder.image_config.ImageConfig`, and a
synthesised OCI manifest.  One store transaction adds the blobs and the record (with the
names given, which move from any other image, as ``podman build -t`` does) and records a
``Built`` event.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import anyio
import anyio.to_thread

from aiopod.builder.image_config import ImageConfig
from aiopod.events.model import Event, EventKind
from aiopod.storage.ingest import StagedBlob, StagingArea
from aiopod.storage.records import ImageRecord, LayerRecord
from aiopod.storage.store import Store
from aiopod.transports import mediatypes as mt
from aiopod.transports.candidate import assemble_record

__all__ = ("commit_image", "name_built_image", "staged_layer_record")


def staged_layer_record(blob: StagedBlob) -> LayerRecord:
    """The record of an uncompressed layer tar the build wrote."""
    return LayerRecord(
        blob.digest, mt.OCI_LAYER_TAR, blob.size, blob.uncompressed_digest, blob.uncompressed_size
    )


def _assemble(
    area: StagingArea,
    config: ImageConfig,
    created: str,
    layers: Sequence[LayerRecord],
    names: Sequence[str],
) -> tuple[ImageRecord, list[StagedBlob]]:
    data = config.serialise(created)
    config_blob = area.ingest(io.BytesIO(data), max_size=len(data), max_uncompressed=len(data))
    record, manifest = assemble_record(config_blob, json.loads(data), layers, area, names=names)
    return record, [config_blob, manifest]


async def commit_image(
    store: Store,
    area: StagingArea,
    *,
    base_layers: Sequence[LayerRecord],
    new_layers: Sequence[StagedBlob],
    config: ImageConfig,
    created: str,
    names: Sequence[str] = (),
    event_attributes: dict[str, str] | None = None,
    new_ids: list[str] | None = None,
) -> tuple[ImageRecord, list[Event]]:
    """Store the image made of *base_layers* + *new_layers* with *config*.

    Returns the stored record (an image with the same ID keeps its old names too) and
    the recorded events; the ID is appended to *new_ids* when no such image existed.
    The commit is shielded from cancellation once it starts.
    """
    layers = [*base_layers, *(staged_layer_record(b) for b in new_layers)]
    record, blobs = await anyio.to_thread.run_sync(_assemble, area, config, created, layers, names)
    async with store.transaction() as txn:
        existing = txn.state.images.get(record.id)
        if existing is None:
            for blob in [*blobs, *new_layers]:
                txn.add_blob(blob)
            stored = record
            if new_ids is not None:
                new_ids.append(record.id)
        else:
            stored = existing.with_names(_merged_names(existing.names, names))
        if existing is None or stored != existing:
            txn.put(stored)
        txn.emit([_built_event(stored.id, names, event_attributes)])
    return txn.state.images[stored.id], txn.recorded


def _merged_names(old: Sequence[str], new: Sequence[str]) -> list[str]:
    """The names of an image that had *old* once a build names it *new*, in podman's
    order: the first new name, the old ones, then the other new ones (containers/image
    sets the committed name before the old ones; the other tags are added after)."""
    return [*new[:1], *old, *new[1:]]


def _built_event(image_id: str, names: Sequence[str], attributes: dict[str, str] | None) -> Event:
    return Event(
        EventKind.BUILT,
        "image",
        image_id,
        names[0] if names else None,
        attributes=dict(attributes or {}),
    )


async def name_built_image(
    store: Store,
    image_id: str,
    names: Sequence[str],
    *,
    event_attributes: dict[str, str] | None = None,
) -> tuple[ImageRecord, list[Event]]:
    """Make an image already stored (the last step of a ``--layers`` build) the build's
    result: give it *names* (moved from any other image) and record a ``Built`` event."""
    async with store.transaction() as txn:
        existing = txn.state.images[image_id]
        stored = existing.with_names(_merged_names(existing.names, names))
        if stored != existing:
            txn.put(stored)
        txn.emit([_built_event(image_id, names, event_attributes)])
    return txn.state.images[image_id], txn.recorded
