"""podman writes, aiopod reads: archives saved by podman load into aiopod with podman's IDs.

Scenarios: ``podman save`` in docker-archive, oci-archive and oci-dir format of one image,
and ``podman save -m`` of several images (shared layers, two names on one image) in
docker-archive format; each loaded with ``aiopod load -i``. The image IDs, names, layer
diff_ids, config and history must be podman's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import (
    PeerImages,
    Podman,
    aiopod_images,
    aiopod_inspect,
    aiopod_ok,
    loaded_names,
)

pytestmark = pytest.mark.peer("podman", "buildah")

APP = "localhost/app:1"


def assert_inspect_matches_podman(store: Path, peer: PeerImages, name: str) -> None:
    """aiopod's ``image inspect`` of ``name`` agrees with podman's on the image's content."""
    [mine] = aiopod_inspect(store, name)
    theirs = peer.podman.inspect(name)
    assert mine["Id"] == theirs["Id"] == peer.ids[name]
    assert mine["RootFS"] == theirs["RootFS"]
    assert mine["Config"] == theirs["Config"]
    assert mine["History"] == theirs["History"]
    assert mine["Created"] == theirs["Created"]
    assert (mine["Architecture"], mine["Os"]) == (theirs["Architecture"], theirs["Os"])
    assert mine["Labels"] == theirs["Labels"]


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive", "oci-dir"])
def test_podman_save_one_image_loads_into_aiopod_with_podmans_id(
    peer_images: PeerImages, store: Path, fmt: str
) -> None:
    """podman save --format FMT localhost/app:1 → aiopod load: same ID, the one name.

    For oci-dir the name comes from the descriptor's ref.name (podman 4.3 itself would name
    the image after the directory; aiopod follows the layout's annotation).
    """
    archive = peer_images.archive(fmt, APP)
    result = aiopod_ok("load", "-i", archive, root=store)
    assert loaded_names(result.stdout) == [APP]
    assert aiopod_images(store) == {peer_images.ids[APP]: [APP]}
    [info] = aiopod_inspect(store, APP)
    assert info["RepoTags"] == [APP]
    assert_inspect_matches_podman(store, peer_images, APP)


def test_podman_save_multi_image_docker_archive_loads_all_names(
    peer_images: PeerImages, store: Path, podman: Podman
) -> None:
    """podman save -m app:1 app:2 other bb (docker-archive, shared base layer) → aiopod load.

    aiopod prints the same ``Loaded image:`` lines as ``podman load`` of the same archive, and
    ends with the same images and names as podman.
    """
    names = ["localhost/app:1", "localhost/app:2", "localhost/other:latest", "localhost/bb:latest"]
    archive = peer_images.archive("docker-archive", *names)

    podman_out = podman("load", "-i", archive).stdout
    result = aiopod_ok("load", "-i", archive, root=store)

    assert loaded_names(result.stdout) == loaded_names(podman_out) == names
    expected = {
        peer_images.ids["localhost/app:1"]: ["localhost/app:1", "localhost/app:2"],
        peer_images.ids["localhost/other:latest"]: ["localhost/other:latest"],
        peer_images.ids["localhost/bb:latest"]: ["localhost/bb:latest"],
    }
    assert aiopod_images(store) == podman.images() == expected
    for name in ("localhost/app:2", "localhost/other:latest", "localhost/bb:latest"):
        assert_inspect_matches_podman(store, peer_images, name)
    # The two images on the busybox base share its layer.
    [app, other] = aiopod_inspect(store, "localhost/app:1", "localhost/other:latest")
    assert app["RootFS"]["Layers"][0] == other["RootFS"]["Layers"][0]


def test_loading_the_same_podman_archive_twice_is_idempotent(
    peer_images: PeerImages, store: Path
) -> None:
    """podman docker-archive loaded twice: one image, one name, both loads report it."""
    archive = peer_images.archive("docker-archive", APP)
    first = aiopod_ok("load", "-i", archive, root=store)
    second = aiopod_ok("load", "-i", archive, root=store)
    assert loaded_names(first.stdout) == loaded_names(second.stdout) == [APP]
    assert aiopod_images(store) == {peer_images.ids[APP]: [APP]}


def test_podman_archives_of_one_image_in_two_formats_share_one_aiopod_image(
    peer_images: PeerImages, store: Path
) -> None:
    """docker-archive (plain layers) then oci-archive (gzip layers) of app:1: still one image.

    The ID is the config digest, whatever the layer compression.
    """
    aiopod_ok("load", "-i", peer_images.archive("docker-archive", APP), root=store)
    aiopod_ok("load", "-i", peer_images.archive("oci-archive", APP), root=store)
    assert aiopod_images(store) == {peer_images.ids[APP]: [APP]}
