"""The aiopod store root IS an OCI layout: skopeo and umoci read a live store, and layouts
written by skopeo and umoci load into aiopod.

Scenarios:
- ``skopeo inspect oci:STORE:NAME`` (manifest, config, labels) on a live store;
- ``umoci ls`` / ``umoci unpack --image STORE:NAME``: the unpacked root file system equals
  umoci's unpack of the same image copied out of podman's storage by skopeo;
- ``skopeo copy oci:STORE:NAME containers-storage:`` gives podman the same image ID;
- ``tag`` / ``untag`` are visible to skopeo and umoci at once (``index.json`` is live);
- layouts written by ``skopeo copy`` (gzip, zstd, uncompressed layers; several images; short
  ref names) and by ``umoci init/new/insert/config/tag`` load into aiopod with the right IDs
  and names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from peers import (
    PeerImages,
    Podman,
    Tool,
    aiopod_images,
    aiopod_ok,
    diff_trees,
    loaded_names,
    read_oci_layout,
    strip_sha256,
    tree_snapshot,
)

pytestmark = pytest.mark.peer("podman", "buildah", "skopeo", "umoci")

APP = "localhost/app:1"
NAMES = ["localhost/app:1", "localhost/app:2", "localhost/other:latest", "localhost/bb:latest"]


@pytest.fixture
def live_store(peer_images: PeerImages, store: Path) -> Path:
    """An aiopod store holding the peer images (loaded from podman's multi-image archive)."""
    aiopod_ok("load", "-i", peer_images.archive("docker-archive", *NAMES), root=store)
    return store


def index_ref_names(layout: Path) -> list[str]:
    index = json.loads((layout / "index.json").read_text())
    return sorted(
        d["annotations"]["org.opencontainers.image.ref.name"]
        for d in index["manifests"]
        if "org.opencontainers.image.ref.name" in (d.get("annotations") or {})
    )


def umoci_unpack(umoci: Tool, image: str, bundle: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """umoci unpack IMAGE BUNDLE → (rootfs snapshot, runtime config.json)."""
    umoci("unpack", "--image", image, bundle)
    config = json.loads((bundle / "config.json").read_text())
    return tree_snapshot(bundle / "rootfs"), config


def runtime_process(config: dict[str, Any]) -> dict[str, Any]:
    process = config["process"]
    return {key: process.get(key) for key in ("args", "env", "cwd", "user")}


def reference_layout(peer: PeerImages, skopeo: Tool, dest: Path, name: str) -> Path:
    """skopeo copy of ``name`` from the peers' podman storage into an OCI layout at ``dest``."""
    skopeo("copy", "-q", peer.storage_ref(name), f"oci:{dest}:{name}")
    return dest


# --------------------------------------------------------------------------------------------
# Peers reading a live aiopod store


def test_store_root_is_an_oci_layout_with_one_descriptor_per_name(live_store: Path) -> None:
    """After loading, STORE/oci-layout and STORE/index.json name exactly the loaded images."""
    assert json.loads((live_store / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert index_ref_names(live_store) == sorted(NAMES)
    assert (live_store / "blobs" / "sha256").is_dir()


def test_skopeo_inspect_reads_live_aiopod_store(
    live_store: Path, peer_images: PeerImages, skopeo: Tool
) -> None:
    """skopeo inspect oci:STORE:localhost/app:1 — manifest, config and labels are podman's."""
    ref = f"oci:{live_store}:{APP}"
    manifest = json.loads(skopeo("inspect", "--raw", ref).stdout)
    assert strip_sha256(manifest["config"]["digest"]) == peer_images.ids[APP]
    config = json.loads(skopeo("inspect", "--config", ref).stdout)
    podman_info = peer_images.podman.inspect(APP)
    assert config["rootfs"]["diff_ids"] == podman_info["RootFS"]["Layers"]
    info = json.loads(skopeo("inspect", ref).stdout)
    assert info["Labels"] == podman_info["Labels"]
    assert info["Env"] == podman_info["Config"]["Env"]
    assert len(info["Layers"]) == len(podman_info["RootFS"]["Layers"])


def test_umoci_lists_the_names_of_a_live_aiopod_store(live_store: Path, umoci: Tool) -> None:
    """umoci ls --layout STORE prints every full name in the store."""
    assert sorted(umoci("ls", "--layout", live_store).stdout.split()) == sorted(NAMES)


@pytest.mark.parametrize("name", ["localhost/app:1", "localhost/other:latest"])
def test_umoci_unpack_of_live_store_matches_podmans_image(
    live_store: Path,
    peer_images: PeerImages,
    skopeo: Tool,
    umoci: Tool,
    tmp_path: Path,
    name: str,
) -> None:
    """umoci unpack --image STORE:NAME equals umoci unpack of podman's image (via skopeo).

    The app image has whiteouts (a removed file and a removed directory), a hard link, a
    symlink, a setuid file, a 0700 directory owned by 1000 and an image USER/WORKDIR/CMD.
    """
    reference = reference_layout(peer_images, skopeo, tmp_path / "reference", name)
    theirs, their_config = umoci_unpack(umoci, f"{reference}:{name}", tmp_path / "theirs")
    mine, my_config = umoci_unpack(umoci, f"{live_store}:{name}", tmp_path / "mine")
    assert mine == theirs, diff_trees(mine, theirs)
    assert runtime_process(my_config) == runtime_process(their_config)
    if name == APP:
        assert "victim/dir/old.txt" not in mine and "victim/gone" not in mine
        assert mine["app/suid.sh"][3] == "0o4755"
        assert mine["app/empty"][1:4] == ("0o700", 1000, 1000)


def test_skopeo_copies_from_live_store_into_podman_with_same_id(
    live_store: Path, peer_images: PeerImages, skopeo: Tool, podman: Podman
) -> None:
    """skopeo copy oci:STORE:localhost/app:1 containers-storage:… → podman has the same ID."""
    skopeo("copy", "-q", f"oci:{live_store}:{APP}", podman.storage_ref(APP))
    assert podman.images() == {peer_images.ids[APP]: [APP]}


def test_tag_and_untag_are_visible_to_skopeo_and_umoci(
    live_store: Path, peer_images: PeerImages, skopeo: Tool, umoci: Tool
) -> None:
    """aiopod tag app:1 registry.example.com:5000/team/app:v1.2; untag app:2 → layout updated."""
    new_name = "registry.example.com:5000/team/app:v1.2"
    aiopod_ok("tag", APP, new_name, root=live_store)
    aiopod_ok("untag", APP, "localhost/app:2", root=live_store)

    expected = sorted([*[n for n in NAMES if n != "localhost/app:2"], new_name])
    assert index_ref_names(live_store) == expected
    assert sorted(umoci("ls", "--layout", live_store).stdout.split()) == expected
    manifest = json.loads(skopeo("inspect", "--raw", f"oci:{live_store}:{new_name}").stdout)
    assert strip_sha256(manifest["config"]["digest"]) == peer_images.ids[APP]
    gone = skopeo("inspect", "--raw", f"oci:{live_store}:localhost/app:2", check=False)
    assert gone.returncode != 0
    assert "no descriptor found for reference" in gone.stderr


# --------------------------------------------------------------------------------------------
# Layouts written by skopeo and umoci, loaded into aiopod


@pytest.mark.parametrize(
    "compression",
    [
        [],
        ["--dest-oci-accept-uncompressed-layers"],
        ["--dest-compress-format", "zstd"],
    ],
    ids=["gzip", "uncompressed", "zstd"],
)
def test_skopeo_written_layout_loads_into_aiopod(
    peer_images: PeerImages, skopeo: Tool, store: Path, tmp_path: Path, compression: list[str]
) -> None:
    """skopeo copy containers-storage:app:1 oci:DIR:localhost/app:1 → aiopod load -i DIR."""
    layout = tmp_path / "layout"
    skopeo("copy", "-q", *compression, peer_images.storage_ref(APP), f"oci:{layout}:{APP}")
    result = aiopod_ok("load", "-i", layout, root=store)
    assert loaded_names(result.stdout) == [APP]
    assert aiopod_images(store) == {peer_images.ids[APP]: [APP]}


def test_skopeo_written_oci_archive_loads_into_aiopod(
    peer_images: PeerImages, skopeo: Tool, store: Path, tmp_path: Path
) -> None:
    """skopeo copy containers-storage:other oci-archive:F:localhost/other:latest → aiopod."""
    name = "localhost/other:latest"
    archive = tmp_path / "other.tar"
    skopeo("copy", "-q", peer_images.storage_ref(name), f"oci-archive:{archive}:{name}")
    result = aiopod_ok("load", "-i", archive, root=store)
    assert loaded_names(result.stdout) == [name]
    assert aiopod_images(store) == {peer_images.ids[name]: [name]}


def test_oci_archive_with_short_ref_name_loads_like_podman(
    peer_images: PeerImages, skopeo: Tool, store: Path, tmp_path: Path, podman: Podman
) -> None:
    """A single-image oci-archive with ref.name ``bbshort`` loads as localhost/bbshort:latest."""
    archive = tmp_path / "short.tar"
    skopeo(
        "copy",
        "-q",
        peer_images.storage_ref("localhost/bb:latest"),
        f"oci-archive:{archive}:bbshort",
    )
    podman_names = loaded_names(podman("load", "-i", archive).stdout)
    result = aiopod_ok("load", "-i", archive, root=store)
    assert loaded_names(result.stdout) == podman_names == ["localhost/bbshort:latest"]
    assert aiopod_images(store) == podman.images()


def test_multi_image_skopeo_layout_loads_every_ref_into_aiopod(
    peer_images: PeerImages, skopeo: Tool, store: Path, tmp_path: Path
) -> None:
    """One layout, three refs (app:1 and app:2 on one manifest, other) → aiopod load -i DIR."""
    layout = tmp_path / "multi"
    for name in ("localhost/app:1", "localhost/app:2", "localhost/other:latest"):
        skopeo("copy", "-q", peer_images.storage_ref(name), f"oci:{layout}:{name}")
    result = aiopod_ok("load", "-i", layout, root=store)
    assert sorted(loaded_names(result.stdout)) == [
        "localhost/app:1",
        "localhost/app:2",
        "localhost/other:latest",
    ]
    assert aiopod_images(store) == {
        peer_images.ids[APP]: ["localhost/app:1", "localhost/app:2"],
        peer_images.ids["localhost/other:latest"]: ["localhost/other:latest"],
    }


def test_umoci_written_layout_loads_into_aiopod(
    busybox_rootfs_tar: Path, umoci: Tool, store: Path, tmp_path: Path
) -> None:
    """umoci init/new/insert/config/tag → aiopod load: the config digest is the ID, both refs.

    umoci's layers are gzip with a ``/`` root entry and real mtimes; unpacking the image
    from the aiopod store with umoci gives umoci's own root file system back.
    """
    import tarfile

    layout = tmp_path / "umoci-layout"
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    with tarfile.open(busybox_rootfs_tar) as tf:
        tf.extractall(rootfs, filter="fully_trusted")
    (tmp_path / "motd").write_text("hello from umoci\n")
    image = f"{layout}:localhost/umo:1"
    umoci("init", "--layout", layout)
    umoci("new", "--image", image)
    umoci("insert", "--image", image, rootfs, "/")
    umoci("insert", "--image", image, tmp_path / "motd", "/etc/motd")
    umoci("config", "--image", image, "--config.env", "FOO=bar", "--config.cmd", "sh")
    umoci("config", "--image", image, "--config.label", "org.example.by=umoci")
    umoci("tag", "--image", image, "localhost/umo:alias")
    refs = read_oci_layout(layout)
    assert sorted(refs) == ["localhost/umo:1", "localhost/umo:alias"]
    image_id = refs["localhost/umo:1"]["config_digest"]

    result = aiopod_ok("load", "-i", layout, root=store)
    assert sorted(loaded_names(result.stdout)) == ["localhost/umo:1", "localhost/umo:alias"]
    assert aiopod_images(store) == {image_id: ["localhost/umo:1", "localhost/umo:alias"]}

    theirs, their_config = umoci_unpack(umoci, image, tmp_path / "theirs")
    mine, my_config = umoci_unpack(umoci, f"{store}:localhost/umo:alias", tmp_path / "mine")
    assert mine == theirs, diff_trees(mine, theirs)
    assert runtime_process(my_config) == runtime_process(their_config)
    assert mine["etc/motd"][0] == "file"
