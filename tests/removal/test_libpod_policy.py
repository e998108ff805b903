"""The ``libpod`` removal policy (aiopod's default): one test per branch of LP1-LP6 of
``docs/design/removal-rules.md`` (``test_stepN_...`` proves LPN) and of its command-line
wrapping.

Each test checks the exact message and exit code, what is left in the store, which
containers went, and the events.  Images are built in Python (``imagefactory``), so no
peer is needed.  Also here: the fixed defect (force, several names, removal by ID:
runtime containers go as containers), concurrent deletion of storage containers, a
container whose data cannot be deleted, dry runs, cancellation at every await point,
and two processes removing the same image at once.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from conftest import store_of
from differential import aiopod_subprocess_env
from imagefactory import FakeImage, child_image, load_images, make_image
from peers import store_snapshot

from aiopod import Runtime
from aiopod.errors import RuntimeStopped
from aiopod.events.log import EventLog
from aiopod.events.model import EventKind
from aiopod.removal.plan import RemovalReport
from aiopod.storage.store import Store

pytestmark = [pytest.mark.anyio, pytest.mark.both_backends]  # the core API, on both

APP = make_image("localhost/app:1", "localhost/app:2", seed="app")  # two names
ONE = make_image("localhost/one:latest", seed="one")
OTHER = make_image("localhost/other:latest", seed="other")
UNTAGGED = make_image(seed="untagged")
BASE = make_image("localhost/base:latest", seed="base")
CHILD = child_image(BASE, "localhost/child:latest", files={"etc/child": b"child"})
GRANDCHILD = child_image(CHILD, "localhost/grandchild:latest", files={"etc/gc": b"gc"})


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A libpod-policy runtime on a fresh store."""
    async with Runtime(tmp_path / "store", policy="libpod") as runtime:
        yield runtime


async def load(rt: Runtime, tmp_path: Path, *images: FakeImage) -> None:
    await load_images(rt, tmp_path, *images)


async def names_by_id(rt: Runtime) -> dict[str, list[str]]:
    """Every image (intermediate ones too) with its names."""
    return {image.id: list(image.names) for image in await rt.images(all=True)}


async def container_ids(rt: Runtime) -> set[str]:
    return {c.id for c in await rt.containers(external=True)}


def kinds(report: RemovalReport) -> list[tuple[str, str, str | None]]:
    """(kind, type, ID or name) of each event a removal recorded, in order."""
    return [
        (e.kind.value, e.type, e.name if e.type == "container" else e.id) for e in report.events
    ]


async def assert_clean(rt: Runtime) -> None:
    report = await rt.check()
    assert report.ok, report.problems


# --------------------------------------------------------------------------------------------
# LP1: the lock, a stopped runtime


async def test_step1_a_closed_runtime_refuses_to_remove(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path / "store", policy="libpod")
    async with runtime:
        await load(runtime, tmp_path, ONE)
    with pytest.raises(RuntimeStopped, match=r"^runtime has already been stopped$"):
        await runtime.remove_images(["one"])


async def test_step1_two_removals_of_one_image_in_one_runtime_are_serialised(
    rt: Runtime, tmp_path: Path
) -> None:
    await load(rt, tmp_path, ONE)
    reports: list[RemovalReport] = []

    async def remove() -> None:
        reports.append(await rt.remove_images(["one"]))

    async with anyio.create_task_group() as group:
        group.start_soon(remove)
        group.start_soon(remove)
    first, second = reports
    assert (first.deleted, first.exit_code) == ([ONE.id], 0)
    assert [e.message for e in second.errors] == ["one: image not known"]
    assert (second.deleted, second.exit_code) == ([], 1)
    await assert_clean(rt)


# --------------------------------------------------------------------------------------------
# LP2: runtime containers and an image with at most one name


async def test_step2_runtime_containers_block_an_image_with_one_name(
    rt: Runtime, tmp_path: Path
) -> None:
    await load(rt, tmp_path, ONE)
    await rt.create_container("one", ["true"], name="c1")
    await rt.create_container("one", ["true"], name="c2")
    before = await container_ids(rt)
    report = await rt.remove_images(["one"])
    assert [e.message for e in report.errors] == [
        f"could not remove image {ONE.id} as it is being used by 2 containers"
    ]
    assert report.exit_code == 2
    assert (report.untagged, report.deleted, report.events) == ([], [], [])
    assert await names_by_id(rt) == {ONE.id: ["localhost/one:latest"]}
    assert await container_ids(rt) == before


async def test_step2_runtime_containers_block_an_untagged_image_by_id(
    rt: Runtime, tmp_path: Path
) -> None:
    await load(rt, tmp_path, UNTAGGED)
    await rt.create_container(UNTAGGED.id, ["true"], name="c1")
    report = await rt.remove_images([UNTAGGED.id[:12]])
    assert [e.message for e in report.errors] == [
        f"could not remove image {UNTAGGED.id} as it is being used by 1 containers"
    ]
    assert (report.exit_code, report.events, report.removed_containers) == (2, [], [])
    assert await names_by_id(rt) == {UNTAGGED.id: []}
    assert len(await container_ids(rt)) == 1


async def test_step2_force_removes_runtime_containers_as_containers(
    rt: Runtime, tmp_path: Path
) -> None:
    await load(rt, tmp_path, ONE, OTHER)
    c1 = await rt.create_container("one", ["true"], name="c1")
    c2 = await rt.create_container("one", ["true"], name="c2")
    keep = await rt.create_container("other", ["true"], name="keep")
    report = await rt.remove_images(["one"], force=True)
    assert report.errors == []
    assert (report.untagged, report.deleted) == (["localhost/one:latest"], [ONE.id])
    assert sorted(report.removed_containers) == sorted([c1.id, c2.id])
    assert await container_ids(rt) == {keep.id}
    assert not store_of(rt).container_dir(c1.id).exists()
    assert not store_of(rt).container_dir(c2.id).exists()
    assert store_of(rt).container_dir(keep.id).exists()
    assert kinds(report) == [
        ("Removed", "container", "c1"),
        ("Removed", "container", "c2"),
        ("Untagged", "image", ONE.id),
        ("Deleted", "image", ONE.id),
    ]
    await assert_clean(rt)


async def test_step2_a_container_that_cannot_be_removed_keeps_the_image(
    rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await load(rt, tmp_path, ONE)
    c1 = await rt.create_container("one", ["true"], name="c1")
    stuck = await rt.create_container("one", ["true"], name="stuck")
    c3 = await rt.create_container("one", ["true"], name="c3")
    purge = Store._purge_container_dir

    def failing_purge(store: Store, container_id: str) -> None:
        if container_id == stuck.id:
            raise OSError(errno.EPERM, "Operation not permitted")
        purge(store, container_id)

    monkeypatch.setattr(Store, "_purge_container_dir", failing_purge)
    report = await rt.remove_images(["one"], force=True)
    monkeypatch.undo()
    assert [e.message for e in report.errors] == [
        f"error removing image {ONE.id}: container {stuck.id} using image could not be "
        "removed: Operation not permitted"
    ]
    assert report.exit_code == 125
    assert (report.untagged, report.deleted) == ([], [])
    assert await names_by_id(rt) == {ONE.id: ["localhost/one:latest"]}
    assert await container_ids(rt) == {stuck.id}
    assert store_of(rt).container_dir(stuck.id).exists()
    assert not store_of(rt).container_dir(c1.id).exists()
    assert not store_of(rt).container_dir(c3.id).exists()
    removed = {name for kind, _, name in kinds(report) if kind == "Removed"}
    assert removed == {"c1", "c3"}
    await assert_clean(rt)


# --------------------------------------------------------------------------------------------
# LP3: an untag, never a deletion


async def test_step3_a_name_of_an_image_with_two_names_is_untagged_whatever_uses_it(
    rt: Runtime, tmp_path: Path
) -> None:
    await load(rt, tmp_path, APP)
    container = await rt.create_container("app:1", ["true"], name="c1")
    report = await rt.remove_images(["localhost/app:1"], force=True)
    assert (report.untagged, report.deleted, report.errors) == (["localhost/app:1"], [], [])
    assert await names_by_id(rt) == {APP.id: ["localhost/app:2"]}
    assert await container_ids(rt) == {container.id}
    assert kinds(report) == [("Untagged", "image", APP.id)]


@pytest.mark.parametrize(
    ("typed", "untagged"),
    [
        ("app", "localhost/app:latest"),
        ("app:2", "localhost/app:2"),
        ("x/app:2", "quay.io/x/app:2"),
    ],
)
async def test_step3_short_and_partial_names_match_the_name_they_normalise_to(
    rt: Runtime, tmp_path: Path, typed: str, untagged: str
) -> None:
    image = APP.named("localhost/app:latest", "localhost/app:2", "quay.io/x/app:2")
    await load(rt, tmp_path, image)
    report = await rt.remove_images([typed])
    assert (report.untagged, report.deleted, report.errors) == ([untagged], [], [])
    assert kinds(report) == [("Untagged", "image", APP.id)]
    left = {"localhost/app:latest", "localhost/app:2", "quay.io/x/app:2"} - {untagged}
    assert set((await names_by_id(rt))[APP.id]) == left


async def test_step3_a_parent_with_children_is_only_untagged(rt: Runtime, tmp_path: Path) -> None:
    await load(rt, tmp_path, BASE, CHILD)
    await rt.create_container("child", ["true"], name="c1")
    report = await rt.remove_images(["base"], force=True)
    assert (report.untagged, report.deleted, report.errors) == (["localhost/base:latest"], [], [])
    assert kinds(report) == [("Untagged", "image", BASE.id)]
    assert len(await container_ids(rt)) == 1
    assert await names_by_id(rt) == {BASE.id: [], CHILD.id: ["localhost/child:latest"]}
    intermediate = [i for i in await rt.images(all=True) if i.id == BASE.id]
    assert intermediate[0].intermediate


async def test_step2_then_step3_force_removes_the_parents_containers_then_untags_it(
    rt: Runtime, tmp_path: Path
) -> None:
    await load(rt, tmp_path, BASE, CHILD)
    on_base = await rt.create_container("base", ["true"], name="c1")
    on_child = await rt.create_container("child", ["true"], name="c2")
    report = await rt.remove_images(["base"], force=True)
    assert (report.untagged, report.deleted, report.errors) == (["localhost/base:latest"], [], [])
    assert report.removed_containers == [on_base.id]
    assert kinds(report) == [("Removed", "container", "c1"), ("Untagged", "image", BASE.id)]
    assert await names_by_id(rt) == {BASE.id: [], CHILD.id: ["localhost/child:latest"]}
    assert await container_ids(rt) == {on_child.id}
    await assert_clean(rt)


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
async def test_step3_a_parent_with_children_by_id_cannot_be_forced(
    rt: Runtime, tmp_path: Path, force: bool
) -> None:
    await load(rt, tmp_path, BASE, CHILD)
    report = await rt.remove_images([BASE.id], force=force)
    assert [e.message for e in report.errors] == [
        f'unable to delete "{BASE.id}" (cannot be forced) - image has dependent child images'
    ]
    assert (report.exit_code, report.events) == (125, [])
    assert await names_by_id(rt) == {
        BASE.id: ["localhost/base:latest"],
        CHILD.id: ["localhost/child:latest"],
    }


async def test_step3_input_that_matches_no_name_is_an_error(rt: Runtime, tmp_path: Path) -> None:
    await load(rt, tmp_path, APP)
    digest = (await rt.get_image("localhost/app:1")).digest
    report = await rt.remove_images([f"localhost/nosuchrepo@{digest}"], force=True)
    assert [e.message for e in report.errors] == [
        "unable to match user input to any specific repotag"
    ]
    assert (report.exit_code, report.events) == (125, [])
    assert await names_by_id(rt) == {APP.id: ["localhost/app:1", "localhost/app:2"]}


# --------------------------------------------------------------------------------------------
# LP4: several names, removed by ID without force


@pytest.mark.parametrize("how", ["full", "short", "sha256"])
async def test_step4_an_id_of_an_image_with_several_names_must_be_forced(
    rt: Runtime, tmp_path: Path, how: str
) -> None:
    await load(rt, tmp_path, APP)
    typed = {"full": APP.id, "short": APP.id[:12], "sha256": "sha256:" + APP.id}[how]
    report = await rt.remove_images([typed])
    assert [e.message for e in report.errors] == [
        f"unable to delete {APP.id} (must force) - image is referred to in multiple tags"
    ]
    assert report.exit_code == 125
    assert await names_by_id(rt) == {APP.id: ["localhost/app:1", "localhost/app:2"]}
    assert report.events == []


# --------------------------------------------------------------------------------------------
# LP5: storage containers still using the image


async def test_step5_a_storage_container_blocks_without_force(rt: Runtime, tmp_path: Path) -> None:
    await load(rt, tmp_path, ONE)
    working = await rt.create_working_container("one")
    report = await rt.remove_images(["one"])
    short = working.id[:12]
    assert [e.message for e in report.errors] == [
        f"image is in use by external container {short} (one-working-container): "
        f'remove it with "aiopod rm {short}", or force the removal'
    ]
    assert (report.exit_code, report.events, report.removed_containers) == (2, [], [])
    assert await names_by_id(rt) == {ONE.id: ["localhost/one:latest"]}
    assert await container_ids(rt) == {working.id}


async def test_step5_force_deletes_many_storage_containers_concurrently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Runtime(tmp_path / "store", policy="libpod", concurrency=4) as rt:
        await load(rt, tmp_path, ONE)
        working = [await rt.create_working_container("one") for _ in range(12)]
        purge = Store._purge_container_dir
        lock = threading.Lock()
        active, most = 0, 0

        def slow_purge(store: Store, container_id: str) -> None:
            nonlocal active, most
            with lock:
                active += 1
                most = max(most, active)
            time.sleep(0.05)
            with lock:
                active -= 1
            purge(store, container_id)

        monkeypatch.setattr(Store, "_purge_container_dir", slow_purge)
        report = await rt.remove_images(["one"], force=True)
        monkeypatch.undo()
        assert report.errors == []
        assert (report.untagged, report.deleted) == (["localhost/one:latest"], [ONE.id])
        assert sorted(report.removed_containers) == sorted(c.id for c in working)
        assert 2 <= most <= 4, f"at most {most} deletions ran at once"
        assert kinds(report) == [
            *(("Removed", "container", c.name) for c in working),
            ("Untagged", "image", ONE.id),
            ("Deleted", "image", ONE.id),
        ]
        assert await container_ids(rt) == set()
        assert not any(store_of(rt).container_dir(c.id).exists() for c in working)
        await assert_clean(rt)


async def test_step5_defect_fixed_force_by_id_removes_runtime_containers_as_containers(
    rt: Runtime, tmp_path: Path
) -> None:
    """|N| > 1, R an ID, F: LP2 does not apply, yet runtime containers go as containers
    (record, data and a Removed event), not only their storage."""
    await load(rt, tmp_path, APP)
    runtime = await rt.create_container("app:1", ["true"], name="c1")
    working = await rt.create_working_container("app:2", name="w1")
    report = await rt.remove_images([APP.id[:12]], force=True)
    assert report.errors == []
    assert report.untagged == ["localhost/app:1", "localhost/app:2"]
    assert report.deleted == [APP.id]
    assert sorted(report.removed_containers) == sorted([runtime.id, working.id])
    assert await rt.containers(external=True) == []
    assert not store_of(rt).container_dir(runtime.id).exists()
    assert not store_of(rt).container_dir(working.id).exists()
    removed = [e for e in report.events if e.kind is EventKind.REMOVED]
    assert ("c1", "false") in {(e.name, e.attributes.get("external")) for e in removed}
    assert kinds(report)[-3:] == [
        ("Untagged", "image", APP.id),
        ("Untagged", "image", APP.id),
        ("Deleted", "image", APP.id),
    ]
    await assert_clean(rt)


# --------------------------------------------------------------------------------------------
# LP6: the report; dangling parents stay


async def test_step6_every_name_is_reported_untagged_then_the_deletion(
    rt: Runtime, tmp_path: Path
) -> None:
    await load(rt, tmp_path, APP, OTHER)
    report = await rt.remove_images(["sha256:" + APP.id], force=True)
    assert report.untagged == ["localhost/app:1", "localhost/app:2"]
    assert report.deleted == [APP.id]
    assert kinds(report) == [
        ("Untagged", "image", APP.id),
        ("Untagged", "image", APP.id),
        ("Deleted", "image", APP.id),
    ]
    logged = [(e.kind, e.id) for e in EventLog.for_store(rt.root).read()][-3:]
    assert logged == [
        (EventKind.UNTAGGED, APP.id),
        (EventKind.UNTAGGED, APP.id),
        (EventKind.DELETED, APP.id),
    ]
    assert await names_by_id(rt) == {OTHER.id: ["localhost/other:latest"]}


async def test_step6_a_parent_left_dangling_is_not_removed(rt: Runtime, tmp_path: Path) -> None:
    await load(rt, tmp_path, BASE.named(), CHILD)
    report = await rt.remove_images(["child"])
    assert (report.untagged, report.deleted) == (["localhost/child:latest"], [CHILD.id])
    assert kinds(report) == [("Untagged", "image", CHILD.id), ("Deleted", "image", CHILD.id)]
    assert await names_by_id(rt) == {BASE.id: []}


async def test_all_removes_children_before_parents(rt: Runtime, tmp_path: Path) -> None:
    await load(rt, tmp_path, BASE, CHILD, GRANDCHILD, OTHER)
    report = await rt.remove_images(all=True)
    assert report.errors == []
    deleted = report.deleted
    assert sorted(deleted) == sorted([BASE.id, CHILD.id, GRANDCHILD.id, OTHER.id])
    assert deleted.index(GRANDCHILD.id) < deleted.index(CHILD.id) < deleted.index(BASE.id)
    assert [e.id for e in report.events if e.kind is EventKind.DELETED] == deleted
    assert await names_by_id(rt) == {}


# --------------------------------------------------------------------------------------------
# Dry runs


async def test_dry_run_reports_the_plan_and_changes_nothing(rt: Runtime, tmp_path: Path) -> None:
    await load(rt, tmp_path, ONE, APP)
    container = await rt.create_container("one", ["true"], name="c1")
    before = store_snapshot(rt.root)
    report = await rt.remove_images(["one", APP.id, "missing"], force=True, dry_run=True)
    assert report.dry_run
    assert report.untagged == ["localhost/one:latest", "localhost/app:1", "localhost/app:2"]
    assert report.deleted == [ONE.id, APP.id]
    assert report.removed_containers == [container.id]
    assert report.events == []
    assert store_snapshot(rt.root) == before
    assert await container_ids(rt) == {container.id}


# --------------------------------------------------------------------------------------------
# Cancellation


async def _state(root: Path) -> tuple[dict[str, list[str]], set[str]]:
    """(images with names, container IDs) as a new runtime sees the store, after a check."""
    async with Runtime(root, policy="libpod") as runtime:
        report = await runtime.check()
        assert report.ok, report.problems
        return await names_by_id(runtime), await container_ids(runtime)


async def _prepared(template: Path, root: Path) -> None:
    shutil.copytree(template, root, symlinks=True)


State = tuple[dict[str, list[str]], set[str]]


async def _attempt(
    root: Path, references: list[str], force: bool, cancel_after: Any
) -> tuple[bool, State]:
    """Run the removal on *root*, cancelled once *cancel_after* returns; whether the call
    returned, and the state the cancelled runtime itself sees afterwards."""
    done = False
    async with Runtime(root, policy="libpod") as runtime:
        async with anyio.create_task_group() as group:

            async def remove() -> None:
                nonlocal done
                await runtime.remove_images(references, force=force)
                done = True
                group.cancel_scope.cancel()

            group.start_soon(remove)
            await cancel_after()
            group.cancel_scope.cancel()
        return done, (await names_by_id(runtime), await container_ids(runtime))


@pytest.mark.parametrize(
    ("references", "force"),
    [(["one", APP.id, "other"], True), (["app:1", "app:2", "other"], False)],
    ids=["force-with-containers", "untag-and-delete"],
)
async def test_cancellation_at_every_await_point_leaves_the_old_or_the_new_store(
    tmp_path: Path, references: list[str], force: bool
) -> None:
    template = tmp_path / "template"
    async with Runtime(template, policy="libpod") as runtime:
        await load(runtime, tmp_path, ONE, APP, OTHER)
        if force:
            for n in range(3):
                await runtime.create_working_container("one", name=f"w{n}")
            await runtime.create_container("app:1", ["true"], name="c1")
    old = await _state(template)
    reference = tmp_path / "reference"
    await _prepared(template, reference)
    completed, _ = await _attempt(reference, references, force, lambda: anyio.sleep(60))
    new = await _state(reference)
    assert completed and new == ({ONE.id: ["localhost/one:latest"]} if not force else {}, set())

    outcomes = {"old": 0, "new": 0}
    # Cancel after k scheduling points for every k until the call returns unhurt (each
    # await of the removal is one point or more), then after a few short delays (for
    # points inside worker threads).
    plans: list[Any] = [_after_checkpoints(k) for k in range(200)]
    plans += [_after_seconds(d) for d in (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01)]
    returned_in_a_row = 0
    for i, cancel_after in enumerate(plans):
        if returned_in_a_row == 10 and i < 200:
            continue
        root = tmp_path / f"try-{i}"
        await _prepared(template, root)
        returned, in_process = await _attempt(root, references, force, cancel_after)
        seen = await _state(root)
        assert seen in (old, new), f"attempt {i}: neither the old nor the new store"
        assert in_process == seen, f"attempt {i}: the cancelled runtime sees another state"
        outcomes["new" if seen == new else "old"] += 1
        returned_in_a_row = returned_in_a_row + 1 if returned else 0
        shutil.rmtree(root)
    assert outcomes["old"] > 0 and outcomes["new"] > 0, outcomes


def _after_checkpoints(count: int) -> Any:
    async def wait() -> None:
        for _ in range(count):
            await anyio.lowlevel.checkpoint()

    return wait


def _after_seconds(delay: float) -> Any:
    async def wait() -> None:
        await anyio.sleep(delay)

    return wait


# --------------------------------------------------------------------------------------------
# The command line (libpod is the default policy)


@pytest.fixture(scope="module")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture
def cli(tmp_path: Path, pycache: Path) -> Iterator[Any]:
    """``aiopod --root STORE ARGS...`` (default policy) as a subprocess."""
    env = aiopod_subprocess_env(pycache)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "aiopod", "--root", str(tmp_path / "store"), *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120
        )

    yield run


async def _store_with(tmp_path: Path, *images: FakeImage, containers: bool = False) -> None:
    async with Runtime(tmp_path / "store") as runtime:
        await load(runtime, tmp_path, *images)
        if containers:
            await runtime.create_container("one", ["true"], name="c1")


async def test_cli_several_inputs_untagged_lines_then_deleted_lines(
    tmp_path: Path, cli: Any
) -> None:
    await _store_with(tmp_path, APP, OTHER)
    proc = cli("rmi", "app:1", "app:2", "other", "missing")
    assert proc.stdout == (
        "Untagged: localhost/app:1\n"
        "Untagged: localhost/app:2\n"
        "Untagged: localhost/other:latest\n"
        f"Deleted: {APP.id}\n"
        f"Deleted: {OTHER.id}\n"
    )
    assert proc.stderr == "Error: missing: image not known\n"
    assert proc.returncode == 1


async def test_cli_several_errors_exit_2_when_one_is_in_use(tmp_path: Path, cli: Any) -> None:
    await _store_with(tmp_path, ONE, APP, containers=True)
    proc = cli("rmi", "missing", APP.id, "one")
    assert proc.stdout == ""
    assert proc.stderr == (
        "Error: 3 errors occurred:\n"
        "\t* missing: image not known\n"
        f"\t* unable to delete {APP.id} (must force) - image is referred to in multiple tags\n"
        f"\t* could not remove image {ONE.id} as it is being used by 1 containers\n"
    )
    assert proc.returncode == 2


async def test_cli_must_force_and_not_known_exit_125(tmp_path: Path, cli: Any) -> None:
    await _store_with(tmp_path, APP)
    proc = cli("rmi", APP.id, "missing")
    assert proc.returncode == 125
    assert proc.stderr.startswith("Error: 2 errors occurred:\n")


async def test_cli_only_not_known_errors_exit_1(tmp_path: Path, cli: Any) -> None:
    await _store_with(tmp_path, ONE)
    proc = cli("rmi", "missing1", "missing2")
    assert proc.stderr == (
        "Error: 2 errors occurred:\n\t* missing1: image not known\n\t* missing2: image not known\n"
    )
    assert (proc.stdout, proc.returncode) == ("", 1)


@pytest.mark.parametrize("flag", ["-f", "-i"])
async def test_cli_force_and_ignore_silence_not_known(tmp_path: Path, cli: Any, flag: str) -> None:
    await _store_with(tmp_path, ONE)
    proc = cli("rmi", flag, "missing", "one")
    assert proc.stdout == f"Untagged: localhost/one:latest\nDeleted: {ONE.id}\n"
    assert (proc.stderr, proc.returncode) == ("", 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "image name or ID must be specified"),
        (("-a", "one"), "when using the --all switch, you may not pass any images names or IDs"),
    ],
    ids=["no-argument", "all-with-a-name"],
)
async def test_cli_usage_errors(
    tmp_path: Path, cli: Any, args: tuple[str, ...], message: str
) -> None:
    await _store_with(tmp_path, ONE)
    proc = cli("rmi", *args)
    assert (proc.stdout, proc.stderr, proc.returncode) == ("", f"Error: {message}\n", 125)


async def test_cli_force_removes_the_container_and_prints_the_deletion(
    tmp_path: Path, cli: Any
) -> None:
    await _store_with(tmp_path, ONE, containers=True)
    proc = cli("rmi", "-f", "one")
    assert proc.stdout == f"Untagged: localhost/one:latest\nDeleted: {ONE.id}\n"
    assert (proc.stderr, proc.returncode) == ("", 0)
    assert cli("ps", "-a", "--external", "-q").stdout == ""


async def test_two_processes_removing_the_same_image_one_wins(
    tmp_path: Path, pycache: Path
) -> None:
    env = aiopod_subprocess_env(pycache)
    for round_ in range(3):
        root = tmp_path / f"store-{round_}"
        async with Runtime(root) as runtime:
            await load(runtime, tmp_path, ONE)
        cmd = [sys.executable, "-m", "aiopod", "--root", str(root), "rmi", "one"]
        outputs: list[tuple[str, str, int]] = []
        async with anyio.create_task_group() as group:
            group.start_soon(_run_into, outputs, cmd, env)
            group.start_soon(_run_into, outputs, cmd, env)
        results = sorted(outputs)
        assert results == [
            ("", "Error: one: image not known\n", 1),
            (f"Untagged: localhost/one:latest\nDeleted: {ONE.id}\n", "", 0),
        ]
        assert await _state(root) == ({}, set())
        assert not list((root / "aiopod" / "tmp").iterdir())
        assert not list((root / "aiopod" / "journal").glob("*"))


async def _run_into(outputs: list[tuple[str, str, int]], cmd: list[str], env: Any) -> None:
    """Run *cmd*; append (stdout, stderr, exit code) to *outputs*."""
    proc = await anyio.run_process(cmd, check=False, env=env)
    outputs.append((proc.stdout.decode(), proc.stderr.decode(), proc.returncode))
