"""``rt.events``: the store's one stream of events, for subscribers in any process.

Every event is appended to the store's event log (:mod:`aiopod.events.log`) with the
commit that makes its change, and gets its ``seq`` there.  A subscription reads that
stream: the events of **every** process using the store, in ``seq`` order, each exactly
once.  Two paths feed it and deliver the same records:

* the fast path: the commits of this process hand their recorded events to the
  in-process :class:`~aiopod.events.bus.EventBus` as they end; a subscription takes them
  when they continue its stream (their first ``seq`` is the next it expects);
* the log: whatever the fast path does not bring (another process's commits, events a
  full buffer could not hold, the history asked for with ``since``) is read from the log
  in a worker thread, woken by :class:`~aiopod.events.watch.LogWatcher` (inotify, or a
  bounded poll).

::

    async with rt.events.subscribe(types=["image"], since="now") as events:
        async for item in events:
            if isinstance(item, Lagged):
                print(f"{item.missed} events come late, from the log")
            else:
                print(item.seq, item.action, item.name)

``since``: ``"now"`` (default) — what is committed from the moment of the call; ``"start"``
— everything the log still holds (after a pruned prefix, from its checkpoint); an
``int`` — the events after that ``seq`` (resume with the last ``seq`` you saw).

Slow subscribers: each subscription buffers at most ``buffer`` events.  When the fast
path would overflow it, the newer events are not buffered: once the subscriber has taken
the buffered ones it receives :class:`~aiopod.events.bus.Lagged` with how many events the
fast path could not hold, and then those very events, read from the log.  Late, never
lost; memory never grows past the buffer (plus one read of at most about 1 MiB of log).

Threads: use a stream and its subscriptions from the event loop's thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Literal

import anyio
import anyio.lowlevel
import anyio.to_thread

from aiopod.errors import RuntimeStopped, UsageError
from aiopod.events.bus import DEFAULT_BUFFER, EventBus, ItemStream, Lagged, combine_filters
from aiopod.events.filters import EventFilter
from aiopod.events.log import EventLog, LogCursor
from aiopod.events.model import Event, EventKind, utc_now
from aiopod.events.verify import VerifyReport, verify_log
from aiopod.events.watch import LogWatcher

__all__ = ("EventStream", "Since", "StreamSubscription")

#: Where a subscription starts: ``"now"``, ``"start"``, or after a ``seq``.
Since = int | Literal["now", "start"]

Matcher = Callable[[Event], bool]

#: Items :meth:`StreamSubscription.receive` returns without waiting before it lets other
#: tasks run.
_YIELD_EVERY = 64

_OPEN, _ENDED, _CLOSED = 0, 1, 2


class StreamSubscription(ItemStream):
    """One subscriber's view of the stream: an async iterator of ``Event | Lagged``.

    Created by :meth:`EventStream.subscribe`, already receiving.  Use it as an async
    context manager (closed on exit) or call :meth:`aclose` / :meth:`close`.

    Iteration ends when the stream is closed (after the events committed before that)
    or when the subscription is closed (at once).

    Cancellation: :meth:`receive` may be cancelled while it waits or reads the log; no
    event is lost or repeated, and the subscription stays usable.
    """

    def __init__(
        self,
        stream: EventStream,
        matches: Matcher | None,
        buffer: int,
        since: Since,
        poll_interval: float | None,
    ) -> None:
        if buffer < 1:
            raise UsageError(f"a subscription needs a buffer of at least 1 event, not {buffer}")
        self._stream: EventStream | None = stream
        self._stream_directory = stream.log.directory
        self._filter = matches
        self._capacity = buffer
        self._buffer: deque[Event] = deque()
        self._skip_before: datetime | None = None
        if since == "now":
            self._horizon = stream.known_seq
            self._skip_before = utc_now()
        elif since == "start":
            self._horizon = 0
        elif isinstance(since, int) and not isinstance(since, bool) and since >= 0:
            self._horizon = since
        else:
            raise UsageError(f'since must be "now", "start" or a seq (an int >= 0), not {since!r}')
        self._cursor: LogCursor = stream.log.cursor(self._horizon)
        self._missed = 0
        self._state = _OPEN
        self._wait_scope: anyio.CancelScope | None = None
        self._wake_pending = False
        self._streak = 0
        self._poll_interval = poll_interval
        # Opened by the first receive that has to wait (a subscription only drained
        # with receive_nowait holds no descriptor).
        self._watcher: LogWatcher | None = None
        #: Events the fast path could not buffer (they were read from the log later).
        self.dropped = 0

    # -- the bus side (synchronous) --------------------------------------------------------

    def _deliver(self, events: Sequence[Event]) -> None:
        horizon = self._horizon
        if events[-1].seq <= horizon:
            return
        if events[0].seq <= horizon:
            events = [e for e in events if e.seq > horizon]
        if events[0].seq != horizon + 1 or self._missed:
            self._wake()  # a gap: another process committed between; the log fills it
            return
        matches = self._filter
        batch = events if matches is None else [e for e in events if matches(e)]
        if len(self._buffer) + len(batch) > self._capacity:
            self._missed += len(batch)
            self.dropped += len(batch)
            self._wake()
            return
        self._skip_before = None
        self._buffer.extend(batch)
        self._horizon = events[-1].seq
        if batch:
            self._wake()

    def _wake(self) -> None:
        self._wake_pending = True
        scope = self._wait_scope
        if scope is not None:
            scope.cancel()

    def _end(self) -> None:
        if self._state == _OPEN:
            self._state = _ENDED
        if self._wait_scope is None:
            self._close_watcher()  # else the waiting receive closes it
        self._wake()

    def _close_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()

    # -- the consumer side -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the subscription was closed (by :meth:`aclose`/:meth:`close`)."""
        return self._state == _CLOSED

    @property
    def pending(self) -> int:
        """Events buffered and not yet received."""
        return len(self._buffer)

    @property
    def position(self) -> int:
        """The highest ``seq`` this subscription has taken in (delivered or buffered):
        resume from it with ``since=position`` once the buffer is received."""
        return self._horizon

    def receive_nowait(self) -> Event | Lagged:
        """The next buffered item (the log is not read).

        :raises anyio.WouldBlock: nothing is buffered.
        :raises anyio.EndOfStream: the stream is closed and everything was received.
        :raises anyio.ClosedResourceError: the subscription was closed.
        """
        if self._state == _CLOSED:
            raise anyio.ClosedResourceError
        if self._buffer:
            return self._buffer.popleft()
        if self._missed:
            missed, self._missed = self._missed, 0
            return Lagged(missed)
        if self._state == _ENDED:
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    async def receive(self) -> Event | Lagged:
        """The next item, reading the log or waiting for one if needed.

        Always a cancellation point; it lets other tasks run at least every 64 items.

        :raises anyio.EndOfStream: the stream is closed and every event committed before
            was received.
        :raises anyio.ClosedResourceError: the subscription was closed.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            if self._state == _CLOSED:
                raise anyio.ClosedResourceError
            if self._buffer or self._missed:
                item = self.receive_nowait()
                if waited:
                    self._streak = 0
                else:
                    self._streak += 1
                    if self._streak >= _YIELD_EVERY:
                        self._streak = 0
                        await anyio.lowlevel.cancel_shielded_checkpoint()
                return item
            self._wake_pending = False
            stream = self._stream
            if stream is not None and stream.local_commit_running and self._state == _OPEN:
                # This process is writing the log: its events come by the bus, and no
                # other process can write meanwhile.  Wait for that (or for a second).
                with anyio.CancelScope(deadline=anyio.current_time() + 1.0) as scope:
                    self._wait_scope = scope
                    try:
                        await anyio.sleep_forever()
                    finally:
                        self._wait_scope = None
                continue
            if await self._read_log():
                continue
            if self._state == _ENDED:
                self._close_watcher()  # nothing more to wait for
                raise anyio.EndOfStream
            if self._wake_pending:
                continue
            if self._watcher is None:
                # Watch first, then read the log once more: no change falls in between.
                self._watcher = LogWatcher(
                    self._stream_directory, poll_interval=self._poll_interval
                )
                continue
            waited = True
            with anyio.CancelScope() as scope:
                self._wait_scope = scope
                try:
                    await self._watcher.wait()
                finally:
                    self._wait_scope = None
                    if self._state == _CLOSED:
                        self._close_watcher()

    async def _read_log(self) -> bool:
        """Read the log past the cursor; whether anything was taken in."""
        cursor = self._cursor
        if cursor.last_seq < self._horizon:
            # The fast path brought the stream further: skip those lines undecoded.
            cursor = replace(cursor, last_seq=self._horizon)
        batch, cursor = await anyio.to_thread.run_sync(cursor.scan)
        if self._state == _CLOSED:
            return False
        self._cursor = cursor
        horizon = self._horizon
        fresh = [e for e in batch if e.seq > horizon]
        if not fresh:
            return bool(batch)
        skip = self._skip_before
        if skip is not None:
            while fresh and fresh[0].time < skip:
                fresh.pop(0)  # committed before a "now" subscription began
            if fresh:
                self._skip_before = None
        self._horizon = batch[-1].seq
        matches = self._filter
        self._buffer.extend(fresh if matches is None else filter(matches, fresh))
        stream = self._stream
        if stream is not None:
            stream.note_seq(self._horizon)
        return True

    def close(self) -> None:
        """Stop receiving: unregister, discard the buffer, end any iteration.  Idempotent."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.bus.detach(self)
        self._buffer.clear()
        self._missed = 0
        self._wake()
        if self._wait_scope is None:
            self._close_watcher()


class EventStream:
    """The store's events for this runtime's subscribers (see the module docstring).

    :param log: the store's event log.
    :param default_buffer: the buffer size of subscriptions that do not choose one.
    """

    def __init__(self, log: EventLog, *, default_buffer: int = DEFAULT_BUFFER) -> None:
        self.log = log
        self.bus = EventBus(default_buffer=default_buffer)
        #: The highest ``seq`` this process knows the log to hold.
        self.known_seq = 0
        # Commits of this process writing the log now (their events come by the bus).
        self._local_commits = 0

    @property
    def local_commit_running(self) -> bool:
        """Whether a commit of this process is writing events (under the store's lock, so
        no other process writes the log meanwhile)."""
        return self._local_commits > 0

    def commit_started(self) -> None:
        """A commit of this process begins writing events; :meth:`publish` ends it."""
        self._local_commits += 1

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self.bus.closed

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return self.bus.subscriber_count

    def note_seq(self, seq: int) -> None:
        """Learn that the log holds at least *seq* events (what "now" starts after)."""
        if seq > self.known_seq:
            self.known_seq = seq

    def subscribe(
        self,
        *,
        kinds: Iterable[EventKind | str] | None = None,
        types: Iterable[str] | None = None,
        images: Iterable[str] | None = None,
        containers: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
        filter: EventFilter | None = None,
        buffer: int | None = None,
        since: Since = "now",
        poll_interval: float | None = None,
    ) -> StreamSubscription:
        """A new subscription to the events of every process using the store.

        The keywords filter as :meth:`EventBus.subscribe <aiopod.events.bus.EventBus.subscribe>`
        does (*kinds* take canonical actions such as ``"remove"`` or kinds such as
        ``"Untagged"``).  *since* is ``"now"``, ``"start"`` or a ``seq`` to resume after.
        *poll_interval* is the poll's period where inotify is missing.

        Does not block or wait: a notebook can subscribe in one cell and receive in
        another.

        :raises ~aiopod.errors.RuntimeStopped: the stream is closed.
        :raises ~aiopod.errors.UsageError: a bad *since* or *buffer*.
        """
        if self.bus.closed:
            raise RuntimeStopped()
        keyword_filter = EventFilter.build(
            kinds=kinds, types=types, images=images, containers=containers, names=names
        )
        subscription = StreamSubscription(
            self,
            combine_filters(keyword_filter, filter),
            self.bus.default_buffer if buffer is None else buffer,
            since,
            poll_interval,
        )
        self.bus.attach(subscription)
        return subscription

    def publish(self, events: Sequence[Event]) -> None:
        """Hand recorded events (their ``seq`` set, in order) to the subscribers.

        Never awaits or blocks.  The store calls it as each commit ends (with no events
        when a commit that :meth:`commit_started` announced recorded none).
        """
        if self._local_commits:
            self._local_commits -= 1
        if events:
            self.note_seq(events[-1].seq)
            self.bus.publish(events)
        elif not self._local_commits:
            self.bus.wake_all()  # followers that waited for that commit read the log

    async def verify(self, *, since: int | None = None) -> VerifyReport:
        """Check the log's hash chain (see :mod:`aiopod.events.verify`), in a worker thread."""
        return await anyio.to_thread.run_sync(lambda: verify_log(self.log, since=since))

    def close(self) -> None:
        """End every subscription (each first receives what was committed).  Idempotent."""
        self.bus.close()

    async def aclose(self) -> None:
        """:meth:`close`."""
        self.close()
