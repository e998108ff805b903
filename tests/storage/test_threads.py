"""Blocking work that is waited for, whatever cancels its caller: ``run_to_completion``
(the thread finishes its work) and ``run_until_stopped`` (the thread is told to stop)."""

from __future__ import annotations

import asyncio
import threading

import anyio
import pytest

from aiopod.storage.cancellation import raise_if_cancelled
from aiopod.storage.threads import run_to_completion, run_until_stopped


class Work:
    """A blocking job that starts, then waits for the test to let it finish."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = False

    def __call__(self, value: int) -> int:
        self.started.set()
        self.release.wait(10)
        self.finished = True
        return value * 2


async def started(work: Work) -> None:
    await anyio.to_thread.run_sync(work.started.wait, 10)


@pytest.mark.asyncio
async def test_it_returns_what_the_function_returned_and_raises_what_it_raised() -> None:
    assert await run_to_completion(divmod, 7, 2) == (3, 1)
    with pytest.raises(ZeroDivisionError):  # as itself, not inside an exception group
        await run_to_completion(divmod, 1, 0)


@pytest.mark.asyncio
async def test_asyncio_task_cancel_is_raised_only_once_the_function_has_returned() -> None:
    work = Work()
    task = asyncio.create_task(run_to_completion(work, 21))
    await started(work)
    task.cancel()
    await asyncio.sleep(0.1)
    assert not task.done()  # still waiting for the thread
    work.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert work.finished


@pytest.mark.asyncio
async def test_an_asyncio_timeout_that_expires_meanwhile_is_still_a_timeout_error() -> None:
    work = Work()
    threading.Timer(0.3, work.release.set).start()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await run_to_completion(work, 1)
    assert work.finished


@pytest.mark.anyio
async def test_anyio_cancellation_waits_and_lands_at_the_next_checkpoint() -> None:
    work = Work()
    threading.Timer(0.3, work.release.set).start()
    result = None
    with anyio.move_on_after(0.05) as scope:
        result = await run_to_completion(work, 21)
        await anyio.sleep(10)  # cancelled here
    assert scope.cancelled_caught
    assert (result, work.finished) == (42, True)


class Chunks:
    """A blocking copy of many chunks that checks for cancellation between them."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.done = 0
        self.cleaned_up = False

    def __call__(self, chunks: int) -> int:
        self.started.set()
        try:
            for _ in range(chunks):
                raise_if_cancelled()
                threading.Event().wait(0.01)
                self.done += 1
        finally:
            self.cleaned_up = True
        return self.done


@pytest.mark.asyncio
async def test_stopped_work_ends_at_its_next_chunk_when_asyncio_cancels_the_task() -> None:
    copy = Chunks()
    task = asyncio.create_task(run_until_stopped(copy, 1000))
    await anyio.to_thread.run_sync(copy.started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The caller got control back only after the thread had cleaned up, long before 1000.
    assert copy.cleaned_up and copy.done < 1000


@pytest.mark.anyio
async def test_stopped_work_ends_at_its_next_chunk_when_anyio_cancels_the_caller() -> None:
    copy = Chunks()
    with anyio.move_on_after(0.1) as scope:
        await run_until_stopped(copy, 1000)
    assert scope.cancelled_caught
    assert copy.cleaned_up and copy.done < 1000
    assert await run_until_stopped(copy, 3) == copy.done  # uncancelled, it runs to the end
