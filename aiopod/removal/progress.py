"""What a removal reports while it runs (``progress=`` of
:meth:`aiopod.Runtime.remove_images`, e.g. ``rmi -a``): typed records, each with a
``text`` that is empty (podman prints nothing while ``rmi`` runs; its ``Untagged:`` and
``Deleted:`` lines come from the report, afterwards)::

    RemovalPlanned      what the plan does: names untagged, images deleted, containers removed
    ContainersRemoving  done of total containers whose data is deleted (with force)
    ImagesRemoving      done of total images deleted (0 before the commit, all after it)

A removal is planned, then the data of the containers it removes is deleted
concurrently, then every change is committed at once (the images' metadata, the blobs
and layers no image needs any more).  The containers' count moves as each container's
data is gone; the images' count before and after the commit, which is one indivisible
step.  Nothing is reported for a dry run but the plan.

The records go through :mod:`aiopod._relay` (a callable or an anyio memory object
stream, never holding the removal up) and are drawn by the command line's and the
notebook's progress displays (:mod:`aiopod._progress_board`) as bars labelled
``Removing containers`` and ``Removing images``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from aiopod._relay import ProgressSink

__all__ = (
    "ContainersRemoving",
    "ImagesRemoving",
    "RemovalCallback",
    "RemovalPlanned",
    "RemovalProgressTarget",
    "RemovalRecord",
)


@dataclass(frozen=True, slots=True)
class RemovalPlanned:
    """The plan of a removal: how many names it untags, images it deletes and
    containers it removes."""

    untagged: int
    deleted: int
    containers: int

    @property
    def text(self) -> str:
        """Nothing: podman shows no such line."""
        return ""


@dataclass(frozen=True, slots=True)
class ContainersRemoving:
    """The data of ``done`` of the ``total`` containers the removal removes is deleted."""

    done: int
    total: int

    @property
    def label(self) -> str:
        """The label of its progress bar."""
        return "Removing containers"

    @property
    def unit(self) -> str:
        """What it counts (not bytes)."""
        return "containers"

    @property
    def text(self) -> str:
        """Nothing: a count for a progress bar."""
        return ""


@dataclass(frozen=True, slots=True)
class ImagesRemoving:
    """``done`` of the ``total`` images the removal deletes are deleted (with the blobs
    and layers no other image needs)."""

    done: int
    total: int

    @property
    def label(self) -> str:
        """The label of its progress bar."""
        return "Removing images"

    @property
    def unit(self) -> str:
        """What it counts (not bytes)."""
        return "images"

    @property
    def text(self) -> str:
        """Nothing: a count for a progress bar."""
        return ""


RemovalRecord: TypeAlias = RemovalPlanned | ContainersRemoving | ImagesRemoving

#: How the removal reports a record (in the event loop's thread; it never waits).
RemovalCallback: TypeAlias = Callable[[RemovalRecord], None]

#: Where a removal's records go (``progress=``), as for a load (:mod:`aiopod._relay`).
RemovalProgressTarget: TypeAlias = ProgressSink[RemovalRecord]
