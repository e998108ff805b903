"""``aiopod import`` of a root file system tarball, compared with ``podman import``.

podman import's image ID depends on the creation time, so the comparison is on content:
the unpacked root file system (umoci unpack of the aiopod store vs of podman's image copied
out by skopeo), the platform, one layer, and that podman loads aiopod's save of the imported
image with aiopod's ID.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from peers import (
    Podman,
    Tool,
    aiopod_images,
    aiopod_inspect,
    aiopod_ok,
    diff_trees,
    loaded_names,
    tree_snapshot,
)

pytestmark = pytest.mark.peer("podman", "skopeo", "umoci")

NAME = "localhost/bbi:1"


def imported_id(stdout: str) -> str:
    """The image ID that ``import`` printed (podman prints ``sha256:<hex>``)."""
    lines = stdout.split()
    assert len(lines) == 1, stdout
    image_id = lines[0].removeprefix("sha256:")
    assert re.fullmatch(r"[0-9a-f]{64}", image_id), stdout
    return image_id


def test_aiopod_import_creates_one_layer_image_named_as_asked(
    busybox_rootfs_tar: Path, store: Path, podman: Podman
) -> None:
    """aiopod import TARBALL NAME prints the ID; one layer; the platform podman import uses."""
    image_id = imported_id(aiopod_ok("import", busybox_rootfs_tar, NAME, root=store).stdout)
    assert aiopod_images(store) == {image_id: [NAME]}
    [info] = aiopod_inspect(store, NAME)
    assert info["Id"] == image_id
    assert len(info["RootFS"]["Layers"]) == 1

    podman("import", busybox_rootfs_tar, NAME)
    theirs = podman.inspect(NAME)
    assert (info["Architecture"], info["Os"]) == (theirs["Architecture"], theirs["Os"])
    assert info["RootFS"]["Type"] == theirs["RootFS"]["Type"] == "layers"


def test_aiopod_import_without_name_is_an_untagged_image(
    busybox_rootfs_tar: Path, store: Path
) -> None:
    """aiopod import TARBALL (no name) → one image with no names, listed by ``images -a``."""
    image_id = imported_id(aiopod_ok("import", busybox_rootfs_tar, root=store).stdout)
    assert aiopod_images(store) == {image_id: []}


def test_aiopod_import_rootfs_matches_podman_import_rootfs(
    busybox_rootfs_tar: Path,
    store: Path,
    podman: Podman,
    skopeo: Tool,
    umoci: Tool,
    tmp_path: Path,
) -> None:
    """umoci unpack of aiopod's imported image == umoci unpack of podman's imported image."""
    aiopod_ok("import", busybox_rootfs_tar, NAME, root=store)
    podman("import", busybox_rootfs_tar, NAME)
    reference = tmp_path / "reference"
    skopeo("copy", "-q", podman.storage_ref(NAME), f"oci:{reference}:{NAME}")

    umoci("unpack", "--image", f"{reference}:{NAME}", tmp_path / "theirs")
    umoci("unpack", "--image", f"{store}:{NAME}", tmp_path / "mine")
    theirs = tree_snapshot(tmp_path / "theirs" / "rootfs")
    mine = tree_snapshot(tmp_path / "mine" / "rootfs")
    assert mine == theirs, diff_trees(mine, theirs)
    assert mine["bin/busybox"][0] == "file"
    assert mine["bin/sh"][:2] == ("symlink", "busybox")
    assert mine["tmp"][1] == "0o1777"


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_loads_aiopods_save_of_an_imported_image(
    busybox_rootfs_tar: Path, store: Path, podman: Podman, tmp_path: Path, fmt: str
) -> None:
    """aiopod import → aiopod save --format FMT → podman load: aiopod's ID and name."""
    image_id = imported_id(aiopod_ok("import", busybox_rootfs_tar, NAME, root=store).stdout)
    archive = tmp_path / "imported.tar"
    aiopod_ok("save", "--format", fmt, "-o", archive, NAME, root=store)
    assert loaded_names(podman("load", "-i", archive).stdout) == [NAME]
    assert podman.images() == {image_id: [NAME]}
