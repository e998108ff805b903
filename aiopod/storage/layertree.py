"""Parent and child images, computed as podman's layer tree does (removal-rules.md C21).

An image C is a child of P when P's diff_ids are a prefix of C's, C's top layer is P's
top layer or a layer directly on top of it, C has exactly one more history entry than P,
and P's history equals the start of C's (created, created_by, author, comment,
empty_layer).  *Dangling* means no names and no children; *intermediate* means no
names and at least one child.  Pure computation, no I/O.

The relations are computed on demand, image by image, from an index of the images by
their diff_ids built at the first question: a command that asks about one image (``rmi
NAME``, ``tag``) does not relate every image of a big store to every other.  Answers are
those of the whole tree as it was when the ``LayerTree`` was made, less the images
:meth:`LayerTree.remove` took away (and the relations to them).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiopod.storage.gcpause import paused_gc
from aiopod.storage.records import ImageRecord, StoreState

__all__ = ("LayerTree",)

#: Images whose children are found one by one; past that, all at once.
_ONE_BY_ONE = 32


@dataclass(frozen=True, slots=True)
class _Index:
    position: dict[str, int]  # image ID -> storage position
    keys: list[tuple[str, ...]]  # the diff_ids of the image at each position
    by_ids: dict[tuple[str, ...], list[int]]  # positions by diff_ids
    by_base: dict[tuple[str, ...], list[int]]  # positions by diff_ids without the top one


class LayerTree:
    """Parent/child relations of the images in one state (taken when it is made)."""

    def __init__(self, state: StoreState) -> None:
        self._records = list(state.images.values())
        self._removed: set[str] = set()
        self._index: _Index | None = None
        self._parents: dict[str, str] = {}  # "" for none
        self._children: dict[str, list[str]] = {}

    def _indexed(self) -> _Index:
        if self._index is None:
            with paused_gc():
                self._index = self._build_index()
        return self._index

    def _build_index(self) -> _Index:
        position: dict[str, int] = {}
        keys: list[tuple[str, ...]] = []
        by_ids: dict[tuple[str, ...], list[int]] = {}
        by_base: dict[tuple[str, ...], list[int]] = {}
        for i, record in enumerate(self._records):
            position[record.id] = i
            key = tuple([layer.diff_id for layer in record.layers])
            keys.append(key)
            by_ids.setdefault(key, []).append(i)
            if key:
                by_base.setdefault(key[:-1], []).append(i)
        return _Index(position, keys, by_ids, by_base)

    def _parent_at(self, index: _Index, at: int) -> str:
        """The parent of the image at *at* in the whole tree (ignoring removals): the
        first image in storage order, among those with the same diff_ids and then those
        with one layer less, whose history the child's extends by one; ``""`` for none."""
        child = self._records[at]
        ids = index.keys[at]
        for key in (ids, ids[:-1]) if ids else (ids,):
            for i in index.by_ids.get(key, ()):
                # The diff_ids match by construction: only the history is left to compare.
                if i != at and _history_extends(self._records[i], child):
                    return self._records[i].id
        return ""

    def _first_parent(self, image_id: str) -> str:
        cached = self._parents.get(image_id)
        if cached is None:
            index = self._indexed()
            at = index.position.get(image_id)
            cached = "" if at is None else self._parent_at(index, at)
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
        if children is None and len(self._children) >= _ONE_BY_ONE:
            self._complete()  # a listing asks about every image: relate them all at once
            children = self._children.get(image_id)
        if children is None:
            index = self._indexed()
            at = index.position.get(image_id)
            children = []
            if at is not None:
                ids = index.keys[at]
                candidates = [*index.by_ids.get(ids, ()), *index.by_base.get(ids, ())]
                for i in sorted(candidates):
                    if self._first_parent(self._records[i].id) == image_id:
                        children.append(self._records[i].id)
            self._children[image_id] = children
        return [c for c in children if c not in self._removed] if self._removed else children

    def _complete(self) -> None:
        """Find every image's parent, and from them every image's children."""
        with paused_gc():
            self._relate_all()

    def _relate_all(self) -> None:
        index = self._indexed()
        records, parents = self._records, self._parents
        # Only images that share their diff_ids with another, or sit on the diff_ids of
        # another less one layer, can have a parent: the others are settled by group.
        for key, members in index.by_ids.items():
            if len(members) == 1 and not (key and key[:-1] in index.by_ids):
                parents.setdefault(records[members[0]].id, "")
                continue
            for at in members:
                if records[at].id not in parents:
                    parents[records[at].id] = self._parent_at(index, at)
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


def _history_extends(parent: ImageRecord, child: ImageRecord) -> bool:
    """Whether *child*'s history is *parent*'s plus one entry."""
    if len(child.history) != len(parent.history) + 1:
        return False
    return child.history[: len(parent.history)] == parent.history
