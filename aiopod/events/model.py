"""The event model: what happened to which image or container, and when.

Every state change the runtime makes is described by :class:`Event` objects, published
to in-process subscribers and appended to the store's event log.  The kinds: for images
``Tagged``, ``Untagged``, ``Deleted``, ``Pruned``, ``Loaded``, ``Saved``, ``Built``,
``Pulled``, ``Pushed`` and ``Removed`` (podman's ``remove``: "rmi processed this
image", written even when the image was only untagged; only the ``podman`` policy emits it
for images); for containers ``Created``, ``Removed``, ``Started``, ``Stopped``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal

__all__ = ("Event", "EventKind", "ObjectType", "utc_now")

ObjectType = Literal["image", "container"]


class EventKind(enum.StrEnum):
    """What happened."""

    TAGGED = "Tagged"
    UNTAGGED = "Untagged"
    DELETED = "Deleted"
    PRUNED = "Pruned"
    LOADED = "Loaded"
    SAVED = "Saved"
    BUILT = "Built"
    PULLED = "Pulled"
    PUSHED = "Pushed"
    CREATED = "Created"
    REMOVED = "Removed"
    STARTED = "Started"
    STOPPED = "Stopped"


def utc_now() -> datetime:
    """The current time in UTC (event timestamps are always UTC)."""
    return datetime.now(UTC)


_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Event:
    """One event.

    :param kind: what happened.
    :param type: ``"image"`` or ``"container"``.
    :param id: the 64-hex ID of the image or container.
    :param name: the name involved (the tag untagged, the reference removed, the
        container's name), or None.
    :param time: when it happened (UTC).
    :param attributes: extra string facts (e.g. a container's ``image``).
    :param seq: position in the store's event log, assigned when the event is recorded
        (0 before); gaps tell a subscriber it missed events.
    """

    kind: EventKind
    type: ObjectType
    id: str
    name: str | None = None
    time: datetime = field(default_factory=utc_now)
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    seq: int = 0
