"""The store's metadata records and their JSON form (``aiopod/images.json``, which holds
the images and the containers).

Records are immutable; a transaction replaces them.  ``StoreState`` is the in-memory
view of the metadata: the images in storage order plus an index from name to image ID.
It does no I/O.

Scale: every command reads the whole file and every change writes it whole (its atomic
replacement is the commit point, docs/design/commit-points.md CP1), so the per-image cost
of both is kept small.  Each image object is parsed and turned into its record at once
(the parsed objects of a big store are never all held), with the garbage collector paused
(:mod:`aiopod.storage.gcpause`); a record that a change leaves as it was is written back
as the very text it was read from, so a commit encodes only the records it changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import starmap
from typing import Any

from aiopod.errors import StoreCorrupted
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.digest import is_sha256_hex
from aiopod.storage.gcpause import paused_gc

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
            # Positional (the fields' order), the layers and history through starmap:
            # this is the hot loop of every command on a big store.
            record = cls(
                obj["id"],
                manifest["digest"],
                manifest["mediaType"],
                manifest["size"],
                obj["config_size"],
                tuple(starmap(LayerRecord, obj["layers"])),
                tuple(starmap(HistoryEntry, obj["history"])),
                obj["created"],
                tuple(obj["names"]),
                tuple(obj["names_history"]),
                tuple(obj["digests"]),
                obj["read_only"],
                _labels(obj.get("labels")),
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
    #: The JSON text each record was parsed from, written again when the record is saved
    #: unchanged (records are immutable: the same object means the same content).
    _loaded: dict[str, tuple[ImageRecord, str]] = field(default_factory=dict, repr=False)

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
        with paused_gc():
            for record in self.images.values():
                blobs.update(record.blob_digests())
        return blobs

    def referenced_among(self, candidates: Iterable[str]) -> set[str]:
        """Which of *candidates* (blob digests) some image needs: :meth:`referenced_blobs`
        restricted to them, without building the set of every blob of a big store."""
        wanted = set(candidates)
        if not wanted:
            return set()
        configs = {d[len("sha256:") :] for d in wanted if d.startswith("sha256:")}
        found: set[str] = set()
        for record in self.images.values():
            if record.manifest_digest in wanted:
                found.add(record.manifest_digest)
            if record.id in configs:
                found.add(record.config_digest)
            for layer in record.layers:
                if layer.digest in wanted:
                    found.add(layer.digest)
        return found

    def _json_of(self, record: ImageRecord) -> str:
        loaded = self._loaded.get(record.id)
        if loaded is not None and loaded[0] is record:
            return loaded[1]
        return json.dumps(record.to_json(), separators=(",", ":"))

    def to_bytes(self, *, commit: str | None = None) -> bytes:
        """Serialise for ``images.json``; *commit* names the commit that wrote it (its
        journal's, so that recovery knows whether that commit's change is the state).

        A record loaded from ``images.json`` and not replaced since is written as the text
        it was read from (same content: records are immutable), so only the records a
        transaction changed are encoded; the output is what ``json.dumps`` of the whole
        document gives for records encoded by this module.
        """
        with paused_gc():
            parts = [
                _HEAD,
                ",".join([self._json_of(r) for r in self.images.values()]),
                '],"containers":',
                json.dumps([c.to_json() for c in self.containers.values()], separators=(",", ":")),
            ]
            if commit is not None:
                parts.append(',"commit":')
                parts.append(json.dumps(commit))
            parts.append("}")
            return "".join(parts).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> StoreState:
        """Parse ``images.json``; :class:`StoreCorrupted` when it cannot be read.

        The garbage collector is paused meanwhile: parsing builds hundreds of thousands of
        objects at 100,000 images, none of them cyclic, and the collections their
        allocation triggers would cost more than the parse.
        """
        with paused_gc():
            split = _split_images(data)
            if split is not None:
                records, texts, rest = split
            else:
                rest = _parse_whole(data)
                records, texts = [ImageRecord.from_json(obj) for obj in rest["images"]], None
            containers = rest.get("containers", [])
            if not isinstance(containers, list):
                raise StoreCorrupted("images.json has a malformed container list")
            state = cls.from_records(records, (ContainerRecord.from_json(c) for c in containers))
            if texts is not None:
                state._loaded = {r.id: (r, text) for r, text in zip(records, texts, strict=True)}
            return state


#: How this module starts ``images.json`` (``json.dumps`` of the document, compact).
_HEAD = f'{{"version":{FORMAT_VERSION},"images":['
_DECODER = json.JSONDecoder()


def _split_images(data: bytes) -> tuple[list[ImageRecord], list[str], dict[str, Any]] | None:
    """The image records of an ``images.json`` in this module's compact form, each with
    the text it was parsed from, and the document's other keys; None when the document
    has another form (then it is parsed whole).  Each object becomes its record as soon
    as it is parsed, so that the parsed objects of a big store are never all held."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    if not text.startswith(_HEAD):
        return None
    decode, parse = _DECODER.raw_decode, ImageRecord.from_json
    images: list[ImageRecord] = []
    texts: list[str] = []
    pos = len(_HEAD)
    try:
        if text[pos] == "]":
            pos += 1
        else:
            while True:
                obj, end = decode(text, pos)
                if not isinstance(obj, dict):
                    return None
                images.append(parse(obj))
                texts.append(text[pos:end])
                pos = end + 1
                if text[end] == "]":
                    break
                if text[end] != ",":
                    return None
        if text[pos] == "}":
            rest: Any = {}
            if text[pos + 1 :].strip(" \t\n\r"):
                return None  # more after the document: json.loads says what
        elif text[pos] == ",":
            rest = json.loads("{" + text[pos + 1 :])  # the containers and the commit
        else:
            return None
    except (ValueError, IndexError):
        return None
    if not isinstance(rest, dict) or "images" in rest or "version" in rest:
        return None
    return images, texts, rest


def _parse_whole(data: bytes) -> dict[str, Any]:
    """``images.json`` parsed as one document (any JSON form), its image list checked."""
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
    return doc
