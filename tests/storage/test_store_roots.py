"""Stores that are safe to point at (issue 11, item 6): where ``open`` makes a store, what
it refuses (podman's store, an OCI layout, a directory of other files), and read-only use,
asked for or because the caller cannot write the store (another user, as ``nobody``).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from pathlib import Path

import anyio
import pytest
from imagefactory import load_images, make_image, store_files, write_docker_archive, write_oci_dir
from peers import aiopod, aiopod_env, require_peer, run
from rootless import run_as_nobody

from aiopod import NotAStore, ReadOnlyStore, Runtime
from aiopod.cli.exit_codes import exit_code_of

pytestmark = pytest.mark.anyio

APP = make_image("localhost/app:1", seed="roots-app")


def tree_with_modes(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry under *root* with its content hash (or kind) and its mode, the lock's
    content included: a read-only runtime writes nothing at all."""
    listing = {rel: (kind, 0) for rel, kind in store_files(root).items()}
    for rel in listing:
        kind = listing[rel][0]
        if rel == "aiopod/store.lock":
            kind = (root / rel).read_bytes().hex()
        listing[rel] = (kind, stat.S_IMODE((root / rel).lstat().st_mode))
    return {**listing, ".": ("dir", stat.S_IMODE(root.stat().st_mode))}


async def a_store_with_app(root: Path, work: Path) -> None:
    async with Runtime(root) as rt:
        await load_images(rt, work, APP)


# ------------------------------------------------------------------------- where a store is made


async def test_a_missing_directory_becomes_a_private_store(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "store"
    async with Runtime(root) as rt:
        assert not rt.read_only
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert (root / "oci-layout").is_file()


async def test_an_empty_directory_becomes_a_store_and_keeps_its_mode(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    async with Runtime(root):
        pass
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert (root / "aiopod").is_dir()


async def test_a_directory_of_other_files_is_refused_unless_create(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "notes.txt").write_text("mine\n")
    with pytest.raises(NotAStore) as caught:
        async with Runtime(root):
            pass
    assert str(caught.value) == (
        f"{root} is not empty and is not an aiopod store: give a new or empty directory, "
        "or --create (create=True) to make a store in it anyway"
    )
    assert exit_code_of(caught.value) == 125
    assert sorted(os.listdir(root)) == ["notes.txt"]  # nothing was written
    async with Runtime(root, create=True) as rt:
        await load_images(rt, tmp_path, APP)
    async with Runtime(root) as rt:  # a store now: no asking again
        assert [i.id for i in await rt.images()] == [APP.id]
    assert (root / "notes.txt").read_text() == "mine\n"


async def test_an_oci_layout_is_never_taken_over(tmp_path: Path) -> None:
    layout = write_oci_dir(tmp_path / "layout", [APP])
    before = store_files(layout)
    for create in (False, True):
        with pytest.raises(NotAStore, match="is an OCI image layout, not an aiopod store"):
            async with Runtime(layout, create=create):
                pass
    assert store_files(layout) == before


@pytest.mark.peer("podman")
async def test_podmans_store_is_named_and_never_taken_over(tmp_path: Path) -> None:
    """The layout is podman's own, made by podman at test time (vfs, isolated roots)."""
    root = tmp_path / "graph"
    runroot = Path(tempfile.mkdtemp(prefix="aiopod-rr-", dir="/tmp"))
    try:
        archive = write_docker_archive(tmp_path / "app.tar", [APP])
        podman: list[str | Path] = [
            "podman",
            "--root",
            root,
            "--runroot",
            runroot,
            "--storage-driver",
            "vfs",
        ]
        run([*podman, "--events-backend", "none", "load", "-q", "-i", archive])
    finally:
        run(["rm", "-rf", runroot])
    before = store_files(root)
    for create in (False, True):
        with pytest.raises(NotAStore) as caught:
            async with Runtime(root, create=create):
                pass
        assert str(caught.value) == (
            f"{root} is podman's store (containers/storage), not an aiopod store: "
            "give aiopod a directory of its own (--root DIR)"
        )
    assert store_files(root) == before
    proc = aiopod("images", root=root)
    assert (proc.returncode, proc.stdout) == (125, "")
    assert proc.stderr == (
        f"Error: {root} is podman's store (containers/storage), not an aiopod store: "
        "give aiopod a directory of its own (--root DIR)\n"
    )


def test_the_command_line_refuses_then_creates_with_create(tmp_path: Path) -> None:
    root = tmp_path / "typo"
    root.mkdir()
    (root / "data.csv").write_text("1,2\n")
    refused = aiopod("images", root=root)
    assert refused.returncode == 125
    assert refused.stderr.count("\n") == 1
    assert "not empty and is not an aiopod store" in refused.stderr
    made = aiopod("--create", "images", "-q", root=root)
    assert (made.returncode, made.stdout) == (0, "")
    assert (root / "aiopod").is_dir()


def test_the_default_store_is_created_without_asking(tmp_path: Path) -> None:
    """No ``--root``, no ``$AIOPOD_ROOT``: ``$XDG_DATA_HOME/aiopod`` is made on first use,
    as it was before stores were checked."""
    env = aiopod_env()
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["HOME"] = str(tmp_path / "home")
    proc = run([sys.executable, "-m", "aiopod", "images", "-q"], env=env)
    assert proc.stdout == ""
    assert (tmp_path / "data" / "aiopod" / "aiopod").is_dir()
    run([sys.executable, "-m", "aiopod", "images", "-q"], env=env)  # and reopened


# ------------------------------------------------------------------------------------ read-only


async def test_read_only_reads_everything_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    await a_store_with_app(root, tmp_path)
    before = tree_with_modes(root)
    async with Runtime(root, read_only=True) as rt:
        assert rt.read_only
        [image] = await rt.images()
        assert image.id == APP.id
        assert (await rt.inspect_image("localhost/app:1"))["Id"] == APP.id
        assert await rt.history("localhost/app:1")
        assert str(await rt.image_tree("localhost/app:1"))
        assert (await rt.disk_usage()).images
        assert (await rt.check()).ok
        logged = len(list(rt.event_log.read()))
        assert logged > 0
        await rt.save(tmp_path / "out.tar", ["localhost/app:1"])
        assert len(list(rt.event_log.read())) == logged  # a read-only save logs nothing
        for change in (
            rt.tag("localhost/app:1", "other:1"),
            rt.untag("localhost/app:1"),
            rt.remove_image("localhost/app:1"),
            rt.load(tmp_path / "out.tar"),
            rt.create_container("localhost/app:1", ["true"]),
            rt.check(repair=True),
        ):
            with pytest.raises(ReadOnlyStore, match=f"the store {root} is read-only"):
                await change
    assert tree_with_modes(root) == before
    async with Runtime(tmp_path / "copy") as copy:  # the save is complete and loads
        [loaded] = await copy.load(tmp_path / "out.tar")
    assert loaded.id == APP.id


async def test_read_only_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(NotAStore, match="a read-only runtime opens an existing store only"):
        async with Runtime(tmp_path / "missing", read_only=True):
            pass
    assert not (tmp_path / "missing").exists()


def test_another_user_reads_a_store_made_readable_for_others(tmp_path: Path) -> None:
    """Run as ``nobody`` (see ``rootless``): before, ``open`` chmodded the root to 0700 and
    failed with "Operation not permitted"; now the store opens read-only by itself."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a process as nobody")
    require_peer("setpriv")
    root = tmp_path / "shared"
    anyio.run(a_store_with_app, root, tmp_path)
    run(["chmod", "-R", "go+rX", root])
    before = tree_with_modes(root)
    script = "import sys, aiopod.cli.app as app; app.main(sys.argv[1:])"
    listed = run_as_nobody(script, "--root", str(root), "images", "--format", "{{.ID}} {{.Tag}}")
    assert (listed.returncode, listed.stderr) == (0, ""), listed.stderr
    assert listed.stdout == f"{APP.id[:12]} 1\n"
    inspected = run_as_nobody(script, "--root", str(root), "image", "inspect", "localhost/app:1")
    assert json.loads(inspected.stdout)[0]["Id"] == APP.id
    tagged = run_as_nobody(script, "--root", str(root), "tag", "localhost/app:1", "mine:1")
    assert tagged.returncode == 125
    assert tagged.stderr == (
        f"Error: the store {root} is read-only: it can be listed, inspected and saved "
        "from, not changed (open it writable, as a user who may write it)\n"
    )
    assert tree_with_modes(root) == before


async def test_a_fresh_file_systems_lost_and_found_counts_as_empty(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    (root / "lost+found").mkdir(parents=True)
    async with Runtime(root):
        pass
    assert (root / "aiopod").is_dir()
