"""What the event log says the store holds, and the events that bring it to another state.

``check --repair`` rebuilds unreadable metadata from what survives (``index.json``
and the blobs, :mod:`aiopod.storage.rebuild`).  What the rebuild cannot give back is
lost, and the log must say so (docs/design/commit-points.md, CP24): :func:`replay` reads
the log into a :class:`LoggedStore` (the images with their names, the containers) and
:func:`events_to` gives the events that take that to the rebuilt state -- ``Removed`` for
each container, ``Untagged`` for each name an image lost, ``Deleted`` for each image that
is gone, ``Tagged`` for a name the rebuild gives to another image than the log did.

The replay follows the event vocabulary (:mod:`aiopod.events.model`): ``Loaded``,
``Pulled``, ``Built`` and ``Tagged`` put an image in the store and give it the event's
name (taking it from any other image); ``Untagged`` takes a name away; ``Deleted``
removes the image; ``Created`` and ``Removed`` add and remove a container.  It is
lenient, as a repair must be: an event about an image or container it does not know (a
pruned log's older records are gone) is skipped, so what only the pruned records knew
cannot be told.  Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aiopod.events.model import Event, EventKind
from aiopod.storage.records import StoreState

__all__ = ("LoggedContainer", "LoggedStore", "events_to", "replay")

#: Kinds that put an image in the store and (with a name) give it that name.
_NAMING = frozenset({EventKind.LOADED, EventKind.PULLED, EventKind.BUILT, EventKind.TAGGED})


@dataclass(frozen=True, slots=True)
class LoggedContainer:
    """A container as its ``Created`` event describes it: its name and the event's
    ``image`` and ``external`` attributes (which its ``Removed`` event repeats)."""

    name: str
    image: str
    external: str


@dataclass
class LoggedStore:
    """The images (ID → names) and containers (ID → :class:`LoggedContainer`) of a log."""

    images: dict[str, set[str]] = field(default_factory=dict)
    containers: dict[str, LoggedContainer] = field(default_factory=dict)


def replay(events: Iterable[Event]) -> LoggedStore:
    """The store *events* describe (see the module docstring), oldest event first."""
    logged = LoggedStore()
    images = logged.images
    #: Which image last got each name (a discard from it is harmless if it lost it since).
    owners: dict[str, str] = {}
    for event in events:
        if event.type == "container":
            if event.kind is EventKind.CREATED:
                logged.containers[event.id] = LoggedContainer(
                    event.name or "",
                    event.attributes.get("image", ""),
                    event.attributes.get("external", "false"),
                )
            elif event.kind is EventKind.REMOVED:
                logged.containers.pop(event.id, None)
        elif event.kind in _NAMING:
            names = images.setdefault(event.id, set())
            if event.name:
                images.get(owners.get(event.name, ""), set()).discard(event.name)
                owners[event.name] = event.id
                names.add(event.name)
        elif event.kind is EventKind.UNTAGGED and event.id in images:
            images[event.id].discard(event.name or "")
        elif event.kind is EventKind.DELETED:
            images.pop(event.id, None)
    return logged


def events_to(logged: LoggedStore, state: StoreState) -> list[Event]:
    """The events that take *logged* to *state*: ``Removed`` for the containers *state*
    does not hold, then ``Untagged`` for the names images lost, ``Deleted`` for the
    images *state* does not hold (after their containers and names, as the log requires),
    and last ``Tagged`` for the names images of the log gained.  Images the log does not
    know get no events (it cannot say where they came from)."""
    events = [
        Event(
            EventKind.REMOVED,
            "container",
            container_id,
            container.name,
            attributes={"image": container.image, "external": container.external},
        )
        for container_id, container in logged.containers.items()
        if container_id not in state.containers
    ]
    for image_id, names in logged.images.items():
        record = state.images.get(image_id)
        kept = set(record.names) if record is not None else set()
        events += [Event(EventKind.UNTAGGED, "image", image_id, n) for n in sorted(names - kept)]
    events += [
        Event(EventKind.DELETED, "image", image_id)
        for image_id in logged.images
        if image_id not in state.images
    ]
    for record in state.images.values():
        known = logged.images.get(record.id)
        if known is not None:
            events += [
                Event(EventKind.TAGGED, "image", record.id, n)
                for n in record.names
                if n not in known
            ]
    return events
