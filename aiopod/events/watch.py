"""Waiting for the event log to change: inotify where there is one, else a bounded poll.

:class:`LogWatcher` watches the log's directory (appends to the live file, a new segment,
a new head).  With inotify (the ``inotify_simple`` package on Linux) :meth:`~LogWatcher.wait`
returns as soon as the kernel reports a change, and at the latest after
:data:`SAFETY_INTERVAL` seconds, so a change inotify cannot see (a network file system)
is still noticed.  Without it, or when the process has no inotify instance left
(``fs.inotify.max_user_instances``), it sleeps :data:`POLL_INTERVAL` seconds: a bounded
poll, never a busy loop.  Either way a wait may return when nothing changed; the caller
reads the log and finds nothing.

One watcher serves one waiting task (a second concurrent :meth:`~LogWatcher.wait` raises
:class:`anyio.BusyResourceError`).  Opening and closing do not block (two system calls).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import Final

import anyio

__all__ = ("POLL_INTERVAL", "SAFETY_INTERVAL", "LogWatcher")

#: Seconds between two looks at the log without inotify (bounds the follow latency).
POLL_INTERVAL: Final = 0.02

#: Longest wait with inotify before the log is read anyway.
SAFETY_INTERVAL: Final = 1.0

try:
    from inotify_simple import INotify, flags
except ImportError:  # pragma: no cover - the package is a dependency on Linux
    INotify = None


def _open_inotify(directory: Path) -> INotify | None:
    if INotify is None:
        return None
    try:
        notifier = INotify(nonblocking=True)
    except OSError:
        return None
    mask = flags.MODIFY | flags.CREATE | flags.MOVED_TO | flags.MOVED_FROM | flags.DELETE
    try:
        notifier.add_watch(str(directory), mask)
    except OSError:
        notifier.close()
        return None
    return notifier


class LogWatcher:
    """Tells its owner when the log directory may have changed (see the module docstring).

    :param directory: the directory of the log's files (polled while it is missing).
    :param poll_interval: the poll's period without inotify (default :data:`POLL_INTERVAL`).
    :param use_inotify: False forces the poll.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        poll_interval: float | None = None,
        use_inotify: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.poll_interval = POLL_INTERVAL if poll_interval is None else poll_interval
        # Watching starts now, so a change made after this and before a wait is seen.
        self._notifier = _open_inotify(self.directory) if use_inotify else None

    @property
    def uses_inotify(self) -> bool:
        """Whether changes are reported by the kernel (else: polled)."""
        return self._notifier is not None

    async def wait(self, at_most: float | None = None) -> None:
        """Return when the log may have changed, or after *at_most* seconds.

        Cancellable at any point; nothing is consumed that a later wait would need.
        """
        notifier = self._notifier
        if notifier is None:
            delay = self.poll_interval if at_most is None else min(at_most, self.poll_interval)
            await anyio.sleep(delay)
            return
        limit = SAFETY_INTERVAL if at_most is None else min(at_most, SAFETY_INTERVAL)
        with anyio.move_on_after(limit):
            await anyio.wait_readable(notifier.fileno())
        with contextlib.suppress(BlockingIOError, OSError):
            notifier.read(timeout=0)  # drain; the caller reads the log itself

    def close(self) -> None:
        """Release the inotify instance.  Idempotent."""
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            with contextlib.suppress(RuntimeError):  # no event loop: nobody waits on it
                anyio.notify_closing(notifier.fileno())
            notifier.close()

    def __enter__(self) -> LogWatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
