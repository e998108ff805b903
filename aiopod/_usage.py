"""The store's disk usage as ``podman system df`` reports it: :class:`DiskUsage`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiopod._containers import Container, container_from_record
from aiopod._display import Displayable, html_table
from aiopod._images import parse_created, repository_and_tag
from aiopod._text import human_size, render_table
from aiopod.storage.layertree import LayerTree
from aiopod.storage.records import StoreState

__all__ = ("DiskUsage", "ImageUsage", "UsageSummary", "disk_usage")


@dataclass(frozen=True, slots=True)
class ImageUsage:
    """One image's disk usage, for one of its tagged names (``<none>`` when it has none).

    As podman 4.3 counts it: an image with children shares all of its ``size``; one
    with a parent (and no children) shares its parent's size and has the rest to itself;
    any other has all of it to itself.  ``containers`` is how many containers (storage
    containers included) use the image.
    """

    id: str
    repository: str
    tag: str
    created: datetime | None
    size: int
    shared_size: int
    unique_size: int
    containers: int


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """A line of ``system df``: how many there are, how many are in use, their size and
    how much of it removing the unused ones would free."""

    type: str
    total: int
    active: int
    size: int
    reclaimable: int

    @property
    def reclaimable_percent(self) -> int:
        """``reclaimable`` as a rounded percentage of ``size`` (0 when there is none)."""
        return round(self.reclaimable / self.size * 100) if self.size else 0


@dataclass(frozen=True, slots=True)
class DiskUsage(Displayable):
    """What ``podman system df`` reports: ``images`` (a row per tagged name, in storage
    order), the runtime's ``containers`` (with nothing written, as aiopod does not run
    them) and no volumes.  ``summary`` adds them up as podman does (an image with two
    names counts twice)."""

    images: tuple[ImageUsage, ...]
    containers: tuple[Container, ...]

    @property
    def summary(self) -> tuple[UsageSummary, UsageSummary, UsageSummary]:
        """The Images, Containers and Local Volumes lines."""
        size = sum(i.size for i in self.images)
        unused = sum(i.size for i in self.images if not i.containers)
        active = sum(1 for i in self.images if i.containers)
        return (
            UsageSummary("Images", len(self.images), active, size, unused),
            UsageSummary("Containers", len(self.containers), 0, 0, 0),
            UsageSummary("Local Volumes", 0, 0, 0, 0),
        )

    def summary_rows(self) -> list[list[str]]:
        """``system df``'s table: a header row, then a row per line of the summary."""
        rows = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]]
        for line in self.summary:
            reclaimable = f"{_size(line.reclaimable)} ({line.reclaimable_percent}%)"
            rows.append(
                [line.type, str(line.total), str(line.active), _size(line.size), reclaimable]
            )
        return rows

    def display_text(self) -> str:
        return render_table(self.summary_rows()).rstrip("\n")

    def display_html(self) -> str:
        header, *rows = self.summary_rows()
        return html_table(header, rows, caption="Disk usage")


def _size(size: int) -> str:
    return human_size(size, precision=4, separator="")


def disk_usage(state: StoreState) -> DiskUsage:
    """The disk usage of the store whose metadata is *state*."""
    tree = LayerTree(state)
    users: dict[str, int] = {}
    for container in state.containers.values():
        users[container.image_id] = users.get(container.image_id, 0) + 1
    rows: list[ImageUsage] = []
    for record in state.images.values():
        size, shared = record.size, 0
        parent = tree.parent_of(record.id)
        if tree.has_children(record.id):
            shared = size
        elif parent is not None:
            shared = state.images[parent].size
        names = [repository_and_tag(n) for n in record.names if "@" not in n]
        for repository, tag in names or [("<none>", "<none>")]:
            rows.append(
                ImageUsage(
                    id=record.id,
                    repository=repository,
                    tag=tag,
                    created=parse_created(record.created),
                    size=size,
                    shared_size=shared,
                    unique_size=size - shared,
                    containers=users.get(record.id, 0),
                )
            )
    containers = tuple(
        container_from_record(container, state)
        for container in state.containers.values()
        if container.runtime is not None
    )
    return DiskUsage(tuple(rows), containers)
