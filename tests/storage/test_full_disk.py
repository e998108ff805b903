"""Outcomes on a full disk are the truth (docs/design/commit-points.md).

The sweep (``full_disk_sweep.py``) runs tag, untag, rmi, rmi -f, rm, load, container
create and a build's commit at every free-space level of a small tmpfs, in a private
mount namespace; the other tests inject the failure where the sweep cannot aim: after
the commit point, and into a store that has unfinished work.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from imagefactory import index_refs, load_images, make_image, write_docker_archive

import aiopod.storage.store as store_module
from aiopod import CommitUnfinished, Runtime, StorageFull
from aiopod.storage import fsutil
from aiopod.storage.metadata_db import Changes, MetadataDB

pytestmark = pytest.mark.anyio

APP = make_image("localhost/app:1", seed="full-app")
TESTS = Path(__file__).resolve().parent.parent


def _sweep_unavailable() -> str | None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "the full-disk sweep needs unshare(1) and mount(8)"
    return None


def test_full_disk_sweep_outcomes_agree_with_the_store(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the full-disk sweep mounts a tmpfs: it needs root")
    reason = _sweep_unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":  # CI runs as root: there the sweep must run
            pytest.fail(f"in CI the sweep must run: {reason}")
        pytest.skip(reason)
    work = tmp_path / "work"
    work.mkdir()
    report = tmp_path / "report.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), *sys.path]))
    proc = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            sys.executable,
            str(TESTS / "storage" / "full_disk_sweep.py"),
            "--mount",
            str(tmp_path / "mnt"),
            "--work",
            str(work),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    if proc.returncode != 0 and "mount" in proc.stderr and not report.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the sweep could not mount its tmpfs: {proc.stderr}")
        pytest.skip(f"no tmpfs in a private mount namespace here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(report.read_text())
    ops = {(r["op"], r["via"]): r for r in doc["ops"]}
    removals = ("rmi", "rmi-f", "rm")
    assert set(ops) == {
        *((op, "api") for op in ("tag", "untag", *removals, "load", "create", "build")),
        *((op, "cli") for op in ("tag", "untag", *removals)),
    }
    for (op, via), r in ops.items():
        assert r["wrong"] == 0, (op, via, r["details"])
        assert r["successes"] >= 4, (op, via)  # the sweep went past what the operation needs
        if op in removals:  # the reserve: a removal succeeds from 0 pages free up
            assert r["full"] == 0, (op, via, r["details"])
        else:
            assert r["full"] >= 1, (op, via)  # and started where it could not fit
    # The window after the commit point was met: successes that warned (CP4).
    assert sum(r["warnings"] for r in ops.values()) >= 1
    assert doc["rmi_on_full_disk"]["reported"] == "ok"
    assert doc["rmi_on_full_disk"]["free_pages_after"] > 0


def _full_on(names: set[str]) -> object:
    """An ``atomic_write`` that finds the disk full for files named in *names*."""
    original = fsutil.atomic_write

    def write(path: os.PathLike[str], data: bytes, **kwargs: bool) -> None:
        if Path(path).name in names:
            raise StorageFull(os.fspath(path), f"writing {Path(path).name}")
        original(path, data, **kwargs)

    return write


def _full_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the metadata database find the disk full when a commit writes to it."""

    def apply(conn: sqlite3.Connection, changes: Changes) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(MetadataDB, "_apply", staticmethod(apply))


async def test_a_failure_after_the_commit_point_is_a_warning_and_recovery_finishes_it(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, APP)
        monkeypatch.setattr(store_module, "atomic_write", _full_on({"index.json"}))
        with pytest.warns(CommitUnfinished, match=r"index\.json is not rendered yet"):
            tagged = await rt.tag(image.id, "localhost/app:2")
        assert "localhost/app:2" in tagged.names  # the result says what is in the store
        assert "localhost/app:2" in (await rt.get_image("localhost/app:2")).names
        assert [p.name for p in (store / "aiopod" / "journal").iterdir()]  # left to recovery
        assert "localhost/app:2" not in [name for name, _ in index_refs(store)]
        monkeypatch.undo()
        # The next commit finishes the earlier one first.
        await rt.untag(image.id, "localhost/app:1")
    assert not list((store / "aiopod" / "journal").iterdir())
    assert [name for name, _ in index_refs(store)] == ["localhost/app:2"]
    async with Runtime(store) as rt:
        actions = [e.action for e in rt.event_log.read()]
        assert actions[-2:] == ["tag", "untag"]  # in commit order, each once
        assert (await rt.check()).ok


async def test_a_store_with_unfinished_work_is_readable_on_a_full_disk(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, APP)
        monkeypatch.setattr(store_module, "atomic_write", _full_on({"index.json"}))
        with pytest.warns(CommitUnfinished):
            await rt.tag(image.id, "localhost/app:2")
    # Now nothing can be written: opening warns instead of failing, reading works.
    monkeypatch.setattr(store_module, "atomic_write", _full_on({"index.json", "reserve"}))
    _full_metadata(monkeypatch)
    with pytest.warns(CommitUnfinished, match="recovery of earlier work could not finish"):
        rt = Runtime(store)
        await rt.open()
    try:
        assert sorted((await rt.get_image(image.id)).names) == [
            "localhost/app:1",
            "localhost/app:2",
        ]
        assert (await rt.inspect_image("localhost/app:2"))["Id"] == image.id
        assert [e.action for e in rt.event_log.read()][-1] == "tag"
        await rt.save(tmp_path / "out.tar", ["localhost/app:2"])
        assert (tmp_path / "out.tar").stat().st_size > 0
        # A change that cannot be made says so, and changes nothing.
        with pytest.raises(StorageFull) as caught:
            await rt.tag(image.id, "localhost/app:3")
        assert caught.value.operation == "tag"
        assert "localhost/app:3" not in (await rt.get_image(image.id)).names
    finally:
        await rt.aclose()
    monkeypatch.undo()
    async with Runtime(store) as rt:
        assert (await rt.check()).ok
        assert not list((store / "aiopod" / "journal").iterdir())


async def test_a_full_disk_while_staging_is_storage_full_naming_the_file(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = write_docker_archive(tmp_path / "app.tar", [APP])

    def full_write(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    async with Runtime(store) as rt:
        monkeypatch.setattr(os, "write", full_write)
        with pytest.raises(StorageFull, match="no space left on device") as caught:
            await rt.load(archive)
        monkeypatch.undo()
        assert "/aiopod/tmp/" in caught.value.path
        assert not isinstance(caught.value.__cause__, StorageFull)
        assert await rt.images() == []
        [loaded] = await rt.load(archive)
        assert loaded.id == APP.id


async def test_a_removal_that_cannot_commit_raises_storage_full_and_changes_nothing(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    two = make_image("localhost/two:1", "localhost/two:2", seed="full-two")
    async with Runtime(store) as rt:
        [image] = await load_images(rt, tmp_path, two)
        _full_metadata(monkeypatch)
        with pytest.raises(StorageFull) as caught:
            await rt.remove_images(["localhost/two:2"])  # an untag: it frees nothing
        monkeypatch.undo()
        assert caught.value.operation == "rmi"
        assert str(caught.value).startswith("rmi: no space left on device writing ")
        assert caught.value.path.endswith("metadata.db")
        assert sorted((await rt.get_image(image.id)).names) == [
            "localhost/two:1",
            "localhost/two:2",
        ]
        assert not list((store / "aiopod" / "journal").iterdir())
        assert {e.action for e in rt.event_log.read()} == {"load"}
        assert (await rt.check()).ok
