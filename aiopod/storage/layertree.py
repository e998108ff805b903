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
#: Questions answered by scanning the images before the index is built (a removal of one
#: image asks two or three).
_SCANS = 8


@dataclass(frozen=True, slots=True)
class _Index:
    position: dict[str, int]  # image ID -> storage position
    keys: list[tuple[str, ...]]  # the diff_ids of the image at each position
    by_ids: dict[tuple[str, ...], list[int]]  # positions by diff_ids
    by_base: dict[tuple[str, ...], list[int]]  # positions by diff_ids without the top one


class LayerTree:
    """Parent/child relations of the images in one state (taken when it is made)."""

    def __init__(self, state: StoreState) -> None:
        self._by_id = dict(state.images)
        self._records = list(self._by_id.values())
        self._scans = 0  # questions answered by a scan, before the index is built
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
            if self._scanning():
                child = self._by_id.get(image_id)
                cached = "" if child is None else self._scan_parent(child)
            else:
                index = self._indexed()
                at = index.position.get(image_id)
                cached = "" if at is None else self._parent_at(index, at)
            self._parents[image_id] = cached
        return cached

    def _scanning(self) -> bool:
        """Whether to answer the next question by a scan of the images rather than from
        the index (the first few questions: one scan costs a small part of the index)."""
        if self._index is not None or self._scans >= _SCANS:
            return False
        self._scans += 1
        return True

    def _scan_parent(self, child: ImageRecord) -> str:
        """:meth:`_parent_at` by a scan: the same candidates in the same order."""
        ids = child.diff_ids
        n = len(ids)
        top, below = (ids[-1] if n else ""), (ids[-2] if n > 1 else "")
        same: list[ImageRecord] = []
        base: list[ImageRecord] = []
        for record in self._records:
            layers = record.layers
            # The top layer first: most images differ there (a cheap test before the tuple).
            if len(layers) == n:
                if (
                    (not n or layers[-1].diff_id == top)
                    and record.id != child.id
                    and record.diff_ids == ids
                ):
                    same.append(record)
            elif (
                len(layers) == n - 1
                and (n == 1 or layers[-1].diff_id == below)
                and record.diff_ids == ids[:-1]
            ):
                base.append(record)
        for candidate in (*same, *base):
            if _history_extends(candidate, child):
                return candidate.id
        return ""

    def _scan_children(self, parent: ImageRecord) -> list[str] | None:
        """The children by a scan (storage order), or None when there are too many
        candidates to check one by one (then the index answers)."""
        ids = parent.diff_ids
        n = len(ids)
        if not n:
            return None  # every one-layer image is a candidate
        history = len(parent.history) + 1
        candidates: list[ImageRecord] = []
        for record in self._records:
            if len(record.history) != history:
                continue
            layers = record.layers
            if len(layers) == n:
                if layers[-1].diff_id == ids[-1] and record.diff_ids == ids:
                    candidates.append(record)
            elif (
                len(layers) == n + 1
                and layers[-2].diff_id == ids[-1]
                and record.diff_ids[:-1] == ids
            ):
                candidates.append(record)
        if len(candidates) > _SCANS - self._scans:
            return None
        return [c.id for c in candidates if self._first_parent(c.id) == parent.id]

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
        if children is None and image_id in self._by_id and self._scanning():
            children = self._scan_children(self._by_id[image_id])
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
