"""Containers: runtime containers (``create``) and storage-only working containers
(``from``), each with a real root file system unpacked through the layer applier."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from imagefactory import child_image, make_image, write_docker_archive
from peers import aiopod as run_aiopod

import aiopod

BASE = make_image("localhost/base:1", layers=[{"etc/os": b"base", "bin/tool": b"#!x"}])
CHILD = child_image(BASE, "localhost/child:1", files={"etc/os": b"child", "app/run": b"go"})


def _load(root: Path, tmp: Path, *images: object) -> None:
    archive = write_docker_archive(tmp / "images.tar", list(images))  # type: ignore[arg-type]
    assert run_aiopod("load", "-i", archive, root=root).returncode == 0


def test_create_unpacks_every_layer_in_order_into_the_container_root(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _load(root, tmp_path, BASE, CHILD)

    async def main() -> aiopod.Container:
        async with aiopod.Runtime(root) as rt:
            return await rt.create_container("child:1", ["sh", "-c", "true"], name="web")

    container = anyio.run(main)
    rootfs = root / "aiopod" / "containers" / container.id / "rootfs"
    assert (rootfs / "etc" / "os").read_bytes() == b"child"  # the upper layer wins
    assert (rootfs / "bin" / "tool").read_bytes() == b"#!x"
    assert (rootfs / "app" / "run").read_bytes() == b"go"
    assert container.name == "web"
    assert container.command == ("sh", "-c", "true")
    assert container.image_name == "localhost/child:1"
    assert len(container.id) == 64 and all(c in "0123456789abcdef" for c in container.id)
    assert os.stat(root / "aiopod" / "containers").st_mode & 0o777 == 0o700


def test_create_without_a_command_takes_the_image_cmd(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _load(root, tmp_path, BASE)
    result = run_aiopod("create", "base:1", root=root)
    assert result.returncode == 0, result.stderr
    ps = run_aiopod("ps", "-a", "--format", "json", root=root)
    [row] = __import__("json").loads(ps.stdout)
    assert row["Command"] == ["sh"]
    assert row["Id"] == result.stdout.strip()
    assert row["State"] == "created"


def test_a_container_name_is_unique(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _load(root, tmp_path, BASE)
    assert run_aiopod("create", "--name", "c1", "base:1", "true", root=root).returncode == 0
    again = run_aiopod("create", "--name", "c1", "base:1", "true", root=root)
    assert again.returncode == 125
    assert again.stderr.startswith('Error: the container name "c1" is already in use by ')
    assert "Traceback" not in again.stderr


def test_from_names_working_containers_as_buildah_does(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _load(root, tmp_path, BASE)
    names = [run_aiopod("from", "base:1", root=root).stdout.strip() for _ in range(3)]
    assert names == [
        "base-working-container",
        "base-working-container-1",
        "base-working-container-2",
    ]
    # Working containers are storage-only: ps shows them only with --external.
    assert run_aiopod("ps", "-a", "-q", root=root).stdout == ""
    external = run_aiopod("ps", "-a", "--external", root=root).stdout.splitlines()
    assert external[0].split() == [
        "CONTAINER",
        "ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    assert [line.split()[-1] for line in external[1:]] == names
    assert all(" Storage " in line for line in external[1:])


def test_rm_removes_runtime_and_working_containers_with_their_root(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _load(root, tmp_path, BASE)
    cid = run_aiopod("create", "--name", "c1", "base:1", "true", root=root).stdout.strip()
    run_aiopod("from", "base:1", root=root)
    removed = run_aiopod("rm", "c1", "base-working-container", "nosuch", root=root)
    assert removed.stdout.splitlines() == ["c1", "base-working-container"]
    assert (
        removed.stderr == 'Error: no container with name or ID "nosuch" found: no such container\n'
    )
    assert removed.returncode == 1
    assert list((root / "aiopod" / "containers").iterdir()) == []
    assert not (root / "aiopod" / "containers" / cid).exists()
    assert run_aiopod("system", "check", root=root).stdout == "store is consistent\n"


def test_a_hostile_layer_never_reaches_the_store_so_create_cannot_meet_it(tmp_path: Path) -> None:
    evil = make_image("localhost/evil:1", layers=[{"../../escape": b"x"}])
    root = tmp_path / "store"
    archive = write_docker_archive(tmp_path / "evil.tar", [evil])
    result = run_aiopod("load", "-i", archive, root=root)
    assert result.returncode == 125
    assert "climbs out of the root" in result.stderr
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("external", [False, True])
def test_removing_the_image_of_a_container_needs_force(tmp_path: Path, external: bool) -> None:
    root = tmp_path / "store"
    _load(root, tmp_path, BASE)

    async def main() -> tuple[aiopod.RemovalReport, aiopod.RemovalReport]:
        async with aiopod.Runtime(root) as rt:
            if external:
                await rt.create_working_container("base:1")
            else:
                await rt.create_container("base:1", ["true"])
            refused = await rt.remove_images(["base:1"])
            forced = await rt.remove_images(["base:1"], force=True)
            assert await rt.containers(external=True) == []
            return refused, forced

    refused, forced = anyio.run(main)
    assert refused.exit_code == 2
    assert forced.exit_code == 0
    assert forced.deleted == [BASE.id]
    assert len(forced.removed_containers) == 1
