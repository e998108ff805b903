"""The store's metadata records and their JSON form (``aiopod/images.json``, which holds
the images and the containers).

Records are immutable; a transaction replaces them.  ``StoreState`` is the in-memory
view of the metadata: the images in storage order plus an index from name to image ID.
It does no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiopod.errors import StoreCorrupted
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.digest import is_sha256_hex

__all__ = (
    "FORMAT_VERSION",
    "HistoryEntry",
    "ImageRecord",
    "LayerRecord",
    "StoreState",
    "chain_ids",
)

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class LayerRecord:
    """One layer of an image: its blob as stored and its uncompressed identity."""

    digest: str  # blob digest as stored (compressed or not)
    media_type: str
    size: int  # blob size
    diff_id: str  # sha256 of the uncompressed tar
    uncompressed_size: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One ``history`` entry of an image config (the fields the layer tree compares)."""

    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> HistoryEntry:
        """Build from a config's history object (unknown fields are ignored)."""
        return cls(
            created=str(entry.get("created") or ""),
            created_by=str(entry.get("created_by") or ""),
            author=str(entry.get("author") or ""),
            comment=str(entry.get("comment") or ""),
            empty_layer=bool(entry.get("empty_layer", False)),
        )


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """An image in the store.  ``id`` is the hex of its config digest."""

    id: str
    manifest_digest: str
    manifest_media_type: str
    manifest_size: int
    config_size: int
    layers: tuple[LayerRecord, ...]
    history: tuple[HistoryEntry, ...] = ()
    created: str = ""
    names: tuple[str, ...] = ()
    names_history: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()
    read_only: bool = False
    labels: Mapping[str, str] | None = None  # the config's Labels (None when absent)

    @property
    def config_digest(self) -> str:
        """The config blob's digest (``sha256:`` + the image ID)."""
        return "sha256:" + self.id

    @property
    def diff_ids(self) -> tuple[str, ...]:
        """The uncompressed digests of the layers, base first."""
        return tuple(layer.diff_id for layer in self.layers)

    @property
    def size(self) -> int:
        """The image's size as podman 4.3 counts it: its uncompressed layers, its config,
        and its manifest twice (containers/storage keeps the manifest under two keys,
        ``manifest`` and ``manifest-<digest>``, and adds up all of an image's data)."""
        layers = sum(layer.uncompressed_size for layer in self.layers)
        return layers + self.config_size + 2 * self.manifest_size

    def blob_digests(self) -> Iterator[str]:
        """Every blob the image needs: manifest, config and layers."""
        yield self.manifest_digest
        yield self.config_digest
        for layer in self.layers:
            yield layer.digest

    def with_names(self, names: Iterable[str]) -> ImageRecord:
        """A copy with *names*; every one of them moves to the front of ``names_history``.

        As containers/storage does, each name is put in front in turn, so the history
        starts with the names in reverse order (the newest first), then the older ones.
        """
        names = tuple(dict.fromkeys(names))
        history = list(self.names_history)
        for name in names:
            if name in history:
                history.remove(name)
            history.insert(0, name)
        return replace(self, names=names, names_history=tuple(history))

    def to_json(self) -> dict[str, Any]:
        """The record as stored in ``images.json``."""
        return {
            "id": self.id,
            "names": list(self.names),
            "names_history": list(self.names_history),
            "digests": list(self.digests),
            "manifest": {
                "digest": self.manifest_digest,
                "mediaType": self.manifest_media_type,
                "size": self.manifest_size,
            },
            "config_size": self.config_size,
            "created": self.created,
            "read_only": self.read_only,
            "labels": None if self.labels is None else dict(self.labels),
            "layers": [
                [lr.digest, lr.media_type, lr.size, lr.diff_id, lr.uncompressed_size]
                for lr in self.layers
            ],
            "history": [
                [h.created, h.created_by, h.author, h.comment, h.empty_layer] for h in self.history
            ],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ImageRecord:
        """Parse a record from ``images.json``; :class:`StoreCorrupted` when malformed.

        This runs for every image on every command, so it checks shapes and the ID only;
        digests are validated where they form paths (:meth:`StoreLayout.blob_path`) and
        all of them by ``system check``.
        """
        try:
            manifest = obj["manifest"]
            record = cls(
                id=obj["id"],
                names=tuple(obj["names"]),
                names_history=tuple(obj["names_history"]),
                digests=tuple(obj["digests"]),
                manifest_digest=manifest["digest"],
                manifest_media_type=manifest["mediaType"],
                manifest_size=manifest["size"],
                config_size=obj["config_size"],
                created=obj["created"],
                read_only=obj["read_only"],
                labels=_labels(obj.get("labels")),
                layers=tuple(LayerRecord(*layer) for layer in obj["layers"]),
                history=tuple(HistoryEntry(*entry) for entry in obj["history"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorrupted(
                f"malformed image record in images.json ({exc!r}); "
                "run `aiopod system check --repair`"
            ) from exc
        if not isinstance(record.id, str) or not is_sha256_hex(record.id):
            raise StoreCorrupted(
                f"image record {str(record.id)[:64]!r} has a malformed ID; "
                "run `aiopod system check --repair`"
            )
        return record


def _labels(value: Any) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError("labels must be an object")
    return {str(k): str(v) for k, v in value.items()}


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The OCI ChainIDs of a layer stack: one per layer, identifying the stack up to it."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append(
                "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
            )
    return chains


@dataclass
class StoreState:
    """The metadata as loaded: images in storage order and the name index.

    Mutations go through :meth:`put` and :meth:`remove` so that the name index stays
    consistent: a name belongs to exactly one image.
    """

    images: dict[str, ImageRecord] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    #: The JSON objects the records were parsed from, reused when a record is saved
    #: unchanged (records are immutable: the same object means the same content).
    _loaded: dict[str, tuple[ImageRecord, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_records(
        cls,
        records: Iterable[ImageRecord],
        containers: Iterable[ContainerRecord] = (),
    ) -> StoreState:
        """Build a state (and its name index) from records in storage order."""
        state = cls()
        for record in records:
            state.images[record.id] = record
            for name in record.names:
                state.by_name[name] = record.id
        for container in containers:
            state.containers[container.id] = container
        return state

    def copy(self) -> StoreState:
        """A shallow copy that a transaction may change without touching this one."""
        return StoreState(
            dict(self.images), dict(self.by_name), dict(self.containers), self._loaded
        )

    def containers_of(self, image_id: str) -> list[ContainerRecord]:
        """The containers (runtime and external) whose image is *image_id*, in store order."""
        return [c for c in self.containers.values() if c.image_id == image_id]

    def container_by_name(self, name: str) -> ContainerRecord | None:
        """The container called *name*, if any."""
        for container in self.containers.values():
            if container.name == name:
                return container
        return None

    def put(self, record: ImageRecord) -> None:
        """Add or replace *record*; its names are taken away from any other image."""
        old = self.images.get(record.id)
        if old is not None:
            for name in old.names:
                if self.by_name.get(name) == record.id:
                    del self.by_name[name]
        for name in record.names:
            owner = self.by_name.get(name)
            if owner is not None and owner != record.id:
                other = self.images[owner]
                self.images[owner] = replace(
                    other, names=tuple(n for n in other.names if n != name)
                )
            self.by_name[name] = record.id
        self.images[record.id] = record

    def remove(self, image_id: str) -> ImageRecord:
        """Remove an image record and its names; return what was removed."""
        record = self.images.pop(image_id)
        for name in record.names:
            if self.by_name.get(name) == image_id:
                del self.by_name[name]
        return record

    def referenced_blobs(self) -> set[str]:
        """Every blob digest some image needs."""
        blobs: set[str] = set()
        for record in self.images.values():
            blobs.update(record.blob_digests())
        return blobs

    def _json_of(self, record: ImageRecord) -> Any:
        loaded = self._loaded.get(record.id)
        if loaded is not None and loaded[0] is record:
            return loaded[1]
        return record.to_json()

    def to_bytes(self, *, commit: str | None = None) -> bytes:
        """Serialise for ``images.json``; *commit* names the commit that wrote it (its
        journal's, so that recovery knows whether that commit's change is the state)."""
        doc: dict[str, object] = {
            "version": FORMAT_VERSION,
            "images": [self._json_of(r) for r in self.images.values()],
            "containers": [c.to_json() for c in self.containers.values()],
        }
        if commit is not None:
            doc["commit"] = commit
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> StoreState:
        """Parse ``images.json``; :class:`StoreCorrupted` when it cannot be read."""
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise StoreCorrupted(
                f"images.json is not valid JSON ({exc}); run `aiopod system check --repair`"
            ) from exc
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
            raise StoreCorrupted(
                "images.json has an unknown format version; this aiopod cannot read the store"
            )
        images = doc.get("images")
        if not isinstance(images, list):
            raise StoreCorrupted("images.json has no image list; run `aiopod system check`")
        containers = doc.get("containers", [])
        if not isinstance(containers, list):
            raise StoreCorrupted("images.json has a malformed container list")
        parsed = [(ImageRecord.from_json(obj), obj) for obj in images]
        state = cls.from_records(
            (record for record, _ in parsed),
            (ContainerRecord.from_json(obj) for obj in containers),
        )
        state._loaded = {record.id: (record, obj) for record, obj in parsed}
        return state
