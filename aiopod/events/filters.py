"""Event filters: podman's ``--filter KEY=VALUE``, ``--since`` and ``--until``.

Keys (as ``podman events`` 4.3 reads them; values of one key are ORed, keys are ANDed):

``type=image|container``
    the object type.
``event=STATUS`` (alias ``status=``)
    what happened, spelt as the canonical action (``tag``, ``untag``, ``remove``,
    ``prune``…, the same whatever policy wrote the event), as podman (``loadfromarchive``…),
    as Docker (``delete``, ``destroy``, ``load``…) or as an
    :class:`~aiopod.events.model.EventKind` (``Untagged``, case-insensitive).  A value
    that names nothing matches nothing, as in podman.
``image=ID-PREFIX|NAME``
    image events whose ID starts with the value (``sha256:`` allowed) or whose name is the
    value, as typed or normalised (``app`` matches ``localhost/app:latest``).  As in
    podman, container events never match ``image=``.
``container=ID-PREFIX|NAME``
    container events whose ID starts with the value or whose name is the value.
``name=NAME``
    events of either type whose name is the value (normalised for images); an aiopod
    extension (podman 4.3 accepts the key but matches nothing).
``label=KEY`` or ``label=KEY=VALUE``
    events with that attribute (a container's labels).

Times (:func:`parse_time`) are read as podman's ``ParseInputTime`` reads them: RFC 3339
(with or without a fraction), ``2006-01-02T15:04:05`` and ``2006-01-02`` (UTC when no zone
is given), ``2006-01-02Z07:00``, unix seconds (``1700000000.5``), or a Go duration
(``10m``, ``1h30m``) — before now for ``since``, after now for ``until`` (so ``--until 5s``
streams for five more seconds, as podman does).  An event is kept when its time is after
``since`` and before ``until``.

Unlike podman 4.3, which prints nothing and exits 0, a malformed filter or time is an
error (:class:`~aiopod.errors.UsageError`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final

from aiopod._reference import normalize_local
from aiopod.errors import AiopodError, UsageError
from aiopod.events.formats import DOCKER_ACTIONS, NATIVE_STATUS, PODMAN_STATUSES
from aiopod.events.model import Event, EventKind, canonical_action

__all__ = (
    "FILTER_KEYS",
    "EventFilter",
    "parse_duration",
    "parse_filters",
    "parse_time",
    "podman_event_values",
)

#: The keys ``--filter`` accepts.
FILTER_KEYS: Final = ("type", "event", "status", "image", "container", "name", "label")

_TYPES: Final = ("image", "container")


def _status_names(type_: str, kind: EventKind) -> frozenset[str]:
    names = {kind.value.lower(), NATIVE_STATUS[kind], canonical_action(kind, type_, {})}
    if kind == EventKind.REMOVED and type_ == "image":
        # podman's per-reference marker is no removal of its own: ``event=remove`` finds
        # the removals (``Deleted``) whatever policy wrote them; podman's vocabulary asks
        # for ``rmi`` too (:func:`podman_event_values`).
        return frozenset({"removed", "rmi"})
    for table in (PODMAN_STATUSES, DOCKER_ACTIONS):
        if (status := table.get((type_, kind))) is not None:
            names.add(status)
    return frozenset(names)


def podman_event_values(filters: Iterable[str]) -> list[str]:
    """*filters* with ``event=rmi`` added beside ``event=remove``: in podman's output a
    ``remove`` is the marker the ``podman`` policy writes, or a removal made under another
    policy."""
    out = list(filters)
    for text in filters:
        key, _, value = text.partition("=")
        if key.strip().lower() in ("event", "status") and value == "remove":
            out.append("event=rmi")
    return out


#: Every spelling ``event=`` accepts for each (type, kind).
_EVENT_NAMES: Final[Mapping[tuple[str, EventKind], frozenset[str]]] = {
    (t, k): _status_names(t, k) for t in _TYPES for k in EventKind
}


@lru_cache(maxsize=4096)
def _normalised(name: str) -> str | None:
    try:
        return str(normalize_local(name))
    except (AiopodError, ValueError):
        return None


def _name_forms(name: str) -> frozenset[str]:
    forms = {name}
    if (full := _normalised(name)) is not None:
        forms.add(full)
    return frozenset(forms)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to keep.  ``None`` fields do not filter; see the module docstring.

    Build one with :func:`parse_filters` (command-line strings) or :meth:`build`
    (keyword arguments); call :meth:`matches` (or the filter itself) on an event.
    """

    pairs: frozenset[tuple[str, EventKind]] | None = None
    types: frozenset[str] | None = None
    images: tuple[str, ...] | None = None
    containers: tuple[str, ...] | None = None
    names: tuple[str, ...] | None = None
    labels: tuple[tuple[str, str | None], ...] | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def build(
        cls,
        *,
        kinds: Iterable[EventKind | str] | None = None,
        types: Iterable[str] | None = None,
        images: Iterable[str] | None = None,
        containers: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
        labels: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> EventFilter:
        """A filter from keyword arguments; each is a collection of accepted values.

        *kinds* takes :class:`EventKind` members or any ``event=`` spelling; *labels*
        takes ``KEY`` or ``KEY=VALUE`` strings.  A bare string is one value, not a
        collection of characters.
        """
        pairs: set[tuple[str, EventKind]] | None = None
        if kinds is not None:
            pairs = set()
            for kind in _values(kinds):
                pairs.update(_pairs_for(kind))
        label_items = None
        if labels is not None:
            label_items = tuple(_split_label(v) for v in _values(labels))
        return cls(
            pairs=frozenset(pairs) if pairs is not None else None,
            types=frozenset(_values(types)) if types is not None else None,
            images=_tuple(images, strip_sha256=True),
            containers=_tuple(containers, strip_sha256=False),
            names=_tuple(names, strip_sha256=False),
            labels=label_items,
            since=_aware(since),
            until=_aware(until),
        )

    @property
    def is_empty(self) -> bool:
        """Whether the filter keeps every event."""
        return all(
            v is None
            for v in (
                self.pairs,
                self.types,
                self.images,
                self.containers,
                self.names,
                self.labels,
                self.since,
                self.until,
            )
        )

    def matches(self, event: Event) -> bool:
        """Whether *event* passes every part of the filter."""
        if self.types is not None and event.type not in self.types:
            return False
        if self.pairs is not None and (event.type, event.kind) not in self.pairs:
            return False
        if self.since is not None and not event.time > self.since:
            return False
        if self.until is not None and not event.time < self.until:
            return False
        if self.images is not None and not (
            event.type == "image" and _matches_object(event, self.images, image=True)
        ):
            return False
        if self.containers is not None and not (
            event.type == "container" and _matches_object(event, self.containers, image=False)
        ):
            return False
        if self.names is not None and not _matches_name(event, self.names):
            return False
        if self.labels is not None:
            attributes = event.attributes
            for key, value in self.labels:
                if key in attributes and (value is None or attributes[key] == value):
                    break
            else:
                return False
        return True

    __call__ = matches


def _values(values: Iterable[str] | Iterable[EventKind | str]) -> list[str]:
    if isinstance(values, str):
        return [values]
    return [str(v.value) if isinstance(v, EventKind) else str(v) for v in values]


def _tuple(values: Iterable[str] | None, *, strip_sha256: bool) -> tuple[str, ...] | None:
    if values is None:
        return None
    result = _values(values)
    if strip_sha256:
        result = [v.removeprefix("sha256:") for v in result]
    return tuple(result)


def _aware(when: datetime | None) -> datetime | None:
    if when is not None and when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when


def _pairs_for(value: str) -> set[tuple[str, EventKind]]:
    # Statuses are case-sensitive (podman's ``event=TAG`` matches nothing); kind names not.
    lowered = value.lower()
    return {
        pair
        for pair, names in _EVENT_NAMES.items()
        if value in names or lowered == pair[1].value.lower()
    }


def _split_label(value: str) -> tuple[str, str | None]:
    key, sep, label_value = value.partition("=")
    return key, label_value if sep else None


def _matches_object(event: Event, wanted: tuple[str, ...], *, image: bool) -> bool:
    event_id = event.id
    for value in wanted:
        if value and event_id.startswith(value):
            return True
    if event.name is None:
        return False
    if image:
        return _matches_name(event, wanted)
    return event.name in wanted


def _matches_name(event: Event, wanted: tuple[str, ...]) -> bool:
    name = event.name
    if name is None:
        return False
    if name in wanted:
        return True
    if event.type != "image":
        return False
    forms = _name_forms(name)
    return any(not forms.isdisjoint(_name_forms(value)) for value in wanted)


# -- command-line parsing ------------------------------------------------------------------


def parse_filters(
    filters: Iterable[str], *, since: str | None = None, until: str | None = None
) -> EventFilter:
    """The filter that ``--filter`` strings and ``--since``/``--until`` describe.

    :raises ~aiopod.errors.UsageError: a filter is not ``KEY=VALUE``, the key is not one
        of :data:`FILTER_KEYS`, or a time cannot be read.
    """
    by_key: dict[str, list[str]] = {}
    for text in filters:
        key, sep, value = text.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(f"invalid filter {text!r}: use KEY=VALUE")
        if key not in FILTER_KEYS:
            raise UsageError(f"invalid filter key {key!r}: use one of {', '.join(FILTER_KEYS)}")
        by_key.setdefault("event" if key == "status" else key, []).append(value)
    return EventFilter.build(
        kinds=by_key.get("event"),
        types=by_key.get("type"),
        images=by_key.get("image"),
        containers=by_key.get("container"),
        names=by_key.get("name"),
        labels=by_key.get("label"),
        since=parse_time(since, since=True) if since else None,
        until=parse_time(until, since=False) if until else None,
    )


_DATE = r"(\d{4})-(\d{2})-(\d{2})"
_ZONE = r"(Z|[+-]\d{2}:\d{2})"
_RFC3339_RE = re.compile(_DATE + r"T(\d{2}):(\d{2}):(\d{2})(\.\d+)?" + _ZONE + "?")
_DATE_RE = re.compile(_DATE + _ZONE + "?")
_UNIX_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DURATION_PART_RE = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def _zone(text: str | None) -> timedelta:
    if not text or text == "Z":
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    return sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6]))


def _datetime(
    year: str, month: str, day: str, clock: tuple[str, str, str] | None, zone: str | None
) -> datetime:
    hour, minute, second = (int(p) for p in clock) if clock else (0, 0, 0)
    moment = datetime(int(year), int(month), int(day), hour, minute, second, tzinfo=UTC)
    return moment - _zone(zone)


def parse_duration(text: str) -> timedelta:
    """A Go duration (``300ms``, ``-1.5h``, ``2h45m``); ``0`` alone is allowed.

    :raises ValueError: not a duration.
    """
    body = text
    sign = 1.0
    if body[:1] in "+-" and body:
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return timedelta(0)
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART_RE.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return timedelta(seconds=sign * total)


def parse_time(text: str, *, since: bool, now: datetime | None = None) -> datetime:
    """A ``--since``/``--until`` value as an aware datetime (see the module docstring).

    :param since: whether a duration counts back from now (``since``) or forward
        (``until``).
    :raises ~aiopod.errors.UsageError: ``unable to interpret time value`` (podman's words).
    """
    text = text.strip()
    try:
        if match := _RFC3339_RE.fullmatch(text):
            year, month, day, hour, minute, second, fraction, zone = match.groups()
            moment = _datetime(year, month, day, (hour, minute, second), zone)
            if fraction:
                moment += timedelta(microseconds=int((fraction[1:] + "000000")[:6]))
            return moment
        if match := _DATE_RE.fullmatch(text):
            year, month, day, zone = match.groups()
            return _datetime(year, month, day, None, zone)
    except (ValueError, OverflowError):
        raise UsageError(f"unable to interpret time value {text!r}") from None
    if _UNIX_RE.fullmatch(text):
        seconds = float(text)
        if math.isfinite(seconds):
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    try:
        duration = parse_duration(text)
    except (ValueError, OverflowError):
        raise UsageError(f"unable to interpret time value {text!r}") from None
    now = now if now is not None else datetime.now(UTC)
    return now - duration if since else now + duration
