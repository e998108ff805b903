"""Events: what the runtime did, for subscribers in this process and readers in others.

Internal: not part of the public API (use what :mod:`aiopod` exports); its modules may
change without notice.

* :mod:`aiopod.events.model` — the :class:`Event` record, its :class:`EventKind`, its
  canonical action and its :class:`~aiopod.events.model.Actor`;
* :mod:`aiopod.events.bus` — :class:`EventBus`, the in-process fast path: bounded
  per-subscriber buffers with :class:`Lagged` markers instead of stalls;
* :mod:`aiopod.events.log` — :class:`EventLog`, the store's hash-chained
  ``aiopod/events.jsonl`` and its segments, shared by every process using the store;
* :mod:`aiopod.events.stream` — :class:`~aiopod.events.stream.EventStream`
  (``rt.events``): every process's events, in ``seq`` order, for subscribers;
* :mod:`aiopod.events.watch` — waking followers when the log changes (inotify or a poll);
* :mod:`aiopod.events.verify` — checking the log's chain (``events verify``);
* :mod:`aiopod.events.filters` — podman's ``--filter``/``--since``/``--until``;
* :mod:`aiopod.events.formats` — aiopod's, podman's and Docker's JSON and text shapes.
"""

from aiopod.events.bus import DEFAULT_BUFFER, EventBus, Lagged, Subscription
from aiopod.events.filters import EventFilter, parse_filters, parse_time
from aiopod.events.formats import (
    event_from_native_json,
    to_docker_json,
    to_native_json,
    to_podman_json,
)
from aiopod.events.log import DEFAULT_MAX_BYTES, EventLog
from aiopod.events.model import Event, EventKind, ObjectType, utc_now

__all__ = (
    "DEFAULT_BUFFER",
    "DEFAULT_MAX_BYTES",
    "Event",
    "EventBus",
    "EventFilter",
    "EventKind",
    "EventLog",
    "Lagged",
    "ObjectType",
    "Subscription",
    "event_from_native_json",
    "parse_filters",
    "parse_time",
    "to_docker_json",
    "to_native_json",
    "to_podman_json",
    "utc_now",
)
