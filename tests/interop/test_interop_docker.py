"""docker writes, aiopod reads: ``docker save`` archives load into aiopod with docker's IDs.

Scenarios: images loaded into a private dockerd (from podman's archive) and saved back by
``docker save`` (docker's own v1-tree layout, ``<v1id>/layer.tar`` members); an image made by
``docker import`` (a docker-written config); ``docker save`` of several images. The docker
engine comes from the ``dockerd`` fixture (``$AIOPOD_TEST_DOCKER_HOST`` in CI).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import (
    Docker,
    PeerImages,
    aiopod_images,
    aiopod_inspect,
    aiopod_ok,
    loaded_names,
)

pytestmark = pytest.mark.peer("docker", "podman", "buildah")

NAMES = ["localhost/app:1", "localhost/app:2", "localhost/other:latest", "localhost/bb:latest"]


@pytest.fixture
def docker_with_peer_images(dockerd: Docker, peer_images: PeerImages) -> Docker:
    """The docker engine with the peer images freshly loaded from podman's archive."""
    dockerd.forget(*set(peer_images.ids.values()))
    dockerd("load", "-i", peer_images.archive("docker-archive", *NAMES))
    return dockerd


def test_docker_save_of_one_image_loads_into_aiopod_with_dockers_id(
    docker_with_peer_images: Docker, peer_images: PeerImages, store: Path, tmp_path: Path
) -> None:
    """docker save localhost/app:1 → aiopod load: docker's ID and only the saved name."""
    docker = docker_with_peer_images
    name = "localhost/app:1"
    archive = tmp_path / "docker-app.tar"
    docker("save", "-o", archive, name)
    result = aiopod_ok("load", "-i", archive, root=store)
    assert loaded_names(result.stdout) == [name]
    assert aiopod_images(store) == {docker.image_id(name): [name]}
    assert docker.image_id(name) == peer_images.ids[name]
    [info] = aiopod_inspect(store, name)
    assert info["RootFS"] == peer_images.podman.inspect(name)["RootFS"]


def test_docker_save_of_several_images_loads_into_aiopod(
    docker_with_peer_images: Docker, peer_images: PeerImages, store: Path, tmp_path: Path
) -> None:
    """docker save app:1 app:2 other (one image with two tags, shared base) → aiopod load."""
    docker = docker_with_peer_images
    names = ["localhost/app:1", "localhost/app:2", "localhost/other:latest"]
    archive = tmp_path / "docker-multi.tar"
    docker("save", "-o", archive, *names)
    result = aiopod_ok("load", "-i", archive, root=store)
    assert sorted(loaded_names(result.stdout)) == sorted(names)
    assert aiopod_images(store) == {
        docker.image_id("localhost/app:1"): ["localhost/app:1", "localhost/app:2"],
        docker.image_id("localhost/other:latest"): ["localhost/other:latest"],
    }


def test_docker_imported_image_round_trips_through_aiopod(
    dockerd: Docker, busybox_rootfs_tar: Path, store: Path, tmp_path: Path
) -> None:
    """docker import rootfs → docker save → aiopod load → aiopod save → docker load: one ID.

    docker writes its own config (``container_config``, docker media types); aiopod must
    keep the config bytes so that the ID survives the round trip.
    """
    name = "localhost/docker-imported:1"
    image_id = dockerd("import", busybox_rootfs_tar, name).stdout.strip().removeprefix("sha256:")
    archive = tmp_path / "docker-imported.tar"
    dockerd("save", "-o", archive, name)
    aiopod_ok("load", "-i", archive, root=store)
    assert aiopod_images(store) == {image_id: [name]}

    back = tmp_path / "back.tar"
    aiopod_ok("save", "-o", back, name, root=store)
    dockerd.forget(image_id)
    assert loaded_names(dockerd("load", "-i", back).stdout) == [name]
    assert dockerd.image_id(name) == image_id
    dockerd.forget(image_id)
