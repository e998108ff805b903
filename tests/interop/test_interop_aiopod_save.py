"""aiopod writes, podman/skopeo/docker read: ``aiopod save`` archives load with the same IDs.

Scenarios: aiopod loads podman-built images, then ``aiopod save`` in each format (default
docker-archive, docker-archive, oci-archive, oci-dir), of one image and of several; the
archives are read by ``podman load``, ``skopeo copy`` (where podman 4.3 cannot: multi-image
OCI) and ``docker load`` (docker-archive) / ``skopeo copy ... docker-daemon:`` (OCI formats,
which docker 20.10's ``load`` does not read).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from peers import (
    Docker,
    PeerImages,
    Podman,
    Tool,
    aiopod_images,
    aiopod_ok,
    loaded_names,
    read_oci_layout,
)

pytestmark = pytest.mark.peer("podman", "buildah")

APP = "localhost/app:1"
ALL_NAMES = ["localhost/app:1", "localhost/app:2", "localhost/other:latest", "localhost/bb:latest"]
FORMATS = ["docker-archive", "oci-archive", "oci-dir"]


def load_all(peer: PeerImages, store: Path) -> None:
    aiopod_ok("load", "-i", peer.archive("docker-archive", *ALL_NAMES), root=store)


def saved_path(tmp_path: Path, fmt: str) -> Path:
    return tmp_path / ("saved-dir" if fmt == "oci-dir" else f"saved-{fmt}.tar")


def expected_all(peer: PeerImages) -> dict[str, list[str]]:
    return {
        peer.ids["localhost/app:1"]: ["localhost/app:1", "localhost/app:2"],
        peer.ids["localhost/other:latest"]: ["localhost/other:latest"],
        peer.ids["localhost/bb:latest"]: ["localhost/bb:latest"],
    }


def oci_ref_names(path: Path) -> list[str]:
    """The ref.name annotations of an oci-archive file or OCI layout directory."""
    if path.is_dir():
        index = json.loads((path / "index.json").read_text())
    else:
        with tarfile.open(path) as tf:
            member = tf.extractfile("index.json")
            assert member is not None
            index = json.loads(member.read())
    return sorted(
        d["annotations"]["org.opencontainers.image.ref.name"]
        for d in index["manifests"]
        if "org.opencontainers.image.ref.name" in (d.get("annotations") or {})
    )


def test_aiopod_save_defaults_to_docker_archive(
    peer_images: PeerImages, store: Path, tmp_path: Path, podman: Podman
) -> None:
    """aiopod save -o F IMAGE (no --format) writes a docker-archive that podman loads."""
    load_all(peer_images, store)
    out = tmp_path / "default.tar"
    aiopod_ok("save", "-o", out, APP, root=store)
    with tarfile.open(out) as tf:
        member = tf.extractfile("manifest.json")
        assert member is not None
        manifest = json.loads(member.read())
    assert [entry["RepoTags"] for entry in manifest] == [[APP]]
    assert (
        manifest[0]["Config"].removeprefix("blobs/sha256/").removesuffix(".json")
        == (peer_images.ids[APP])
    )
    assert loaded_names(podman("load", "-i", out).stdout) == [APP]
    assert podman.images() == {peer_images.ids[APP]: [APP]}


@pytest.mark.parametrize("fmt", FORMATS)
def test_aiopod_save_one_image_loads_into_podman_with_same_id(
    peer_images: PeerImages, store: Path, tmp_path: Path, podman: Podman, fmt: str
) -> None:
    """aiopod save --format FMT localhost/app:1 → podman load: podman's own ID and layers.

    podman 4.3 names an image loaded from an OCI *directory* after the directory's path
    (``localhost/<path>:latest``), whatever its ref.name; that quirk is podman's, so for
    oci-dir only the ID is compared here (the name is checked through skopeo below).
    """
    load_all(peer_images, store)
    out = saved_path(tmp_path, fmt)
    aiopod_ok("save", "--format", fmt, "-o", out, APP, root=store)

    podman("load", "-i", out)
    images = podman.images()
    assert list(images) == [peer_images.ids[APP]]
    if fmt != "oci-dir":
        assert images == {peer_images.ids[APP]: [APP]}
    mine = podman.inspect(peer_images.ids[APP])
    theirs = peer_images.podman.inspect(APP)
    for key in ("RootFS", "Config", "History", "Created", "Labels", "Architecture", "Os"):
        assert mine[key] == theirs[key], key
    if fmt != "docker-archive":
        assert oci_ref_names(out) == [APP]


@pytest.mark.parametrize("fmt", ["oci-archive", "oci-dir"])
def test_aiopod_oci_save_copies_into_podman_storage_under_its_ref_name(
    peer_images: PeerImages,
    store: Path,
    tmp_path: Path,
    podman: Podman,
    skopeo: Tool,
    fmt: str,
) -> None:
    """aiopod save --format FMT app:1 → skopeo copy FMT:OUT:localhost/app:1 containers-storage."""
    load_all(peer_images, store)
    out = saved_path(tmp_path, fmt)
    aiopod_ok("save", "--format", fmt, "-o", out, APP, root=store)
    transport = "oci" if fmt == "oci-dir" else "oci-archive"
    skopeo("copy", "-q", f"{transport}:{out}:{APP}", podman.storage_ref(APP))
    assert podman.images() == {peer_images.ids[APP]: [APP]}


def test_aiopod_save_multi_image_docker_archive_loads_into_podman(
    peer_images: PeerImages, store: Path, tmp_path: Path, podman: Podman
) -> None:
    """aiopod save of four names (three images, shared base) as docker-archive → podman load."""
    load_all(peer_images, store)
    out = tmp_path / "multi.tar"
    aiopod_ok("save", "--format", "docker-archive", "-o", out, *ALL_NAMES, root=store)
    assert sorted(loaded_names(podman("load", "-i", out).stdout)) == sorted(ALL_NAMES)
    assert podman.images() == expected_all(peer_images)


@pytest.mark.parametrize("fmt", ["oci-archive", "oci-dir"])
def test_aiopod_save_multi_image_oci_formats_hold_every_name(
    peer_images: PeerImages,
    store: Path,
    tmp_path: Path,
    podman: Podman,
    skopeo: Tool,
    fmt: str,
) -> None:
    """aiopod save --format FMT of four names → one ref.name each; skopeo copies each one.

    (``podman load`` of a multi-image OCI archive fails in 4.3.1, so skopeo reads it.)
    """
    load_all(peer_images, store)
    out = saved_path(tmp_path, fmt)
    aiopod_ok("save", "--format", fmt, "-o", out, *ALL_NAMES, root=store)
    assert oci_ref_names(out) == sorted(ALL_NAMES)
    transport = "oci" if fmt == "oci-dir" else "oci-archive"
    for name in ALL_NAMES:
        skopeo("copy", "-q", f"{transport}:{out}:{name}", podman.storage_ref(name))
    assert podman.images() == expected_all(peer_images)
    if fmt == "oci-dir":
        layout = read_oci_layout(out)
        assert {name: layout[name]["config_digest"] for name in ALL_NAMES} == peer_images.ids


@pytest.mark.peer("docker")
def test_aiopod_save_docker_archive_loads_into_docker_with_same_id(
    peer_images: PeerImages, store: Path, tmp_path: Path, dockerd: Docker
) -> None:
    """aiopod save (docker-archive) of app:1, app:2, other → docker load: docker's IDs/tags."""
    load_all(peer_images, store)
    names = ["localhost/app:1", "localhost/app:2", "localhost/other:latest"]
    out = tmp_path / "for-docker.tar"
    aiopod_ok("save", "-o", out, *names, root=store)
    ids = {peer_images.ids[name] for name in names}
    dockerd.forget(*ids)
    result = dockerd("load", "-i", out)
    assert sorted(loaded_names(result.stdout)) == sorted(names)
    assert dockerd.image_id("localhost/app:1") == peer_images.ids["localhost/app:1"]
    assert dockerd.repo_tags("localhost/app:1") == ["localhost/app:1", "localhost/app:2"]
    assert dockerd.image_id("localhost/other:latest") == peer_images.ids["localhost/other:latest"]
    dockerd.forget(*ids)


@pytest.mark.peer("docker", "skopeo")
@pytest.mark.parametrize("fmt", ["oci-archive", "oci-dir"])
def test_aiopod_oci_save_copies_into_docker_with_same_id(
    peer_images: PeerImages,
    store: Path,
    tmp_path: Path,
    dockerd: Docker,
    skopeo: Tool,
    fmt: str,
) -> None:
    """aiopod save --format FMT app:1 → skopeo copy ... docker-daemon: → docker's image ID."""
    load_all(peer_images, store)
    out = saved_path(tmp_path, fmt)
    aiopod_ok("save", "--format", fmt, "-o", out, APP, root=store)
    image_id = peer_images.ids[APP]
    dockerd.forget(image_id)
    transport = "oci" if fmt == "oci-dir" else "oci-archive"
    skopeo(
        "copy",
        "-q",
        "--dest-daemon-host",
        dockerd.host,
        f"{transport}:{out}:{APP}",
        f"docker-daemon:{APP}",
    )
    assert dockerd.image_id(APP) == image_id
    dockerd.forget(image_id)


@pytest.mark.peer("skopeo", "docker-registry")
def test_aiopod_oci_archive_round_trips_through_a_registry_with_skopeo(
    peer_images: PeerImages,
    store: Path,
    tmp_path: Path,
    registry: str,
    skopeo: Tool,
    podman: Podman,
) -> None:
    """aiopod save (oci-archive) → skopeo copy → registry → skopeo copy → podman and aiopod.

    The config digest (the image ID) survives a push and a pull through a real registry.
    """
    load_all(peer_images, store)
    out = tmp_path / "for-registry.tar"
    aiopod_ok("save", "--format", "oci-archive", "-o", out, APP, root=store)
    remote = f"docker://{registry}/aiopod-test/app:{tmp_path.name}"
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci-archive:{out}:{APP}", remote)

    skopeo("copy", "-q", "--src-tls-verify=false", remote, podman.storage_ref(APP))
    assert podman.images() == {peer_images.ids[APP]: [APP]}

    pulled = tmp_path / "pulled"
    skopeo("copy", "-q", "--src-tls-verify=false", remote, f"oci:{pulled}:localhost/pulled:1")
    other_store = tmp_path / "other-store"
    aiopod_ok("load", "-i", pulled, root=other_store)
    assert aiopod_images(other_store) == {peer_images.ids[APP]: ["localhost/pulled:1"]}
