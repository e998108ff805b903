"""Streaming a blob from an :class:`~aiopod.transports.registry.endpoints.ImageSource` into
a staging area: the async side reads the source's chunks, a worker thread hashes,
decompresses, checks and writes them (:meth:`~aiopod.storage.ingest.StagingArea.ingest`).

The two sides meet in a bounded memory object stream of batches of about 1 MiB, so that
memory stays bounded whatever the blob's size and the thread crosses into the event loop
once per batch, not once per network chunk.

Cancellation: cancelling the caller stops the source (its ``async with`` is left) and the
thread (at its next chunk, :func:`~aiopod.storage.cancellation.raise_if_cancelled`); the
caller regains control only when the thread has returned, and the partial file is gone.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import anyio
import anyio.from_thread
from anyio.streams.memory import MemoryObjectReceiveStream

from aiopod.storage.cancellation import raise_if_cancelled
from aiopod.storage.ingest import CHUNK, StagedBlob, StagingArea
from aiopod.storage.threads import run_until_stopped
from aiopod.transports.registry.endpoints import BlobDescriptor, ImageSource

__all__ = ("stage_blob",)

#: Batches waiting for the thread: memory per blob is at most this many batches of ~CHUNK.
_QUEUE = 4


class _BatchReader(io.RawIOBase):
    """A blocking reader of the batches the async side sends (used in the worker thread)."""

    def __init__(self, receive: MemoryObjectReceiveStream[bytes]) -> None:
        self._receive = receive
        self._buffer = memoryview(b"")
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._buffer and not self._ended:
            raise_if_cancelled()
            try:
                self._buffer = memoryview(anyio.from_thread.run(self._receive.receive))
            except anyio.EndOfStream:
                self._ended = True
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


async def stage_blob(
    source: ImageSource,
    blob: BlobDescriptor,
    area: StagingArea,
    *,
    max_uncompressed: int,
    on_progress: Callable[[int], None] | None = None,
) -> StagedBlob:
    """Copy *blob* from *source* into *area*, checking its size and digest.

    At most ``blob.size`` bytes are accepted (an endless stream stops one byte later,
    ``hostile-input.md`` R4); a blob whose bytes hash to another digest or have another
    size is refused and its file removed (R3).  *on_progress* is called in the event
    loop's thread with the bytes received so far.

    :raises ~aiopod.errors.DigestMismatch: the bytes are not the blob's.
    :raises ~aiopod.errors.LimitExceeded: more bytes than the descriptor's size.
    """
    send, receive = anyio.create_memory_object_stream[bytes](_QUEUE)
    source_failure: list[Exception] = []

    async def pump() -> None:
        done = 0
        try:
            async with send, source.open_blob(blob) as chunks:
                batch: list[bytes] = []
                pending = 0
                async for chunk in chunks:
                    batch.append(chunk)
                    pending += len(chunk)
                    if pending >= CHUNK:
                        await send.send(b"".join(batch))
                        done += pending
                        batch, pending = [], 0
                        if on_progress is not None:
                            on_progress(done)
                if batch:
                    await send.send(b"".join(batch))
                    done += pending
                    if on_progress is not None:
                        on_progress(done)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the thread stopped reading: its own error is the one to raise
        except Exception as exc:  # the thread sees the end of the stream, then this is raised
            source_failure.append(exc)

    def ingest() -> StagedBlob:
        with receive:
            return area.ingest(
                _BatchReader(receive),  # type: ignore[arg-type]
                max_size=blob.size,
                max_uncompressed=max_uncompressed,
                expected_digest=blob.digest,
                expected_size=blob.size,
            )

    staged: list[StagedBlob] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as group:
        group.start_soon(pump)
        try:
            staged.append(await run_until_stopped(ingest))
        except Exception as exc:  # raised below, outside the group (which would wrap it)
            failure.append(exc)
        finally:
            group.cancel_scope.cancel()
    # A source that failed mid-blob looks truncated to the thread: its own error says why.
    if source_failure:
        raise source_failure[0]
    if failure:
        raise failure[0]
    return staged[0]
