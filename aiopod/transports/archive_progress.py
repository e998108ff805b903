"""What a load, an import or a save reports while it runs: typed records, each with the
line podman prints for it (``.text``), as a pull's and a push's
(:mod:`aiopod.transports.registry.progress`, whose record types these reuse)::

    ArchiveRead        (nothing) bytes of the archive read (load and import)
    CopyStarted        Getting image source signatures          (load and import, per image)
    BlobStarted        Copying blob sha256:3173591cc540...      (every layer)
                       Copying config sha256:d076079146e9...    (then the config)
    BlobProgress       (nothing) bytes of a blob written (save)
    BlobDone           (nothing) a blob is verified (load) or written (save)
    ManifestWriting    Writing manifest to image destination
    SignaturesStoring  Storing signatures

For a load the records of an image come once the whole archive has been read and
verified (``ArchiveRead`` reports the reading), its layers in order (podman copies them
concurrently and prints its ``Copying blob`` lines in the order its copies start); for
a save, as each blob is written.
The work runs in worker threads and hands them over through :mod:`aiopod._relay`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Literal, TypeAlias

from aiopod._relay import ProgressSink
from aiopod.storage.records import ImageRecord
from aiopod.transports.registry.progress import (
    BlobDone,
    BlobProgress,
    BlobStarted,
    CopyStarted,
    ManifestWriting,
    SignaturesStoring,
)

__all__ = (
    "ArchiveProgressTarget",
    "ArchiveRead",
    "ArchiveRecord",
    "ArchiveReport",
    "BlobWriting",
    "CountingReader",
    "counted",
    "report_loaded_image",
    "report_saved",
)


@dataclass(frozen=True, slots=True)
class ArchiveRead:
    """``done`` bytes of the archive at ``path`` have been read, of ``total`` (``None``
    for an OCI layout directory, read blob by blob)."""

    path: str
    done: int
    total: int | None

    @property
    def text(self) -> str:
        """Nothing: podman shows no such line."""
        return ""


ArchiveRecord: TypeAlias = (
    ArchiveRead
    | CopyStarted
    | BlobStarted
    | BlobProgress
    | BlobDone
    | ManifestWriting
    | SignaturesStoring
)

#: How the work reports a record (from any thread; it never waits).
ArchiveReport: TypeAlias = Callable[[ArchiveRecord], None]

#: Where a load's, an import's or a save's records go (``progress=``): a callable, called
#: in the event loop's thread (it must not block), or the send end of an anyio memory
#: object stream, closed when the call ends (see :mod:`aiopod._relay`).
ArchiveProgressTarget: TypeAlias = ProgressSink[ArchiveRecord]


def report_loaded_image(report: ArchiveReport, record: ImageRecord) -> None:
    """podman's records for an image a load or an import has verified."""
    report(CopyStarted())
    for layer in record.layers:
        report(BlobStarted(layer.digest, layer.size))
        report(BlobDone(layer.digest, layer.size))
    config_digest = "sha256:" + record.id
    report(BlobStarted(config_digest, record.config_size, "config"))
    report(BlobDone(config_digest, record.config_size))
    report(ManifestWriting())
    report(SignaturesStoring())


class BlobWriting:
    """A save's records for one blob: ``Copying blob`` (or ``config``) when it starts,
    bytes written while it is (for :meth:`aiopod.transports.tarwriter.TarWriter.add_path`'s
    *progress*), done when it is written."""

    def __init__(
        self,
        report: ArchiveReport | None,
        digest: str,
        size: int,
        kind: Literal["blob", "config"] = "blob",
    ) -> None:
        self._report = report
        self._digest = digest
        self._size = size
        if report is not None:
            report(BlobStarted(digest, size, kind))

    def written(self, done: int) -> None:
        """*done* bytes of the blob are written."""
        if self._report is not None:
            self._report(BlobProgress(self._digest, done, self._size))

    def done(self) -> None:
        """The blob is written."""
        if self._report is not None:
            self._report(BlobDone(self._digest, self._size))


def report_saved(report: ArchiveReport | None) -> None:
    """The records that end a save (podman's last two lines)."""
    if report is not None:
        report(ManifestWriting())
        report(SignaturesStoring())


class CountingReader(io.RawIOBase):
    """A raw binary file that reports how much of it has been read (``ArchiveRead``);
    wrap it in :class:`io.BufferedReader`.  *done* is where the count starts (the bytes of
    a directory's earlier blobs)."""

    def __init__(
        self, raw: BinaryIO, path: str, total: int | None, report: ArchiveReport, done: int = 0
    ) -> None:
        super().__init__()
        self._raw = raw
        self._path = path
        self._total = total
        self._report = report
        self.done = done

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        if data:
            self.done += len(data)
            self._report(ArchiveRead(self._path, self.done, self._total))
        return len(data)


def counted(
    raw: BinaryIO, path: str, total: int | None, report: ArchiveReport | None, done: int = 0
) -> BinaryIO:
    """*raw*, reporting its reading to *report* (as it is, without one)."""
    if report is None:
        return raw
    return io.BufferedReader(CountingReader(raw, path, total, report, done))
