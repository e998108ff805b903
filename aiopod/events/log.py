"""The store's persistent event log: ``<store root>/aiopod/events.jsonl``.

One JSON object per line (:func:`~aiopod.events.formats.to_native_json`), each with a
``seq`` one greater than the line before, across processes and across rotations.

Writing
    :meth:`EventLog.append` is blocking and must run under the store's **exclusive lock**
    (the runtime calls it in a worker thread while it holds that lock), so appends of
    different processes never interleave and ``seq`` stays consecutive.  The batch is
    written with one ``os.write`` of complete lines on an ``O_APPEND`` descriptor, then
    ``fsync``-ed when the log is ``durable``.  The last ``seq`` is read from the file's
    tail (a few KiB, whatever the log's length) unless this object wrote the file last.
    A line cut short by a crash is left alone (readers skip it); the next append starts
    on a new line.

Bounded size
    Before an append would take the file past ``max_bytes`` (default 16 MiB) the file is
    renamed to ``events.jsonl.1`` (replacing the previous one) and a new file is started,
    so the log never holds much more than ``2 × max_bytes`` (a single batch larger than
    ``max_bytes`` is still written whole).  Older events are gone; ``seq`` continues.

Reading
    :meth:`EventLog.read` and :meth:`EventLog.follow` need no lock: they read
    ``events.jsonl.1`` then ``events.jsonl``, skip a partly written last line, skip lines
    they cannot parse, and never yield a ``seq`` twice.  ``follow`` polls (reading in a
    worker thread) and notices rotation by the file's inode; a reader that falls behind
    by more than two rotations between polls misses events (visible as a ``seq`` gap).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Final

import anyio
import anyio.to_thread

from aiopod.events.filters import EventFilter
from aiopod.events.formats import event_from_native_json, to_native_json
from aiopod.events.model import Event, utc_now

__all__ = ("DEFAULT_MAX_BYTES", "EVENTS_FILE", "EventLog")

#: The log's file name inside the store's ``aiopod/`` metadata directory.
EVENTS_FILE: Final = "events.jsonl"

#: Rotate when the log would grow past this many bytes.
DEFAULT_MAX_BYTES: Final = 16 * 1024 * 1024

_TAIL_CHUNK = 16 * 1024
_READ_CHUNK = 1024 * 1024


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_decoder = json.JSONDecoder()


def _encode(event: Event) -> bytes:
    return _encoder.encode(to_native_json(event)).encode()


def _decode(line: bytes) -> Event | None:
    """The event on a complete line, or None for a line that is not one."""
    try:
        data = _decoder.decode(line.decode())
        if not isinstance(data, dict):
            return None
        event = event_from_native_json(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return event if event.seq > 0 else None


def _matches(
    event: Event,
    event_filter: EventFilter | None,
    since: datetime | None,
    until: datetime | None,
) -> bool:
    if since is not None and not event.time > since:
        return False
    if until is not None and not event.time < until:
        return False
    return event_filter is None or event_filter.matches(event)


class EventLog:
    """The event log at *path* (see the module docstring).

    :param path: the ``events.jsonl`` file; :meth:`for_store` gives a store's.
    :param max_bytes: rotate before the file would grow past this size.
    :param durable: ``fsync`` after every append (and the directory after a rotation).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        durable: bool = False,
    ) -> None:
        self.path = Path(path)
        self.rotated_path = self.path.with_name(self.path.name + ".1")
        self.max_bytes = max_bytes
        self.durable = durable
        # (inode, size, last seq) of the file as this object last wrote it.
        self._written: tuple[int, int, int] | None = None

    @classmethod
    def for_store(
        cls,
        root: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        durable: bool = False,
    ) -> EventLog:
        """The log of the store at *root*: ``<root>/aiopod/events.jsonl``."""
        return cls(Path(root) / "aiopod" / EVENTS_FILE, max_bytes=max_bytes, durable=durable)

    # -- writing (blocking; under the store's exclusive lock) ------------------------------

    def append(self, events: Sequence[Event], *, durable: bool | None = None) -> list[Event]:
        """Record *events*; return them with their ``seq`` numbers.

        Blocking: call it from a worker thread, holding the store's exclusive lock.

        :param durable: override the log's ``durable`` setting for this append.
        :raises OSError: the log cannot be written (nothing, or only a partial last line
            that readers skip, was written).
        """
        if not events:
            return []
        sync = self.durable if durable is None else durable
        fd = self._open_for_append()
        try:
            info = os.fstat(fd)
            last = self._last_seq(fd, info)
            stamped = [
                Event(e.kind, e.type, e.id, e.name, e.time, e.attributes, last + i)
                for i, e in enumerate(events, 1)
            ]
            data = b"".join(_encode(event) + b"\n" for event in stamped)
            size = info.st_size
            if size > 0 and size + len(data) > self.max_bytes:
                os.close(fd)
                fd = -1
                os.replace(self.path, self.rotated_path)
                if sync:
                    _fsync_dir(self.path.parent)
                fd = self._open_for_append()
                size = 0
            elif size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a crash cut the last line short: start a new one
            _write_all(fd, data)
            if sync:
                os.fsync(fd)
            after = os.fstat(fd)
            self._written = (after.st_ino, after.st_size, stamped[-1].seq)
            return stamped
        finally:
            if fd >= 0:
                os.close(fd)

    def last_seq(self) -> int:
        """The ``seq`` of the last complete event in the log (0 for an empty log).  Blocking."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return self._rotated_last_seq()
        try:
            return self._last_seq(fd, os.fstat(fd))
        finally:
            os.close(fd)

    def _open_for_append(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            return os.open(self.path, flags, 0o600)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return os.open(self.path, flags, 0o600)

    def _last_seq(self, fd: int, info: os.stat_result) -> int:
        if self._written is not None and self._written[:2] == (info.st_ino, info.st_size):
            return self._written[2]
        seq = _tail_seq(fd, info.st_size)
        return seq if seq is not None else self._rotated_last_seq()

    def _rotated_last_seq(self) -> int:
        try:
            fd = os.open(self.rotated_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0
        try:
            return _tail_seq(fd, os.fstat(fd).st_size) or 0
        finally:
            os.close(fd)

    # -- reading (no lock needed) ----------------------------------------------------------

    def read(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        filter: EventFilter | None = None,
    ) -> Iterator[Event]:
        """The logged events, oldest first, that are after *since*, before *until*, have a
        ``seq`` greater than *after_seq* and pass *filter*.

        Blocking (iterate it in a worker thread from async code); needs no lock.
        """
        tail = _Tail(self, after_seq or 0)
        try:
            while batch := tail.poll():
                for event in batch:
                    if _matches(event, filter, since, until):
                        yield event
        finally:
            tail.close()

    async def follow(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        filter: EventFilter | None = None,
        poll_interval: float = 0.1,
    ) -> AsyncGenerator[Event, None]:
        """The logged events (as :meth:`read`), then the events any process appends.

        Polls every *poll_interval* seconds, reading in a worker thread.  Ends once the
        clock passes *until* (after yielding what was logged before it); otherwise runs
        until cancelled.  Cancellation is prompt (a poll in progress finishes first).
        Close it when done early: ``async with contextlib.aclosing(log.follow()) as it``.
        """
        tail = _Tail(self, after_seq or 0)
        try:
            while True:
                done = until is not None and utc_now() >= until
                batch = await anyio.to_thread.run_sync(tail.poll)
                for event in batch:
                    if _matches(event, filter, since, until):
                        yield event
                if batch:
                    continue
                if done:
                    return
                await anyio.sleep(poll_interval)
        finally:
            tail.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tail_seq(fd: int, size: int) -> int | None:
    """The ``seq`` of the last complete, valid line of the file (read from the end, in a
    window that grows only while it holds no valid line)."""
    window = _TAIL_CHUNK
    while True:
        start = max(0, size - window)
        lines = os.pread(fd, size - start, start).split(b"\n")
        lines.pop()  # what follows the last newline: a partial line, or nothing
        if start > 0 and lines:
            lines.pop(0)  # possibly cut by the window
        for line in reversed(lines):
            if line and (event := _decode(line)) is not None:
                return event.seq
        if start == 0:
            return None
        window *= 4


class _Tail:
    """Reads a log's files in order and then whatever is appended (blocking; one thread
    at a time).  Never returns a ``seq`` it already returned."""

    def __init__(self, log: EventLog, after_seq: int) -> None:
        self.log = log
        self.last_seq = after_seq
        self.queue: list[IO[bytes]] = []  # files to read to their end, oldest first
        self.current: IO[bytes] | None = None  # the live file, read as it grows
        self.pending = b""
        self._open_initial()

    def _open_initial(self) -> None:
        for _attempt in range(10):
            rotated = _open(self.log.rotated_path)
            current = _open(self.log.path)
            # If a rotation happened between the two opens, start again.
            if rotated is not None and not _same_file(rotated, self.log.rotated_path):
                rotated.close()
                if current is not None:
                    current.close()
                continue
            if rotated is not None:
                self.queue.append(rotated)
            self.current = current
            return
        self.current = _open(self.log.path)

    def close(self) -> None:
        for f in [*self.queue, *([self.current] if self.current else [])]:
            f.close()
        self.queue.clear()
        self.current = None

    def _consume(self, data: bytes, out: list[Event]) -> None:
        lines = (self.pending + data).split(b"\n")
        self.pending = lines.pop()
        for line in lines:
            event = _decode(line) if line else None
            if event is not None and event.seq > self.last_seq:
                self.last_seq = event.seq
                out.append(event)

    def poll(self) -> list[Event]:
        """New events (from at most about 1 MiB of log); ``[]`` when there is nothing new."""
        out: list[Event] = []
        while not out:
            if self.queue:
                data = self.queue[0].read(_READ_CHUNK)
                if data:
                    self._consume(data, out)
                else:  # a finished file: a partial line at its end will never complete
                    self.queue.pop(0).close()
                    self.pending = b""
                continue
            if self.current is None:
                self.current = _open(self.log.path)
                if self.current is None:
                    return out
            data = self.current.read(_READ_CHUNK)
            if data:
                self._consume(data, out)
                continue
            if _same_file(self.current, self.log.path):
                return out  # at the end of the live file
            # Rotated away: finish the old file (keeping its partial line), then read any
            # newer rotated file, then the new live file.
            old, self.current = self.current, None
            self.queue.append(old)
            rotated = _open(self.log.rotated_path)
            if rotated is not None and _same_inode(rotated, old):
                rotated.close()
            elif rotated is not None:
                self.queue.append(rotated)
        return out


def _open(path: Path) -> IO[bytes] | None:
    try:
        return open(path, "rb", buffering=0)
    except FileNotFoundError:
        return None


def _same_inode(f: IO[bytes], other: IO[bytes]) -> bool:
    a, b = os.fstat(f.fileno()), os.fstat(other.fileno())
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _same_file(f: IO[bytes], path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(f.fileno())
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)
