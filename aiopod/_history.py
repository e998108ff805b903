"""An image's history as podman shows it (``history``): :class:`ImageHistory`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiopod._images import parse_created
from aiopod._trees import StoreLayers, podman_layer_ids
from aiopod.errors import InvalidArchive
from aiopod.storage.records import ImageRecord, StoreState

__all__ = ("ImageHistory", "image_history")


@dataclass(frozen=True, slots=True)
class ImageHistory:
    """One entry of an image's history (its config's ``history``), newest first.

    ``id`` is the image in the store whose top layer the entry's layer is (each image
    named once, at its newest entry), ``None`` where podman shows ``<missing>``;
    ``size`` the uncompressed size of the entry's layer (0 for an entry that made no
    layer); ``tags`` the names of the images on that layer.
    """

    id: str | None
    created: datetime | None
    created_by: str
    size: int
    comment: str
    tags: tuple[str, ...] = ()


def image_history(state: StoreState, record: ImageRecord) -> list[ImageHistory]:
    """*record*'s history, newest first, its entries matched to the layers they made
    (walking down from the top layer) as podman matches them."""
    layers = StoreLayers(state)
    ids = podman_layer_ids(record.diff_ids)
    below = len(ids) - 1  # the layer the next entry that made one made
    named: set[str] = set()
    result: list[ImageHistory] = []
    for entry in reversed(record.history):
        layer_id = ids[below] if below >= 0 else None
        on_top = layers.on_top.get(layer_id, []) if layer_id is not None else []
        image_id: str | None = None
        if on_top and on_top[0].id not in named:
            image_id = on_top[0].id
            named.add(image_id)
        size = 0
        if not entry.empty_layer:
            if layer_id is None:
                raise InvalidArchive(
                    f"image {record.id}: no layer left for the history entry "
                    f"{entry.created_by!r}: its config has more entries with layers than "
                    "it has layers"
                )
            size = layers.size[layer_id]
            below -= 1
        result.append(
            ImageHistory(
                id=image_id,
                created=parse_created(entry.created),
                created_by=entry.created_by,
                size=size,
                comment=entry.comment,
                tags=tuple(name for image in on_top for name in image.names),
            )
        )
    return result
