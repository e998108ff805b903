"""The layers of the store as a tree: ``image tree`` (:class:`ImageTree`).

Layers are identified as podman identifies the layers it loads or pulls: the first layer
by its diff ID, each later one by the SHA-256 of ``"<parent layer ID>+<diff ID>"``.  Two
images built on the same layers share those nodes, so the tree shows what they share.
Children are in the order the store first met their layers (images in storage order),
as podman lists its layers in the order they were created.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from html import escape

from aiopod._display import Displayable
from aiopod._images import Image
from aiopod._text import human_size
from aiopod.storage.records import ImageRecord, StoreState

__all__ = (
    "ImageTree",
    "StoreLayers",
    "TreeLayer",
    "build_image_tree",
    "podman_layer_ids",
    "stored_size",
)


def podman_layer_ids(diff_ids: Iterable[str]) -> list[str]:
    """The IDs podman gives a stack of layers it loads or pulls (64 hex, base first)."""
    ids: list[str] = []
    for diff_id in diff_ids:
        hex_id = diff_id.removeprefix("sha256:")
        ids.append(hashlib.sha256(f"{ids[-1]}+{hex_id}".encode()).hexdigest() if ids else hex_id)
    return ids


def stored_size(records: Collection[ImageRecord]) -> int:
    """The bytes *records* take with shared layers counted once: every distinct layer's
    uncompressed size, and every image's config and manifest."""
    layers = {layer.diff_id: layer.uncompressed_size for r in records for layer in r.layers}
    documents = sum(r.config_size + r.manifest_size for r in records)
    return sum(layers.values()) + documents


@dataclass(frozen=True, slots=True)
class TreeLayer:
    """One layer of the store's tree.

    ``id`` is podman's layer ID (64 hex); ``size`` the uncompressed size; ``images``
    the IDs of the images whose top layer it is, and ``tags`` their tagged names;
    ``children`` the layers built directly on it (filled in only where the tree shows
    them: below the image's top layer with ``what_requires``).
    """

    id: str
    size: int
    images: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    children: tuple[TreeLayer, ...] = ()

    def line(self) -> str:
        """podman's line for the layer: ``ID: 3aa597a0cfc4 Size: 10.24kB Top Layer of: [...]``."""
        tags = f" Top Layer of: [{' '.join(self.tags)}]" if self.tags else ""
        return (
            f"ID: {self.id[:12]} Size: {human_size(self.size, precision=4, separator=''):>7}{tags}"
        )

    def walk(self) -> Iterable[TreeLayer]:
        """This layer and every layer below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class ImageTree(Displayable):
    """An image's layers as ``podman image tree`` draws them; ``str()`` is its output.

    ``tags`` are the image's tagged names; ``layers`` its layers, base first.
    ``dependents`` is its top layer with every layer built on it, as a tree (what
    ``--whatrequires`` draws; ``None`` for an image without layers), and
    ``top_has_siblings`` whether other layers share the top layer's parent (podman then
    draws the layers on it as a branch).  ``what_requires`` chooses which ``str()`` draws.
    """

    image: Image
    tags: tuple[str, ...]
    layers: tuple[TreeLayer, ...]
    dependents: TreeLayer | None
    top_has_siblings: bool = field(default=False, repr=False)
    what_requires: bool = False

    def display_text(self) -> str:
        """podman's ``image tree`` output (without the blank line the command adds)."""
        header = [
            f"Image ID: {self.image.id[:12]}",
            f"Tags:     [{' '.join(self.tags)}]",
            f"Size:     {human_size(self.image.size, precision=4, separator='')}",
            "Image Layers" if self.layers else "No Image Layers",
        ]
        items: list[_Item] = []
        if not self.what_requires:
            items = [(layer.line(), []) for layer in self.layers]
        elif self.dependents is not None:
            _place(self.dependents, items, branch=self.top_has_siblings)
        lines: list[str] = []
        _draw(items, "", lines)
        return "\n".join([*header, *lines]) + "\n"

    def display_html(self) -> str:
        return f"<pre>{escape(self.display_text())}</pre>"

    def __str__(self) -> str:
        return self.display_text()


#: A drawn line and the items below it.
_Item = tuple[str, list["_Item"]]


def _place(node: TreeLayer, items: list[_Item], *, branch: bool) -> None:
    """Add *node* and the layers on it to *items* as podman draws them: a layer that has
    siblings starts a branch holding the layers on it; one without (or without a parent)
    goes on in line, the layers on it beside it rather than below it."""
    below: list[_Item] = []
    items.append((node.line(), below))
    for child in node.children:
        _place(child, below if branch else items, branch=len(node.children) > 1)


def _draw(items: Sequence[_Item], prefix: str, lines: list[str]) -> None:
    for index, (text, below) in enumerate(items):
        last = index == len(items) - 1
        lines.append(f"{prefix}{'└── ' if last else '├── '}{text}")
        _draw(below, prefix + ("    " if last else "│   "), lines)


def _tagged(names: Iterable[str]) -> list[str]:
    return [name for name in names if "@" not in name]


class StoreLayers:
    """The store's layers as podman's layer tree holds them (built from *state*).

    ``size`` maps a layer ID to its uncompressed size, ``children`` a layer ID (``""``
    for none) to the layers directly on it in the order the store first met them,
    ``on_top`` a layer ID to the images whose top layer it is (storage order).
    """

    def __init__(self, state: StoreState) -> None:
        self.size: dict[str, int] = {}
        self.children: dict[str, list[str]] = {}
        self.on_top: dict[str, list[ImageRecord]] = {}
        for record in state.images.values():
            ids = podman_layer_ids(record.diff_ids)
            for index, (layer_id, layer) in enumerate(zip(ids, record.layers, strict=True)):
                if layer_id not in self.size:
                    self.size[layer_id] = layer.uncompressed_size
                    self.children.setdefault(ids[index - 1] if index else "", []).append(layer_id)
            if ids:
                self.on_top.setdefault(ids[-1], []).append(record)

    def node(self, layer_id: str, *, deep: bool) -> TreeLayer:
        """The layer *layer_id*, with (*deep*) or without the layers built on it."""
        images = self.on_top.get(layer_id, [])
        tags = list(dict.fromkeys(t for i in images for t in _tagged(i.names)))
        below = self.children.get(layer_id, []) if deep else []
        return TreeLayer(
            id=layer_id,
            size=self.size[layer_id],
            images=tuple(i.id for i in images),
            tags=tuple(tags),
            children=tuple(self.node(child, deep=True) for child in below),
        )


def build_image_tree(
    state: StoreState, record: ImageRecord, image: Image, *, what_requires: bool = False
) -> ImageTree:
    """The tree of *record*'s layers in *state* (*image* is its public view)."""
    layers = StoreLayers(state)
    ids = podman_layer_ids(record.diff_ids)
    siblings = layers.children.get(ids[-2] if len(ids) > 1 else "", []) if ids else []
    return ImageTree(
        image=image,
        tags=tuple(_tagged(record.names)),
        layers=tuple(layers.node(layer_id, deep=False) for layer_id in ids),
        dependents=layers.node(ids[-1], deep=True) if ids else None,
        top_has_siblings=len(ids) > 1 and len(siblings) > 1,
        what_requires=what_requires,
    )
