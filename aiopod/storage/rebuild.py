"""Rebuilding the metadata from the OCI layout when ``images.json`` cannot be read.

``index.json`` names every tagged image by its full reference, and the blobs hold each
image's manifest and config, so the records of tagged images can be made again:
names, layers (digest, media type, size, diff_id, uncompressed size) and history.
Untagged images and containers cannot be recovered: their blobs become orphans and
their directories are removed by the ordinary checks.  Blocking.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiopod.errors import AiopodError
from aiopod.storage.compression import open_decompressed
from aiopod.storage.layout import REF_NAME_ANNOTATION, StoreLayout
from aiopod.storage.records import HistoryEntry, ImageRecord, LayerRecord, StoreState

__all__ = ("rebuild_state",)


def _uncompressed_size(layout: StoreLayout, digest: str, media_type: str, size: int) -> int:
    if media_type.endswith(".tar") or media_type.endswith("diff.tar"):
        return size
    total = 0
    with layout.blob_path(digest).open("rb") as raw, open_decompressed(raw) as stream:
        while chunk := stream.read(1 << 20):
            total += len(chunk)
    return total


def _record(layout: StoreLayout, descriptor: dict[str, Any]) -> ImageRecord:
    manifest_digest = descriptor["digest"]
    manifest_bytes = layout.blob_path(manifest_digest).read_bytes()
    if "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() != manifest_digest:
        raise ValueError(f"manifest {manifest_digest} is damaged")
    manifest = json.loads(manifest_bytes)
    config_digest = manifest["config"]["digest"]
    config_bytes = layout.blob_path(config_digest).read_bytes()
    config = json.loads(config_bytes)
    diff_ids = config["rootfs"]["diff_ids"]
    layers = tuple(
        LayerRecord(
            layer["digest"],
            layer["mediaType"],
            int(layer["size"]),
            diff_id,
            _uncompressed_size(layout, layer["digest"], layer["mediaType"], int(layer["size"])),
        )
        for layer, diff_id in zip(manifest["layers"], diff_ids, strict=True)
    )
    labels = (config.get("config") or {}).get("Labels")
    return ImageRecord(
        id=config_digest.removeprefix("sha256:"),
        manifest_digest=manifest_digest,
        manifest_media_type=descriptor.get("mediaType") or manifest.get("mediaType", ""),
        manifest_size=len(manifest_bytes),
        config_size=len(config_bytes),
        layers=layers,
        history=tuple(HistoryEntry.from_config(h) for h in config.get("history", [])),
        created=str(config.get("created") or ""),
        digests=(manifest_digest,),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else None,
    )


def rebuild_state(layout: StoreLayout) -> tuple[StoreState, list[str]]:
    """Image records for every image ``index.json`` names; also what could not be used."""
    problems: list[str] = []
    try:
        index = json.loads(layout.index_json.read_bytes())
        descriptors = list(index["manifests"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return StoreState(), [f"index.json cannot be read either ({exc!r}): nothing to rebuild"]
    state = StoreState()
    for descriptor in descriptors:
        try:
            name = descriptor["annotations"][REF_NAME_ANNOTATION]
            found = next(
                (r for r in state.images.values() if r.manifest_digest == descriptor["digest"]),
                None,
            )
            if found is None:
                found = _record(layout, descriptor)
            state.put(found.with_names([*found.names, name]))
        except AiopodError:
            raise  # a layer blob that does not decompress is no malformed entry: it stops here
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"index.json entry {descriptor!r:.120} cannot be rebuilt ({exc!r})")
    return state, problems
