"""Progress from worker threads to the caller, never holding the work up.

:func:`relay` gives the work (which runs in worker threads) a plain function to call with
each record; the records reach the caller's target in the event loop's thread: a
callable is called with each, an anyio memory object stream is sent each.  The worker
never waits:

* records are queued under a lock and a task in the event loop delivers them every
  :data:`INTERVAL` seconds;
* a record that only says how far something has got (it has ``done``) replaces a queued
  one of the same kind about the same thing (its ``digest`` or ``path``), so a slow
  consumer gets the latest count, not every count;
* :meth:`Relayed.flush` delivers what is queued at once: the work calls it before it
  commits, so that a callable's exception fails the work before anything changes;
* to a stream, records are sent without waiting (``send_nowait``); what does not fit
  waits in the queue for the next round.  When the work ends, what is left is sent
  waiting for room (the work is done then; only the call's return waits), and the stream
  is closed, so that the consumer's ``async for`` ends.  When the work fails or is
  cancelled, what fits is sent and the stream is closed at once.  A consumer that
  closes its receive end stops the reporting, not the work.

A callable target must not block (it runs in the event loop); an exception it raises
fails the work.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, Protocol, TypeAlias, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectSendStream

__all__ = ("INTERVAL", "ProgressSink", "Relayed", "relay")

R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)

#: Seconds between deliveries.
INTERVAL = 0.05

#: Where a call's progress records go: a callable (called in the event loop's thread) or
#: the send end of an anyio memory object stream (closed when the call ends).
ProgressSink: TypeAlias = Callable[[R], None] | MemoryObjectSendStream[R]


def _progress_key(record: object) -> object | None:
    """What a progress count is about, or None for a record that is not a count."""
    if not hasattr(record, "done"):
        return None
    return (type(record), getattr(record, "digest", None), getattr(record, "path", None))


class _Relay(Generic[R]):
    def __init__(self, sink: Callable[[R], None] | MemoryObjectSendStream[R]) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self._queue: list[R] = []
        self._broken = False

    def report(self, record: R) -> None:
        """Queue *record* (any thread; never waits)."""
        key = _progress_key(record)
        with self._lock:
            if key is not None and self._queue and _progress_key(self._queue[-1]) == key:
                self._queue[-1] = record
            else:
                self._queue.append(record)

    def _take(self) -> list[R]:
        with self._lock:
            taken, self._queue = self._queue, []
        return taken

    def _put_back(self, records: list[R]) -> None:
        with self._lock:
            self._queue[:0] = records

    def deliver_nowait(self) -> None:
        """Deliver what is queued without waiting (what a stream has no room for stays)."""
        records = self._take()
        if isinstance(self._sink, MemoryObjectSendStream):
            for index, record in enumerate(records):
                if self._broken:
                    return
                try:
                    self._sink.send_nowait(record)
                except anyio.WouldBlock:
                    self._put_back(records[index:])
                    return
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self._broken = True
            return
        for record in records:
            self._sink(record)

    async def flush(self) -> None:
        """Deliver what is queued now (the work's checkpoint: a callable's exception
        fails the work here, before it commits)."""
        self.deliver_nowait()

    async def pump(self) -> None:
        while True:
            await anyio.sleep(INTERVAL)
            self.deliver_nowait()

    async def finish(self) -> None:
        """Deliver everything, waiting for room in a stream, then close the stream."""
        if not isinstance(self._sink, MemoryObjectSendStream):
            self.deliver_nowait()
            return
        try:
            for record in self._take():
                if self._broken:
                    break
                try:
                    await self._sink.send(record)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self._broken = True
        finally:
            self._sink.close()

    def abandon(self) -> None:
        """Deliver what fits now and close a stream (the work failed or was cancelled)."""
        try:
            self.deliver_nowait()
        finally:
            if isinstance(self._sink, MemoryObjectSendStream):
                self._sink.close()


class Relayed(Protocol[R_contra]):
    """What the work gets from :func:`relay`."""

    def report(self, record: R_contra, /) -> None:
        """Hand *record* over (from any thread; never waits)."""

    async def flush(self) -> None:
        """Deliver what was handed over so far (in the event loop, before a commit)."""


class _Nobody:
    """The relay when nobody asked for progress."""

    def report(self, record: object, /) -> None:
        pass

    async def flush(self) -> None:
        pass


@asynccontextmanager
async def relay(sink: ProgressSink[R] | None) -> AsyncIterator[Relayed[R]]:
    """What the work reports its records with, for the duration of the block (see the
    module docstring); with no *sink*, one that does nothing."""
    if sink is None:
        yield _Nobody()
        return
    relayed: _Relay[R] = _Relay(sink)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(relayed.pump)
            yield relayed
            group.cancel_scope.cancel()
    except BaseException as exc:
        relayed.abandon()
        if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            raise exc.exceptions[0] from None  # the work's error, or the sink's
        raise
    await relayed.finish()
