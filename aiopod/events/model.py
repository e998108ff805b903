"""The event model: what happened to which image or container, who did it, and when.

Every state change the runtime makes is described by :class:`Event` objects, appended to
the store's event log with the commit that makes the change and then delivered to
subscribers.  The kinds: for images ``Tagged``, ``Untagged``, ``Deleted``, ``Pruned``,
``Loaded``, ``Saved``, ``Built``, ``Pulled``, ``Pushed`` and ``Removed`` (podman's
``remove``: "rmi processed this reference", written even when the image was only
untagged; only the ``podman`` policy emits it for images); for containers ``Created``,
``Removed``, ``Started``, ``Stopped``.

Each kind has one canonical :attr:`Event.action`, podman's verb, whatever policy did the
work: ``tag``, ``untag``, ``remove`` (an image left the store: by ``rmi``, a prune, a
build's cleanup; the event's ``options["reason"]`` says which), ``prune``, ``load``,
``import``, ``save``, ``build``, ``pull``, ``push``; for containers ``create``,
``remove``, ``start``, ``stop``.  podman's per-reference marker is ``rmi``.  "Untagged"
and "Deleted" are how the libpod and Docker outputs render them.
"""

from __future__ import annotations

import enum
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from types import MappingProxyType
from typing import Any, Literal

__all__ = ("Actor", "Event", "EventKind", "ObjectType", "canonical_action", "utc_now")

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

_ACTIONS: Mapping[EventKind, str] = MappingProxyType(
    {
        EventKind.TAGGED: "tag",
        EventKind.UNTAGGED: "untag",
        EventKind.DELETED: "remove",
        EventKind.PRUNED: "prune",
        EventKind.LOADED: "load",
        EventKind.SAVED: "save",
        EventKind.BUILT: "build",
        EventKind.PULLED: "pull",
        EventKind.PUSHED: "push",
        EventKind.CREATED: "create",
        EventKind.REMOVED: "remove",
        EventKind.STARTED: "start",
        EventKind.STOPPED: "stop",
    }
)


def canonical_action(kind: EventKind, type_: str, attributes: Mapping[str, str]) -> str:
    """The policy-independent verb of an event (see the module docstring)."""
    if kind == EventKind.REMOVED and type_ == "image":
        return "rmi"
    if kind == EventKind.LOADED and attributes.get("source") == "tarball":
        return "import"
    return _ACTIONS[kind]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: the process and the caller it acted for.

    :param uid: real user ID.
    :param gid: real group ID.
    :param pid: process ID.
    :param started: when the process started (UTC), from ``/proc``; None where unknown.
    :param command: the command line (the CLI) or the API caller's description.
    :param host: the host name.
    """

    uid: int
    gid: int
    pid: int
    started: datetime | None
    command: str
    host: str

    @classmethod
    def current(cls, caller: str | None = None) -> Actor:
        """This process; *caller* describes the API caller (default: the command line).

        Blocking (reads ``/proc``): cached per process and caller.
        """
        return _current_actor(os.getpid(), caller)

    def to_json(self) -> dict[str, Any]:
        """The actor as the event log stores it."""
        return {
            "uid": self.uid,
            "gid": self.gid,
            "pid": self.pid,
            "started": None if self.started is None else self.started.isoformat(),
            "command": self.command,
            "host": self.host,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Actor:
        """The actor :meth:`to_json` describes.

        :raises ValueError: a field is missing or malformed.
        """
        try:
            started = data.get("started")
            return cls(
                int(data["uid"]),
                int(data["gid"]),
                int(data["pid"]),
                None if started is None else datetime.fromisoformat(str(started)),
                str(data["command"]),
                str(data["host"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed actor: {exc}") from None


def _process_start(pid: int) -> datetime | None:
    """When *pid* started: field 22 of ``/proc/PID/stat`` (clock ticks since boot)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode()
        with open("/proc/stat", "rb") as f:
            boot = next(
                int(line.split()[1])
                for line in f.read().decode().splitlines()
                if line.startswith("btime ")
            )
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        seconds = ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return datetime.fromtimestamp(boot, UTC) + timedelta(seconds=seconds)


#: Options whose value is a secret: the command line an event records shows ``***`` instead.
SECRET_OPTIONS = ("--creds", "--password", "--cred", "-p")


def redact_command_line(args: Sequence[str]) -> list[str]:
    """*args* with the values of :data:`SECRET_OPTIONS` replaced by ``***`` (``--creds
    USER:PASS``, ``--creds=USER:PASS``, ``-p PASS``, ``-pPASS``)."""
    shown: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            shown.append("***")
            hide_next = False
        elif arg in SECRET_OPTIONS:
            shown.append(arg)
            hide_next = True
        elif arg.startswith(tuple(f"{o}=" for o in SECRET_OPTIONS if o.startswith("--"))):
            shown.append(arg.split("=", 1)[0] + "=***")
        elif arg.startswith("-p") and not arg.startswith("--"):
            shown.append("-p***")
        else:
            shown.append(arg)
    return shown


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = [p.decode(errors="replace") for p in f.read().split(b"\0") if p]
    except OSError:
        parts = list(sys.argv)
    return " ".join(redact_command_line(parts))


@cache
def _current_actor(pid: int, caller: str | None) -> Actor:
    return Actor(
        os.getuid(),
        os.getgid(),
        pid,
        _process_start(pid),
        caller if caller is not None else _command_line(pid),
        socket.gethostname(),
    )


@dataclass(frozen=True, slots=True)
class Event:
    """One event.

    :param kind: what happened.
    :param type: ``"image"`` or ``"container"``.
    :param id: the 64-hex ID of the image or container.
    :param name: the name involved (the tag untagged, the reference removed, the
        container's name), or None.
    :param time: when it was recorded (UTC).  The event log sets it at the commit, never
        earlier than the event before it; until then it is when the event was made.
    :param attributes: extra string facts (e.g. a container's ``image``).
    :param seq: position in the store's event log, assigned when the event is recorded
        (0 before); consecutive across every process using the store.
    :param started: when the operation that made it started (podman stamps some events
        so); None: :attr:`time`.
    :param names: every name the change affected (an image's names when it is removed).
    :param digest: the image's manifest digest, when known.
    :param policy: the removal policy in effect (``libpod``, ``podman``, ``docker``).
    :param options: the options in effect (``force``, ``reason`` of a removal, …).
    :param actor: who made the change (set by the event log).
    :param prev: the SHA-256 of the log line before this event's (set by the event log).
    """

    kind: EventKind
    type: ObjectType
    id: str
    name: str | None = None
    time: datetime = field(default_factory=utc_now)
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    seq: int = 0
    started: datetime | None = None
    names: tuple[str, ...] = ()
    digest: str | None = None
    policy: str | None = None
    options: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    actor: Actor | None = None
    prev: str | None = None

    @property
    def action(self) -> str:
        """The canonical, policy-independent verb (``tag``, ``untag``, ``remove``, …)."""
        return canonical_action(self.kind, self.type, self.attributes)

    @property
    def when(self) -> datetime:
        """When the operation happened, as podman stamps it (:attr:`started` or :attr:`time`)."""
        return self.started if self.started is not None else self.time
