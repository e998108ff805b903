"""Issue 12, item 2: what ``check --repair`` changes, the event log tells.

After each repair here the event log replays to exactly the store's state
(``store_model.verify_store``).  Images carry no stored parent reference: a child image
lists every layer it shares with its parent, so ``check`` verifying each image's own
blobs is what judges the image → parent relation (a damaged shared layer damages both).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from imagefactory import REF_NAME, index_refs, load_images
from peers import aiopod_env
from store_model import read_view, replay, verify_store
from stress_ops import BASE, CHILD, LONE

from aiopod import CheckReport, EventLog, Runtime
from aiopod.storage.layout import StoreLayout
from aiopod.storage.store import read_metadata

T = TypeVar("T")


def with_runtime(root: Path, func: Callable[[Runtime], Awaitable[T]]) -> T:
    async def body() -> T:
        async with Runtime(root) as rt:
            return await func(rt)

    return anyio.run(body)


def test_a_damaged_shared_layer_takes_the_parent_and_the_child_with_their_events(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"

    async def setup(rt: Runtime) -> str:
        await load_images(rt, tmp_path, BASE, CHILD, LONE)
        container = await rt.create_working_container(CHILD.id)
        return container.id

    container = with_runtime(root, setup)
    shared = root / "blobs" / "sha256" / BASE.diff_ids[0].removeprefix("sha256:")
    shared.write_bytes(b"not the base layer any more")

    found = with_runtime(root, lambda rt: rt.check())
    assert any(BASE.id in p for p in found.problems), found.problems
    assert any(CHILD.id in p for p in found.problems), found.problems

    repaired: CheckReport = with_runtime(root, lambda rt: rt.check(repair=True))
    assert sorted(repaired.removed_images) == sorted([BASE.id, CHILD.id])
    assert f"removed container {container}: it uses damaged image {CHILD.id}" in (repaired.repaired)
    verified = verify_store(root)  # check is clean and the log replays to the state
    assert set(verified.view.images) == {LONE.id}
    assert verified.view.containers == {}


def _corrupt_metadata(root: Path) -> dict[str, str]:
    """Make the metadata database unreadable; return the manifest digest of each image it
    held."""
    manifests = {r.id: r.manifest_digest for r in read_metadata(StoreLayout(root)).images.values()}
    metadata = root / "aiopod" / "metadata.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{metadata}{suffix}").unlink(missing_ok=True)
    metadata.write_bytes(b"not a database" * 100)
    return manifests


def _edit_index(root: Path, keep: Callable[[str, str], bool], **moved: str) -> None:
    """Drop the ``index.json`` entries *keep* (name, digest) refuses; point the names of
    *moved* (name → manifest digest) elsewhere."""
    path = root / "index.json"
    index = json.loads(path.read_bytes())
    kept = []
    for descriptor in index["manifests"]:
        name = descriptor["annotations"][REF_NAME]
        if keep(name, descriptor["digest"]):
            descriptor["digest"] = moved.get(name, descriptor["digest"])
            kept.append(descriptor)
    index["manifests"] = kept
    path.write_text(json.dumps(index))


def _events(root: Path) -> list[tuple[str, str, str]]:
    return [(e.kind, e.id, e.name or "") for e in EventLog.for_store(root).read()]


def test_rebuilding_unreadable_metadata_tells_what_was_lost(tmp_path: Path) -> None:
    """Repair rebuilds the metadata from index.json and the blobs: the untagged image comes
    back from its blobs, the container is lost; the log must say so (its ``Removed``
    event), or its replay shows a container the store no longer has."""
    root = tmp_path / "store"

    async def setup(rt: Runtime) -> str:
        await load_images(rt, tmp_path, BASE, LONE)
        await rt.untag(LONE.id)  # dangling: not in index.json
        container = await rt.create_working_container(BASE.id)
        return container.id

    container = with_runtime(root, setup)
    directory = root / "aiopod" / "containers" / container
    assert directory.is_dir()
    _corrupt_metadata(root)
    before = len(_events(root))
    repaired = with_runtime(root, lambda rt: rt.check(repair=True))
    assert repaired.repaired[:2] == [
        "rebuilt the metadata from index.json (1 image) and 1 untagged image from their blobs",
        f"removed container {container} ({BASE.id}-working-container): its record was lost "
        "with the metadata (its directory is deleted)",
    ], repaired.repaired
    assert repaired.removed_images == []
    assert _events(root)[before:] == [("Removed", container, f"{BASE.id}-working-container")]
    assert not directory.exists()
    verified = verify_store(root)
    assert set(verified.view.images) == {BASE.id, LONE.id}


def test_an_image_whose_manifest_is_gone_too_is_deleted_with_its_events(tmp_path: Path) -> None:
    """Neither index.json nor the blobs give the untagged image back: ``Deleted``; a
    tagged image index.json no longer names comes back untagged: ``Untagged``."""
    root = tmp_path / "store"

    async def setup(rt: Runtime) -> None:
        await load_images(rt, tmp_path, BASE, CHILD, LONE)
        await rt.untag(LONE.id)
        await rt.tag(BASE.id, "localhost/extra:1")

    with_runtime(root, setup)
    manifests = _corrupt_metadata(root)
    (root / "blobs" / "sha256" / manifests[LONE.id].removeprefix("sha256:")).unlink()
    child_names = {name for name, d in index_refs(root) if d == manifests[CHILD.id]}
    _edit_index(root, lambda name, digest: name != "localhost/extra:1" and name not in child_names)
    before = len(_events(root))
    repaired = with_runtime(root, lambda rt: rt.check(repair=True))
    assert repaired.removed_images == [LONE.id]
    assert sorted(_events(root)[before:]) == sorted(
        [("Untagged", BASE.id, "localhost/extra:1"), ("Deleted", LONE.id, "")]
        + [("Untagged", CHILD.id, name) for name in child_names]
    )
    assert (
        f"removed image {LONE.id}: its record was lost with the metadata and its blobs do "
        "not give it back"
    ) in repaired.repaired
    assert f"untagged localhost/extra:1 from image {BASE.id}: index.json does not name it" in (
        repaired.repaired
    )
    verified = verify_store(root)  # LONE's config and layer went as orphans
    assert verified.view.images == {
        BASE.id: frozenset(n for n, d in index_refs(root) if d == manifests[BASE.id]),
        CHILD.id: frozenset(),
    }


def test_a_name_index_json_gives_to_another_image_is_told_as_moved(tmp_path: Path) -> None:
    root = tmp_path / "store"

    async def setup(rt: Runtime) -> None:
        await load_images(rt, tmp_path, BASE, LONE)
        await rt.tag(BASE.id, "localhost/moved:1")

    with_runtime(root, setup)
    manifests = _corrupt_metadata(root)
    _edit_index(root, lambda name, digest: True, **{"localhost/moved:1": manifests[LONE.id]})
    before = len(_events(root))
    repaired = with_runtime(root, lambda rt: rt.check(repair=True))
    assert _events(root)[before:] == [
        ("Untagged", BASE.id, "localhost/moved:1"),
        ("Tagged", LONE.id, "localhost/moved:1"),
    ]
    assert f"tagged image {LONE.id} localhost/moved:1: as index.json names it" in (
        repaired.repaired
    )
    verify_store(root)


def test_a_container_directory_nothing_knows_goes_with_the_rebuild(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with_runtime(root, lambda rt: load_images(rt, tmp_path, BASE))
    stray = root / "aiopod" / "containers" / ("ab" * 32)
    (stray / "rootfs").mkdir(parents=True)
    _corrupt_metadata(root)
    repaired = with_runtime(root, lambda rt: rt.check(repair=True))
    assert (
        f"removed the directory of container {'ab' * 32}: neither the metadata nor the "
        "event log knows it"
    ) in repaired.repaired
    assert not stray.exists()
    verify_store(root)


@pytest.mark.parametrize(
    "point", ["commit:journal", "commit:state", "commit:metadata", "commit:index"]
)
def test_a_rebuild_killed_anywhere_still_tells(tmp_path: Path, point: str) -> None:
    """The rebuild is a commit like any other (commit-points.md, CP1, CP24): killed
    before its commit point the metadata stays unreadable and a new repair does the work;
    killed after it, the next open appends its events (the log replays to the store at
    once) and deletes the lost container's directory; a new repair then deletes the
    orphan blobs."""
    root = tmp_path / "store"

    async def setup(rt: Runtime) -> None:
        await load_images(rt, tmp_path, BASE, LONE)
        await rt.untag(LONE.id)
        await rt.create_working_container(BASE.id)

    with_runtime(root, setup)
    manifests = _corrupt_metadata(root)
    (root / "blobs" / "sha256" / manifests[LONE.id].removeprefix("sha256:")).unlink()
    env = {**aiopod_env(), "AIOPOD_CRASH": point}
    command = [sys.executable, "-m", "aiopod", "--root", str(root), "system", "check", "--repair"]
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if point != "commit:journal":
        with_runtime(root, lambda rt: rt.images())  # opening recovers
        view = anyio.run(read_view, root)
        assert replay(EventLog.for_store(root).read()) == view
        assert list((root / "aiopod" / "containers").iterdir()) == []
    repaired = with_runtime(root, lambda rt: rt.check(repair=True))
    assert repaired.removed_images == ([LONE.id] if point == "commit:journal" else [])
    verified = verify_store(root)
    assert verified.view.images == {BASE.id: frozenset(BASE.names)}
    assert list((root / "aiopod" / "containers").iterdir()) == []


def test_a_tagged_image_whose_layer_is_gone_is_not_rebuilt_and_the_repair_goes_on(
    tmp_path: Path,
) -> None:
    """index.json names an image whose (uncompressed) layer blob is gone: the rebuild
    leaves it out (it would be an image without its blobs, which no commit may add) and
    logs its removal; the other images are rebuilt."""
    root = tmp_path / "store"
    with_runtime(root, lambda rt: load_images(rt, tmp_path, BASE, LONE))
    _corrupt_metadata(root)
    (root / "blobs" / "sha256" / LONE.diff_ids[0].removeprefix("sha256:")).unlink()
    repaired = with_runtime(root, lambda rt: rt.check(repair=True))
    assert repaired.repaired[0] == "rebuilt the metadata from index.json (1 image)"
    assert not any("damaged" in line for line in repaired.repaired), repaired.repaired
    assert repaired.removed_images == [LONE.id], repaired.repaired
    verified = verify_store(root)
    assert set(verified.view.images) == {BASE.id}


@pytest.mark.parametrize("where", ["checkpointed", "in-the-wal"])
def test_repair_leaves_the_metadata_of_a_newer_aiopod_alone(tmp_path: Path, where: str) -> None:
    """A metadata database of a newer store format cannot be read here, but it is not
    damaged: a rebuild from index.json would drop its containers and untagged images.
    The newer format is committed as SQLite commits (into the WAL journal): whether it is
    still in the WAL (another process has the database open) or checkpointed into the
    database file, it is the format the database has."""
    root = tmp_path / "store"
    with_runtime(root, lambda rt: load_images(rt, tmp_path, BASE))
    metadata = root / "aiopod" / "metadata.db"
    holder = sqlite3.connect(metadata)  # while open, the WAL journal stays
    try:
        conn = sqlite3.connect(metadata)
        try:
            conn.execute("PRAGMA wal_autocheckpoint=0")
            with conn:
                conn.execute("UPDATE meta SET value='3' WHERE key='format'")
            if where == "checkpointed":
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        if where == "checkpointed":
            holder.close()
        newer = metadata.read_bytes()
        repaired = with_runtime(root, lambda rt: rt.check(repair=True))
        assert repaired.repaired == [] and repaired.removed_images == []
        assert any(
            p.startswith(
                "metadata.db is in store format 3, newer than this aiopod reads (2): not repaired"
            )
            for p in repaired.problems
        ), repaired.problems
        if where == "checkpointed":
            assert metadata.read_bytes() == newer
    finally:
        holder.close()
    conn = sqlite3.connect(metadata)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key='format'").fetchall() == [("3",)]
        assert conn.execute("SELECT id FROM images").fetchall() == [(BASE.id,)]
    finally:
        conn.close()
