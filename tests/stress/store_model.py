"""What a store holds, twice: replayed from its event log and read from its metadata.

The stress, kill and state-machine tests end every run the same way (:func:`verify_store`):
the store reopens (recovery runs), ``system check`` finds no problem, the event log's hash
chain verifies, and replaying the log gives exactly the images (with their names) and
containers (with their names and images) the metadata holds.

The replay follows the event vocabulary (``aiopod.events.model``): ``Loaded``,
``Pulled``, ``Built`` and ``Tagged`` give a name to an image (taking it from any other
image: a name belongs to one image), ``Untagged`` takes one away, ``Deleted`` removes the
image; ``Created`` and ``Removed`` of a container add and remove it (its image is the
event's ``image_id`` attribute; in logs written before it had one, its ``image``
attribute: the image's ID, or the full name it had then).  An event
about an image or container the replay does not know, or a ``Deleted`` image that still
has names or containers, is an error: the log lost a change.

A killed build leaves its working container: ``check`` reports it as a leftover (its
process is gone), which is the one problem a kill may leave; :func:`verify_store` then
runs ``check --repair``, which must remove it (with its ``Removed`` event: the replay
checks that) and leave a store ``check`` finds clean.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from aiopod import CheckReport, EventLog, Runtime
from aiopod.events.model import Event, EventKind
from aiopod.events.verify import verify_log
from aiopod.storage.store import Store

#: Kinds that put an image in the store and (with a name) give it that name.
_NAMING = {EventKind.LOADED, EventKind.PULLED, EventKind.BUILT, EventKind.TAGGED}
#: Kinds that change nothing the model holds.
_NEUTRAL = {EventKind.REMOVED, EventKind.PRUNED, EventKind.SAVED, EventKind.PUSHED}


@dataclass
class StoreView:
    """Images (ID → names) and containers (ID → (name, image ID))."""

    images: dict[str, frozenset[str]] = field(default_factory=dict)
    containers: dict[str, tuple[str, str]] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [f"image {i[:12]} {sorted(n)}" for i, n in sorted(self.images.items())]
        lines += [f"container {c[:12]} {n} of {i[:12]}" for c, (n, i) in self.containers.items()]
        return "\n".join(lines) or "(empty)"


class ReplayError(AssertionError):
    """The log cannot describe a store: an event about something it never made."""


def _resolve(images: dict[str, set[str]], image: str, where: str) -> str:
    """The ID of the image a container event names: by ID, or by the (full) name it had
    then; "" for a container made from scratch."""
    if not image or image in images:
        return image
    owners = [image_id for image_id, names in images.items() if image in names]
    if len(owners) != 1:
        raise ReplayError(f"{where}: its image {image} is not one image of the log")
    return owners[0]


def replay(events: Iterable[Event]) -> StoreView:
    """The store the events describe (see the module docstring)."""
    images: dict[str, set[str]] = {}
    containers: dict[str, tuple[str, str]] = {}
    for event in events:
        where = f"event {event.seq} ({event.kind} {event.type} {event.id[:12]} {event.name})"
        if event.type == "container":
            if event.kind is EventKind.CREATED:
                if event.id in containers:
                    raise ReplayError(f"{where}: the container exists already")
                image = event.attributes.get("image_id")  # logs before it had only names
                if image is None:
                    image = _resolve(images, event.attributes.get("image", ""), where)
                elif image and image not in images:
                    raise ReplayError(f"{where}: its image {image[:12]} is not in the log")
                containers[event.id] = (event.name or "", image)
            elif event.kind is EventKind.REMOVED and containers.pop(event.id, None) is None:
                raise ReplayError(f"{where}: no such container")
            continue
        if event.kind in _NAMING:
            images.setdefault(event.id, set())
            if event.name:
                for names in images.values():
                    names.discard(event.name)
                images[event.id].add(event.name)
        elif event.kind is EventKind.UNTAGGED:
            if event.id not in images:
                raise ReplayError(f"{where}: no such image")
            images[event.id].discard(event.name or "")
        elif event.kind is EventKind.DELETED:
            if event.id not in images:
                raise ReplayError(f"{where}: no such image")
            users = [c for c, (_, image) in containers.items() if image == event.id]
            if images[event.id] or users:
                raise ReplayError(
                    f"{where}: deleted with names {sorted(images[event.id])} and containers {users}"
                )
            del images[event.id]
        elif event.kind not in _NEUTRAL:
            raise ReplayError(f"{where}: an image event the replay does not know")
    return StoreView({i: frozenset(n) for i, n in images.items()}, containers)


async def read_view(root: Path) -> StoreView:
    """The store's own state (opening it runs recovery first)."""
    store = Store(root)
    await store.open()
    state = await store.snapshot()
    return StoreView(
        {record.id: frozenset(record.names) for record in state.images.values()},
        {c.id: (c.name, c.image_id) for c in state.containers.values()},
    )


@dataclass(frozen=True)
class Verified:
    view: StoreView
    events: int
    check: CheckReport
    #: Working containers of killed builds that ``check --repair`` removed.
    leftovers: tuple[str, ...] = ()


async def verify_store_async(root: Path) -> Verified:
    """Reopen *root*, check it, verify its log and compare the replay with the state."""
    leftovers: tuple[str, ...] = ()
    async with Runtime(root) as rt:
        report = await rt.check()
        if report.leftover_containers:
            assert len(report.problems) == len(report.leftover_containers), report.problems
            leftovers = tuple(report.leftover_containers)
            repaired = await rt.check(repair=True)
            assert repaired.repaired == [f"removed leftover container {c}" for c in leftovers]
            report = await rt.check()
    assert report.problems == [], report.problems
    view = await read_view(root)
    log = EventLog.for_store(root)
    verified = verify_log(log)
    assert verified.ok, verified
    events = list(log.read())
    replayed = replay(events)
    assert replayed == view, (
        f"the log replays to\n{replayed.describe()}\nbut the store holds\n{view.describe()}"
    )
    return Verified(view, len(events), report, leftovers)


def verify_store(root: Path) -> Verified:
    """:func:`verify_store_async` from synchronous code."""
    return anyio.run(verify_store_async, root)
