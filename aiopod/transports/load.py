"""Loading archives and importing root file system tarballs into the store.

Each operation runs in two steps.  First, in one worker thread and outside the store
lock, the input is staged and *every* check is made (digests, sizes, diff_ids, media
types, JSON limits, names).  Then one store transaction moves the staged blobs in and
adds the image records.  A failure or cancellation before the commit leaves the store
as it was; the staging area is always removed.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.to_thread

from aiopod._platforms import local_architecture
from aiopod.errors import AiopodError, InvalidArchive
from aiopod.events.model import Event, EventKind
from aiopod.storage.compression import open_decompressed
from aiopod.storage.ingest import StagedBlob, StagingArea
from aiopod.storage.records import ImageRecord
from aiopod.storage.store import Store, Transaction
from aiopod.storage.threads import run_to_completion, run_until_stopped
from aiopod.transports.archive_progress import ArchiveReport, counted, report_loaded_image
from aiopod.transports.candidate import ImageCandidate, LayerBlob, build_record
from aiopod.transports.docker_archive import read_docker_archive
from aiopod.transports.oci_layout import read_oci_layout
from aiopod.transports.source import ArchiveLimits, open_source

__all__ = ("import_tarball", "load_archive", "merge_image")

Built = list[tuple[ImageRecord, list[StagedBlob]]]
#: What a load commits: the images as stored, and the events recorded with them.
Committed = tuple[list[ImageRecord], list[Event]]


def _stage_archive(
    area: StagingArea, path: Path, limits: ArchiveLimits, report: ArchiveReport | None
) -> Built:
    source = open_source(area, path, limits, report)
    if source.has("manifest.json"):
        candidates = read_docker_archive(source)
    elif source.has("index.json"):
        candidates = read_oci_layout(source)
    else:
        raise InvalidArchive(
            f"{path} is neither a docker-archive (no manifest.json) "
            "nor an OCI layout or oci-archive (no index.json)"
        )
    built = [build_record(candidate, area) for candidate in candidates]
    if report is not None:
        for record, _ in built:
            report_loaded_image(report, record)
    return built


def _check_tarball(blob: StagedBlob) -> None:
    try:
        with (
            blob.path.open("rb") as raw,
            tarfile.open(fileobj=open_decompressed(raw), mode="r|") as tar,
        ):
            for _ in tar:
                pass
    except AiopodError:
        raise  # a corrupt compressed stream: reported as such
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise InvalidArchive(f"not a tar archive: {exc}") from None


def _stage_tarball(
    area: StagingArea,
    path: Path,
    names: Sequence[str],
    limits: ArchiveLimits,
    report: ArchiveReport | None,
) -> Built:
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise InvalidArchive(f"{path}: {exc.strerror}") from None
    with stream:
        layer = area.ingest(
            counted(stream, str(path), os.fstat(stream.fileno()).st_size, report),
            max_size=limits.max_blob_bytes,
            max_uncompressed=limits.max_uncompressed_bytes,
            what=str(path),
        )
    _check_tarball(layer)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    layer_hex = layer.uncompressed_digest.removeprefix("sha256:")
    config_doc = {
        "created": created,
        "architecture": local_architecture(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.uncompressed_digest]},
        "history": [
            {
                "created": created,
                "created_by": f"/bin/sh -c #(nop) ADD file:{layer_hex} in /",
                "comment": "imported from tarball",
            }
        ],
    }
    data = json.dumps(config_doc, separators=(",", ":")).encode()
    config = area.ingest(io.BytesIO(data), max_size=len(data), max_uncompressed=len(data))
    candidate = ImageCandidate(
        config=config, config_doc=config_doc, layers=[LayerBlob(layer)], names=list(names)
    )
    built = [build_record(candidate, area)]
    if report is not None:
        report_loaded_image(report, built[0][0])
    return built


def merge_image(txn: Transaction, record: ImageRecord, blobs: Sequence[StagedBlob]) -> ImageRecord:
    """Put an incoming image into *txn* and return it as stored.

    A new image comes in with its staged *blobs*; an image the store already has (same
    ID) keeps its record and blobs and gains the incoming names and digests.
    """
    existing = txn.state.images.get(record.id)
    if existing is None:
        for blob in blobs:
            txn.add_blob(blob)
        merged = record
    else:
        merged = existing.with_names([*existing.names, *record.names])
        merged = replace(merged, digests=tuple(dict.fromkeys([*existing.digests, *record.digests])))
    txn.put(merged)
    return merged


async def _commit(store: Store, built: Built, source: str, path: Path) -> Committed:
    results = []
    async with store.transaction() as txn:
        for record, blobs in built:
            merged = merge_image(txn, record, blobs)
            results.append(merged)
            attributes = {"source": source, "path": str(path)}
            txn.emit(
                [
                    Event(EventKind.LOADED, "image", merged.id, n, attributes=attributes)
                    for n in (record.names or [None])
                ]
            )
    return results, txn.recorded


async def _stage_and_commit(
    store: Store,
    source: str,
    checkpoint: Callable[[], Awaitable[None]] | None,
    stage: object,
    path: Path,
    *args: object,
) -> Committed:
    area: StagingArea = await anyio.to_thread.run_sync(store.new_staging_area)
    try:
        # Stopped at its next chunk and waited for, whatever cancels the caller: the area
        # is removed only after it.
        built: Built = await run_until_stopped(stage, area, path, *args)  # type: ignore[arg-type]
        if checkpoint is not None:
            await checkpoint()
        return await _commit(store, built, source, path)
    finally:
        await run_to_completion(area.close)


async def load_archive(
    store: Store,
    path: Path,
    *,
    limits: ArchiveLimits | None = None,
    report: ArchiveReport | None = None,
    checkpoint: Callable[[], Awaitable[None]] | None = None,
) -> Committed:
    """Load every image of a docker-archive, oci-archive or OCI layout directory.

    Returns the images as stored (names merged with any the image already had) and the
    ``Loaded`` events recorded with them.  Takes
    the store's exclusive lock only for the final commit.  *report* receives the
    progress records (:mod:`aiopod.transports.archive_progress`) from the worker thread;
    *checkpoint* is awaited after the staging and before the commit (an exception it
    raises leaves the store unchanged).

    :raises ~aiopod.errors.InvalidArchive: the input is malformed; the store is unchanged.
    """
    return await _stage_and_commit(
        store, "archive", checkpoint, _stage_archive, path, limits or ArchiveLimits(), report
    )


async def import_tarball(
    store: Store,
    path: Path,
    names: Sequence[str] = (),
    *,
    limits: ArchiveLimits | None = None,
    report: ArchiveReport | None = None,
    checkpoint: Callable[[], Awaitable[None]] | None = None,
) -> Committed:
    """Make a one-layer image from a root file system tarball (plain or compressed);
    *report* and *checkpoint* as for :func:`load_archive`."""
    limits = limits or ArchiveLimits()
    return await _stage_and_commit(
        store, "tarball", checkpoint, _stage_tarball, path, names, limits, report
    )
