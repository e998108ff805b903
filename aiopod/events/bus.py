"""The in-process event bus: broadcast to many subscribers, never stalled by a slow one.

Semantics are those of tokio's ``broadcast`` channel, per subscriber:

* every subscriber has its own bounded buffer (``buffer`` events, default 4096);
* :meth:`EventBus.publish` is a plain function: it never awaits and never blocks, and
  costs O(subscribers) (plus the filtering of the batch);
* when a subscriber's buffer is full its **oldest** undelivered events are dropped, and
  the next item it receives is :class:`Lagged` with the exact number it missed, followed
  by the oldest event still buffered.  A gap is never silent, and memory never grows past
  the buffers;
* filters are applied per subscriber when an event is published, so a subscriber's buffer
  only holds events it wants.

Subscriptions need no background task: :meth:`EventBus.subscribe` registers the
subscriber at once, so a notebook can subscribe in one cell and iterate in another::

    async with rt.events.subscribe(types=["image"]) as events:
        async for item in events:
            if isinstance(item, Lagged):
                print(f"missed {item.missed} events")
            else:
                print(item.kind, item.name)

Threads: the bus is not thread-safe.  Publish, subscribe, receive and close from the
thread that runs the event loop (a worker thread can hand events over with
``anyio.from_thread.run_sync(bus.publish, events)``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import anyio
import anyio.lowlevel

from aiopod.errors import RuntimeStopped, UsageError
from aiopod.events.filters import EventFilter
from aiopod.events.model import Event, EventKind

__all__ = (
    "DEFAULT_BUFFER",
    "EventBus",
    "ItemStream",
    "Lagged",
    "Receiver",
    "Subscription",
    "combine_filters",
)

Matcher = Callable[[Event], bool]


class Receiver(Protocol):
    """What the bus hands events to (:class:`Subscription`, and the store-wide stream's
    subscriptions): both methods are called in the event loop's thread and must not
    block."""

    def _deliver(self, events: Sequence[Event]) -> None: ...

    def _wake(self) -> None: ...

    def _end(self) -> None: ...


#: Events a subscriber may fall behind before it starts missing some.
DEFAULT_BUFFER = 4096

#: Items :meth:`Subscription.receive` returns without waiting before it lets other tasks
#: run (a consumer of a full buffer must not starve the event loop).
_YIELD_EVERY = 64


@dataclass(frozen=True, slots=True)
class Lagged:
    """The subscriber fell behind and *missed* events were dropped before the next one.

    Events carry a ``seq`` once they are logged, so the gap can also be located.
    """

    missed: int


class ItemStream:
    """What every subscription shares: async iteration over :meth:`receive` (ending at
    ``EndOfStream`` or when closed), and :meth:`aclose` and ``async with`` over
    :meth:`close`."""

    __slots__ = ()

    async def receive(self) -> Event | Lagged:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event | Lagged:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """:meth:`close` (does not wait, so it is safe in a cancelled ``finally``)."""
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_OPEN, _ENDED, _CLOSED = 0, 1, 2


class Subscription(ItemStream):
    """One subscriber's view of the bus: an async iterator of ``Event | Lagged``.

    Created by :meth:`EventBus.subscribe`; already receiving when created.  Use it as an
    async context manager (closed on exit) or call :meth:`aclose` / :meth:`close`.

    Iteration ends when the bus is closed (after the events already buffered) or when
    the subscription is closed (at once; buffered events are discarded).

    Cancellation: :meth:`receive` may be cancelled while it waits; no item is lost and
    the subscription stays usable.  An item is removed from the buffer only when
    ``receive`` is about to return it.
    """

    __slots__ = (
        "__weakref__",
        "_buffer",
        "_bus",
        "_capacity",
        "_filter",
        "_missed",
        "_state",
        "_streak",
        "_waiter",
        "dropped",
    )

    def __init__(self, bus: EventBus, matches: Matcher | None, buffer: int) -> None:
        if buffer < 1:
            raise UsageError(f"a subscription needs a buffer of at least 1 event, not {buffer}")
        self._bus: EventBus | None = bus
        self._filter = matches
        self._capacity = buffer
        self._buffer: deque[Event] = deque(maxlen=buffer)
        self._missed = 0
        self._state = _OPEN
        self._waiter: anyio.Event | None = None
        self._streak = 0
        #: Events dropped from this subscriber's buffer since it was created.
        self.dropped = 0

    # -- the bus side (synchronous) --------------------------------------------------------

    def _deliver(self, events: Sequence[Event]) -> None:
        matches = self._filter
        batch = events if matches is None else [e for e in events if matches(e)]
        if not batch:
            return
        buffer = self._buffer
        overflow = len(buffer) + len(batch) - self._capacity
        if overflow > 0:
            self._missed += overflow
            self.dropped += overflow
        buffer.extend(batch)  # a deque with maxlen drops from the left
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    def _end(self) -> None:
        if self._state == _OPEN:
            self._state = _ENDED
        self._bus = None
        self._wake()

    # -- the consumer side -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the subscription was closed (by :meth:`aclose`/:meth:`close`)."""
        return self._state == _CLOSED

    @property
    def pending(self) -> int:
        """Events buffered and not yet received."""
        return len(self._buffer)

    def receive_nowait(self) -> Event | Lagged:
        """The next item if one is buffered.

        :raises anyio.WouldBlock: nothing is buffered.
        :raises anyio.EndOfStream: the bus is closed and everything was received.
        :raises anyio.ClosedResourceError: the subscription was closed.
        """
        if self._state == _CLOSED:
            raise anyio.ClosedResourceError
        if self._missed:
            missed, self._missed = self._missed, 0
            return Lagged(missed)
        if self._buffer:
            return self._buffer.popleft()
        if self._state == _ENDED:
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    async def receive(self) -> Event | Lagged:
        """The next item, waiting for one if needed.

        Always a cancellation point; it lets other tasks run at least every 64 items.

        :raises anyio.EndOfStream: the bus is closed and everything was received.
        :raises anyio.ClosedResourceError: the subscription was closed.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                item = self.receive_nowait()
            except anyio.WouldBlock:
                waiter = self._waiter
                if waiter is None:
                    waiter = self._waiter = anyio.Event()
                await waiter.wait()
                waited = True
                continue
            if waited:
                self._streak = 0
            else:
                self._streak += 1
                if self._streak >= _YIELD_EVERY:
                    self._streak = 0
                    # The item is already taken: let others run, but do not lose it.
                    await anyio.lowlevel.cancel_shielded_checkpoint()
            return item

    def close(self) -> None:
        """Stop receiving: unregister, discard the buffer, end any iteration.  Idempotent."""
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.detach(self)
        self._buffer.clear()
        self._missed = 0
        self._wake()


class EventBus:
    """Broadcast events to subscribers (see the module docstring).

    :param default_buffer: the buffer size of subscriptions that do not choose one.
    """

    def __init__(self, *, default_buffer: int = DEFAULT_BUFFER) -> None:
        self.default_buffer = default_buffer
        self._subscribers: dict[int, Receiver] = {}
        self._snapshot: tuple[Receiver, ...] = ()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

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
    ) -> Subscription:
        """A new subscription, receiving from now on.

        Each keyword is a collection of accepted values (values of one keyword are ORed,
        keywords are ANDed), with the meaning of ``--filter`` (:mod:`aiopod.events.filters`):
        *kinds* are :class:`EventKind` members or statuses (``"untag"``), *types* object
        types, *images*/*containers* ID prefixes or names, *names* names.  *filter* is a
        prepared :class:`EventFilter`, ANDed with the keywords.

        The result is an async context manager (``async with bus.subscribe() as sub``)
        and can also be used directly (then call :meth:`Subscription.aclose`).

        :param buffer: how many events it may fall behind before missing some.
        :raises ~aiopod.errors.RuntimeStopped: the bus is closed.
        """
        if self._closed:
            raise RuntimeStopped()
        keyword_filter = EventFilter.build(
            kinds=kinds, types=types, images=images, containers=containers, names=names
        )
        combined = combine_filters(keyword_filter, filter)
        subscription = Subscription(
            self, combined, self.default_buffer if buffer is None else buffer
        )
        self.attach(subscription)
        return subscription

    def attach(self, receiver: Receiver) -> None:
        """Hand every later :meth:`publish` to *receiver* too.

        :raises ~aiopod.errors.RuntimeStopped: the bus is closed.
        """
        if self._closed:
            raise RuntimeStopped()
        self._subscribers[id(receiver)] = receiver
        self._snapshot = tuple(self._subscribers.values())

    def detach(self, receiver: Receiver) -> None:
        """Stop handing events to *receiver* (nothing happens if it was not attached)."""
        if self._subscribers.pop(id(receiver), None) is not None:
            self._snapshot = tuple(self._subscribers.values())

    def wake_all(self) -> None:
        """Wake every receiver that waits (with nothing new for it: it looks again)."""
        for receiver in self._snapshot:
            receiver._wake()

    def publish(self, events: Sequence[Event]) -> None:
        """Hand *events* (in order) to every subscriber whose filter they pass.

        Never awaits or blocks, so it cannot be interrupted halfway; a subscriber whose
        buffer overflows loses its oldest events and is told so.  Publishing to a closed
        bus does nothing.
        """
        if self._closed or not events:
            return
        if isinstance(events, Event):  # forgiving: a single event
            events = (events,)
        for subscription in self._snapshot:
            subscription._deliver(events)

    def close(self) -> None:
        """End every subscription (each first receives what it has buffered).  Idempotent."""
        self._closed = True
        subscriptions, self._snapshot = self._snapshot, ()
        self._subscribers.clear()
        for subscription in subscriptions:
            subscription._end()

    async def aclose(self) -> None:
        """:meth:`close`."""
        self.close()


def combine_filters(first: EventFilter, second: EventFilter | None) -> Matcher | None:
    """One matcher for both filters (None: everything matches)."""
    parts = [f.matches for f in (first, second) if f is not None and not f.is_empty]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    a, b = parts
    return lambda event: a(event) and b(event)
