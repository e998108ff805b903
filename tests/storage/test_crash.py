"""Crash consistency: a process killed anywhere in a commit leaves the old or the new store.

For every named crash point (``aiopod.storage.crashpoints.CRASH_POINTS``) an operation
runs in a subprocess with ``AIOPOD_CRASH=<point>``, which SIGKILLs itself there.  The
store is then reopened: ``system check`` finds nothing, the images and blobs are exactly
those of the state before or after the operation (no orphan blob, no half image), and
running the operation again succeeds.  Also: what recovery and ``check --repair`` do with
leftovers and damage.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from conftest import store_of
from imagefactory import (
    FakeImage,
    child_image,
    index_refs,
    make_image,
    write_docker_archive,
)
from peers import aiopod, aiopod_env

from aiopod import CheckReport, EventLog, Runtime
from aiopod.events.verify import verify_log
from aiopod.storage.crashpoints import AFTER_COMMIT_POINT, CRASH_POINTS
from aiopod.storage.layout import StoreLayout, index_entries
from aiopod.storage.records import ImageRecord
from aiopod.storage.store import read_metadata

T = TypeVar("T")

APP = make_image("localhost/app:1", "localhost/app:2", seed="app")
OTHER = make_image("localhost/other:1", seed="other")
BASE = make_image("localhost/base:1", seed="base")
CHILD = child_image(BASE, "localhost/child:1", files={"usr/child": b"child"})

#: The points of the store's commit, in the order a commit passes them.
COMMIT_POINTS = (
    "commit:journal",
    "commit:blobs",
    "commit:committed",
    "commit:state",
    "commit:metadata",
    "commit:index",
    "commit:gc",
)
#: Points a commit passes only after the metadata database committed: the new state wins.
AFTER_METADATA = AFTER_COMMIT_POINT


def with_runtime(root: Path, func: Callable[[Runtime], Awaitable[T]]) -> T:
    async def body() -> T:
        async with Runtime(root) as rt:
            return await func(rt)

    return anyio.run(body)


def check(root: Path, *, repair: bool = False) -> CheckReport:
    return with_runtime(root, lambda rt: rt.check(repair=repair))


@dataclass(frozen=True)
class StoreModel:
    """What a store holds, as far as consistency goes."""

    names: dict[str, list[str]]  # image ID -> names
    blobs: frozenset[str]
    refs: frozenset[tuple[str, str]]


def model_of(root: Path) -> StoreModel:
    state = read_metadata(StoreLayout(root))
    return StoreModel(
        names={record.id: list(record.names) for record in state.images.values()},
        blobs=frozenset(p.name for p in (root / "blobs" / "sha256").iterdir()),
        refs=frozenset(index_refs(root)),
    )


@dataclass(frozen=True)
class Scenario:
    """A store to start from (images loaded in-process) and one CLI operation on it."""

    initial: tuple[FakeImage, ...]
    archive: tuple[FakeImage, ...]  # what the operation loads (if it loads)
    args: tuple[str, ...]  # the operation on the command line ("{archive}": the archive)
    reached: frozenset[str]  # the crash points the operation passes

    async def apply(self, rt: Runtime, archive: Path) -> object:
        """The same operation through the API (to run it again quickly, in-process)."""
        if self.args[0] == "load":
            return await rt.load(archive)
        return await rt.untag(*self.args[1:])


SCENARIOS = {
    "load": Scenario(
        initial=(OTHER,),
        archive=(APP,),
        args=("load", "-i", "{archive}"),
        reached=frozenset(COMMIT_POINTS),
    ),
    "untag": Scenario(
        initial=(APP, OTHER),
        archive=(),
        args=("untag", APP.id),  # every name: running it again is a no-op, not an error
        # No blob is added or freed, so there is nothing to move in and nothing to collect.
        reached=frozenset(
            {
                "commit:journal",
                "commit:committed",
                "commit:state",
                "commit:metadata",
                "commit:index",
            }
        ),
    ),
    "load-sharing-layers": Scenario(
        initial=(BASE, OTHER),
        archive=(CHILD,),
        args=("load", "-i", "{archive}"),
        reached=frozenset(COMMIT_POINTS),
    ),
}


def prepare(root: Path, scenario: Scenario, workdir: Path) -> tuple[tuple[str, ...], Path]:
    """Create the scenario's initial store at *root*; return the command line arguments of
    its operation and the archive it loads."""
    workdir.mkdir(exist_ok=True)
    initial = write_docker_archive(workdir / "initial.tar", scenario.initial)
    archive = workdir / "archive.tar"
    if scenario.archive:
        write_docker_archive(archive, scenario.archive)
    with_runtime(root, lambda rt: rt.load(initial))
    return tuple(arg.format(archive=archive) for arg in scenario.args), archive


def run_operation(
    root: Path, args: tuple[str, ...], crash: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = aiopod_env()
    if crash is not None:
        env["AIOPOD_CRASH"] = crash
    return subprocess.run(
        [sys.executable, "-m", "aiopod", "--root", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


Logged = list[tuple[str, str, str | None]]


def events_of(root: Path) -> Logged:
    """What the store's event log says happened (action, ID, name), after checking that
    its chain is whole."""
    log = EventLog.for_store(root)
    assert verify_log(log).ok
    return [(e.action, e.id, e.name) for e in log.read()]


_models: dict[str, tuple[StoreModel, StoreModel, Logged, Logged]] = {}


def old_and_new(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[StoreModel, StoreModel, Logged, Logged]:
    """The models (and event logs) of the scenario's store before and after an
    uninterrupted operation."""
    if name not in _models:
        base = tmp_path_factory.mktemp(f"reference-{name}")
        scenario = SCENARIOS[name]
        _, archive = prepare(base / "store", scenario, base / "work")
        before, logged_before = model_of(base / "store"), events_of(base / "store")
        with_runtime(base / "store", lambda rt: scenario.apply(rt, archive))
        after, logged_after = model_of(base / "store"), events_of(base / "store")
        _models[name] = (before, after, logged_before, logged_after)
        assert before != after and logged_before != logged_after
    return _models[name]


@pytest.mark.parametrize("point", CRASH_POINTS)
@pytest.mark.parametrize("operation", list(SCENARIOS))
def test_a_crash_at_any_point_leaves_the_old_or_the_new_store(
    operation: str, point: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    scenario = SCENARIOS[operation]
    old, new, logged_old, logged_new = old_and_new(operation, tmp_path_factory)
    root = tmp_path / "store"
    args, archive = prepare(root, scenario, tmp_path / "work")

    crashed = run_operation(root, args, crash=point)
    if point in scenario.reached:
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    else:
        assert crashed.returncode == 0, crashed.stderr  # the point is not on this path

    report = check(root)  # reopening recovers first
    assert report.problems == []
    model = model_of(root)
    # The log and the store agree: the operation's events are logged exactly when its
    # change is the state (recovery appends them from the journal if the crash came first).
    if point in AFTER_METADATA or point not in scenario.reached:
        assert (model, events_of(root)) == (new, logged_new)
    else:
        assert (model, events_of(root)) == (old, logged_old)
    assert list((root / "aiopod" / "tmp").iterdir()) == []
    assert list((root / "aiopod" / "journal").iterdir()) == []

    with_runtime(root, lambda rt: scenario.apply(rt, archive))  # again: it succeeds
    assert model_of(root) == new
    assert check(root).ok


def test_the_commit_crash_points_exist_in_commit_order() -> None:
    """The points the scenarios above say a commit passes are the store's, in its order."""
    assert [p for p in CRASH_POINTS if p in COMMIT_POINTS] == list(COMMIT_POINTS)


# ------------------------------------------------------------------------------ leftovers


def loaded_store(root: Path, workdir: Path, *images: FakeImage) -> None:
    workdir.mkdir(exist_ok=True)
    archive = write_docker_archive(workdir / "images.tar", images)
    with_runtime(root, lambda rt: rt.load(archive))


def blob_file(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def image_blobs(root: Path, image_id: str) -> set[str]:
    record = read_metadata(StoreLayout(root)).images[image_id]
    layers = [layer.digest for layer in record.layers]
    return {record.manifest_digest, "sha256:" + image_id, *layers}


def metadata_db(root: Path) -> Path:
    return root / "aiopod" / "metadata.db"


def make_metadata_unreadable(root: Path) -> None:
    """Overwrite the metadata database with bytes that are not a database."""
    db = metadata_db(root)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"not a database" * 100)


def damage_an_image_record(root: Path, image_id: str) -> None:
    """Make one image's record in the metadata database malformed JSON."""
    conn = sqlite3.connect(metadata_db(root))
    try:
        with conn:
            changed = conn.execute("UPDATE images SET record='{' WHERE id=?", (image_id,))
            assert changed.rowcount == 1
    finally:
        conn.close()


def test_a_stale_staging_area_is_removed_on_open(tmp_path: Path) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP)
    tmp = root / "aiopod" / "tmp"
    (tmp / "stage-x").mkdir()
    (tmp / "stage-x" / "part-1.tmp").write_bytes(b"half a layer")
    (tmp / "stage-x.lock").write_bytes(b"")
    (tmp / "stage-orphan").mkdir()  # a staging directory whose lock file is gone

    assert check(root).ok
    assert list(tmp.iterdir()) == []


def test_a_live_staging_area_is_kept_on_open(tmp_path: Path) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP)
    tmp = root / "aiopod" / "tmp"
    (tmp / "stage-live").mkdir()
    fd = os.open(tmp / "stage-live.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # its owner is alive
        with_runtime(root, lambda rt: rt.images())
        assert (tmp / "stage-live").is_dir()
    finally:
        os.close(fd)
    with_runtime(root, lambda rt: rt.images())
    assert not (tmp / "stage-live").exists()


def test_a_journal_left_behind_is_rolled_to_what_the_metadata_says(tmp_path: Path) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP)
    before = model_of(root)
    # A commit died after moving a blob in but before the metadata named it.
    stray = b"a layer nobody references"
    stray_digest = "sha256:" + hashlib.sha256(stray).hexdigest()
    blob_file(root, stray_digest).write_bytes(stray)
    kept = sorted(image_blobs(root, APP.id))
    journal = root / "aiopod" / "journal" / "0123456789abcdef.json"
    journal.write_text(json.dumps({"blobs": [stray_digest, *kept]}))
    (root / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')

    report = check(root)

    assert report.problems == []
    assert not blob_file(root, stray_digest).exists()
    assert all(blob_file(root, digest).is_file() for digest in kept)
    assert not journal.exists()
    assert model_of(root) == before  # index.json re-rendered too


def test_a_torn_temporary_metadata_file_is_removed_on_open(tmp_path: Path) -> None:
    """A rebuild or migration died while making its new database aside: the half-made
    database (and its journal) is removed, the metadata in place is untouched."""
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP)
    before = model_of(root)
    torn = root / "aiopod" / ".tmp-metadata-0123456789ab.db"
    torn.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    torn_wal = root / "aiopod" / ".tmp-metadata-0123456789ab.db-wal"
    torn_wal.write_bytes(b"half a journal")
    assert check(root).ok
    assert not torn.exists()
    assert not torn_wal.exists()
    assert model_of(root) == before


# ------------------------------------------------------------------------------ check / repair


def test_a_corrupted_blob_is_reported_and_repair_removes_the_damaged_image(tmp_path: Path) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP, OTHER)
    app_blobs = image_blobs(root, APP.id)
    other = model_of(root).names[OTHER.id]
    layer = blob_file(root, APP.diff_ids[0])  # docker-archive layers are stored as they came
    data = bytearray(layer.read_bytes())
    data[600] ^= 0xFF
    layer.write_bytes(bytes(data))

    report = check(root)
    assert not report.ok
    assert any(APP.diff_ids[0] in p and "damaged" in p for p in report.problems), report

    cli = aiopod("system", "check", root=root)
    assert cli.returncode == 1
    assert "damaged" in cli.stdout

    repaired = check(root, repair=True)
    assert repaired.removed_images == [APP.id]
    after = model_of(root)
    assert after.names == {OTHER.id: other}
    assert not any(blob_file(root, d).exists() for d in app_blobs)
    assert {name for name, _ in index_refs(root)} == set(other)
    assert check(root).ok


def test_a_missing_blob_is_reported_and_repair_removes_the_damaged_image(tmp_path: Path) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP, OTHER)
    blob_file(root, APP.config_digest).unlink()

    report = check(root)
    assert any("missing" in p and APP.id in p for p in report.problems), report
    assert check(root, repair=True).removed_images == [APP.id]
    assert check(root).ok
    assert list(model_of(root).names) == [OTHER.id]


def test_an_orphan_blob_is_reported_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP)
    orphan = b"nobody needs me"
    digest = "sha256:" + hashlib.sha256(orphan).hexdigest()
    blob_file(root, digest).write_bytes(orphan)
    before = model_of(root)

    report = check(root)
    assert report.problems == [f"orphan blob {digest}"]

    cli = aiopod("system", "check", "--repair", root=root)
    assert cli.returncode == 0, cli.stderr
    assert not blob_file(root, digest).exists()
    assert model_of(root).names == before.names
    assert check(root).ok


def test_a_stray_file_in_the_blob_directory_is_reported_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP)
    stray = root / "blobs" / "sha256" / "not-a-digest"
    stray.write_bytes(b"?")
    assert any("stray" in p for p in check(root).problems)
    check(root, repair=True)
    assert not stray.exists()
    assert check(root).ok


def test_index_json_edited_by_hand_is_re_rendered_by_repair(tmp_path: Path) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP)
    expected = (root / "index.json").read_bytes()

    async def edit_then_check(rt: Runtime) -> tuple[CheckReport, CheckReport, CheckReport]:
        await rt.images()
        index = json.loads((root / "index.json").read_bytes())
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "evil:1"
        (root / "index.json").write_text(json.dumps(index))
        return await rt.check(), await rt.check(repair=True), await rt.check()

    found, repaired, after = with_runtime(root, edit_then_check)
    assert found.problems == ["index.json does not match the metadata"]
    assert repaired.repaired == ["rewrote index.json"]
    assert after.ok
    assert (root / "index.json").read_bytes() == expected


def test_a_store_directory_writable_by_others_is_reported_and_tightened(tmp_path: Path) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP)

    async def loosen_then_check(rt: Runtime) -> tuple[CheckReport, CheckReport, CheckReport]:
        os.chmod(root / "blobs", 0o777)
        found, repaired = await rt.check(), await rt.check(repair=True)
        os.chmod(root / "blobs", 0o755)  # readable by others, on purpose: shared read-only
        return found, repaired, await rt.check()

    found, _, shared = with_runtime(root, loosen_then_check)
    assert any("writable by other users (mode 0777)" in p for p in found.problems)
    assert shared.ok
    assert (root / "blobs").stat().st_mode & 0o777 == 0o755


def test_repair_leaves_a_healthy_store_byte_for_byte_unchanged(tmp_path: Path) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP, OTHER)
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.suffix != ".lock"}
    report = check(root, repair=True)
    assert report.ok and report.repaired == [] and report.removed_images == []
    assert {p: p.read_bytes() for p in snapshot} == snapshot


def test_check_leaves_a_live_staging_area_of_another_process_alone(tmp_path: Path) -> None:
    """A load in another process stages outside the store lock: check must not take its
    staging area for a leftover, and repair must not delete it under the loader's feet."""
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP)
    tmp = root / "aiopod" / "tmp"

    async def check_while_another_process_stages(rt: Runtime) -> tuple[CheckReport, ...]:
        fd = os.open(tmp / "stage-live.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            (tmp / "stage-live").mkdir()
            (tmp / "stage-live" / "part-1.tmp").write_bytes(b"arriving")
            return await rt.check(), await rt.check(repair=True)
        finally:
            os.close(fd)

    found, repaired = with_runtime(root, check_while_another_process_stages)
    assert found.problems == []
    assert repaired.repaired == []
    assert (tmp / "stage-live" / "part-1.tmp").read_bytes() == b"arriving"


def test_a_repair_is_seen_by_a_runtime_that_read_the_store_before_it(tmp_path: Path) -> None:
    """A repair changes the metadata: it must change the change token too, or a runtime that
    cached the old metadata writes the damaged image back with its next commit."""
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP, OTHER)
    blob_file(root, APP.config_digest).unlink()

    async def repair_while_another_runtime_writes() -> CheckReport:
        async with Runtime(root) as cached, Runtime(root) as repairer:
            assert len(await cached.images()) == 2  # cached: it still has APP
            reopen = store_of(repairer).open

            async def others_commit_first() -> None:
                # Right after the repair's own transaction, before anything else it does.
                await cached.tag(OTHER.id, "during-repair")
                await reopen()

            store_of(repairer).open = others_commit_first  # type: ignore[method-assign]
            repaired = await repairer.check(repair=True)
            assert repaired.removed_images == [APP.id]
            return await cached.check()

    report = anyio.run(repair_while_another_runtime_writes)
    assert report.problems == []
    assert list(model_of(root).names) == [OTHER.id]


def test_a_name_two_images_claim_is_reported_and_repair_gives_it_to_one(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP, OTHER)
    # OTHER's record claims one of APP's names, written as a commit writes a record (its
    # index.json descriptors and the name index too: the name's row goes to the last
    # writer), so that only the records disagree.
    conn = sqlite3.connect(metadata_db(root))
    try:
        with conn:
            [(text,)] = conn.execute("SELECT record FROM images WHERE id=?", (OTHER.id,))
            doc = json.loads(text)
            doc["names"].append("localhost/app:1")
            conn.execute(
                "UPDATE images SET record=?, index_entries=? WHERE id=?",
                (json.dumps(doc), index_entries(ImageRecord.from_json(doc)), OTHER.id),
            )
            conn.execute("UPDATE names SET image_id=? WHERE name='localhost/app:1'", (OTHER.id,))
    finally:
        conn.close()

    found = check(root)
    assert found.problems == [
        # The name index holds one image per name: the records' second claim is not in it.
        "metadata.db: its names index disagrees with the image records "
        "(0 rows too many, 1 missing)",
        f"name localhost/app:1 belongs to {APP.id} and {OTHER.id}",
        # The hand edit left no journal, so opening the store did not re-render the index.
        "index.json does not match the metadata",
    ]
    repaired = check(root, repair=True)
    assert repaired.removed_images == []
    names = model_of(root).names
    assert sum(name == "localhost/app:1" for n in names.values() for name in n) == 1
    assert [name for name, _ in index_refs(root)].count("localhost/app:1") == 1
    assert check(root).ok


#: Ways to make the metadata unreadable, and what ``system check`` says of each.
DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "not-a-database": (make_metadata_unreadable, "problem: metadata.db cannot be read"),
    "malformed-record": (
        lambda root: damage_an_image_record(root, APP.id),
        "problem: malformed image record in metadata.db",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_unreadable_metadata_is_reported_by_system_check(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP)
    corrupt, message = DAMAGES[damage]
    corrupt(root)
    result = aiopod("system", "check", root=root)
    assert result.returncode == 1, result.stderr
    assert message in result.stdout, result.stdout


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_repair_rebuilds_unreadable_metadata_from_index_json(tmp_path: Path, damage: str) -> None:
    root = tmp_path / "store"
    loaded_store(root, tmp_path / "work", APP, OTHER)
    before = model_of(root)
    corrupt, _ = DAMAGES[damage]
    corrupt(root)
    listing = aiopod("images", root=root)
    assert listing.returncode == 125
    assert "run `aiopod system check --repair`" in listing.stderr
    repaired = aiopod("system", "check", "--repair", root=root)
    assert repaired.returncode == 0, repaired.stderr
    assert "repaired: rebuilt the metadata from index.json (2 images)" in repaired.stdout
    assert model_of(root) == before
    assert aiopod("system", "check", root=root).stdout == "store is consistent\n"
