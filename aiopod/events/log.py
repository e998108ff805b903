"""The store's persistent event log: ``<store root>/aiopod/events.jsonl`` and its segments.

One JSON object per line (:func:`~aiopod.events.formats.to_native_json` plus ``actor``
and ``prev``), each with a ``seq`` one greater than the line before, across processes and
across segments, and a ``time`` never earlier than the line before.

Writing
    :meth:`EventLog.append` is blocking and must run under the store's **exclusive lock**
    (the store calls it in its commit's worker thread), so appends of different processes
    never interleave.  Each event is stamped with its ``seq``, the :class:`Actor` of the
    log (who is writing), and ``prev``: the SHA-256 (hex) of the line before it, the first
    line of a log holding 64 zeros.  The batch is written with one ``os.write`` of
    complete lines on an ``O_APPEND`` descriptor, ``fsync``-ed when the log is
    ``durable``; then ``events.head`` is rewritten (not synced) with the last ``seq`` and
    the hash of its line, so that cutting records off the end or editing the last one is
    noticed (a head a crash left behind the log is allowed).
    The last ``seq``, hash and time are read from the file's tail (a few KiB) unless this
    object wrote the file last.  A line cut short by a crash is cut off by the next append.

Segments and retention
    Before an append would take the live file past ``max_bytes`` (default 16 MiB) it is
    renamed to ``events.<first seq, 16 digits>.jsonl`` and a new live file is started;
    the chain goes on across the files.  :class:`Retention` says how many sealed
    segments, bytes and how old a segment may be; the oldest segments past the limits are
    deleted after ``events.checkpoint`` records the first kept ``seq`` and the hash its
    first line names as its predecessor, so that a pruned prefix is never a silent loss
    (:mod:`aiopod.events.verify` starts from it).  By default nothing is pruned.

Reading
    :class:`LogCursor` and :meth:`EventLog.read` need no lock: they read the segments in
    order and then the live file, skip a partly written last line and lines they cannot
    parse, and never yield a ``seq`` twice.  A cursor is a value: :meth:`LogCursor.scan`
    returns the events it read and the cursor after them, so a reader cancelled while a
    worker thread reads loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import anyio
import anyio.to_thread

from aiopod.errors import UsageError
from aiopod.events.filters import EventFilter
from aiopod.events.formats import encode_native, event_from_native_json
from aiopod.events.model import Actor, Event, utc_now

__all__ = (
    "DEFAULT_MAX_BYTES",
    "EVENTS_FILE",
    "GENESIS",
    "Checkpoint",
    "EventLog",
    "LogCursor",
    "PreparedEvents",
    "Retention",
    "decode_line",
    "line_hash",
)

#: The live file's name inside the store's ``aiopod/`` metadata directory.
EVENTS_FILE: Final = "events.jsonl"

#: Start a new segment when the live file would grow past this many bytes.
DEFAULT_MAX_BYTES: Final = 16 * 1024 * 1024

#: The ``prev`` of the first record of a log that was never pruned.
GENESIS: Final = "0" * 64

_HEAD_FILE: Final = "events.head"
_CHECKPOINT_FILE: Final = "events.checkpoint"
_SEGMENT_RE: Final = re.compile(r"events\.(\d{16})\.jsonl")
_LEGACY_SEGMENT: Final = EVENTS_FILE + ".1"  # one rotated file, before segments existed

#: How every record's line starts (the log writes ``seq`` first).
_SEQ_PREFIX: Final = re.compile(rb'\{"seq":(\d+),')

_TAIL_CHUNK = 16 * 1024
_READ_CHUNK = 1024 * 1024

_decoder = json.JSONDecoder()


def line_hash(line: bytes) -> str:
    """The hash the next record's ``prev`` holds: SHA-256 (hex) of a line without its newline."""
    return hashlib.sha256(line).hexdigest()


def decode_line(line: bytes) -> Event | None:
    """The event on a complete line, or None for a line that is not one."""
    try:
        data = _decoder.decode(line.decode())
        if not isinstance(data, dict):
            return None
        event = event_from_native_json(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return event if event.seq > 0 else None


@dataclass(frozen=True, slots=True)
class Retention:
    """How much sealed history to keep (None: no limit).

    :param segments: most sealed segments kept.
    :param bytes: most bytes the sealed segments may hold together.
    :param age: sealed segments whose last event is older than this are pruned.
    """

    segments: int | None = None
    bytes: int | None = None
    age: timedelta | None = None

    def __post_init__(self) -> None:
        for name in ("segments", "bytes"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"retention {name} must not be negative, not {value}")

    @property
    def unlimited(self) -> bool:
        """Whether nothing is ever pruned."""
        return self.segments is None and self.bytes is None and self.age is None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a pruned log now starts: its first kept ``seq`` and that record's ``prev``."""

    first_seq: int
    prev: str
    pruned_at: datetime


@dataclass(frozen=True, slots=True)
class _Last:
    """The last record of the log as its writer knows it."""

    seq: int
    hash: str
    time: datetime | None


@dataclass(frozen=True, slots=True)
class PreparedEvents:
    """Records :meth:`EventLog.prepare` stamped: the events, their lines, the ``seq`` the
    log ended at before them (``base_seq``) and after them, and the last line's hash."""

    events: Sequence[Event]
    data: bytes
    base_seq: int
    last_seq: int
    last_hash: str
    last_time: datetime | None

    @classmethod
    def from_lines(cls, data: bytes, base_seq: int) -> PreparedEvents:
        """Lines kept in a store journal, to be written as they are (no events decoded:
        nobody in the recovering process waits for them)."""
        lines = data.rstrip(b"\n").split(b"\n") if data else []
        last = decode_line(lines[-1]) if lines else None
        if last is None:
            return cls((), b"", base_seq, base_seq, GENESIS, None)
        return cls((), data, base_seq, last.seq, line_hash(lines[-1]), last.time)


@dataclass(frozen=True, slots=True)
class Segment:
    """One file of the log: a sealed segment (``first`` is the seq in its name) or the
    live file (``first`` None)."""

    path: Path
    first: int | None


class EventLog:
    """The event log whose live file is *path* (see the module docstring).

    :param path: the ``events.jsonl`` file; :meth:`for_store` gives a store's.
    :param max_bytes: start a new segment before the live file would grow past this.
    :param durable: ``fsync`` after every append (and the directory after a rotation).
    :param retention: how much sealed history to keep (default: all of it).
    :param actor: who appends through this object (default: this process, described
        by *caller* or else its command line).
    :param caller: the API caller's description, for the default actor.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        durable: bool = False,
        retention: Retention | None = None,
        actor: Actor | None = None,
        caller: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.directory = self.path.parent
        self.head_path = self.directory / _HEAD_FILE
        self.checkpoint_path = self.directory / _CHECKPOINT_FILE
        self.max_bytes = max_bytes
        self.durable = durable
        self.retention = retention or Retention()
        self._actor = actor
        self._caller = caller
        # (inode, size, last record) of the live file as this object last wrote it.
        self._written: tuple[int, int, _Last] | None = None

    @classmethod
    def for_store(
        cls,
        root: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        durable: bool = False,
        retention: Retention | None = None,
        actor: Actor | None = None,
    ) -> EventLog:
        """The log of the store at *root*: ``<root>/aiopod/events.jsonl``."""
        return cls(
            Path(root) / "aiopod" / EVENTS_FILE,
            max_bytes=max_bytes,
            durable=durable,
            retention=retention,
            actor=actor,
        )

    @property
    def actor(self) -> Actor:
        """Who appends through this log (computed on first use; blocking then)."""
        if self._actor is None:
            self._actor = Actor.current(self._caller)
        return self._actor

    # -- writing (blocking; under the store's exclusive lock) ------------------------------

    def append(self, events: Sequence[Event], *, durable: bool | None = None) -> list[Event]:
        """Record *events*; return them as recorded (``seq``, ``time``, ``actor``, ``prev``).

        Blocking: call it from a worker thread, holding the store's exclusive lock.
        :meth:`prepare` then :meth:`write`.

        :param durable: override the log's ``durable`` setting for this append.
        :raises OSError: the log cannot be written (nothing, or only a partial last line
            that readers skip and the next append cuts off, was written).
        """
        if not events:
            return []
        return self.write(self.prepare(events), durable=durable)

    def prepare(self, events: Sequence[Event]) -> PreparedEvents:
        """Stamp *events* as the next records of the log, without writing them.

        A store commit prepares its events before it changes anything and keeps the
        lines in its journal, so that a crash after the change can still append exactly
        these records (:meth:`write`, while :meth:`last_seq` is still ``base_seq``).
        Blocking; under the store's exclusive lock (the log must not change until the
        :meth:`write`).  Cuts off a line a crash left incomplete.
        """
        fd = self._open_for_append()
        try:
            info = os.fstat(fd)
            size = _drop_torn_tail(fd, info.st_size)
            last = self._last(fd, info.st_ino, size)
        finally:
            os.close(fd)
        stamped, data, last_after = _stamp(events, last, self.actor)
        return PreparedEvents(
            stamped, data, last.seq, last_after.seq, last_after.hash, last_after.time
        )

    def write(self, prepared: PreparedEvents, *, durable: bool | None = None) -> list[Event]:
        """Append what :meth:`prepare` made (starting a segment first if the live file
        would grow past ``max_bytes``); return the recorded events.  Blocking; under the
        store's exclusive lock.

        :raises OSError: the log cannot be written.
        """
        if not prepared.data:
            return []
        sync = self.durable if durable is None else durable
        fd = self._open_for_append()
        try:
            size = _drop_torn_tail(fd, os.fstat(fd).st_size)
            if size > 0 and size + len(prepared.data) > self.max_bytes:
                first = _first_seq(fd, size)
                os.close(fd)
                fd = -1
                self._seal(first if first is not None else prepared.base_seq)
                if sync:
                    _fsync_dir(self.directory)
                fd = self._open_for_append()
            _write_all(fd, prepared.data)
            if sync:
                os.fsync(fd)
            last_after = _Last(prepared.last_seq, prepared.last_hash, prepared.last_time)
            # Not synced: a head that a crash left behind the log still verifies.
            self._write_head(last_after)
            after = os.fstat(fd)
            self._written = (after.st_ino, after.st_size, last_after)
            return list(prepared.events)
        finally:
            if fd >= 0:
                os.close(fd)

    def last_seq(self) -> int:
        """The ``seq`` of the last complete event in the log (0 for an empty log).  Blocking."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return self._sealed_last().seq
        try:
            info = os.fstat(fd)
            return self._last(fd, info.st_ino, info.st_size).seq
        finally:
            os.close(fd)

    def segments(self) -> list[Segment]:
        """The log's files, oldest first: sealed segments, then the live file.  Blocking."""
        return _segments(self.directory, self.path)

    def checkpoint(self) -> Checkpoint | None:
        """Where a pruned log starts, or None when nothing was pruned.  Blocking."""
        try:
            data = json.loads(self.checkpoint_path.read_bytes())
            return Checkpoint(
                int(data["first_seq"]), str(data["prev"]), datetime.fromisoformat(data["time"])
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{self.checkpoint_path} is not a checkpoint record") from None

    def head(self) -> tuple[int, str] | None:
        """The last ``seq`` and its line's hash as the last append left them, or None.

        Blocking.
        """
        try:
            text = self.head_path.read_text()
        except FileNotFoundError:
            return None
        seq, _, digest = text.strip().partition(" ")
        try:
            return int(seq), digest
        except ValueError:
            return (-1, text)

    def _open_for_append(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            return os.open(self.path, flags, 0o600)
        except FileNotFoundError:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            return os.open(self.path, flags, 0o600)

    def _last(self, fd: int, inode: int, size: int) -> _Last:
        if self._written is not None and self._written[:2] == (inode, size):
            return self._written[2]
        last = _tail_record(fd, size)
        return last if last is not None else self._sealed_last()

    def _sealed_last(self) -> _Last:
        for segment in reversed(self.segments()[:-1]):
            try:
                fd = os.open(segment.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                last = _tail_record(fd, os.fstat(fd).st_size)
            finally:
                os.close(fd)
            if last is not None:
                return last
        checkpoint = self.checkpoint()
        if checkpoint is not None:
            return _Last(checkpoint.first_seq - 1, checkpoint.prev, checkpoint.pruned_at)
        return _Last(0, GENESIS, None)

    def _write_head(self, last: _Last) -> None:
        fd = os.open(self.head_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            data = f"{last.seq} {last.hash}\n".encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    def _seal(self, first: int) -> None:
        os.replace(self.path, self.directory / f"events.{first:016d}.jsonl")
        if not self.retention.unlimited:
            self._prune()

    def _prune(self) -> None:
        sealed = self.segments()[:-1]
        retention = self.retention
        now = utc_now()
        sizes = [_size(s.path) for s in sealed]
        doomed = 0
        while doomed < len(sealed):
            kept = sealed[doomed:]
            too_many = retention.segments is not None and len(kept) > retention.segments
            too_big = retention.bytes is not None and sum(sizes[doomed:]) > retention.bytes
            too_old = (
                retention.age is not None and _mtime(sealed[doomed].path) < now - retention.age
            )
            if not (too_many or too_big or too_old):
                break
            doomed += 1
        if not doomed:
            return
        # The first kept record: the next sealed segment's first line, else the live one's.
        following = sealed[doomed].path if doomed < len(sealed) else self.path
        first = _first_record(following)
        if first is None or first.prev is None:
            return
        doc = {"first_seq": first.seq, "prev": first.prev, "time": now.isoformat()}
        tmp = self.checkpoint_path.with_name(self.checkpoint_path.name + ".tmp")
        tmp.write_bytes(json.dumps(doc).encode())
        os.replace(tmp, self.checkpoint_path)
        for segment in sealed[:doomed]:
            segment.path.unlink(missing_ok=True)

    # -- reading (no lock needed) ----------------------------------------------------------

    def cursor(self, after_seq: int = 0) -> LogCursor:
        """A cursor that reads the events after *after_seq*."""
        return LogCursor(self, after_seq)

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
        cursor = self.cursor(after_seq or 0)
        while True:
            batch, cursor = cursor.scan()
            if not batch:
                return
            for event in batch:
                if _matches(event, filter, since, until):
                    yield event

    async def follow(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        filter: EventFilter | None = None,
        poll_interval: float | None = None,
    ) -> AsyncGenerator[Event, None]:
        """The logged events (as :meth:`read`), then the events any process appends.

        Waits for changes with :class:`~aiopod.events.watch.LogWatcher` (inotify, or a
        poll every *poll_interval* seconds).  Ends once the clock passes *until* (after
        yielding what was logged before it); otherwise runs until cancelled.
        Cancellation is prompt and loses nothing (the cursor moves only when a read has
        returned).  Close it when done early: ``async with contextlib.aclosing(...)``.
        """
        from aiopod.events.watch import LogWatcher

        cursor = self.cursor(after_seq or 0)
        with LogWatcher(self.directory, poll_interval=poll_interval) as watcher:
            while True:
                done = until is not None and utc_now() >= until
                batch, cursor = await anyio.to_thread.run_sync(cursor.scan)
                for event in batch:
                    if _matches(event, filter, since, until):
                        yield event
                if batch:
                    continue
                if done:
                    return
                timeout = None
                if until is not None:
                    timeout = max(0.0, (until - utc_now()).total_seconds()) + 0.001
                await watcher.wait(timeout)


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


def _stamp(events: Sequence[Event], last: _Last, actor: Actor) -> tuple[list[Event], bytes, _Last]:
    """The recorded events, their lines, and the log's last record after them."""
    seq, prev, floor = last.seq, last.hash, last.time
    stamped: list[Event] = []
    lines: list[bytes] = []
    times: dict[datetime, str] = {}
    for event in events:
        seq += 1
        time, started = event.time, event.started
        if floor is not None and time < floor:
            time, started = floor, started if started is not None else event.time
        floor = time
        recorded = Event(
            event.kind,
            event.type,
            event.id,
            event.name,
            time,
            event.attributes,
            seq,
            started,
            event.names,
            event.digest,
            event.policy,
            event.options,
            actor,
            prev,
        )
        line = encode_native(recorded, times=times).encode()
        prev = line_hash(line)
        stamped.append(recorded)
        lines.append(line)
    return stamped, b"\n".join(lines) + b"\n", _Last(seq, prev, floor)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return utc_now()


def _segments(directory: Path, live: Path) -> list[Segment]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        names = []
    sealed: list[Segment] = []
    if _LEGACY_SEGMENT in names:
        sealed.append(Segment(directory / _LEGACY_SEGMENT, 0))
    numbered = sorted(
        (int(m.group(1)), name) for name in names if (m := _SEGMENT_RE.fullmatch(name))
    )
    sealed.extend(Segment(directory / name, first) for first, name in numbered)
    return [*sealed, Segment(live, None)]


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


def _drop_torn_tail(fd: int, size: int) -> int:
    """Cut off a last line a crash left without its newline; the file's new size."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    window = _TAIL_CHUNK
    while True:
        start = max(0, size - window)
        chunk = os.pread(fd, size - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0 or start == 0:
            new_size = start + cut + 1 if cut >= 0 else 0
            os.ftruncate(fd, new_size)
            return new_size
        window *= 4


def _tail_record(fd: int, size: int) -> _Last | None:
    """The last complete, valid record of a file (read from the end, in a window that
    grows only while it holds no valid line)."""
    window = _TAIL_CHUNK
    while True:
        start = max(0, size - window)
        lines = os.pread(fd, size - start, start).split(b"\n")
        lines.pop()  # what follows the last newline: a partial line, or nothing
        if start > 0 and lines:
            lines.pop(0)  # possibly cut by the window
        for line in reversed(lines):
            if line and (event := decode_line(line)) is not None:
                return _Last(event.seq, line_hash(line), event.time)
        if start == 0:
            return None
        window *= 4


def _first_seq(fd: int, size: int) -> int | None:
    end = os.pread(fd, min(size, _TAIL_CHUNK), 0)
    line = end.split(b"\n", 1)[0]
    event = decode_line(line)
    return event.seq if event is not None else None


def _first_record(path: Path) -> Event | None:
    try:
        with open(path, "rb") as f:
            return decode_line(f.readline().rstrip(b"\n"))
    except FileNotFoundError:
        return None


#: Times a gap in the seqs read is read again from a new listing, and the pause between.
_GAP_RETRIES: Final = 5
_GAP_PAUSE: Final = 0.002


@dataclass(frozen=True, slots=True)
class LogCursor:
    """A position in a log: the last ``seq`` read and where the next line starts.

    Immutable: :meth:`scan` returns a new cursor, so a read whose result is dropped (a
    cancelled caller) moves nothing.
    """

    log: EventLog
    last_seq: int
    #: (device, inode) of the file being read, and the offset of its next line.
    file: tuple[int, int] | None = None
    offset: int = 0

    def scan(self) -> tuple[list[Event], LogCursor]:
        """New events (from at most about 1 MiB of log) and the cursor after them;
        ``[]`` when there is nothing new.  Blocking; needs no lock.

        The events follow the cursor's without a gap unless the log itself has one (its
        oldest segments pruned): a listing of the segments taken while another process
        rotates the live file can miss the file just renamed, and reading on from the
        next one would skip that file's last lines, so a gap is read again from a new
        listing (a few times, a millisecond apart) before it is believed.
        """
        retries = _GAP_RETRIES
        cursor = self
        while True:  # each turn reads further, or moves to a later file
            events, cursor, more = cursor._scan_once()
            if events and self.last_seq and events[0].seq > self.last_seq + 1 and retries:
                retries -= 1
                time.sleep(_GAP_PAUSE)  # a rotation is a rename then a create: let it end
                cursor = self  # again from where this scan began, with a new listing
                continue
            if events or not more:
                return events, cursor

    def _files(self) -> tuple[list[tuple[Segment, os.stat_result]], int | None]:
        """The log's files with their status, and the index of the cursor's file among
        them (None: a fresh cursor, or its file is gone)."""
        files: list[tuple[Segment, os.stat_result]] = []
        for segment in _segments(self.log.directory, self.log.path):
            try:
                files.append((segment, os.stat(segment.path)))
            except FileNotFoundError:
                continue
        if self.file is not None:
            for i, (_, st) in enumerate(files):
                if (st.st_dev, st.st_ino) == self.file:
                    return files, i
        return files, None

    def _scan_once(self) -> tuple[list[Event], LogCursor, bool]:
        files, index = self._files()
        for _ in range(_GAP_RETRIES if index is None and self.file is not None else 0):
            # The cursor's file is not listed: renamed by a rotation between the listing
            # and the status of the live file, or pruned.  A new listing tells which.
            time.sleep(_GAP_PAUSE)
            files, index = self._files()
            if index is not None:
                break
        if index is None:
            # A fresh cursor, or its file was pruned: the file that holds last_seq + 1.
            index, offset = 0, 0
            wanted = self.last_seq + 1
            for i, (segment, _) in enumerate(files):
                if segment.first is not None and segment.first <= wanted:
                    index = i
            if not files:
                return [], self, False
        else:
            offset = self.offset
        segment, st = files[index]
        key = (st.st_dev, st.st_ino)
        events, consumed = _read_lines(segment.path, offset, self.last_seq)
        last = events[-1].seq if events else self.last_seq
        if consumed:
            return events, replace(self, last_seq=last, file=key, offset=offset + consumed), True
        if index + 1 < len(files):  # at the end of a sealed file: on to the next one
            following = files[index + 1][1]
            return [], replace(self, file=(following.st_dev, following.st_ino), offset=0), True
        return [], replace(self, file=key, offset=offset), False


def _read_lines(path: Path, offset: int, last_seq: int) -> tuple[list[Event], int]:
    """Events after *last_seq* on the complete lines from *offset* (about 1 MiB at most),
    and how many bytes those lines take."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return [], 0
    try:
        data = os.pread(fd, _READ_CHUNK, offset)
        while data and b"\n" not in data and len(data) >= _READ_CHUNK:
            more = os.pread(fd, _READ_CHUNK, offset + len(data))  # one line over 1 MiB
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    end = data.rfind(b"\n") + 1
    out: list[Event] = []
    for line in data[:end].split(b"\n"):
        known = _SEQ_PREFIX.match(line)
        if known is not None and int(known.group(1)) <= last_seq:
            continue  # already read (a follower the fast path brought further): no decoding
        event = decode_line(line) if line else None
        if event is not None and event.seq > last_seq:
            last_seq = event.seq
            out.append(event)
    return out, end
