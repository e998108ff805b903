"""Progress of a removal (``rt.remove_images(..., progress=)``, ``rmi -a``): typed records
(the plan, then containers and images removed, counted), delivered to a callable or a
stream without holding the removal up; bars on a terminal, and on a standard error that
is not one nothing more than podman prints."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from conftest import store_of
from imagefactory import child_image, make_image, write_docker_archive
from peers import Podman
from test_archive_cli_progress import ours, run_on_a_terminal

from aiopod import (
    ContainersRemoving,
    Event,
    EventKind,
    ImagesRemoving,
    RemovalPlanned,
    RemovalRecord,
    Runtime,
)
from aiopod._progress_board import ProgressBoard
from aiopod.notebook import ProgressView

pytestmark = pytest.mark.anyio

BASE = make_image("localhost/base:1", seed="removal-progress-base")
APP = child_image(BASE, "localhost/app:1", files={"app/file": b"app"})
OTHER = make_image("localhost/other:1", "localhost/other:2", seed="removal-progress-other")


async def loaded(rt: Runtime, tmp_path: Path) -> None:
    await rt.load(write_docker_archive(tmp_path / "images.tar", [BASE, APP, OTHER]))


def last(records: list[RemovalRecord], kind: type[RemovalRecord]) -> RemovalRecord:
    return [r for r in records if isinstance(r, kind)][-1]


async def test_rmi_all_reports_its_plan_then_the_containers_and_images_removed(
    store: Path, tmp_path: Path
) -> None:
    records: list[RemovalRecord] = []
    async with Runtime(store) as rt:
        await loaded(rt, tmp_path)
        await rt.create_container("app:1", ["true"])
        report = await rt.remove_images(all=True, force=True, progress=records.append)
        assert await rt.images(all=True) == []
    assert records[0] == RemovalPlanned(
        untagged=len(report.untagged),
        deleted=len(report.deleted),
        containers=len(report.removed_containers),
    )
    assert (len(report.deleted), len(report.removed_containers)) == (3, 1)
    assert last(records, ContainersRemoving) == ContainersRemoving(1, 1)
    assert last(records, ImagesRemoving) == ImagesRemoving(3, 3)
    # The containers go before the images; counts never go back.
    kinds = [type(r) for r in records]
    assert kinds.index(ContainersRemoving) < kinds.index(ImagesRemoving)
    for kind in (ContainersRemoving, ImagesRemoving):
        counts = [r.done for r in records if isinstance(r, kind)]
        assert counts == sorted(counts)
    assert all(r.text == "" for r in records)  # podman prints nothing while rmi runs


async def test_the_containers_count_moves_as_each_containers_data_is_gone(
    store: Path, tmp_path: Path
) -> None:
    records: list[RemovalRecord] = []
    async with Runtime(store) as rt:
        await loaded(rt, tmp_path)
        ids = [(await rt.create_container("app:1", ["true"])).id for _ in range(3)]
        purged: list[int] = []
        async with store_of(rt).transaction() as txn:  # the step the count comes from
            assert await store_of(rt).purge_containers(txn, ids[:2], on_purged=purged.append) == {}
            for container_id in ids[:2]:
                txn.remove_container(container_id)
        assert purged == [1, 2]
        await rt.remove_images(["app:1"], force=True, progress=records.append)
    # The relay hands a slow consumer the latest count only: never back, ending at all.
    counts = [r.done for r in records if isinstance(r, ContainersRemoving)]
    assert counts == sorted(counts) and counts[-1] == 1


async def test_a_dry_run_reports_only_its_plan(store: Path, tmp_path: Path) -> None:
    records: list[RemovalRecord] = []
    async with Runtime(store) as rt:
        await loaded(rt, tmp_path)
        report = await rt.remove_images(all=True, dry_run=True, progress=records.append)
        assert len(await rt.images()) == 3
    assert records == [RemovalPlanned(len(report.untagged), len(report.deleted), 0)]


async def test_a_stream_consumer_never_holds_the_removal_up(store: Path, tmp_path: Path) -> None:
    """The consumer reads nothing until the removal has committed (its events are out);
    then it gets the records (the last count of each kind at least) and its ``async
    for`` ends with the removal."""
    send, receive = anyio.create_memory_object_stream[RemovalRecord](0)
    received: list[RemovalRecord] = []
    async with Runtime(store) as rt:
        await loaded(rt, tmp_path)
        async with rt.events.subscribe(kinds=[EventKind.DELETED]) as events:

            async def consume() -> None:
                assert isinstance(await events.receive(), Event)  # committed before we read
                async with receive:
                    async for record in receive:
                        received.append(record)

            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:
                    group.start_soon(consume)
                    await rt.remove_images(all=True, progress=send)
        assert await rt.images(all=True) == []
    assert received[0] == RemovalPlanned(untagged=4, deleted=3, containers=0)
    assert received[-1] == ImagesRemoving(3, 3)


async def test_a_callable_that_raises_on_the_plan_fails_the_removal_and_changes_nothing(
    store: Path, tmp_path: Path
) -> None:
    def refuse(record: RemovalRecord) -> None:
        raise RuntimeError("no progress wanted")

    async with Runtime(store) as rt:
        await loaded(rt, tmp_path)
        with pytest.raises(RuntimeError, match="no progress wanted"):
            await rt.remove_images(all=True, progress=refuse)
        assert len(await rt.images()) == 3


def test_the_displays_draw_counts_of_images_not_bytes() -> None:
    board = ProgressBoard()
    board.apply(RemovalPlanned(untagged=4, deleted=3, containers=1))
    board.apply(ContainersRemoving(1, 1))
    change = board.apply(ImagesRemoving(2, 3))
    assert change.counts_only
    bars = {bar.label: bar for bar in board.bars.values()}
    assert set(bars) == {"Removing containers", "Removing images"}
    assert (bars["Removing images"].done, bars["Removing images"].total) == (2, 3)
    assert bars["Removing images"].unit == "images"
    text = ProgressView(list(board.bars.values()), list(board.lines)).display_text()
    assert "2/3 images" in text and "1/1 containers" in text
    assert not board.lines  # no text lines


def test_rmi_all_draws_bars_on_a_terminal(tmp_path: Path) -> None:
    root = tmp_path / "store"
    archive = write_docker_archive(tmp_path / "images.tar", [BASE, APP, OTHER])
    assert ours(root, "load", "-q", "-i", str(archive)).returncode == 0
    status, screen = run_on_a_terminal(root, "rmi", "-a")
    assert status == 0, screen
    assert "Removing images" in screen and "3/3 images" in screen and "\x1b[" in screen
    assert ours(root, "images", "-q").stdout == ""


@pytest.mark.peer("podman")
def test_rmi_all_prints_what_podman_prints_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    archive = write_docker_archive(tmp_path / "images.tar", [BASE, APP, OTHER])
    podman = Podman.create(tmp_path / "podman")
    try:
        podman("load", "-q", "-i", archive)
        theirs = podman("rmi", "-a")
    finally:
        podman.cleanup()
    root = tmp_path / "store"
    assert ours(root, "load", "-q", "-i", str(archive)).returncode == 0
    mine = ours(root, "rmi", "-a")
    assert (mine.returncode, mine.stderr) == (theirs.returncode, theirs.stderr) == (0, "")
    assert sorted(mine.stdout.splitlines()) == sorted(theirs.stdout.splitlines())
