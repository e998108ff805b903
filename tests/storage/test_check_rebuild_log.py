"""The log's replay that ``check --repair`` uses when it rebuilds an unreadable metadata
database (:mod:`aiopod.storage.logged`): lenient where the log lost its start (a pruned
log), and the events it derives keep the order the log requires (containers, then names,
then images)."""

from __future__ import annotations

from aiopod.events.model import Event, EventKind
from aiopod.storage.logged import LoggedContainer, events_to, replay
from aiopod.storage.records import StoreState

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_the_replay_moves_names_and_skips_what_it_does_not_know() -> None:
    logged = replay(
        [
            Event(EventKind.UNTAGGED, "image", C, "localhost/pruned:1"),  # before the log starts
            Event(EventKind.DELETED, "image", C),
            Event(EventKind.REMOVED, "container", C, "gone"),
            Event(EventKind.LOADED, "image", A, "localhost/x:1"),
            Event(EventKind.TAGGED, "image", B, "localhost/x:1"),  # takes the name from A
            Event(EventKind.TAGGED, "image", A, "localhost/y:1"),
            Event(EventKind.UNTAGGED, "image", A, "localhost/y:1"),
            Event(
                EventKind.CREATED,
                "container",
                C,
                "box",
                attributes={"image": "localhost/x:1", "external": "true"},
            ),
        ]
    )
    assert logged.images == {A: set(), B: {"localhost/x:1"}}
    assert logged.containers == {C: LoggedContainer("box", "localhost/x:1", "true")}


def test_the_derived_events_remove_containers_before_names_before_images() -> None:
    logged = replay(
        [
            Event(EventKind.LOADED, "image", A, "localhost/x:1"),
            Event(EventKind.LOADED, "image", B, "localhost/y:1"),
            Event(EventKind.CREATED, "container", C, "box", attributes={"image": A}),
        ]
    )
    events = events_to(logged, StoreState())
    assert [(e.kind, e.type, e.id, e.name) for e in events] == [
        (EventKind.REMOVED, "container", C, "box"),
        (EventKind.UNTAGGED, "image", A, "localhost/x:1"),
        (EventKind.UNTAGGED, "image", B, "localhost/y:1"),
        (EventKind.DELETED, "image", A, None),
        (EventKind.DELETED, "image", B, None),
    ]
    assert events[0].attributes == {"image": A, "external": "false"}
