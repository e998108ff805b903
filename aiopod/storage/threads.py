"""Blocking work that must finish once it has begun, run from async code.

A shielded :class:`anyio.CancelScope` keeps anyio's and trio's cancellation out of an
``await``, but not asyncio's own: ``Task.cancel()`` (which ``asyncio.timeout``,
``asyncio.wait_for`` and a notebook's cancelled cell use) still interrupts the ``await``
of :func:`anyio.to_thread.run_sync`.  The worker thread goes on, but its caller no longer
waits for it: it leaves its ``async with`` blocks and releases the locks the thread's
work relies on while that work is still being done.

:func:`run_to_completion` waits for the thread whatever cancels its caller, and the
thread is never told: for work that must finish once begun (a commit, a recovery).
:func:`run_until_stopped` also waits, but passes any cancellation on to the thread, which
stops at its next :func:`~aiopod.storage.cancellation.raise_if_cancelled` and cleans up
after itself: for work that may be abandoned but must not be left running unwatched (an
archive being written, a load being staged, both under the store's shared lock).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import anyio
import anyio.to_thread

__all__ = ("run_to_completion", "run_until_stopped")

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


async def run_to_completion(
    func: Callable[[*Ts], T],
    *args: *Ts,
    limiter: anyio.CapacityLimiter | None = None,
) -> T:
    """Run ``func(*args)`` in a worker thread; return (or raise) what it did once it ended.

    Cancellation does not stop the wait.  anyio's and trio's are held off as by a shielded
    scope (they take effect at the caller's next checkpoint); asyncio's ``Task.cancel()``
    is raised here, as soon as *func* has returned, as :class:`asyncio.CancelledError`.

    :param limiter: the capacity limiter for the thread (anyio's default one if omitted).
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    async def work() -> None:
        with anyio.CancelScope(shield=True):
            try:
                outcome.append(await anyio.to_thread.run_sync(func, *args, limiter=limiter))
            except BaseException as exc:  # the task group would wrap it in a group
                failure.append(exc)

    # A task group waits for its tasks even when its host is cancelled natively; the
    # shield keeps the task running then.
    with anyio.CancelScope(shield=True):
        async with anyio.create_task_group() as group:
            group.start_soon(work)
    if failure:
        raise failure[0]
    return outcome[0]


async def run_until_stopped(
    func: Callable[[*Ts], T],
    *args: *Ts,
    limiter: anyio.CapacityLimiter | None = None,
) -> T:
    """Run ``func(*args)`` in a worker thread; return (or raise) what it did once it ended.

    A cancellation of the caller (anyio's, trio's or asyncio's own ``Task.cancel()``) is
    passed on to the thread, which raises it at its next
    :func:`~aiopod.storage.cancellation.raise_if_cancelled`; the caller regains control
    only when the thread has returned, and then raises the cancellation.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    async def work() -> None:
        try:
            outcome.append(await anyio.to_thread.run_sync(func, *args, limiter=limiter))
        except BaseException as exc:  # the task group would wrap it in a group
            failure.append(exc)

    # Cancelled by anyio, the group's scope is too, and the thread sees it; cancelled
    # natively, the group cancels its scope and still waits for its task.
    async with anyio.create_task_group() as group:
        group.start_soon(work)
    if failure:
        raise failure[0]
    return outcome[0]
