"""The store's cross-process lock and its change token.

One lock file per store.  Each acquisition opens its own file description and takes
``flock`` on it with ``LOCK_NB`` in a loop, sleeping with ``anyio.sleep`` between
attempts, so waiting never blocks the event loop and stays cancellable.  Because every
acquisition has its own open file description, two tasks of one process exclude each
other exactly like two processes do (``flock`` locks belong to the open file description).

The first 64 bytes of the lock file are a *change token*.  A writer stores a fresh token
before it touches any metadata; a reader that finds a token different from the one it
cached knows another process (or another store object) changed the store and reloads.

A read-only lock (``read_only=True``) opens the lock file for reading only and takes it
shared; it never creates the file.  When the caller may not open it at all (a store made
readable for others without its lock file), reading goes on without the lock: the
metadata is replaced atomically, so it is still read whole, and every read reloads it.
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

    def __init__(self, fd: int | None, exclusive: bool) -> None:
        self._fd = fd
        self.exclusive = exclusive

    def read_token(self) -> bytes:
        """The current change token (empty for a fresh store; a new one every time when
        no lock file could be opened, so that the metadata is always reloaded)."""
        if self._fd is None:
            return secrets.token_bytes(TOKEN_SIZE)
        return os.pread(self._fd, TOKEN_SIZE, 0)

    def new_token(self) -> bytes:
        """Write and return a fresh change token; only valid under the exclusive lock."""
        if not self.exclusive or self._fd is None:
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
    :param read_only: open the file read-only, never create it, take it shared only.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 120.0, read_only: bool = False
    ) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.read_only = read_only

    def _try_lock(self, exclusive: bool) -> int | None:
        if self.read_only:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        else:
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
        if self.read_only and exclusive:
            raise RuntimeError("a read-only store lock is taken shared only")
        delay = 0.001
        deadline = time.monotonic() + self.timeout
        try:
            fd = self._try_lock(exclusive)
        except (FileNotFoundError, PermissionError):
            if not self.read_only:
                raise
            fd = -1
        if fd == -1:
            yield LockHandle(None, exclusive=False)  # no lock file to share: read without
            return
        while fd is None:
            if time.monotonic() > deadline:
                raise StoreLockTimeout(
                    f"timed out after {self.timeout:g}s waiting for the store lock {self.path}: "
                    "another aiopod process is holding it"
                )
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.05)
            fd = self._try_lock(exclusive)
        try:
            yield LockHandle(fd, exclusive)
        finally:
            os.close(fd)  # closing the only descriptor releases the flock
