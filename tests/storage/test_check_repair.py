"""``check`` judges references between containers and images, and ``check(repair=True)``
tells what it changes: a damaged image goes with its ``Untagged`` and ``Deleted`` events,
never from under a container (the containers using it are removed first, with their
``Removed`` events and the reason), and a container whose image is missing is reported
and removed.  A staging area of another process is never a problem, also when it ends
while the check looks at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import store_of
from imagefactory import load_images, make_image

from aiopod import Runtime
from aiopod.events.model import EventKind
from aiopod.storage import check

pytestmark = pytest.mark.anyio

ONE = make_image("localhost/one:latest", seed="one")


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with Runtime(tmp_path / "store") as runtime:
        await load_images(runtime, tmp_path, ONE)
        await runtime.tag("one", "localhost/one:2")
        yield runtime


async def damage_a_layer(rt: Runtime) -> str:
    image = await rt.get_image("one")
    record = (await store_of(rt).snapshot()).images[image.id]
    blob = store_of(rt).blob_path(record.layers[0].digest)
    blob.write_bytes(b"not the layer any more")
    return image.id


def events_since(rt: Runtime, seen: int) -> list[tuple[EventKind, str, str, str | None]]:
    return [(e.kind, e.type, e.id, e.name) for e in list(rt.event_log.read())[seen:]]


async def test_a_damaged_image_is_removed_with_its_events(rt: Runtime) -> None:
    image_id = await damage_a_layer(rt)
    seen = len(list(rt.event_log.read()))
    report = await rt.check(repair=True)
    assert report.removed_images == [image_id]
    assert sorted(events_since(rt, seen)) == sorted(
        [
            (EventKind.UNTAGGED, "image", image_id, "localhost/one:latest"),
            (EventKind.UNTAGGED, "image", image_id, "localhost/one:2"),
            (EventKind.DELETED, "image", image_id, None),
        ]
    )
    assert await rt.images() == []
    assert (await rt.check()).ok


async def test_a_damaged_image_a_container_uses_goes_after_the_container(rt: Runtime) -> None:
    container = await rt.create_working_container("one")
    image_id = await damage_a_layer(rt)
    seen = len(list(rt.event_log.read()))

    report = await rt.check(repair=True)

    assert f"removed container {container.id}: it uses damaged image {image_id}" in (
        report.repaired
    )
    assert report.removed_images == [image_id]
    assert report.kept_damaged == []
    kinds = [(kind, type_) for kind, type_, _, _ in events_since(rt, seen)]
    assert kinds.index((EventKind.REMOVED, "container")) < kinds.index((EventKind.DELETED, "image"))
    assert await rt.containers(external=True) == []
    assert await rt.images() == []
    assert (await rt.check()).ok


async def test_a_check_without_repair_changes_nothing(rt: Runtime) -> None:
    container = await rt.create_working_container("one")
    image_id = await damage_a_layer(rt)
    seen = len(list(rt.event_log.read()))
    report = await rt.check()
    assert not report.ok
    assert any(image_id in problem for problem in report.problems)
    assert [c.id for c in await rt.containers(external=True)] == [container.id]
    assert events_since(rt, seen) == []


async def test_a_container_whose_image_is_missing_is_reported_and_removed(rt: Runtime) -> None:
    container = await rt.create_working_container("one")
    image = await rt.get_image("one")
    async with store_of(rt).transaction() as txn:  # as a damaged metadata file would be
        txn.remove(image.id)

    report = await rt.check()
    assert (
        f"container {container.id} ({container.name}) uses image {image.id}, "
        "which is not in the store"
    ) in report.problems
    seen = len(list(rt.event_log.read()))
    repaired = await rt.check(repair=True)
    assert f"removed container {container.id}: its image is missing" in repaired.repaired
    assert events_since(rt, seen) == [
        (EventKind.REMOVED, "container", container.id, container.name)
    ]
    assert await rt.containers(external=True) == []


async def test_a_staging_area_that_ends_while_the_check_looks_is_no_problem(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_of(rt)
    area = store.new_staging_area()  # another process's load, outside the store lock
    original = check._live_staging

    def live_staging_after_the_load_ended(tmp: Path) -> set[str]:
        area.close()  # the load finishes between the listing and the liveness test
        return original(tmp)

    monkeypatch.setattr(check, "_live_staging", live_staging_after_the_load_ended)
    report = await rt.check(repair=True)
    assert (report.problems, report.repaired) == ([], [])


async def test_a_live_staging_area_is_no_problem(rt: Runtime) -> None:
    area = store_of(rt).new_staging_area()
    try:
        report = await rt.check(repair=True)
        assert (report.problems, report.repaired) == ([], [])
        assert area.path.is_dir()
    finally:
        area.close()
