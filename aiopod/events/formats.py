"""How events are written: aiopod's own JSON, podman's and Docker's shapes, text lines.

Three JSON shapes, one per policy of the command line:

``to_native_json`` (the ``libpod`` policy, and the event log's line format)
    ``{"seq", "kind", "type", "id", "name", "time", "attributes"}``; ``time`` is RFC 3339
    in UTC with the fraction's trailing zeros dropped (Go's ``RFC3339Nano``).

``to_podman_json`` (podman 4.3.1, measured on an isolated store with the ``file`` backend)
    Image events: ``{"ID", "Name", "Status", "Time", "Type": "image", "Attributes": null}``
    with ``ID`` and ``Name`` omitted when empty.  Container events:
    ``{"ID", "Image", "Name", "Status", "Time", "Type": "container", "Attributes": {labels}}``
    (``Attributes`` is ``{}`` without labels, ``Image`` omitted when empty).  Statuses:
    ``tag`` (Name as given), ``untag``, ``remove`` (written even when ``rmi`` only untagged;
    no Name for ``rmi -a`` and prune), ``save`` and ``loadfromarchive`` (Name is the archive
    path; ``loadfromarchive`` has no ID), ``build`` (no ID; Name is the new image's ID),
    ``pull``, ``push``; for containers ``create``, ``remove``, ``start``, ``stop``.  podman
    has no event for a deletion as such: under the ``podman`` policy its ``remove`` comes
    from the ``Removed`` marker (``Deleted`` has no podman shape then); a ``Deleted``
    written under another policy is podman's ``remove`` of the image (its first name as
    ``Name``), so that a removal reads the same whatever policy made it.  ``Time`` is
    Go's ``RFC3339Nano`` in the writer's local zone (``Z`` on a UTC machine,
    ``2026-11-27T23:46:03.648563336-05:00`` under ``TZ=America/New_York``); here it is
    the local zone of the process that renders the event, unless a zone is given.

``to_docker_json`` (dockerd 20.10, measured on a private socket)
    ``{"status", "id", "from" (containers only), "Type", "Action", "Actor": {"ID",
    "Attributes"}, "scope": "local", "time" (s), "timeNano" (ns)}``.  Image IDs carry
    ``sha256:``.  ``Actor.Attributes.name`` is the familiar name for ``tag``
    (``o2:latest``) and the image ID for every other image action (``untag``,
    ``delete``, ``load``, ``save``, ``import``).  A removed image is ``untag`` events then
    ``delete``; a removed container is ``destroy``; container attributes are the labels
    plus ``image`` and ``name``.

Text lines (the default output of ``aiopod events``)
    podman: ``2026-11-28 04:45:54.58381629 +0000 UTC image untag <id> <name>`` (Go's
    ``Time.String()`` in the local zone; an empty name leaves a trailing space, an empty
    ID two spaces); containers ``... container create <id> (image=I, name=N, k=v)``.
    Docker: ``2026-11-28T04:46:44.293335340Z image tag sha256:<id> (name=imp1)`` (nine
    fraction digits, local zone; attributes sorted by key).

Python's ``datetime`` has microseconds, so times print at most six fraction digits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from json.encoder import encode_basestring
from types import MappingProxyType
from typing import Any, Final

from aiopod.events.model import Actor, Event, EventKind

__all__ = (
    "DOCKER_ACTIONS",
    "INTERNAL_ATTRIBUTES",
    "NATIVE_STATUS",
    "PODMAN_STATUSES",
    "docker_action",
    "encode_actor",
    "encode_native",
    "event_from_native_json",
    "format_docker_text",
    "format_go_time",
    "format_podman_text",
    "format_rfc3339_nano",
    "go_json",
    "native_status",
    "podman_status",
    "to_docker_json",
    "to_native_json",
    "to_podman_json",
)

K = EventKind

#: A short verb per kind (the ``Status`` of aiopod's own text lines under ``libpod``).
NATIVE_STATUS: Final[Mapping[EventKind, str]] = MappingProxyType(
    {
        K.TAGGED: "tag",
        K.UNTAGGED: "untag",
        K.DELETED: "delete",
        K.PRUNED: "prune",
        K.LOADED: "load",
        K.SAVED: "save",
        K.BUILT: "build",
        K.PULLED: "pull",
        K.PUSHED: "push",
        K.CREATED: "create",
        K.REMOVED: "remove",
        K.STARTED: "start",
        K.STOPPED: "stop",
    }
)

#: podman 4.3's ``Status`` per (type, kind); kinds not listed have no podman event.
PODMAN_STATUSES: Final[Mapping[tuple[str, EventKind], str]] = MappingProxyType(
    {
        ("image", K.TAGGED): "tag",
        ("image", K.UNTAGGED): "untag",
        ("image", K.REMOVED): "remove",
        ("image", K.LOADED): "loadfromarchive",
        ("image", K.SAVED): "save",
        ("image", K.BUILT): "build",
        ("image", K.PULLED): "pull",
        ("image", K.PUSHED): "push",
        ("container", K.CREATED): "create",
        ("container", K.REMOVED): "remove",
        ("container", K.STARTED): "start",
        ("container", K.STOPPED): "stop",
    }
)

#: Docker's ``Action`` per (type, kind); kinds not listed have no Docker event.
DOCKER_ACTIONS: Final[Mapping[tuple[str, EventKind], str]] = MappingProxyType(
    {
        ("image", K.TAGGED): "tag",
        ("image", K.UNTAGGED): "untag",
        ("image", K.DELETED): "delete",
        ("image", K.PRUNED): "delete",
        ("image", K.LOADED): "load",
        ("image", K.SAVED): "save",
        ("image", K.PULLED): "pull",
        ("image", K.PUSHED): "push",
        ("container", K.CREATED): "create",
        ("container", K.REMOVED): "destroy",
        ("container", K.STARTED): "start",
        ("container", K.STOPPED): "stop",
    }
)


def native_status(event: Event) -> str:
    """aiopod's verb for the event: its canonical action (``tag``, ``untag``, ``remove``, …)."""
    return event.action


def is_podman_marker(event: Event) -> bool:
    """Whether *event* is podman's "rmi processed this reference" record (no change of
    its own: the ``podman`` policy writes it beside the canonical events)."""
    return event.kind == K.REMOVED and event.type == "image"


#: Attributes aiopod sets that are not labels (so podman's ``Attributes`` omits them).
INTERNAL_ATTRIBUTES: Final = frozenset({"image", "image_id", "external", "source", "path"})


def _imported(event: Event) -> bool:
    return event.kind == K.LOADED and event.attributes.get("source") == "tarball"


def podman_status(event: Event) -> str | None:
    """podman's ``Status`` for the event, or None when podman has no such event.

    ``podman import`` logs no ``loadfromarchive``, only a ``tag`` for the name it was
    given, so a ``Loaded`` event from a tarball is a ``tag`` when it names the image.
    """
    if _imported(event):
        return "tag" if event.name else None
    if event.kind == K.DELETED and event.type == "image":
        # Under the podman policy its marker is the ``remove``; otherwise this is it.
        return None if event.policy == "podman" else "remove"
    return PODMAN_STATUSES.get((event.type, event.kind))


def docker_action(event: Event) -> str | None:
    """Docker's ``Action`` for the event (``import`` for a tarball), or None."""
    if _imported(event):
        return "import"
    return DOCKER_ACTIONS.get((event.type, event.kind))


# -- times ---------------------------------------------------------------------------------


def _fraction(dt: datetime, digits: int | None) -> str:
    """``.583816`` (Go's ``.999999999``: trailing zeros dropped) or ``.583816000``."""
    if digits is not None:
        return "." + f"{dt.microsecond:06d}000"[:digits]
    if not dt.microsecond:
        return ""
    return "." + f"{dt.microsecond:06d}".rstrip("0")


def _offset(dt: datetime, colon: bool) -> str:
    offset = dt.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" if colon else f"{sign}{hours:02d}{minutes:02d}"


def _in_zone(dt: datetime, tz: tzinfo | None) -> datetime:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(tz)  # tz None: the local zone


def format_rfc3339_nano(dt: datetime, tz: tzinfo | None = UTC, *, digits: int | None = None) -> str:
    """Go's ``RFC3339Nano`` (``2026-11-28T04:45:54.58381Z``) in *tz* (None: local zone).

    A zero offset prints ``Z``, as Go does for any zone.  *digits* fixes the fraction's
    length (Docker's ``RFC3339NanoFixed`` uses 9).
    """
    if tz is UTC and digits is None and dt.tzinfo is UTC:
        # The event log's hot path: isoformat is C code.
        text = dt.isoformat()[:-6]  # drop "+00:00"
        return (text.rstrip("0") if dt.microsecond else text) + "Z"
    dt = _in_zone(dt, tz)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S") + _fraction(dt, digits)
    offset = dt.utcoffset()
    return base + ("Z" if not offset else _offset(dt, colon=True))


def format_go_time(dt: datetime, tz: tzinfo | None = None) -> str:
    """Go's ``Time.String()`` in *tz* (None: local zone): ``2026-11-28 04:45:54.5 +0000 UTC``."""
    dt = _in_zone(dt, tz)
    name = dt.tzname() or _offset(dt, colon=False)
    return f"{dt.strftime('%Y-%m-%d %H:%M:%S')}{_fraction(dt, None)} {_offset(dt, False)} {name}"


def _unix_nanos(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


# -- JSON ----------------------------------------------------------------------------------

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def go_json(value: Any) -> str:
    """Compact JSON as Go's ``json.Marshal`` writes it (``<``, ``>``, ``&`` escaped)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], text)


def to_native_json(event: Event) -> dict[str, Any]:
    """aiopod's own shape, also the event log's line format (:func:`encode_native`):
    ``seq``, ``action``, ``kind``, ``type``, ``id``, ``name``, ``names``, ``time``, then
    ``started``, ``digest``, ``policy`` and ``options`` when set, ``attributes``, and
    ``actor`` and ``prev`` when set."""
    doc: dict[str, Any] = {
        "seq": event.seq,
        "action": event.action,
        "kind": event.kind.value,
        "type": event.type,
        "id": event.id,
        "name": event.name,
        "names": list(event.names),
        "time": format_rfc3339_nano(event.time),
    }
    if event.started is not None:
        doc["started"] = format_rfc3339_nano(event.started)
    if event.digest is not None:
        doc["digest"] = event.digest
    if event.policy is not None:
        doc["policy"] = event.policy
    if event.options:
        doc["options"] = dict(event.options)
    doc["attributes"] = dict(event.attributes)
    if event.actor is not None:
        doc["actor"] = event.actor.to_json()
    if event.prev is not None:
        doc["prev"] = event.prev
    return doc


_text = encode_basestring  # a JSON string (C code): only quotes, backslashes and controls escaped


def _object(mapping: Mapping[str, str]) -> str:
    if not mapping:
        return "{}"
    return "{" + ",".join([f"{_text(k)}:{_text(v)}" for k, v in mapping.items()]) + "}"


def _time_text(moment: datetime, times: dict[datetime, str] | None) -> str:
    if times is None:
        return format_rfc3339_nano(moment)
    text = times.get(moment)
    if text is None:
        text = times[moment] = format_rfc3339_nano(moment)
    return text


def encode_native(event: Event, *, times: dict[datetime, str] | None = None) -> str:
    """``json.dumps(to_native_json(event), ensure_ascii=False, separators=(",", ":"))``,
    about four times faster (the event log writes every event with it).

    :param times: a cache of formatted times, for a batch whose events share them.
    """
    name = "null" if event.name is None else _text(event.name)
    names = ",".join([_text(n) for n in event.names])
    text = (
        f'{{"seq":{event.seq},"action":{_text(event.action)},"kind":"{event.kind.value}",'
        f'"type":{_text(event.type)},"id":{_text(event.id)},"name":{name},'
        f'"names":[{names}],"time":"{_time_text(event.time, times)}"'
    )
    if event.started is not None:
        text += f',"started":"{_time_text(event.started, times)}"'
    if event.digest is not None:
        text += f',"digest":{_text(event.digest)}'
    if event.policy is not None:
        text += f',"policy":{_text(event.policy)}'
    if event.options:
        text += f',"options":{_object(event.options)}'
    text += f',"attributes":{_object(event.attributes)}'
    if event.actor is not None:
        text += f',"actor":{encode_actor(event.actor)}'
    if event.prev is not None:
        text += f',"prev":{_text(event.prev)}'
    return text + "}"


@lru_cache(maxsize=64)
def encode_actor(actor: Actor) -> str:
    """The actor's JSON text, as :func:`encode_native` writes it (cached: a process
    writes the same actor again and again)."""
    return json.dumps(actor.to_json(), ensure_ascii=False, separators=(",", ":"))


_EMPTY: Mapping[str, str] = MappingProxyType({})


_KINDS: Final[Mapping[str, EventKind]] = {kind.value: kind for kind in EventKind}


def _utc(text: str) -> datetime:
    time = datetime.fromisoformat(text)
    offset = time.utcoffset()
    if offset is None:
        raise ValueError("event time without a zone")
    if offset or time.tzinfo is not UTC:
        time = time.astimezone(UTC)
    return time


def _strings(value: Any) -> Mapping[str, str]:
    if not value:
        return _EMPTY
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


def event_from_native_json(data: Mapping[str, Any]) -> Event:
    """The event a :func:`to_native_json` object describes.

    :raises ValueError: the object is not a native event (unknown kind or type, bad time).
    """
    kind = _KINDS.get(data["kind"])
    if kind is None:
        raise ValueError(f"unknown event kind {data['kind']!r}")
    type_ = data["type"]
    if type_ != "image" and type_ != "container":
        raise ValueError(f"unknown event type {type_!r}")
    started = data.get("started")
    actor = data.get("actor")
    names = data.get("names") or ()
    if not isinstance(names, list | tuple):
        raise ValueError("names is not a list")
    return Event(
        kind,
        type_,
        str(data["id"]),
        data.get("name"),
        _utc(data["time"]),
        _strings(data.get("attributes")),
        int(data.get("seq", 0)),
        started=None if started is None else _utc(started),
        names=tuple(str(n) for n in names),
        digest=data.get("digest"),
        policy=data.get("policy"),
        options=_strings(data.get("options")),
        actor=None if actor is None else Actor.from_json(actor),
        prev=data.get("prev"),
    )


def _labels(event: Event) -> dict[str, str]:
    return {k: v for k, v in event.attributes.items() if k not in INTERNAL_ATTRIBUTES}


def to_podman_json(event: Event, tz: tzinfo | None = None) -> dict[str, Any] | None:
    """podman 4.3's ``events --format json`` object, or None when podman has no such event.

    :param tz: the zone of ``Time``; None renders in the local zone, as podman does.
    """
    status = podman_status(event)
    if status is None:
        return None
    doc: dict[str, Any] = {}
    event_id, name = event.id, event.name or ""
    if event.type == "image":
        if event.kind in (K.SAVED, K.LOADED) and not _imported(event):
            name = event.attributes.get("path", name)
            if event.kind == K.LOADED and "path" in event.attributes:
                event_id = ""
        elif event.kind == K.BUILT:
            event_id, name = "", event.id
    if event_id:
        doc["ID"] = event_id
    if event.type == "container" and event.attributes.get("image"):
        doc["Image"] = event.attributes["image"]
    if name:
        doc["Name"] = name
    doc["Status"] = status
    doc["Time"] = format_rfc3339_nano(event.when, tz)
    doc["Type"] = event.type
    doc["Attributes"] = _labels(event) if event.type == "container" else None
    return doc


def _familiar(name: str) -> str:
    """Docker's familiar form: ``docker.io/library/x:1`` → ``x:1``, ``docker.io/a/b`` → ``a/b``."""
    if not name.startswith("docker.io/"):
        return name
    rest = name[len("docker.io/") :]
    if rest.startswith("library/") and "/" not in rest[len("library/") :]:
        return rest[len("library/") :]
    return rest


def to_docker_json(event: Event) -> dict[str, Any] | None:
    """dockerd's ``/events`` object, or None when Docker has no such event."""
    action = docker_action(event)
    if action is None:
        return None
    nanos = _unix_nanos(event.when)
    attributes = _labels(event)
    if event.type == "image":
        actor_id = "sha256:" + event.id if event.id else ""
        if event.kind == K.TAGGED and event.name:
            attributes["name"] = _familiar(event.name)
        else:
            attributes["name"] = actor_id
        doc: dict[str, Any] = {"status": action, "id": actor_id}
    else:
        actor_id = event.id
        image = event.attributes.get("image", "")
        if image:
            attributes["image"] = image = _familiar(image)
        if event.name:
            attributes["name"] = event.name
        doc = {"status": action, "id": actor_id, "from": image}
    doc.update(
        {
            "Type": event.type,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": dict(sorted(attributes.items()))},
            "scope": "local",
            "time": nanos // 1_000_000_000,
            "timeNano": nanos,
        }
    )
    return doc


# -- text ----------------------------------------------------------------------------------


def format_podman_text(
    event: Event, *, status: str | None = None, tz: tzinfo | None = None, truncate: bool = False
) -> str | None:
    """podman's default ``events`` line, or None when podman has no such event.

    :param status: print this status with the event's own ID and name (aiopod's verbs
        under the ``libpod`` policy); default podman's status, ID and name.
    :param truncate: shorten IDs to 12 characters (``--no-trunc=false``).
    """
    if status is None:
        doc = to_podman_json(event, tz)
        if doc is None:
            return None
        status, event_id, name = doc["Status"], doc.get("ID", ""), doc.get("Name", "")
    else:
        event_id, name = event.id, event.name or ""
    if truncate:
        event_id = event_id[:12]
    when = format_go_time(event.when, tz)
    if event.type == "container":
        extra = "".join(f", {k}={v}" for k, v in _labels(event).items())
        image = event.attributes.get("image", "")
        return f"{when} container {status} {event_id} (image={image}, name={name}{extra})"
    return f"{when} {event.type} {status} {event_id} {name}"


def format_docker_text(event: Event, tz: tzinfo | None = None) -> str | None:
    """The Docker CLI's default ``events`` line, or None when Docker has no such event."""
    doc = to_docker_json(event)
    if doc is None:
        return None
    when = format_rfc3339_nano(event.when, tz, digits=9)
    attributes = doc["Actor"]["Attributes"]
    line = f"{when} {doc['Type']} {doc['Action']} {doc['Actor']['ID']}"
    if attributes:
        line += " (" + ", ".join(f"{k}={v}" for k, v in attributes.items()) + ")"
    return line
