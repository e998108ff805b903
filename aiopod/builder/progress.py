"""What a build reports while it runs: typed records, each with podman's line(s) for it.

:meth:`aiopod.Runtime.build` (``progress=``) and ``aiopod build`` report a build as a
sequence of records.  Each record's :attr:`text` is what ``podman build`` (4.3) prints
for it::

    StepStarted      [1/2] STEP 2/4: COPY a.txt /a.txt     (no "[i/n] " with one stage)
    StepOutput       a RUN's output, as it comes: stdout and stderr apart
    StepCached       --> Using cache 546cf125bdff34411d445b4954ce6002f72d27b7c81ef641f30...
    StepCommitted    --> 546cf125bdf                        (an image of a step or stage)
    ImageCommitted   [2/2] COMMIT app:1                     (the name as the caller gave it)
                     --> 0fc259a6738
    BuildFinished    Successfully tagged localhost/app:1    (every name, when tags were given)
                     0fc259a6738150bedee6233908b5a619a0f98ed96dcd559d796514548fd61fe6
    OutputDropped    (nothing: aiopod's own) a slow stream consumer missed RUN output

So the ``text`` of every record but stderr output, concatenated, is podman's standard
output for the same build (``podman build`` without ``-q``), and the stderr output is what
podman's RUN steps print on its standard error.  Image IDs are full in the records;
:func:`short_id` is podman's abbreviation (11 hex digits).

The records go to a callable or to an anyio memory object stream (see
:class:`Reporter`, and ``Runtime.build`` for the choice and its blocking behaviour).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

import anyio
from anyio.streams.memory import MemoryObjectSendStream

__all__ = (
    "OUTPUT_BACKLOG",
    "BuildFinished",
    "ImageCommitted",
    "OutputDropped",
    "ProgressCallback",
    "ProgressRecord",
    "ProgressTarget",
    "Reporter",
    "StepCached",
    "StepCommitted",
    "StepOutput",
    "StepStarted",
    "short_id",
)

#: How many bytes of RUN output a progress stream holds back for a consumer whose buffer is
#: full before it drops the oldest (reported by :class:`OutputDropped`).
OUTPUT_BACKLOG = 1024 * 1024


def short_id(image_id: str) -> str:
    """An image ID as podman's build output abbreviates it: its first 11 hex digits."""
    return image_id[:11]


def _stage_prefix(stage: int, stages: int) -> str:
    return f"[{stage}/{stages}] " if stages > 1 else ""


@dataclass(frozen=True, slots=True)
class StepStarted:
    """A step starts: the stage's FROM (step 1) or one of its instructions.

    ``stage`` is the stage's 1-based position in the Dockerfile and ``stages`` how many
    stages the build has up to its target (podman's ``[stage/stages]``; stages the target
    does not need are skipped, so numbers can be missing).  ``step`` counts from 1 in each
    stage, whose ``steps`` are its instructions and its FROM.  ``stage_name`` is the
    stage's ``AS`` name as written, if it has one.  ``instruction`` is the text podman
    shows: the instruction as written, continuation lines joined; for FROM the base with
    build args expanded (the image ID when the base is an earlier stage), then ``AS name``.
    """

    stage: int
    stages: int
    stage_name: str | None
    step: int
    steps: int
    instruction: str

    @property
    def text(self) -> str:
        """``[stage/stages] STEP step/steps: instruction`` and a newline."""
        prefix = _stage_prefix(self.stage, self.stages)
        return f"{prefix}STEP {self.step}/{self.steps}: {self.instruction}\n"


@dataclass(frozen=True, slots=True)
class StepOutput:
    """Output of the running RUN step, as it arrives (any number of chunks per step).

    ``data`` is the bytes the command wrote on ``stream``; a chunk never ends inside a
    UTF-8 sequence that the next one completes, so :attr:`text` of each chunk decodes
    cleanly.
    """

    data: bytes
    stream: Literal["stdout", "stderr"] = "stdout"

    @property
    def text(self) -> str:
        """``data`` decoded as UTF-8 (invalid bytes replaced)."""
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class StepCached:
    """With ``layers``, the step is an image already in the store: it is reused."""

    image_id: str

    @property
    def text(self) -> str:
        """``--> Using cache <full ID>`` and a newline."""
        return f"--> Using cache {self.image_id}\n"


@dataclass(frozen=True, slots=True)
class StepCommitted:
    """The image of a step (``layers``: every step but the last, cached or not) or of a
    stage that a later stage builds on is stored, or (a cached last step, no tags) the
    build's result is."""

    image_id: str

    @property
    def text(self) -> str:
        """``--> <short ID>`` and a newline."""
        return f"--> {short_id(self.image_id)}\n"


@dataclass(frozen=True, slots=True)
class ImageCommitted:
    """The build's result is stored (and named ``name``, the first tag as the caller gave
    it, when there is one); ``stage``/``stages`` as in :class:`StepStarted`."""

    image_id: str
    name: str | None
    stage: int
    stages: int

    @property
    def text(self) -> str:
        """``[stage/stages] COMMIT name`` and ``--> <short ID>``, each with a newline."""
        prefix = _stage_prefix(self.stage, self.stages)
        name = f" {self.name}" if self.name else ""
        return f"{prefix}COMMIT{name}\n--> {short_id(self.image_id)}\n"


@dataclass(frozen=True, slots=True)
class BuildFinished:
    """The build is over: the result's ID and, when tags were given, every name the image
    has now (those it had before included, the first tag first)."""

    image_id: str
    names: tuple[str, ...]

    @property
    def text(self) -> str:
        """``Successfully tagged NAME`` for each name, then the full ID; one per line."""
        tagged = "".join(f"Successfully tagged {name}\n" for name in self.names)
        return f"{tagged}{self.image_id}\n"


@dataclass(frozen=True, slots=True)
class OutputDropped:
    """A progress stream's consumer fell behind while a RUN was running, and ``size``
    bytes of its output (the oldest not yet delivered) were dropped here."""

    size: int

    @property
    def text(self) -> str:
        """Nothing: podman has no such line."""
        return ""


ProgressRecord: TypeAlias = (
    StepStarted
    | StepOutput
    | StepCached
    | StepCommitted
    | ImageCommitted
    | BuildFinished
    | OutputDropped
)
"""Any record a build reports."""

ProgressCallback: TypeAlias = Callable[[ProgressRecord], None]
"""Called with each record in the event loop's thread; it must not block."""

ProgressTarget: TypeAlias = ProgressCallback | MemoryObjectSendStream[ProgressRecord]
"""Where a build's records go: a callable or the send end of a memory object stream."""

_Stream = Literal["stdout", "stderr"]


def _complete_utf8(data: bytes) -> int:
    """How much of *data* to send now: all of it but a UTF-8 sequence cut at its end."""
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: look further back
            continue
        if byte >= 0xC0:  # the lead byte of the last sequence: is it complete?
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) - back if back < needed else len(data)
        return len(data)
    return len(data)


class Reporter:
    """Delivers a build's records to its :data:`ProgressTarget` (used by the builder).

    A callable receives every record at once.  A memory object stream receives them in
    order with these rules, so that a slow consumer delays the build only between steps
    and never stalls a running command:

    * :meth:`send` (every record but output) waits while the stream's buffer is full:
      the build waits for the consumer at step boundaries.  Cancellation while it waits
      cancels the build.
    * :meth:`output` (RUN output) never waits: what does not fit in the buffer is held
      here (consecutive chunks of a stream merged into one record), at most
      :data:`OUTPUT_BACKLOG` bytes; beyond that the oldest held output is dropped, and an
      :class:`OutputDropped` record with its size takes its place in the stream.
    * A consumer that closes its receive end stops the reporting, not the build.
    * :meth:`aclose` delivers what is held and closes the send stream (so the consumer's
      ``async for`` ends); :meth:`close_nowait` delivers what fits and closes it.

    Chunks of output are cut at UTF-8 sequence boundaries, per stream: an incomplete
    sequence at the end of a chunk is held until the next chunk or :meth:`end_output`.
    Not thread-safe: call everything from the event loop's thread.
    """

    def __init__(self, target: ProgressTarget | None, *, backlog: int = OUTPUT_BACKLOG) -> None:
        self._callback: ProgressCallback | None = None
        self._stream: MemoryObjectSendStream[ProgressRecord] | None = None
        if isinstance(target, MemoryObjectSendStream):
            self._stream = target
        elif target is not None:
            self._callback = target
        self._backlog = backlog
        self._held: deque[tuple[_Stream, bytearray]] = deque()
        self._held_size = 0
        self._dropped = 0
        self._partial: dict[_Stream, bytes] = {}
        self._broken = False

    # -- records -------------------------------------------------------------------------

    async def send(self, record: ProgressRecord) -> None:
        """Deliver *record* after any output held; with a stream, wait for room."""
        if self._callback is not None:
            self._callback(record)
            return
        await self._flush()
        if self._stream is not None and not self._broken:
            try:
                await self._stream.send(record)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._stop()

    def output(self, stream: _Stream, data: bytes) -> None:
        """A chunk of a running command's output on *stream*; never blocks."""
        data = self._partial.pop(stream, b"") + data
        cut = _complete_utf8(data)
        if cut < len(data):
            self._partial[stream] = data[cut:]
            data = data[:cut]
        self._deliver_output(stream, data)

    def end_output(self) -> None:
        """The command ended: deliver what is left of an incomplete UTF-8 sequence."""
        partial, self._partial = self._partial, {}
        for stream, data in partial.items():
            self._deliver_output(stream, data)

    # -- closing -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Deliver the output held (waiting for room) and close the stream."""
        self.end_output()
        try:
            await self._flush()
        finally:
            self.close_nowait()

    def close_nowait(self) -> None:
        """Deliver what fits without waiting, drop the rest, close the stream."""
        self.end_output()
        self._drain_nowait()
        self._held.clear()
        self._held_size = 0
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    # -- internals -----------------------------------------------------------------------

    def _deliver_output(self, stream: _Stream, data: bytes) -> None:
        if not data:
            return
        if self._callback is not None:
            self._callback(StepOutput(data, stream))
            return
        if self._stream is None or self._broken:
            return
        if self._held and self._held[-1][0] == stream:
            self._held[-1][1].extend(data)
        else:
            self._held.append((stream, bytearray(data)))
        self._held_size += len(data)
        self._drain_nowait()
        self._trim()

    def _next(self) -> ProgressRecord | None:
        if self._dropped:
            return OutputDropped(self._dropped)
        if self._held:
            stream, data = self._held[0]
            return StepOutput(bytes(data), stream)
        return None

    def _delivered(self, record: ProgressRecord) -> None:
        if isinstance(record, OutputDropped):
            self._dropped = 0
        else:
            _, data = self._held.popleft()
            self._held_size -= len(data)

    def _drain_nowait(self) -> None:
        while self._stream is not None and not self._broken:
            record = self._next()
            if record is None:
                return
            try:
                self._stream.send_nowait(record)
            except anyio.WouldBlock:
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._stop()
                return
            self._delivered(record)

    async def _flush(self) -> None:
        while self._stream is not None and not self._broken:
            record = self._next()
            if record is None:
                return
            try:
                await self._stream.send(record)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._stop()
                return
            self._delivered(record)

    def _trim(self) -> None:
        """Drop the oldest held output beyond the backlog (whole UTF-8 sequences)."""
        while self._held_size > self._backlog:
            _, data = self._held[0]
            excess = self._held_size - self._backlog
            if excess >= len(data):
                self._held.popleft()
                cut = len(data)
            else:
                cut = excess
                while cut < len(data) and data[cut] & 0xC0 == 0x80:
                    cut += 1
                del data[:cut]
                if not data:
                    self._held.popleft()
            self._held_size -= cut
            self._dropped += cut

    def _stop(self) -> None:
        """The consumer is gone: report nothing more."""
        self._broken = True
        self._held.clear()
        self._held_size = 0
        self._dropped = 0
