"""The store's metadata records: images (with their layers and history) and the state
that holds them (:class:`StoreState`: images in storage order, the name index, the
containers).

Records are immutable; a transaction replaces them.  A state read from the store is a
view of its metadata database (:mod:`aiopod.storage.metadata_db`), read image by image
when asked for, so that a command that asks about one image does not read them all; its
changes are held over the view and written, alone, at commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import starmap
from typing import TYPE_CHECKING, Any, NamedTuple, overload

from aiopod.errors import StoreCorrupted
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.digest import is_sha256_hex
from aiopod.storage.gcpause import paused_gc

if TYPE_CHECKING:
    from aiopod.storage.metadata_db import Changes, DbView

__all__ = (
    "HistoryEntry",
    "ImageMap",
    "ImageRecord",
    "LayerRecord",
    "NameMap",
    "StoreState",
    "chain_ids",
    "layers_key",
)


class LayerRecord(NamedTuple):
    """One layer of an image: its blob as stored and its uncompressed identity.

    A named tuple (immutable, as the records are): a listing of a big store makes one
    per layer of every image, and a tuple is made in a fraction of a dataclass's time."""

    digest: str  # blob digest as stored (compressed or not)
    media_type: str
    size: int  # blob size
    diff_id: str  # sha256 of the uncompressed tar
    uncompressed_size: int


class HistoryEntry(NamedTuple):
    """One ``history`` entry of an image config (the fields the layer tree compares); a
    named tuple, as :class:`LayerRecord`."""

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
        """The record as stored (a row of the metadata database; format 1's ``images.json``)."""
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
        """Parse a stored record; :class:`StoreCorrupted` when malformed.

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
                f"malformed image record in the metadata ({exc!r}); "
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


def layers_key(diff_ids: Sequence[str]) -> str:
    """A short key of a layer stack (its diff_ids in order), for the metadata's index."""
    return hashlib.blake2b(",".join(diff_ids).encode(), digest_size=16).hexdigest()


_MISSING: Any = object()


class ImageMap(MutableMapping[str, ImageRecord]):
    """The images of a state by ID, in storage order: a database view's images (read when
    asked for) with this state's changes over them, or (no view) just a dictionary.

    Order follows a dictionary's: a replaced image keeps its place, an added one (or one
    removed and added again) goes last.
    """

    __slots__ = ("_changed", "_new", "_view")

    def __init__(self, view: DbView | None = None) -> None:
        self._view = view
        #: Images of the view replaced (a record) or removed (None).
        self._changed: dict[str, ImageRecord | None] = {}
        #: Images the view does not have (or removed there and added again).
        self._new: dict[str, ImageRecord] = {}

    def copy(self) -> ImageMap:
        """A copy that can be changed without changing this one (the view is shared)."""
        other = ImageMap(self._view)
        other._changed = dict(self._changed)
        other._new = dict(self._new)
        return other

    def _base(self, image_id: str) -> ImageRecord | None:
        changed = self._changed.get(image_id, _MISSING)
        if changed is not _MISSING:
            return changed  # type: ignore[no-any-return]
        return self._view.get(image_id) if self._view is not None else None

    @overload  # type: ignore[override]
    def get(self, image_id: str) -> ImageRecord | None: ...
    @overload
    def get(self, image_id: str, default: ImageRecord) -> ImageRecord: ...
    def get(self, image_id: str, default: ImageRecord | None = None) -> ImageRecord | None:
        """The image *image_id*, else *default*."""
        record = self._new.get(image_id)
        if record is None:
            record = self._base(image_id)
        return default if record is None else record

    def __getitem__(self, image_id: str) -> ImageRecord:
        record = self.get(image_id)
        if record is None:
            raise KeyError(image_id)
        return record

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and self.get(image_id) is not None

    def __setitem__(self, image_id: str, record: ImageRecord) -> None:
        if image_id in self._new or self._view is None:
            self._new[image_id] = record
        elif self._changed.get(image_id, _MISSING) is None:
            self._new[image_id] = record  # removed, now added again: it goes last
        elif image_id in self._changed or self._view.get(image_id) is not None:
            self._changed[image_id] = record
        else:
            self._new[image_id] = record

    def __delitem__(self, image_id: str) -> None:
        if image_id in self._new:
            del self._new[image_id]
        elif self._base(image_id) is not None:
            self._changed[image_id] = None
        else:
            raise KeyError(image_id)

    def __iter__(self) -> Iterator[str]:
        if self._view is not None:
            changed = self._changed
            for image_id in self._view.ids():
                if changed.get(image_id, _MISSING) is not None:
                    yield image_id
        yield from list(self._new)

    def __len__(self) -> int:
        if self._view is None:
            return len(self._new)
        removed = sum(1 for record in self._changed.values() if record is None)
        return self._view.count() - removed + len(self._new)

    def values(self) -> list[ImageRecord]:  # type: ignore[override]
        """Every image, in storage order (a list: the view's are read at once)."""
        if self._view is None:
            return list(self._new.values())
        if self.unchanged:
            return list(self._view.records())
        changed = self._changed
        out: list[ImageRecord] = []
        for record in self._view.records():
            replaced = changed.get(record.id, _MISSING)
            if replaced is _MISSING:
                out.append(record)
            elif replaced is not None:
                out.append(replaced)
        out.extend(self._new.values())
        return out

    def items(self) -> list[tuple[str, ImageRecord]]:  # type: ignore[override]
        """Every (ID, image), in storage order."""
        return [(record.id, record) for record in self.values()]

    def keys(self) -> list[str]:  # type: ignore[override]
        """Every image ID, in storage order."""
        return list(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ImageMap({len(self)} images)"

    # -- the questions a view answers from its indexes --------------------------------------

    def query(
        self,
        from_view: Callable[[DbView], Iterable[ImageRecord]],
        keep: Callable[[ImageRecord], bool],
    ) -> list[ImageRecord]:
        """The images for which *keep* holds, in storage order: those *from_view* finds in
        the view (by its indexes; *keep* must hold for each of them) that this state did
        not change, the images it replaced (tested again: a load may have given one more
        digests) and those it added.  Without a view, every image is tested."""
        if self._view is None:
            return [r for r in self._new.values() if keep(r)]
        found = list(from_view(self._view))
        if self.unchanged:
            return found
        changed, new = self._changed, self._new
        found = [r for r in found if r.id not in changed and r.id not in new]
        replaced = [r for r in changed.values() if r is not None and r.id not in new and keep(r)]
        if replaced:
            found += replaced
            position = self._view.position(r.id for r in found)
            found.sort(key=lambda r: position.get(r.id, 0))
        found.extend(r for r in new.values() if keep(r))
        return found

    def changes(self) -> tuple[list[ImageRecord], list[str]]:
        """The images this state put (replaced or added, in order) and the IDs of the
        view's images it removed."""
        put = [r for r in self._changed.values() if r is not None]
        put.extend(self._new.values())
        removed = [image_id for image_id, r in self._changed.items() if r is None]
        return put, removed

    @property
    def view(self) -> DbView | None:
        """The database view under the changes (None: an in-memory state)."""
        return self._view

    @property
    def unchanged(self) -> bool:
        """Whether this is the view as it is (no changes over it)."""
        return not self._changed and not self._new


class NameMap(MutableMapping[str, str]):
    """Image names to image IDs: a view's names table with a state's changes over it."""

    __slots__ = ("_changed", "_view")

    def __init__(self, view: DbView | None = None) -> None:
        self._view = view
        self._changed: dict[str, str | None] = {}

    def copy(self) -> NameMap:
        """A copy that can be changed without changing this one."""
        other = NameMap(self._view)
        other._changed = dict(self._changed)
        return other

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """The ID of the image called *name*, else *default*."""
        image_id = self._changed.get(name, _MISSING)
        if image_id is _MISSING:
            image_id = self._view.image_of_name(name) if self._view is not None else None
        return default if image_id is None else image_id

    def __getitem__(self, name: str) -> str:
        image_id = self.get(name)
        if image_id is None:
            raise KeyError(name)
        return image_id

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __setitem__(self, name: str, image_id: str) -> None:
        self._changed[name] = image_id

    def __delitem__(self, name: str) -> None:
        if self.get(name) is None:
            raise KeyError(name)
        self._changed[name] = None

    def _pairs(self) -> dict[str, str]:
        pairs = dict(self._view.names()) if self._view is not None else {}
        for name, image_id in self._changed.items():
            if image_id is None:
                pairs.pop(name, None)
            else:
                pairs[name] = image_id
        return pairs

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs())

    def __len__(self) -> int:
        return len(self._pairs())

    def __repr__(self) -> str:
        return f"NameMap({len(self)} names)"


@dataclass
class StoreState:
    """The metadata: images in storage order, the name index and the containers.

    Read from the store it is a database view (:mod:`aiopod.storage.metadata_db`) read
    lazily, image by image, with a transaction's changes held over it; made from records
    (:meth:`from_records`) it is held in memory.  Treat one from
    :meth:`~aiopod.storage.store.Store.snapshot` as read-only.  Reading it may block
    (SQLite): large reads (every image) belong in worker threads.

    Mutations go through :meth:`put` and :meth:`remove` so that the name index stays
    consistent: a name belongs to exactly one image.
    """

    images: ImageMap = field(default_factory=ImageMap)
    by_name: NameMap = field(default_factory=NameMap)
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    #: The containers as read from the view (to tell whether a commit changes them).
    _read_containers: tuple[ContainerRecord, ...] | None = field(default=None, repr=False)

    @classmethod
    def from_records(
        cls,
        records: Iterable[ImageRecord],
        containers: Iterable[ContainerRecord] = (),
    ) -> StoreState:
        """Build an in-memory state (and its name index) from records in storage order."""
        state = cls()
        for record in records:
            state.images[record.id] = record
            for name in record.names:
                state.by_name[name] = record.id
        for container in containers:
            state.containers[container.id] = container
        return state

    @classmethod
    def from_view(cls, view: DbView) -> StoreState:
        """The state a database view holds (images read when asked for)."""
        containers = view.containers()
        return cls(
            ImageMap(view),
            NameMap(view),
            {c.id: c for c in containers},
            tuple(containers),
        )

    def copy(self) -> StoreState:
        """A copy that a transaction may change without touching this one."""
        return StoreState(
            self.images.copy(), self.by_name.copy(), dict(self.containers), self._read_containers
        )

    def changes(self) -> Changes:
        """What this state changed over its view (everything when it has none)."""
        from aiopod.storage.metadata_db import Changes

        if self.images.view is None:
            return Changes(self.images.values(), [], list(self.containers.values()), True)
        put, removed = self.images.changes()
        containers = list(self.containers.values())
        if self._read_containers is not None and tuple(containers) == self._read_containers:
            return Changes(put, removed, None)
        return Changes(put, removed, containers)

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

    # -- questions answered from the metadata's indexes -------------------------------------

    def with_id_prefix(self, prefix: str, limit: int = 2) -> list[ImageRecord]:
        """Images whose ID starts with *prefix* (lower-case hex), at most *limit*."""

        def from_view(view: DbView) -> list[ImageRecord]:
            ids = view.with_prefix(prefix, limit + len(self.images.changes()[1]))
            return [r for r in map(view.get, ids) if r is not None]

        return self.images.query(from_view, lambda r: r.id.startswith(prefix))[:limit]

    def with_digest(self, digest: str) -> list[ImageRecord]:
        """Images with *digest* among their repository digests, storage order."""

        def from_view(view: DbView) -> list[ImageRecord]:
            return [r for r in map(view.get, view.with_digest(digest)) if r is not None]

        return self.images.query(from_view, lambda r: digest in r.digests)

    def with_layers(self, diff_ids: Sequence[str], history: int) -> list[ImageRecord]:
        """Images whose layers are *diff_ids* and whose history has *history* entries,
        storage order."""
        ids = tuple(diff_ids)
        key = layers_key(ids)
        return self.images.query(
            lambda view: view.with_layers(key, history),
            lambda r: len(r.history) == history and r.diff_ids == ids,
        )

    def above_layers(self, diff_ids: Sequence[str], history: int) -> list[ImageRecord]:
        """Images whose layers are *diff_ids*, or *diff_ids* and one more, and whose
        history has *history* entries, storage order."""
        ids = tuple(diff_ids)
        key = layers_key(ids)
        n = len(ids)

        def keep(record: ImageRecord) -> bool:
            own = record.diff_ids
            return len(record.history) == history and (
                own == ids or (len(own) == n + 1 and own[:n] == ids)
            )

        return self.images.query(lambda view: view.above_layers(key, history), keep)

    def referenced_blobs(self) -> set[str]:
        """Every blob digest some image needs."""
        blobs: set[str] = set()
        with paused_gc():
            for record in self.images.values():
                blobs.update(record.blob_digests())
        return blobs

    def referenced_among(self, candidates: Iterable[str]) -> set[str]:
        """Which of *candidates* (blob digests) some image needs: :meth:`referenced_blobs`
        restricted to them, answered from the metadata's blob index."""
        wanted = set(candidates)
        if not wanted:
            return set()
        view = self.images.view
        put, removed = self.images.changes() if view is not None else (self.images.values(), [])
        found: set[str] = set()
        if view is not None:
            changed = {r.id for r in put} | set(removed)
            # One holder the state did not change is enough to know a blob is needed.
            for digest, holders in view.referencing(wanted, len(changed) + 1).items():
                if holders - changed:
                    found.add(digest)
        for record in put:
            found.update(d for d in record.blob_digests() if d in wanted)
        return found
