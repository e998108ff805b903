"""Parent and child images, computed as podman's layer tree does (removal-rules.md C21).

An image C is a child of P when P's diff_ids are a prefix of C's, C's top layer is P's
top layer or a layer directly on top of it, C has exactly one more history entry than P,
and P's history equals the start of C's (created, created_by, author, comment,
empty_layer).  *Dangling* means no names and no children; *intermediate* means no
names and at least one child.  Pure computation, no I/O.
"""

from __future__ import annotations

from collections import defaultdict

from aiopod.storage.records import ImageRecord, StoreState, chain_ids

__all__ = ("LayerTree",)


class LayerTree:
    """Parent/child relations of the images in one state."""

    def __init__(self, state: StoreState) -> None:
        by_top: dict[str, list[ImageRecord]] = defaultdict(list)
        chains: dict[str, list[str]] = {}
        for record in state.images.values():
            chain = chain_ids(record.diff_ids)
            chains[record.id] = chain
            by_top[chain[-1] if chain else ""].append(record)
        self.parent: dict[str, str] = {}
        self.children: dict[str, list[str]] = defaultdict(list)
        for child in state.images.values():
            chain = chains[child.id]
            tops = [chain[-1] if chain else ""]
            if chain:
                tops.append(chain[-2] if len(chain) > 1 else "")
            for top in tops:
                for candidate in by_top.get(top, ()):
                    if candidate.id != child.id and _is_parent(candidate, child):
                        self.parent[child.id] = candidate.id
                        self.children[candidate.id].append(child.id)
                        break
                if child.id in self.parent:
                    break

    def remove(self, image_id: str) -> None:
        """Forget an image that was deleted: its parent loses a child, its children
        their parent (no other image can be their parent: history lengths differ)."""
        parent = self.parent.pop(image_id, None)
        if parent is not None and image_id in self.children.get(parent, ()):
            self.children[parent].remove(image_id)
        for child in self.children.pop(image_id, []):
            self.parent.pop(child, None)

    def has_children(self, image_id: str) -> bool:
        """Whether any image is built directly on this one."""
        return bool(self.children.get(image_id))

    def is_dangling(self, record: ImageRecord) -> bool:
        """No names and no children."""
        return not record.names and not self.has_children(record.id)

    def is_intermediate(self, record: ImageRecord) -> bool:
        """No names but at least one child."""
        return not record.names and self.has_children(record.id)


def _is_parent(parent: ImageRecord, child: ImageRecord) -> bool:
    if len(child.history) != len(parent.history) + 1:
        return False
    if child.history[: len(parent.history)] != parent.history:
        return False
    p_ids, c_ids = parent.diff_ids, child.diff_ids
    return c_ids[: len(p_ids)] == p_ids and len(c_ids) - len(p_ids) in (0, 1)
