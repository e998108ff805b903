"""Images that move through Debian's docker-registry between aiopod and the real tools,
each way, compared with what the tools themselves see:

* ``podman push`` → ``aiopod pull``: the image ID, manifest digest and RepoDigests a
  ``podman pull`` of the same reference shows, and the digest ``podman push`` wrote;
* ``aiopod push`` → ``podman pull`` (the same image ID), ``skopeo inspect`` (the digest
  aiopod's push returned, the manifest byte for byte) and ``docker pull`` from a private
  dockerd (docker's image ID is the config's digest: aiopod's ID);
* a multi-platform manifest list made by ``buildah manifest create/add/push --all``
  straight to the registry (the host's image and one for another architecture, committed
  from scratch without running anything): ``aiopod pull`` chooses the host's platform by
  default and the other with ``--platform``, the images ``podman pull --platform``
  chooses.

(An OCI index written to a layout and published by skopeo is covered by
``test_pull_interop.py``; the wire-level push read back by skopeo by
``test_real_registry.py``.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from peers import (
    BUSYBOX_IMAGE,
    Docker,
    PeerImages,
    Podman,
    Tool,
    aiopod_ok,
    strip_sha256,
)

from aiopod import Runtime
from aiopod._platforms import local_architecture

pytestmark = [pytest.mark.anyio, pytest.mark.peer("podman", "skopeo", "docker-registry")]

APP = "localhost/app:1"


def podman_pull(tmp_path: Path, name: str, reference: str, *args: str) -> dict[str, object]:
    """``podman pull`` of *reference* into a fresh store; ``podman image inspect``."""
    podman = Podman.create(tmp_path / name)
    try:
        podman("pull", "-q", "--tls-verify=false", *args, reference)
        return podman.inspect(reference)
    finally:
        podman.cleanup()


def repository(registry: str, tmp_path: Path, name: str) -> str:
    return f"{registry}/interop/{tmp_path.name.lower()}-{name}"


async def test_what_podman_pushed_pulls_with_podmans_id_and_digest(
    peer_images: PeerImages, registry: str, tmp_path: Path
) -> None:
    reference = f"{repository(registry, tmp_path, 'by-podman')}:1"
    digestfile = tmp_path / "podman.digest"
    peer_images.podman("push", "--tls-verify=false", "--digestfile", digestfile, APP, reference)
    pushed_digest = digestfile.read_text().strip()
    expected = podman_pull(tmp_path, "reader", reference)

    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(reference, tls_verify=False)
        inspected = await rt.inspect_image(image.id)
    assert image.id == strip_sha256(str(expected["Id"])) == peer_images.ids[APP]
    assert inspected["Digest"] == expected["Digest"] == pushed_digest
    for key in ("RepoTags", "RepoDigests", "RootFS"):
        assert inspected[key] == expected[key], key


async def test_what_aiopod_pushed_reads_back_in_podman_skopeo_and_docker(
    peer_images: PeerImages, registry: str, tmp_path: Path, skopeo: Tool, dockerd: Docker
) -> None:
    reference = f"{repository(registry, tmp_path, 'by-aiopod')}:1"
    archive = peer_images.archive("docker-archive", APP)
    store = tmp_path / "store"
    aiopod_ok("load", "-i", archive, root=store)
    digestfile = tmp_path / "aiopod.digest"
    aiopod_ok("push", "-q", "--tls-verify=false", "--digestfile", digestfile, APP, reference,
              root=store)  # fmt: skip
    digest = digestfile.read_text().strip()
    image_id = peer_images.ids[APP]

    # podman pulls the same image, by tag and by the digest aiopod reported.
    pulled = podman_pull(tmp_path, "reader", reference)
    assert strip_sha256(str(pulled["Id"])) == image_id
    assert pulled["Digest"] == digest

    # skopeo: the digest, the manifest byte for byte, and every blob verified by a copy.
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{reference}").stdout)
    assert info["Digest"] == digest
    assert info["Architecture"] == local_architecture() and info["Os"] == "linux"
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{reference}").stdout
    manifest = json.loads(raw)
    assert len(manifest["layers"]) == len(pulled["RootFS"]["Layers"])  # type: ignore[index]
    assert all(layer["mediaType"].endswith("gzip") for layer in manifest["layers"])
    skopeo("copy", "--src-tls-verify=false", f"docker://{reference}", f"oci:{tmp_path / 'c'}:1")

    # docker (127.0.0.0/8 registries are insecure to dockerd by default).
    dockerd.forget(image_id)
    try:
        dockerd("pull", "-q", reference)
        assert dockerd.image_id(reference) == image_id
        dockerd("pull", "-q", f"{reference.rsplit(':', 1)[0]}@{digest}")
    finally:
        dockerd.forget(image_id)


@pytest.fixture
def manifest_list(
    podman: Podman, busybox_rootfs_tar: Path, registry: str, tmp_path: Path
) -> tuple[str, dict[str, str]]:
    """A Docker manifest list pushed by ``buildah manifest push --all``: the host's busybox
    image and an image for the other architecture (arm64, or amd64 on an arm64 host)
    committed from scratch; its reference and the IDs of the images by architecture."""
    buildah = podman.buildah
    host = local_architecture()
    other = "amd64" if host == "arm64" else "arm64"
    podman("import", busybox_rootfs_tar, BUSYBOX_IMAGE)
    data = tmp_path / "other.txt"
    data.write_text(f"an image for {other}\n")
    container = buildah("from", "scratch").stdout.strip()
    buildah("config", "--arch", other, "--os", "linux", container)
    buildah("copy", container, data, "/other.txt")
    buildah("commit", "-q", container, f"localhost/other-arch:{other}")
    ids = {
        host: podman.image_id(BUSYBOX_IMAGE),
        other: podman.image_id(f"localhost/other-arch:{other}"),
    }
    buildah("manifest", "create", "localhost/list:1")
    for name in (BUSYBOX_IMAGE, f"localhost/other-arch:{other}"):
        buildah("manifest", "add", "localhost/list:1", podman.storage_ref(name))
    reference = f"{repository(registry, tmp_path, 'list')}:1"
    buildah("manifest", "push", "--all", "--format", "v2s2", "--tls-verify=false",
                    "localhost/list:1", f"docker://{reference}")  # fmt: skip
    return reference, ids


@pytest.mark.peer("buildah")
def test_a_manifest_list_pulls_the_platform_podman_chooses(
    manifest_list: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    reference, ids = manifest_list
    host = local_architecture()
    (other,) = set(ids) - {host}
    listed = json.loads(
        Podman.create(tmp_path / "raw")
        .skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reference}")
        .stdout
    )
    assert listed["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"

    theirs = podman_pull(tmp_path, "podman-host", reference)
    ours = aiopod_ok("pull", "-q", "--tls-verify=false", reference, root=tmp_path / "a-host")
    assert ours.stdout == f"{ids[host]}\n"
    assert strip_sha256(str(theirs["Id"])) == ids[host]

    platform = f"linux/{other}"
    theirs = podman_pull(tmp_path, "podman-other", reference, "--platform", platform)
    ours = aiopod_ok("pull", "-q", "--tls-verify=false", "--platform", platform, reference,
                     root=tmp_path / "a-other")  # fmt: skip
    assert ours.stdout == f"{ids[other]}\n"
    assert strip_sha256(str(theirs["Id"])) == ids[other]
    [inspected] = json.loads(
        aiopod_ok("image", "inspect", reference, root=tmp_path / "a-other").stdout
    )
    assert inspected["Architecture"] == theirs["Architecture"] == other
    assert inspected["RepoDigests"] == theirs["RepoDigests"]
