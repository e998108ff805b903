"""``load`` from standard input and ``save`` to standard output, as podman does them.

An archive is read more than once and written in one piece (it appears only when
complete), so either way it goes through a temporary file, in ``$TMPDIR`` or else
``/var/tmp`` (podman's choice: archives can be larger than a ``/tmp`` in memory).  The
file is removed however the command ends; a copy blocked on a pipe is abandoned when
the command is stopped.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio
import anyio.to_thread

from aiopod import Image, Runtime, SaveCompression, SaveFormat

if TYPE_CHECKING:
    from aiopod.transports.archive_progress import ArchiveProgressTarget

__all__ = ("load_from_stdin", "save_to_stdout")

_CHUNK = 1 << 20


@asynccontextmanager
async def _spool_file() -> AsyncIterator[Path]:
    """A path in a fresh private temporary directory, removed afterwards."""
    base = os.environ.get("TMPDIR") or "/var/tmp"
    directory = await anyio.to_thread.run_sync(
        lambda: tempfile.mkdtemp(prefix="aiopod-spool-", dir=base)
    )
    try:
        yield Path(directory) / "archive"
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, directory, True)


def _copy(src: BinaryIO, dst: BinaryIO) -> None:
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
    dst.flush()


def _spool_stdin(path: Path) -> None:
    with path.open("xb") as spooled:
        _copy(sys.stdin.buffer, spooled)


def _unspool_to_stdout(path: Path) -> None:
    with path.open("rb") as spooled:
        _copy(spooled, sys.stdout.buffer)


async def load_from_stdin(
    rt: Runtime, *, progress: ArchiveProgressTarget | None = None
) -> list[Image]:
    """Load the archive standard input holds (*progress* as :meth:`Runtime.load`'s)."""
    async with _spool_file() as path:
        await anyio.to_thread.run_sync(_spool_stdin, path, abandon_on_cancel=True)
        return await rt.load(path, progress=progress)


async def save_to_stdout(
    rt: Runtime,
    references: Sequence[str],
    format: SaveFormat,
    *,
    compression: SaveCompression | None = None,
    progress: ArchiveProgressTarget | None = None,
) -> None:
    """Save images as an archive written to standard output (*compression* and
    *progress* as :meth:`Runtime.save`'s)."""
    async with _spool_file() as path:
        await rt.save(path, references, format=format, compression=compression, progress=progress)
        await anyio.to_thread.run_sync(_unspool_to_stdout, path, abandon_on_cancel=True)
