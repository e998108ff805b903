"""The store as a picture (:func:`aiopod.notebook.plot_store`), with matplotlib.

matplotlib is an optional extra (``aiopod[plot]``): it is imported here only, when a
picture is asked for; its absence is a :class:`~aiopod.errors.MissingExtra`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiopod._text import human_size
from aiopod._usage import DiskUsage, ImageUsage
from aiopod.errors import MissingExtra

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ("store_figure",)


def _by_image(usage: DiskUsage) -> list[tuple[str, ImageUsage]]:
    """One entry per image (``system df`` has a row per name): its label and usage."""
    seen: dict[str, tuple[str, ImageUsage]] = {}
    for row in usage.images:
        if row.id not in seen:
            name = f"{row.repository}:{row.tag}" if row.repository != "<none>" else row.id[:12]
            seen[row.id] = (name, row)
    return list(seen.values())


def store_figure(usage: DiskUsage, *, title: str | None = None) -> Figure:
    """See :func:`aiopod.notebook.plot_store`."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtra("plot", "matplotlib", "plot_store") from None

    images = _by_image(usage)
    labels = [label for label, _ in images]
    shared = [row.shared_size / 1e6 for _, row in images]
    unique = [row.unique_size / 1e6 for _, row in images]
    figure = Figure(figsize=(8, max(2.0, 0.4 * len(images) + 1.2)), layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(images)))
    axes.barh(positions, shared, label="shared with other images", color="#8fb3d9")
    axes.barh(positions, unique, left=shared, label="only this image", color="#2b6cb0")
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()
    axes.set_xlabel("MB")
    axes.legend(loc="lower right")
    total = sum(row.size for _, row in images)
    sharing = sum(row.shared_size for _, row in images)
    axes.set_title(
        title or f"{len(images)} images, {human_size(total)}; {human_size(sharing)} of it shared"
    )
    return figure
