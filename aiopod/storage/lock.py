"""The store's cross-process lock and its change token.

One lock file per store.  Each acquisition opens its own file description and takes
``flock`` on it with ``LOCK_NB`` in a loop, sleeping with ``anyio.sleep`` between
attempts, so waiting never blocks the event loop and stays cancellable.  Because every
acquisition has its own open file description, two tasks of one process exclude each
other exactly like two processes do (``flock`` locks belong to the open file description).

The first 64 bytes of the lock file are a *change token*.  A writer stores a fresh token
before it touches any metadata; a reader that finds a token different from the one it
cached knows another process (or another store object) changed the store and reloads.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from aiopod.errors import StoreLockTimeout

__all__ = ("LockHandle", "StoreLock")

TOKEN_SIZE = 64


class LockHandle:
    """A held store lock: read or replace the change token through it."""

    def __init__(self, fd: int, exclusive: bool) -> None:
        self._fd = fd
        self.exclusive = exclusive

    def read_token(self) -> bytes:
        """The current change token (empty for a fresh store)."""
        return os.pread(self._fd, TOKEN_SIZE, 0)

    def new_token(self) -> bytes:
        """Write and return a fresh change token; only valid under the exclusive lock."""
        if not self.exclusive:
            raise RuntimeError("the change token is written under the exclusive lock only")
        token = (
            time.time_ns().to_bytes(8, "big")
            + os.getpid().to_bytes(4, "big")
            + secrets.token_bytes(TOKEN_SIZE - 12)
        )
        os.pwrite(self._fd, token, 0)
        return token


class StoreLock:
    """The cross-process lock of one store (``flock`` on ``path``).

    :param path: the lock file; created (mode 0600) when missing.
    :param timeout: seconds to wait before :class:`~aiopod.errors.StoreLockTimeout`.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 120.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def _try_lock(self, exclusive: bool) -> int | None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                return None
            raise
        return fd

    @asynccontextmanager
    async def hold(self, *, exclusive: bool) -> AsyncIterator[LockHandle]:
        """Hold the lock (shared for readers, exclusive for writers) for the block.

        Waiting is cancellable; the lock is released synchronously when the block ends,
        however it ends.

        :raises ~aiopod.errors.StoreLockTimeout: the lock was not free within ``timeout``.
        """
        delay = 0.001
        deadline = time.monotonic() + self.timeout
        while (fd := self._try_lock(exclusive)) is None:
            if time.monotonic() > deadline:
                raise StoreLockTimeout(
                    f"timed out after {self.timeout:g}s waiting for the store lock {self.path}: "
                    "another aiopod process is holding it"
                )
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield LockHandle(fd, exclusive)
        finally:
            os.close(fd)  # closing the only descriptor releases the flock
