"""Additional stores (issue 11, item 6): read-only aiopod stores layered under a private
one, as podman's ``additionalimagestores``: their images are listed, inspected, saved and
used as build bases and container images; they are never written; a removal that would
change them is refused with podman's message (compared with podman's own when it can run
an additional image store here).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from imagefactory import load_images, make_image, store_files, write_docker_archive
from peers import aiopod, aiopod_ok, require_peer, run

from aiopod import ReadOnlyStore, Runtime

pytestmark = pytest.mark.anyio

BASE = make_image("localhost/base:1", seed="additional-base")
MINE = make_image("localhost/mine:1", seed="additional-mine")


def untouched(root: Path) -> dict[str, str]:
    """What must not change in an additional store: every file, its lock's token too."""
    return {**store_files(root), "lock": (root / "aiopod" / "store.lock").read_bytes().hex()}


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """An aiopod store holding BASE, to be layered under others."""
    root = tmp_path / "shared"
    aiopod_ok("load", "-q", "-i", write_docker_archive(tmp_path / "base.tar", [BASE]), root=root)
    return root


async def test_images_of_an_additional_store_are_listed_inspected_and_saved(
    shared: Path, tmp_path: Path
) -> None:
    before = untouched(shared)
    async with Runtime(tmp_path / "mine", additional_stores=[shared]) as rt:
        await load_images(rt, tmp_path, MINE)
        listed = {i.id: (i.names, i.read_only) for i in await rt.images()}
        assert listed == {
            MINE.id: (("localhost/mine:1",), False),
            BASE.id: (("localhost/base:1",), True),
        }
        assert (await rt.inspect_image("localhost/base:1"))["Id"] == BASE.id
        assert [h.created_by for h in await rt.history("localhost/base:1")]
        await rt.save(tmp_path / "both.tar", ["localhost/base:1", "localhost/mine:1"])
    async with Runtime(tmp_path / "elsewhere") as other:
        loaded = {i.id for i in await other.load(tmp_path / "both.tar")}
    assert loaded == {BASE.id, MINE.id}
    assert untouched(shared) == before


async def test_removing_an_additional_stores_image_is_refused(shared: Path, tmp_path: Path) -> None:
    before = untouched(shared)
    async with Runtime(tmp_path / "mine", additional_stores=[shared]) as rt:
        for reference in ("localhost/base:1", BASE.id, BASE.id[:12]):
            report = await rt.remove_images([reference])
            assert [str(e) for e in report.errors] == [f'cannot remove read-only image "{BASE.id}"']
            assert report.exit_code == 125
            assert report.deleted == report.untagged == []
        with pytest.raises(ReadOnlyStore, match="cannot untag read-only image"):
            await rt.untag("localhost/base:1")
        assert (await rt.remove_images(all=True)).exit_code == 0  # nothing of its own
        assert [i.id for i in await rt.images()] == [BASE.id]
    assert untouched(shared) == before


async def test_tag_copies_the_image_into_the_private_store(shared: Path, tmp_path: Path) -> None:
    """As podman: the tagged image is this store's now (the additional one keeps its own)."""
    before = untouched(shared)
    mine = tmp_path / "mine"
    async with Runtime(mine, additional_stores=[shared]) as rt:
        image = await rt.tag("localhost/base:1", "copy:1")
        assert image.names == ("localhost/base:1", "localhost/copy:1")
        assert not image.read_only
    async with Runtime(mine) as alone:  # whole without the additional store
        assert [i.names for i in await alone.images()] == [("localhost/base:1", "localhost/copy:1")]
        assert (await alone.check()).ok
    assert untouched(shared) == before


async def test_a_container_of_an_additional_stores_image(shared: Path, tmp_path: Path) -> None:
    before = untouched(shared)
    mine = tmp_path / "mine"
    async with Runtime(mine, additional_stores=[shared]) as rt:
        container = await rt.create_container("localhost/base:1", ["sh"], name="c1")
        assert container.image_id == BASE.id
        assert [(i.names, i.read_only) for i in await rt.images()] == [
            (("localhost/base:1",), True)  # its record is copied here, names stay theirs
        ]
        async with Runtime(mine) as alone:
            assert (await alone.check()).ok
            assert [i.names for i in await alone.images(all=True)] == [()]
        await rt.remove_containers(["c1"])
        async with Runtime(mine) as alone:  # the copy went with its last container
            assert await alone.images(all=True) == []
        assert [(i.id, i.read_only) for i in await rt.images()] == [(BASE.id, True)]
    assert untouched(shared) == before


async def test_a_build_on_an_additional_stores_image(shared: Path, tmp_path: Path) -> None:
    before = untouched(shared)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "hello.txt").write_text("hi\n")
    (context / "Dockerfile").write_text(
        "FROM localhost/base:1\nCOPY hello.txt /hello.txt\nLABEL made=here\n"
    )
    mine = tmp_path / "mine"
    async with Runtime(mine, additional_stores=[shared]) as rt:
        built = await rt.build(context, tags=["localhost/built:1"], pull="never")
        assert built.labels == {"made": "here"}
    async with Runtime(mine) as alone:  # its base layer was linked into this store
        assert (await alone.check()).ok
        doc = await alone.inspect_image("localhost/built:1")
        assert len(doc["RootFS"]["Layers"]) == 2
        assert [i.id for i in await alone.images()] == [built.id]
    assert untouched(shared) == before


def test_the_command_line_shows_read_only_images_and_refuses_their_removal(
    shared: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    option = ("--additional-store", str(shared))
    table = aiopod_ok(*option, "images", root=mine).stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE", "R/O"]
    assert table[1].split()[:3] + table[1].split()[-1:] == [
        "localhost/base",
        "1",
        BASE.id[:12],
        "true",
    ]
    removed = aiopod(*option, "rmi", "localhost/base:1", root=mine)
    assert (removed.returncode, removed.stdout) == (125, "")
    assert removed.stderr == f'Error: cannot remove read-only image "{BASE.id}"\n'


@pytest.mark.peer("podman")
def test_podman_refuses_the_same_removal_with_the_same_words(tmp_path: Path) -> None:
    """podman 4.3 with ``overlay.imagestore`` (vfs has no additional image stores) on
    isolated roots; the image list and the refusal are compared with aiopod's."""
    require_peer("podman")
    archive = write_docker_archive(tmp_path / "base-for-podman.tar", [BASE])
    runroot = Path(tempfile.mkdtemp(prefix="aiopod-rr-", dir="/tmp"))
    try:

        def podman(root: Path, *args: str, store: Path | None = None) -> tuple[int, str, str]:
            cmd: list[str | Path] = ["podman", "--root", root, "--runroot", runroot / root.name]
            cmd += ["--storage-driver", "overlay", "--events-backend", "none"]
            if store is not None:
                cmd += ["--storage-opt", f"overlay.imagestore={store}"]
            proc = run([*cmd, *args], check=False)
            return proc.returncode, proc.stdout, proc.stderr

        code, _, err = podman(tmp_path / "pshared", "load", "-q", "-i", str(archive))
        if code != 0:
            pytest.skip(f"podman's overlay driver is not usable here: {err.strip()}")
        theirs = podman(tmp_path / "pmine", "rmi", "localhost/base:1", store=tmp_path / "pshared")
        listed = podman(
            tmp_path / "pmine", "images", "--format", "json", store=tmp_path / "pshared"
        )
    finally:
        run(["rm", "-rf", runroot])
    aiopod_ok("load", "-q", "-i", archive, root=tmp_path / "shared")
    option = ("--additional-store", str(tmp_path / "shared"))
    ours = aiopod(*option, "rmi", "localhost/base:1", root=tmp_path / "mine")
    assert (ours.returncode, ours.stdout, ours.stderr) == theirs
    rows = json.loads(
        aiopod_ok(*option, "images", "--format", "json", root=tmp_path / "mine").stdout
    )
    assert [(r["Id"], r["Names"], r["ReadOnly"]) for r in rows] == [
        (r["Id"], r["Names"], r["ReadOnly"]) for r in json.loads(listed[1])
    ]
