"""Rebuilding the metadata when it cannot be read, and telling what was lost.

``index.json`` names every tagged image by its full reference, and the blobs hold each
image's manifest and config, so the records of tagged images can be made again:
names, layers (digest, media type, size, diff_id, uncompressed size) and history.  An
untagged image the event log knows is found again by its manifest among the blobs (the
manifest whose config is the image).  Containers cannot be recovered faithfully (their
command, their build's process are only in the lost records): they are removed, and
their directories deleted.

:func:`rebuild_metadata` commits the rebuilt state in one transaction with the events
that take the log's replay to it (:mod:`aiopod.storage.logged`): ``Removed`` for every
container, ``Untagged``/``Deleted`` for the names and images that are gone, so that the
log still replays to the store (docs/design/commit-points.md, CP24).  What the log does
not know (its pruned records) cannot be told.  Blocking helpers; the transaction holds
the store's exclusive lock from the reading of the log to the commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from aiopod._display import plural
from aiopod.errors import AiopodError, StoreCorrupted
from aiopod.events.model import Event, EventKind
from aiopod.storage.compression import open_decompressed
from aiopod.storage.digest import is_sha256_hex
from aiopod.storage.layout import REF_NAME_ANNOTATION, StoreLayout
from aiopod.storage.logged import events_to, replay
from aiopod.storage.records import HistoryEntry, ImageRecord, LayerRecord, StoreState
from aiopod.storage.store import Store, read_metadata

__all__ = ("Rebuilt", "rebuild_metadata", "rebuild_state")

#: A blob larger than this is a layer: no manifest is looked for in it.
_MANIFEST_MAX = 4 << 20
#: What an OCI manifest that names no media type is.
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _uncompressed_size(layout: StoreLayout, digest: str, media_type: str, size: int) -> int:
    if media_type.endswith(".tar") or media_type.endswith("diff.tar"):
        layout.blob_path(digest).stat()  # a missing layer: the image cannot be rebuilt
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
        manifest_media_type=descriptor.get("mediaType") or manifest.get("mediaType", _OCI_MANIFEST),
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


def _manifest_descriptor(path: Path, wanted: set[str]) -> tuple[str, dict[str, Any]] | None:
    """(image ID, descriptor) when the blob at *path* is a manifest of a *wanted* image."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _MANIFEST_MAX:
            return None
        with path.open("rb") as stream:
            if not stream.read(64).lstrip().startswith(b"{"):
                return None  # a layer: not read further
            stream.seek(0)
            manifest = json.loads(stream.read())
        image_id = str(manifest["config"]["digest"]).removeprefix("sha256:")
        if image_id not in wanted or not isinstance(manifest["layers"], list):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return image_id, {"digest": "sha256:" + path.name, "mediaType": manifest.get("mediaType")}


def recover_untagged(layout: StoreLayout, state: StoreState, wanted: Iterable[str]) -> list[str]:
    """Add to *state* (without names) the images of *wanted* (IDs) it lacks whose manifest,
    config and layers are among the blobs; return their IDs.  Blocking."""
    missing = {i for i in wanted if i not in state.images}
    blob_dir = layout.blobs / "sha256"
    found: list[str] = []
    for entry in sorted(blob_dir.iterdir()) if missing and blob_dir.is_dir() else ():
        if not is_sha256_hex(entry.name):
            continue
        hit = _manifest_descriptor(entry, missing)
        if hit is None:
            continue
        try:
            record = _record(layout, hit[1])
        except AiopodError:
            raise  # a layer that does not decompress: as for the tagged images
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not this image's manifest after all, or its blobs are gone
        state.put(record)
        missing.discard(record.id)
        found.append(record.id)
    return found


@dataclass
class Rebuilt:
    """What :func:`rebuild_metadata` found wrong, did, and recorded."""

    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    #: The images the metadata had (as the log tells) and the rebuilt one has not.
    removed_images: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass
class _Plan:
    state: StoreState
    problems: list[str]
    recovered: list[str]
    events: list[Event]
    #: Containers the log knows, and directories under containers/ it does not.
    containers: list[str]
    strays: list[str]


class _Readable(Exception):
    """The metadata can be read (another process repaired it meanwhile)."""


def _plan(layout: StoreLayout, logged_events: Iterable[Event]) -> _Plan:
    try:
        read_metadata(layout)  # a store without metadata yet is an empty one
    except StoreCorrupted:
        pass  # unreadable: rebuilt below
    else:
        raise _Readable  # nothing to rebuild: never replace readable metadata
    state, problems = rebuild_state(layout)
    logged = replay(logged_events)
    recovered = recover_untagged(layout, state, logged.images)
    directories = layout.containers.iterdir() if layout.containers.is_dir() else ()
    strays = sorted(
        d.name for d in directories if is_sha256_hex(d.name) and d.name not in logged.containers
    )
    return _Plan(
        state, problems, recovered, events_to(logged, state), list(logged.containers), strays
    )


async def rebuild_metadata(store: Store) -> Rebuilt:
    """Replace *store*'s unreadable metadata with the metadata rebuilt from
    ``index.json`` and the blobs, committed (one transaction, under the exclusive lock)
    with the events of what was lost (see the module docstring).

    Containers are removed and their directories deleted at the commit, also a directory
    under ``containers/`` that the log does not know.  Cancellable until the commit
    begins; the commit runs to its end.

    :raises ~aiopod.errors.StorageFull: the commit failed for want of space (nothing
        changed).
    """
    log = store.event_log
    try:
        async with store.transaction(unreadable=True) as txn:
            logged = [] if log is None else await anyio.to_thread.run_sync(list, log.read())
            plan = await anyio.to_thread.run_sync(_plan, store.layout, logged)
            for record in plan.state.images.values():
                txn.put(record)
            txn.removed_containers.extend([*plan.containers, *plan.strays])
            txn.options = {"reason": "check"}
            txn.emit(plan.events)
    except _Readable:
        return Rebuilt()
    recorded = txn.recorded or plan.events
    untagged = len(plan.recovered)
    result = Rebuilt(problems=plan.problems)
    tagged = plural(len(plan.state.images) - untagged, "image")
    result.repaired.append(
        f"rebuilt the metadata from index.json ({tagged})"
        + (f" and {plural(untagged, 'untagged image')} from their blobs" if untagged else "")
    )
    lost_names: dict[str, list[str]] = {}
    for event in recorded:
        if event.type == "container":
            result.repaired.append(
                f"removed container {event.id} ({event.name}): its record was lost "
                "with the metadata (its directory is deleted)"
            )
        elif event.kind is EventKind.UNTAGGED:
            lost_names.setdefault(event.id, []).append(event.name or "")
        elif event.kind is EventKind.DELETED:
            result.removed_images.append(event.id)
            names = lost_names.pop(event.id, [])
            result.repaired.append(
                f"removed image {event.id}"
                + (f" ({', '.join(names)})" if names else "")
                + ": its record was lost with the metadata and its blobs do not give it back"
            )
        elif event.kind is EventKind.TAGGED:
            result.repaired.append(f"tagged image {event.id} {event.name}: as index.json names it")
    result.repaired += [
        f"untagged {', '.join(names)} from image {image_id}: index.json does not name it"
        for image_id, names in lost_names.items()
    ]
    result.repaired += [
        f"removed the directory of container {c}: neither the metadata nor the event log knows it"
        for c in plan.strays
    ]
    result.events = list(recorded)
    return result
