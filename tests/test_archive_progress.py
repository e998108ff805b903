"""Progress of ``load``, ``import`` and ``save`` (``progress=``): typed records whose text
is podman's standard error for the same archives, delivered to a callable or a stream
without ever holding the work up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from imagefactory import (
    child_image,
    make_image,
    rootfs_tarball,
    write_docker_archive,
    write_oci_archive,
)
from peers import Podman

import aiopod
from aiopod import (
    ArchiveRead,
    ArchiveRecord,
    BlobDone,
    BlobProgress,
    BlobStarted,
    CopyStarted,
    Event,
    EventKind,
    Runtime,
)
from aiopod._relay import relay
from aiopod.sync import Runtime as SyncRuntime

pytestmark = pytest.mark.anyio

BASE = make_image("localhost/base:1", seed="progress-base")
APP = child_image(BASE, "localhost/app:1", files={"app/big": bytes(range(256)) * 8192})


def text(records: list[ArchiveRecord]) -> str:
    return "".join(record.text for record in records)


def blobs_sorted(stderr: str) -> list[str]:
    """*stderr*'s lines with each run of ``Copying blob`` lines sorted: podman copies a
    load's layers concurrently, so it prints them in the order its goroutines start
    (aiopod's records come in layer order)."""
    lines: list[str] = []
    run: list[str] = []
    for line in [*stderr.splitlines(), ""]:
        if line.startswith("Copying blob "):
            run.append(line)
            continue
        lines += sorted(run)
        run = []
        lines.append(line)
    return lines


@pytest.mark.peer("podman")
@pytest.mark.parametrize(
    "archive_of",
    [
        lambda path: write_docker_archive(path, [BASE, APP]),
        lambda path: write_oci_archive(path, [APP]),  # podman loads one image of an oci-archive
    ],
    ids=["docker-archive", "oci-archive"],
)
async def test_a_loads_records_are_podmans_lines(
    store: Path, tmp_path: Path, podman: Podman, archive_of: Callable[[Path], Path]
) -> None:
    archive = archive_of(tmp_path / "images.tar")
    records: list[ArchiveRecord] = []
    async with Runtime(store) as rt:
        await rt.load(archive, progress=records.append)
    assert blobs_sorted(text(records)) == blobs_sorted(podman("load", "-i", archive).stderr)
    reads = [r for r in records if isinstance(r, ArchiveRead)]
    size = archive.stat().st_size
    assert reads and reads[-1] == ArchiveRead(str(archive), size, size)
    assert [r.done for r in reads] == sorted(r.done for r in reads)
    assert records.index(reads[-1]) < records.index(CopyStarted())  # read, then verified


@pytest.mark.peer("podman")
async def test_a_saves_records_are_podmans_lines(
    store: Path, tmp_path: Path, podman: Podman
) -> None:
    archive = write_docker_archive(tmp_path / "images.tar", [BASE, APP])
    podman("load", "-i", archive)
    records: list[ArchiveRecord] = []
    async with Runtime(store) as rt:
        await rt.load(archive)
        await rt.save(tmp_path / "saved.tar", ["app:1"], progress=records.append)
    expected = podman("save", "-o", tmp_path / "podman.tar", "app:1").stderr
    assert text(records) == expected
    big = APP.diff_ids[-1]
    sizes = [r.done for r in records if isinstance(r, BlobProgress) and r.digest == big]
    assert sizes and sizes[-1] == len(APP.layers[-1])  # bytes of the layer as written
    assert records.index(BlobStarted(big, len(APP.layers[-1]))) < records.index(
        BlobDone(big, len(APP.layers[-1]))
    )


@pytest.mark.peer("podman")
async def test_an_imports_records_are_podmans_lines(
    store: Path, tmp_path: Path, podman: Podman
) -> None:
    tarball, _ = rootfs_tarball(tmp_path / "rootfs.tar", {"etc/hostname": b"box\n"})
    records: list[ArchiveRecord] = []
    async with Runtime(store) as rt:
        image = await rt.import_image(tarball, "imported:1", progress=records.append)
    theirs = podman("import", tarball, "imported:1")
    podman_id = theirs.stdout.strip().removeprefix("sha256:")
    # The config holds the import's time, so the two configs (image IDs) differ.
    assert text(records).replace(image.id, "<id>") == theirs.stderr.replace(podman_id, "<id>")


async def test_a_stream_consumer_never_holds_the_load_up(store: Path, tmp_path: Path) -> None:
    """The consumer reads nothing until the load has committed (its Loaded event is
    out); then it gets every record but the byte counts it was too slow for, in order,
    and its ``async for`` ends with the load."""
    archive = write_oci_archive(tmp_path / "images.tar", [BASE, APP])
    send, receive = anyio.create_memory_object_stream[ArchiveRecord](1)
    received: list[ArchiveRecord] = []
    async with Runtime(store) as rt, rt.events.subscribe(kinds=[EventKind.LOADED]) as events:

        async def consume() -> None:
            assert isinstance(await events.receive(), Event)  # committed before we read
            async with receive:
                async for record in receive:
                    received.append(record)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(consume)
                await rt.load(archive, progress=send)
    called: list[ArchiveRecord] = []
    async with Runtime(tmp_path / "other") as rt:
        await rt.load(archive, progress=called.append)
    assert text(received) == text(called)
    assert [r for r in received if not isinstance(r, ArchiveRead)] == [
        r for r in called if not isinstance(r, ArchiveRead)
    ]


async def test_a_callable_that_raises_fails_the_load_and_changes_nothing(
    store: Path, tmp_path: Path
) -> None:
    archive = write_oci_archive(tmp_path / "images.tar", [BASE])

    def refuse(record: ArchiveRecord) -> None:
        raise RuntimeError("no progress wanted")

    async with Runtime(store) as rt:
        with pytest.raises(RuntimeError, match="no progress wanted"):
            await rt.load(archive, progress=refuse)
        assert await rt.images() == []


async def test_a_slow_consumer_gets_the_latest_count_not_every_count() -> None:
    delivered: list[object] = []
    async with relay(delivered.append) as relayed:
        for done in range(1, 1001):  # no await: the deliveries have not run yet
            relayed.report(BlobProgress("sha256:x", done, 1000))
        relayed.report(BlobDone("sha256:x", 1000))
        relayed.report(BlobProgress("sha256:y", 1, 2))
    assert delivered == [
        BlobProgress("sha256:x", 1000, 1000),
        BlobDone("sha256:x", 1000),
        BlobProgress("sha256:y", 1, 2),
    ]


def test_the_sync_facade_reports_progress_too(tmp_path: Path) -> None:
    archive = write_oci_archive(tmp_path / "images.tar", [BASE])
    records: list[ArchiveRecord] = []
    with SyncRuntime(tmp_path / "store") as rt:
        rt.load(archive, progress=records.append)
        rt.save(tmp_path / "out.tar", ["base:1"], format="oci-archive", progress=records.append)
    assert sum(isinstance(r, CopyStarted) for r in records) == 1
    assert sum(isinstance(r, aiopod.SignaturesStoring) for r in records) == 2


async def test_a_check_reports_the_bytes_it_verified(store: Path, tmp_path: Path) -> None:
    """Counts that grow to the bytes of every blob the images need."""
    archive = write_oci_archive(tmp_path / "images.tar", [APP])
    records: list[aiopod.CheckProgress] = []
    async with Runtime(store) as rt:
        [app] = await rt.load(archive)
        report = await rt.check(progress=records.append)
    assert report.ok
    # The store holds APP's blobs and nothing else: manifest, config, two (gzip) layers.
    blobs = list((store / "blobs" / "sha256").iterdir())
    assert len(blobs) == 4 and app.digest.removeprefix("sha256:") in {b.name for b in blobs}
    total = sum(blob.stat().st_size for blob in blobs)
    assert records[-1] == aiopod.CheckProgress(total, total)
    assert [r.done for r in records] == sorted(r.done for r in records)
