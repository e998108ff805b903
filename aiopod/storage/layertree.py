"""Parent and child images, computed as podman's layer tree does (removal-rules.md C21).

An image C is a child of P when P's diff_ids are a prefix of C's, C's top layer is P's
top layer or a layer directly on top of it, C has exactly one more history entry than P,
and P's history equals the start of C's (created, created_by, author, comment,
empty_layer).  *Dangling* means no names and no children; *intermediate* means no
names and at least one child.  Pure computation, no I/O.

The relations are computed on demand, image by image, from the state's layer index
(:meth:`~aiopod.storage.records.StoreState.with_layers`, answered by the metadata
database): a command that asks about one image (``rmi NAME``, ``tag``) reads only the
images that share its layers.  A listing that asks about every image relates them all
at once.  Answers are those of the state as it was when the ``LayerTree`` was made
(it keeps a copy), less the images :meth:`LayerTree.remove` took away (and the
relations to them).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from aiopod.storage.gcpause import paused_gc
from aiopod.storage.records import ImageRecord, StoreState

__all__ = ("LayerTree",)

#: Images whose children are found one by one; past that, all at once.
_ONE_BY_ONE = 32


@dataclass(frozen=True, slots=True)
class _Index:
    position: dict[str, int]  # image ID -> storage position
    #: At each position, a key of the image's diff_ids and one of them less the top one
    #: (None without layers): the diff_ids themselves, or the metadata's keys of them.
    keys: list[tuple[Hashable, Hashable | None]]
    #: Positions by diff_ids key and number of history entries.
    by_ids: dict[tuple[Hashable, int], list[int]]


class LayerTree:
    """Parent/child relations of the images in one state (taken when it is made)."""

    def __init__(self, state: StoreState) -> None:
        self._state = state.copy()
        self._removed: set[str] = set()
        self._records: list[ImageRecord] | None = None
        self._index: _Index | None = None
        self._parents: dict[str, str] = {}  # "" for none
        self._children: dict[str, list[str]] = {}

    def _all(self) -> list[ImageRecord]:
        if self._records is None:
            self._records = self._state.images.values()
        return self._records

    def _indexed(self) -> _Index:
        if self._index is None:
            with paused_gc():
                self._index = self._build_index()
        return self._index

    def _build_index(self) -> _Index:
        records = self._all()
        position = {record.id: i for i, record in enumerate(records)}
        view = self._state.images.view
        keys: list[tuple[Hashable, Hashable | None]] = []
        by_ids: dict[tuple[Hashable, int], list[int]] = {}
        if view is not None and self._state.images.unchanged:
            # The metadata's keys: no diff_ids tuple is built for every image.
            for i, (key, base, history) in enumerate(view.layer_keys()):
                keys.append((key, base))
                by_ids.setdefault((key, history), []).append(i)
        else:
            for i, record in enumerate(records):
                ids = tuple([layer.diff_id for layer in record.layers])
                keys.append((ids, ids[:-1] if ids else None))
                by_ids.setdefault((ids, len(record.history)), []).append(i)
        return _Index(position, keys, by_ids)

    def _parent_at(self, index: _Index, at: int) -> str:
        """The parent of the image at *at* in the whole tree (ignoring removals), from
        the index of every image (see :meth:`_find_parent`)."""
        records = self._all()
        child = records[at]
        history = len(child.history) - 1
        for key in index.keys[at]:
            for i in index.by_ids.get((key, history), ()) if key is not None else ():
                # The diff_ids match by their key: the history is left to compare (and the
                # diff_ids, in case two stacks' keys were ever equal).
                candidate = records[i]
                if i != at and _history_extends(candidate, child) and _on(candidate, child):
                    return candidate.id
        return ""

    def _find_parent(self, child: ImageRecord) -> str:
        """The parent of *child* in the whole tree (ignoring removals): the first image
        in storage order, among those with the same diff_ids and then those with one
        layer less, whose history the child's extends by one; ``""`` for none."""
        ids, history = child.diff_ids, len(child.history) - 1
        for key in (ids, ids[:-1]) if ids else (ids,):
            for record in self._state.with_layers(key, history):
                if record.id != child.id and _history_extends(record, child):
                    return record.id
        return ""

    def _first_parent(self, image_id: str) -> str:
        cached = self._parents.get(image_id)
        if cached is None:
            if self._state.images.view is None:  # in memory: one index instead of scans
                index = self._indexed()
                at = index.position.get(image_id)
                cached = "" if at is None else self._parent_at(index, at)
            else:
                child = self._state.images.get(image_id)
                cached = "" if child is None else self._find_parent(child)
            self._parents[image_id] = cached
        return cached

    def parent_of(self, image_id: str) -> str | None:
        """The image this one is built directly on, if any (and not removed)."""
        if image_id in self._removed:
            return None
        parent = self._first_parent(image_id)
        return parent if parent and parent not in self._removed else None

    def children_of(self, image_id: str) -> list[str]:
        """The images built directly on this one, in storage order (removed ones left out)."""
        if image_id in self._removed:
            return []
        children = self._children.get(image_id)
        if children is None and (
            len(self._children) >= _ONE_BY_ONE or self._state.images.view is None
        ):
            self._complete()  # a listing asks about every image: relate them all at once
            children = self._children.get(image_id)
        if children is None:
            children = []
            parent = self._state.images.get(image_id)
            if parent is not None:
                history = len(parent.history) + 1
                for record in self._state.above_layers(parent.diff_ids, history):
                    if self._first_parent(record.id) == image_id:
                        children.append(record.id)
            self._children[image_id] = children
        return [c for c in children if c not in self._removed] if self._removed else children

    def _complete(self) -> None:
        """Find every image's parent, and from them every image's children."""
        with paused_gc():
            self._relate_all()

    def _relate_all(self) -> None:
        index = self._indexed()
        records, parents = self._all(), self._parents
        for at, record in enumerate(records):
            if record.id not in parents:
                parents[record.id] = self._parent_at(index, at)
        children: dict[str, list[str]] = {r.id: [] for r in records}
        for record in records:
            parent = parents[record.id]
            if parent:
                children[parent].append(record.id)
        self._children = children

    def remove(self, image_id: str) -> None:
        """Forget an image that was deleted: its parent loses a child, its children
        their parent (no other image can be their parent: history lengths differ)."""
        self._removed.add(image_id)

    def has_children(self, image_id: str) -> bool:
        """Whether any image is built directly on this one."""
        return bool(self.children_of(image_id))

    def is_dangling(self, record: ImageRecord) -> bool:
        """No names and no children."""
        return not record.names and not self.has_children(record.id)

    def is_intermediate(self, record: ImageRecord) -> bool:
        """No names but at least one child."""
        return not record.names and self.has_children(record.id)


def _on(parent: ImageRecord, child: ImageRecord) -> bool:
    """Whether *child*'s diff_ids are *parent*'s, or *parent*'s and one more."""
    ids, own = parent.diff_ids, child.diff_ids
    return own == ids or (len(own) == len(ids) + 1 and own[:-1] == ids)


def _history_extends(parent: ImageRecord, child: ImageRecord) -> bool:
    """Whether *child*'s history is *parent*'s plus one entry."""
    if len(child.history) != len(parent.history) + 1:
        return False
    return child.history[: len(parent.history)] == parent.history
