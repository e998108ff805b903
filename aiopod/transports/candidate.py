"""An image read from an archive but not yet in the store: validation and its record.

Every check happens here, before anything is committed: the config is strict JSON with
``rootfs.type == "layers"``; there are as many diff_ids as layers; each layer's
uncompressed digest equals its diff_id; each layer's compression is what its media type
says.  Then :func:`build_record` produces the store record (and, for sources that have
no OCI manifest, such as docker-archive, a synthesised one).

Blocking (it may write a small manifest into the staging area).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiopod.errors import InvalidArchive, UnsafeLayer
from aiopod.storage.digest import is_digest
from aiopod.storage.ingest import StagedBlob, StagingArea
from aiopod.storage.records import HistoryEntry, ImageRecord, LayerRecord
from aiopod.transports import mediatypes as mt

__all__ = (
    "ImageCandidate",
    "LayerBlob",
    "assemble_record",
    "build_record",
    "check_layer",
    "check_layer_count",
    "validate_config",
)


@dataclass(frozen=True, slots=True)
class LayerBlob:
    """A staged layer and the media type its source gave it (None: pick from content)."""

    blob: StagedBlob
    media_type: str | None = None


@dataclass(slots=True)
class ImageCandidate:
    """An image found in an archive; ``manifest`` is kept verbatim when the source had one."""

    config: StagedBlob
    config_doc: dict[str, Any]
    layers: list[LayerBlob]
    names: list[str] = field(default_factory=list)
    manifest: StagedBlob | None = None
    manifest_media_type: str | None = None
    what: str = "image"


def validate_config(doc: dict[str, Any], *, what: str) -> list[str]:
    """Check an image config's required fields; return its diff_ids."""
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict):
        raise InvalidArchive(f"{what}: config has no rootfs")
    if rootfs.get("type") != "layers":
        raise InvalidArchive(f"{what}: config rootfs.type is {rootfs.get('type')!r}, not 'layers'")
    diff_ids = rootfs.get("diff_ids", [])
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and is_digest(d) for d in diff_ids
    ):
        raise InvalidArchive(f"{what}: config rootfs.diff_ids holds an invalid digest")
    history = doc.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise InvalidArchive(f"{what}: config history is not a list of objects")
    return list(diff_ids)


def check_layer(index: int, layer: LayerBlob, diff_id: str, *, what: str) -> LayerRecord:
    """The record of layer *index* of an image: refused when the blob is not a safe layer,
    does not uncompress to *diff_id*, or is not compressed as its media type says."""
    blob = layer.blob
    if blob.layer_problem is not None:
        raise UnsafeLayer(f"{what}: layer {index} ({blob.digest}) is refused: {blob.layer_problem}")
    if blob.uncompressed_digest != diff_id:
        raise InvalidArchive(
            f"{what}: layer {index} ({blob.digest}) uncompresses to "
            f"{blob.uncompressed_digest}, but the config's diff_id is {diff_id}"
        )
    media_type = layer.media_type
    if media_type is None:
        media_type = mt.oci_layer_type(blob.compression)
        if media_type is None:
            raise InvalidArchive(
                f"{what}: layer {index} is compressed with {blob.compression}, "
                "which OCI images cannot carry"
            )
    elif mt.LAYER_COMPRESSION.get(media_type) != blob.compression:
        if media_type not in mt.LAYER_COMPRESSION:
            raise InvalidArchive(f"{what}: layer {index} has unsupported type {media_type!r}")
        raise InvalidArchive(
            f"{what}: layer {index} is declared {media_type} but its content is "
            f"{blob.compression}-compressed"
        )
    return LayerRecord(blob.digest, media_type, blob.size, diff_id, blob.uncompressed_size)


def check_layer_count(diff_ids: Sequence[str], layers: int, *, what: str) -> None:
    """Refuse a config whose diff_ids are more or fewer than the image's layers."""
    if len(diff_ids) != layers:
        raise InvalidArchive(
            f"{what}: config lists {len(diff_ids)} diff_ids but there are {layers} layers"
        )


def _check_layers(candidate: ImageCandidate, diff_ids: list[str]) -> list[LayerRecord]:
    what = candidate.what
    check_layer_count(diff_ids, len(candidate.layers), what=what)
    return [
        check_layer(index, layer, diff_id, what=what)
        for index, (layer, diff_id) in enumerate(zip(candidate.layers, diff_ids, strict=True))
    ]


def _synthesise_manifest(config: StagedBlob, layers: Sequence[LayerRecord]) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": [
            {"mediaType": lr.media_type, "digest": lr.digest, "size": lr.size} for lr in layers
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _config_labels(config: dict[str, Any]) -> dict[str, str] | None:
    inner = config.get("config")
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    if not isinstance(labels, dict):
        return None
    return {str(k): str(v) for k, v in labels.items()}


def assemble_record(
    config: StagedBlob,
    config_doc: dict[str, Any],
    layers: Sequence[LayerRecord],
    area: StagingArea,
    *,
    names: Sequence[str] = (),
    manifest: StagedBlob | None = None,
    manifest_media_type: str | None = None,
) -> tuple[ImageRecord, StagedBlob]:
    """The store record of an image whose config and layers are known (and checked), with
    its manifest: the one given, or an OCI manifest synthesised into the staging area."""
    media_type = manifest_media_type or mt.OCI_MANIFEST
    if manifest is None:
        data = _synthesise_manifest(config, layers)
        manifest = area.ingest(io.BytesIO(data), max_size=len(data), max_uncompressed=len(data))
        media_type = mt.OCI_MANIFEST
    history = config_doc.get("history", [])
    record = ImageRecord(
        id=config.digest.removeprefix("sha256:"),
        manifest_digest=manifest.digest,
        manifest_media_type=media_type,
        manifest_size=manifest.size,
        config_size=config.size,
        layers=tuple(layers),
        history=tuple(HistoryEntry.from_config(h) for h in history),
        created=str(config_doc.get("created") or ""),
        labels=_config_labels(config_doc),
        digests=(manifest.digest,),
    ).with_names(names)
    return record, manifest


def build_record(
    candidate: ImageCandidate, area: StagingArea
) -> tuple[ImageRecord, list[StagedBlob]]:
    """Validate *candidate*; return its record and every blob the store must take in."""
    diff_ids = validate_config(candidate.config_doc, what=candidate.what)
    layers = _check_layers(candidate, diff_ids)
    record, manifest = assemble_record(
        candidate.config,
        candidate.config_doc,
        layers,
        area,
        names=candidate.names,
        manifest=candidate.manifest,
        manifest_media_type=candidate.manifest_media_type,
    )
    blobs = [manifest, candidate.config, *(layer.blob for layer in candidate.layers)]
    return record, blobs
