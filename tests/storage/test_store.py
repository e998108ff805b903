"""The store on disk: its OCI layout, names in ``index.json``, cross-process reloads, locking.

No peer is needed: images are built in Python (``imagefactory``) and other processes are
``python -m aiopod`` or small scripts using the library.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from imagefactory import index_refs, load_images, make_image, write_docker_archive
from peers import aiopod_env, aiopod_ok

import aiopod
from aiopod import Runtime, StoreLockTimeout
from aiopod.cli.exit_codes import exit_code_of
from aiopod.storage.layout import StoreLayout
from aiopod.storage.metadata_db import Changes, MetadataDB
from aiopod.storage.records import ImageRecord, StoreState
from aiopod.storage.store import read_metadata

pytestmark = [pytest.mark.anyio, pytest.mark.both_backends]  # the core API, on both


APP = make_image("localhost/app:1", seed="app")
OTHER = make_image("localhost/other:1", seed="other")


@contextlib.contextmanager
def hold_store_lock(root: Path) -> Iterator[None]:
    """Hold the store's flock the way another process would (own open file description)."""
    fd = os.open(root / "aiopod" / "store.lock", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def lock_is_free(root: Path) -> bool:
    fd = os.open(root / "aiopod" / "store.lock", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def stored_names(root: Path) -> dict[str, list[str]]:
    """{image ID: names} as the metadata database has them on disk."""
    state = read_metadata(StoreLayout(root))
    return {record.id: list(record.names) for record in state.images.values()}


# ------------------------------------------------------------------------------ layout


async def test_open_creates_an_oci_layout_with_private_directories(store: Path) -> None:
    async with Runtime(store):
        pass
    assert json.loads((store / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((store / "index.json").read_bytes())
    assert index["schemaVersion"] == 2
    assert index["manifests"] == []
    assert (store / "blobs" / "sha256").is_dir()
    for directory in (store, store / "aiopod", store / "blobs", store / "blobs" / "sha256"):
        assert mode_of(directory) == 0o700, directory


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_open_keeps_the_mode_of_an_existing_root(store: Path) -> None:
    # Issue 11: open never chmods a directory it did not make (a store made readable for
    # others stays so); the directories it makes inside are private.
    os.mkdir(store, 0o755)
    os.chmod(store, 0o755)
    async with Runtime(store) as rt:
        assert (await rt.check()).ok
    assert mode_of(store) == 0o755
    assert mode_of(store / "aiopod") == mode_of(store / "blobs") == 0o700
    os.chmod(store / "blobs", 0o755)
    async with Runtime(store):
        pass
    assert mode_of(store / "blobs") == 0o755


async def test_a_reopened_store_has_the_images_of_the_last_one(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
    async with Runtime(store) as rt:
        [image] = await rt.images()
    assert image.id == APP.id
    assert image.names == ("localhost/app:1",)


# ------------------------------------------------------------------------------ names


async def test_load_tag_untag_round_trip_is_reflected_in_index_json(
    store: Path, tmp_path: Path
) -> None:
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, APP)
        assert index_refs(store) == [("localhost/app:1", image.digest)]

        await rt.tag(image.id, "app:2", "quay.io/x/y")
        assert index_refs(store) == [
            ("localhost/app:1", image.digest),
            ("localhost/app:2", image.digest),
            ("quay.io/x/y:latest", image.digest),
        ]

        await rt.untag(image.id, "app:1")
        assert index_refs(store) == [
            ("localhost/app:2", image.digest),
            ("quay.io/x/y:latest", image.digest),
        ]

        await rt.untag(image.id)
        assert index_refs(store) == []
        assert (await rt.get_image(image.id)).names == ()
        assert (await rt.check()).ok


async def test_index_json_descriptors_describe_the_stored_manifest(
    store: Path, tmp_path: Path
) -> None:
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, APP)
    [descriptor] = json.loads((store / "index.json").read_bytes())["manifests"]
    blob = store / "blobs" / "sha256" / image.digest.removeprefix("sha256:")
    assert descriptor["size"] == blob.stat().st_size
    assert descriptor["mediaType"] == json.loads(blob.read_bytes())["mediaType"]


async def test_a_name_moves_to_the_image_it_is_given_to(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        app, other = await load_images(rt, tmp_path, APP, OTHER)
        await rt.tag(other.id, "localhost/app:1")
        assert (await rt.get_image(app.id)).names == ()
        assert (await rt.get_image(other.id)).names == ("localhost/other:1", "localhost/app:1")
        assert (await rt.get_image("localhost/app:1")).id == other.id
        assert dict(index_refs(store))["localhost/app:1"] == other.digest
        assert [name for name, _ in index_refs(store)].count("localhost/app:1") == 1
        assert (await rt.check()).ok
    assert stored_names(store) == {
        app.id: [],
        other.id: ["localhost/other:1", "localhost/app:1"],
    }


def _record(image_id: str, *names: str) -> ImageRecord:
    return ImageRecord(
        id=image_id,
        manifest_digest="sha256:" + "f" * 64,
        manifest_media_type="application/vnd.oci.image.manifest.v1+json",
        manifest_size=1,
        config_size=1,
        layers=(),
        names=names,
    )


def test_store_state_put_moves_names_and_keeps_the_name_index_consistent() -> None:
    a, b = "a" * 64, "b" * 64
    state = StoreState.from_records([_record(a, "x", "y"), _record(b)])
    state.put(_record(b, "y", "z"))
    assert state.images[a].names == ("x",)
    assert state.images[b].names == ("y", "z")
    assert state.by_name == {"x": a, "y": b, "z": b}

    state.put(_record(b, "z"))  # replacing a record drops the names it no longer has
    assert state.by_name == {"x": a, "z": b}

    removed = state.remove(a)
    assert removed.names == ("x",)
    assert state.by_name == {"z": b}
    assert list(state.images) == [b]


def test_a_copied_state_is_independent_of_the_original() -> None:
    a, b = "a" * 64, "b" * 64
    state = StoreState.from_records([_record(a, "x")])
    copy = state.copy()
    copy.put(_record(b, "x"))
    assert state.by_name == {"x": a}
    assert state.images[a].names == ("x",)


async def test_names_history_keeps_removed_names_newest_first(store: Path, tmp_path: Path) -> None:
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, APP)
        await rt.tag(image.id, "h:1")
        await rt.tag(image.id, "h:2")
        tagged = await rt.get_image(image.id)
        # podman (containers/storage) puts every name it sets in front, the newest first.
        assert tagged.names_history == ("localhost/h:2", "localhost/h:1", "localhost/app:1")

        untagged = await rt.untag(image.id, "h:1")
        assert untagged.names == ("localhost/app:1", "localhost/h:2")
        # podman 4.3: the remaining names move to the front, the removed one stays behind.
        assert untagged.names_history == ("localhost/h:2", "localhost/app:1", "localhost/h:1")

        cleared = await rt.untag(image.id)
        assert cleared.names == ()
        assert set(cleared.names_history) == {"localhost/app:1", "localhost/h:1", "localhost/h:2"}


# ------------------------------------------------------------------------------ processes


async def test_an_open_runtime_sees_a_name_another_process_added(
    store: Path, tmp_path: Path
) -> None:
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, APP)
        assert (await rt.get_image(image.id)).names == ("localhost/app:1",)

        aiopod_ok("tag", image.id, "from-cli:1", root=store)

        assert (await rt.get_image("from-cli:1")).id == image.id
        # ... and its own next write keeps what the other process did.
        await rt.tag(image.id, "mine:1")
        names = (await rt.get_image(image.id)).names
    assert names == ("localhost/app:1", "localhost/from-cli:1", "localhost/mine:1")
    assert stored_names(store)[image.id] == list(names)


async def test_an_open_runtime_sees_an_image_another_process_loaded(
    store: Path, tmp_path: Path
) -> None:
    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, APP)
        archive = tmp_path / "other.tar"
        write_docker_archive(archive, [OTHER])
        aiopod_ok("load", "-i", archive, root=store)
        assert [i.id for i in await rt.images()] == [APP.id, OTHER.id]


TAGGER = """
import os, sys, time, anyio, aiopod
root, image, prefix, go, count = sys.argv[1:6]
async def main():
    async with aiopod.Runtime(root) as rt:
        while not os.path.exists(go):
            time.sleep(0.002)
        for i in range(int(count)):
            await rt.tag(image, f"{prefix}:{i}")
anyio.run(main)
"""


async def test_two_processes_tagging_concurrently_lose_no_update(
    store: Path, tmp_path: Path
) -> None:
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, APP)
    go = tmp_path / "go"

    async def tagger(prefix: str) -> None:
        cmd = [sys.executable, "-c", TAGGER, str(store), image.id, prefix, str(go), "20"]
        result = await anyio.run_process(cmd, env=aiopod_env(), check=False)
        assert result.returncode == 0, result.stderr.decode()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(tagger, "p0")
            tg.start_soon(tagger, "p1")
            await anyio.sleep(0.2)  # both started (and opened the store): let them race
            await anyio.Path(go).touch()
    expected = {"localhost/app:1"} | {f"localhost/p{n}:{i}" for n in range(2) for i in range(20)}
    async with Runtime(store) as rt:
        names = (await rt.get_image(image.id)).names
        assert (await rt.check()).ok
    assert len(names) == len(expected) == 41
    assert set(names) == expected
    assert {name for name, _ in index_refs(store)} == expected


# ------------------------------------------------------------------------------ the lock


@pytest.mark.parametrize("operation", ["tag", "images"])
async def test_the_lock_is_released_when_a_task_is_cancelled_while_waiting_for_it(
    store: Path, tmp_path: Path, operation: str
) -> None:
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, APP)
        with hold_store_lock(store):
            with anyio.move_on_after(0.2) as scope:
                if operation == "tag":
                    await rt.tag(image.id, "late")
                else:
                    await rt.images()
            assert scope.cancelled_caught
        assert lock_is_free(store)
        # The runtime's own locks were released too: the next calls go through at once.
        with anyio.fail_after(5):
            assert (await rt.get_image(image.id)).names == ("localhost/app:1",)
            await rt.tag(image.id, "now")
            names = (await rt.get_image(image.id)).names
            assert names == ("localhost/app:1", "localhost/now:latest")


async def test_a_commit_completes_when_the_caller_is_cancelled_during_it(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    committing = threading.Event()
    original = MetadataDB.write

    def slow_write(self: MetadataDB, changes: Changes, **kwargs: str) -> None:
        committing.set()
        time.sleep(0.3)
        original(self, changes, **kwargs)
        order.append("metadata written")

    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, APP)
        monkeypatch.setattr(MetadataDB, "write", slow_write)

        with anyio.CancelScope() as scope:

            async def cancel_during_commit() -> None:
                assert await anyio.to_thread.run_sync(committing.wait, 10)
                order.append("cancelled")
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_during_commit)
                await rt.tag(image.id, "during-commit")

        assert order == ["cancelled", "metadata written"]
        assert lock_is_free(store)
        monkeypatch.undo()
        assert (await rt.get_image(image.id)).names == (
            "localhost/app:1",
            "localhost/during-commit:latest",
        )
        assert "localhost/during-commit:latest" in dict(index_refs(store))
        assert (await rt.check()).ok
    assert stored_names(store)[image.id] == ["localhost/app:1", "localhost/during-commit:latest"]


@pytest.mark.parametrize("operation", ["tag", "images"])
async def test_store_lock_timeout_while_another_process_holds_the_lock(
    store: Path, tmp_path: Path, operation: str
) -> None:
    async with Runtime(store, lock_timeout=0.2) as rt:
        [image] = await load_images(rt, tmp_path, APP)
        with hold_store_lock(store):
            started = time.monotonic()
            with pytest.raises(StoreLockTimeout, match="another aiopod process") as excinfo:
                if operation == "tag":
                    await rt.tag(image.id, "blocked")
                else:
                    await rt.images()
            assert time.monotonic() - started < 5
            assert exit_code_of(excinfo.value) == 125
            assert isinstance(excinfo.value, TimeoutError)  # what generic code catches
        # Once the other holder is gone, the same runtime works again.
        await rt.tag(image.id, "free")
        assert "localhost/free:latest" in (await rt.get_image(image.id)).names
        assert "localhost/blocked:latest" not in (await rt.get_image(image.id)).names


async def test_two_runtimes_in_one_process_see_each_others_changes(
    store: Path, tmp_path: Path
) -> None:
    async with Runtime(store) as first, Runtime(store) as second:
        [image] = await load_images(first, tmp_path, APP)
        assert [i.id for i in await second.images()] == [APP.id]
        await second.tag(image.id, "by-second")
        assert "localhost/by-second:latest" in (await first.get_image(image.id)).names

        async def tag_many(rt: Runtime, prefix: str) -> None:
            for i in range(10):
                await rt.tag(image.id, f"{prefix}:{i}")

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(tag_many, first, "one")
                tg.start_soon(tag_many, second, "two")
                tg.start_soon(tag_many, first, "three")
        names = set((await second.get_image(image.id)).names)
    assert {f"localhost/{p}:{i}" for p in ("one", "two", "three") for i in range(10)} <= names
    assert len(names) == 32


async def test_a_failed_commit_leaves_the_old_store_and_releases_the_lock(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full_on_metadata(conn: sqlite3.Connection, changes: Changes) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    async with Runtime(store) as rt:
        await load_images(rt, tmp_path, OTHER)
        before = await rt.images()
        blobs_before = sorted(p.name for p in (store / "blobs" / "sha256").iterdir())
        monkeypatch.setattr(MetadataDB, "_apply", staticmethod(disk_full_on_metadata))
        with pytest.raises(aiopod.StorageFull, match="no space left on device") as caught:
            await load_images(rt, tmp_path, APP)
        monkeypatch.undo()
        assert caught.value.operation == "load"
        assert caught.value.path.endswith("metadata.db")

        assert lock_is_free(store)
        assert await rt.images() == before
        assert sorted(p.name for p in (store / "blobs" / "sha256").iterdir()) == blobs_before
        assert (await rt.check()).ok
        [loaded] = await load_images(rt, tmp_path, APP)  # and it works once there is room
        assert loaded.id == APP.id
