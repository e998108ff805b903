"""Running a pull's or a push's blob transfers side by side, at most *limit* at a time.

The first transfer that fails cancels the others and its error is raised as it is (not
wrapped in an exception group), so that a caller sees ``DigestMismatch`` rather than
``ExceptionGroup``.  Cancelling the caller cancels every transfer and waits for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio

__all__ = ("run_limited",)


async def run_limited(calls: Sequence[Callable[[], Awaitable[None]]], limit: int) -> None:
    """Await every call of *calls*, at most *limit* at once; stop at the first failure."""
    limiter = anyio.CapacityLimiter(limit)
    failures: list[Exception] = []

    async def run(call: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        try:
            async with limiter:
                await call()
        except Exception as exc:
            if not failures:
                failures.append(exc)
            scope.cancel()

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(run, call, group.cancel_scope)
    if failures:
        raise failures[0]
