"""A build's working containers live as long as the build's process, through the API.

A working container made for a build (``owned=True``, as the builder makes them) names its
process.  While that process runs the container is a build's at work: ``check`` finds
nothing wrong and ``rmi`` of its image says to wait for the build.  Once the process has
ended the container is a leftover: ``check`` reports it, ``rmi`` says how to remove it,
and ``check(repair=True)`` removes it with a ``Removed`` event, as ``remove_containers``
would.  Containers made to stay (``create_working_container``, ``aiopod from``) are never
leftovers.  The ended builds here are real processes that made their container and exited.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from conftest import store_of
from imagefactory import load_images, make_image
from peers import aiopod_env

from aiopod import Runtime
from aiopod._containers import create_container
from aiopod.events.model import EventKind
from aiopod.storage.store import Store

pytestmark = pytest.mark.anyio

ONE = make_image("localhost/one:latest", seed="one")

#: A process that makes a build's working container of ``one`` and ends.
ENDED_BUILD = (
    "import anyio, sys; from aiopod._containers import create_container; "
    "from aiopod.storage.store import Store\n"
    "async def main():\n"
    "    store = Store(sys.argv[1]); await store.open()\n"
    "    record, _ = await create_container(store, 'one', external=True, owned=True)\n"
    "    print(record.id)\n"
    "anyio.run(main)\n"
)


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with Runtime(tmp_path / "store") as runtime:
        await load_images(runtime, tmp_path, ONE)
        yield runtime


def container_of_an_ended_build(store: Path) -> str:
    cmd = [sys.executable, "-c", ENDED_BUILD, str(store)]
    out = subprocess.run(cmd, env=aiopod_env(), check=True, capture_output=True, text=True)
    return out.stdout.strip()


async def test_a_container_of_a_running_build_is_no_leftover(rt: Runtime) -> None:
    record, _ = await create_container(store_of(rt), "one", external=True, owned=True)
    report = await rt.check(repair=True)
    assert (report.problems, report.repaired) == ([], [])
    removal = await rt.remove_images(["one"])
    assert [e.message for e in removal.errors] == [
        f"image is in use by external container {record.id[:12]} ({record.name}) of a build "
        f"still running (process {record.owner.pid if record.owner else None}): "
        "wait for the build to finish"
    ]
    assert [c.id for c in await rt.containers(external=True)] == [record.id]


async def test_a_container_of_an_ended_build_is_reported_and_repair_removes_it(
    rt: Runtime, tmp_path: Path
) -> None:
    kept = await rt.create_working_container("one")  # made to stay: never a leftover
    left = container_of_an_ended_build(rt.root)
    [container] = [c for c in await rt.containers(external=True) if c.id == left]

    report = await rt.check()
    assert report.leftover_containers == [left]
    [problem] = report.problems
    assert problem.startswith(f"leftover container {left} ({container.name}): the build ")
    assert problem.endswith(") is no longer running")

    removal = await rt.remove_images(["one"])
    assert [e.message for e in removal.errors] == [
        f"image is in use by external container {kept.short_id} ({kept.name}), "
        f"external container {left[:12]} ({container.name}) of a build that is no longer "
        f'running: remove them with "aiopod rm {kept.short_id} {left[:12]}", '
        "or force the removal"
    ]

    async with rt.events.subscribe(kinds=[EventKind.REMOVED]) as events:
        repaired = await rt.check(repair=True)
        with anyio.fail_after(10):
            published = await events.receive()
    assert repaired.repaired == [f"removed leftover container {left}"]
    assert [(e.kind, e.type, e.id) for e in repaired.events] == [
        (EventKind.REMOVED, "container", left)
    ]
    assert published == repaired.events[0]
    logged = [e for e in rt.event_log.read() if e.kind is EventKind.REMOVED]
    assert [(e.type, e.id) for e in logged] == [("container", left)]
    assert [c.id for c in await rt.containers(external=True)] == [kept.id]
    assert not (rt.root / "aiopod" / "containers" / left).exists()
    assert (await rt.check()).ok


async def test_only_the_leftover_blocks_rmi_until_it_is_removed(rt: Runtime) -> None:
    left = container_of_an_ended_build(rt.root)
    removal = await rt.remove_images(["one"])
    [error] = removal.errors
    assert error.message.endswith(
        f'of a build that is no longer running: remove it with "aiopod rm {left[:12]}" '
        'or "aiopod system check --repair"'
    )
    assert removal.exit_code == 2
    await rt.check(repair=True)
    assert (await rt.remove_images(["one"])).deleted == [ONE.id]


async def test_the_store_of_a_runtime_sees_what_another_store_object_made(tmp_path: Path) -> None:
    """The owner survives the store's metadata: another Store object reads it back."""
    async with Runtime(tmp_path / "store") as rt:
        await load_images(rt, tmp_path, ONE)
        record, _ = await create_container(store_of(rt), "one", external=True, owned=True)
    other = Store(tmp_path / "store")
    await other.open()
    assert (await other.snapshot()).containers[record.id].owner == record.owner
