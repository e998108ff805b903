"""Pulling what real tools wrote, compared with podman pulling the same thing.

* skopeo copies podman's images (several layers, built by buildah) into an OCI layout:
  aiopod's pull gives the image ID, digest and RepoDigests podman's pull of the same
  reference gives, and the same progress lines on standard error;
* a multi-platform index made with ``buildah manifest create/add`` and pushed with
  ``buildah manifest push --all``: the host's platform is chosen by default,
  ``--platform linux/arm64`` (``--arch arm64``) the other one, as podman chooses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from peers import BUSYBOX_IMAGE, PeerImages, Podman, Tool, aiopod, aiopod_ok, strip_sha256

from aiopod import NoMatchingPlatform, Runtime
from aiopod._platforms import local_architecture
from registry.store_fixtures import Publish, fixture_published  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.peer("podman", "buildah", "skopeo")]


def podman_inspect(podman: Podman, name: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(podman("image", "inspect", name).stdout)[0]
    return result


@pytest.fixture
def app_layout(peer_images: PeerImages, skopeo: Tool, tmp_path: Path) -> Path:
    """podman's ``localhost/app:1`` (buildah-built, several layers) copied by skopeo."""
    layout = tmp_path / "app-layout"
    skopeo("copy", "-q", peer_images.podman.storage_ref("localhost/app:1"), f"oci:{layout}:v1")
    return layout


async def test_an_image_skopeo_wrote_pulls_with_podmans_id_and_digest(
    app_layout: Path, tmp_path: Path, published: Publish
) -> None:
    reference = published(app_layout, "v1")
    podman = Podman.create(tmp_path / "other-podman")
    from_layout = reference.startswith("oci:")
    try:
        podman("pull", "-q", *([] if from_layout else ["--tls-verify=false"]), reference)
        expected = podman_inspect(podman, f"localhost{app_layout}" if from_layout else reference)
    finally:
        podman.cleanup()
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(reference)
        inspected = await rt.inspect_image(image.id)
    # Not "Size": podman adds the manifest twice (two big-data keys) for a pulled image.
    for key in ("Id", "Digest", "RepoTags", "RepoDigests", "RootFS"):
        assert inspected[key] == expected[key], key


def test_the_command_line_prints_podmans_lines_and_the_id(
    app_layout: Path, tmp_path: Path, store: Path
) -> None:
    reference = f"oci:{app_layout}:v1"
    podman = Podman.create(tmp_path / "other-podman")
    try:
        theirs = podman("pull", reference)
    finally:
        podman.cleanup()
    ours = aiopod_ok("pull", reference, root=store)
    assert ours.stdout == theirs.stdout  # the full ID, on a line of its own
    assert ours.stderr == theirs.stderr
    quiet = aiopod_ok("pull", "-q", reference, root=store)
    assert (quiet.stdout, quiet.stderr) == (theirs.stdout, "")
    missing = aiopod("pull", f"oci:{app_layout}:nope", root=store)
    assert missing.returncode == 125
    assert missing.stderr.startswith("Error: ") and missing.stderr.count("\n") == 1


@pytest.fixture
def multi_arch(podman: Podman, busybox_rootfs_tar: Path, tmp_path: Path) -> tuple[Path, dict]:  # type: ignore[type-arg]
    """An OCI layout holding an index of two images, the host's and the other one
    (arm64, or amd64 on an arm64 host), pushed by buildah; and their IDs by platform."""
    other = "amd64" if local_architecture() == "arm64" else "arm64"
    ids = {}
    for arch in (local_architecture(), other):
        podman(
            "import", "--arch", arch, "--os", "linux", busybox_rootfs_tar, f"{BUSYBOX_IMAGE}-{arch}"
        )
        ids[arch] = podman.image_id(f"{BUSYBOX_IMAGE}-{arch}")
    podman.buildah("manifest", "create", "localhost/list:1")
    for arch in ids:
        podman.buildah(
            "manifest", "add", "localhost/list:1", podman.storage_ref(f"{BUSYBOX_IMAGE}-{arch}")
        )
    layout = tmp_path / "multi"
    podman.buildah("manifest", "push", "--all", "localhost/list:1", f"oci:{layout}:list")
    return layout, ids


async def test_the_host_platform_is_chosen_from_an_index_by_default(
    multi_arch: tuple[Path, dict[str, str]], tmp_path: Path, published: Publish
) -> None:
    layout, ids = multi_arch
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(published(layout, "list"))
        assert image.id == ids[local_architecture()]
        # The index's digest is a digest of the image too (podman's RepoDigests name both).
        index = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
        assert index in image.digests and image.digest != index


async def test_another_platform_is_chosen_with_platform(
    multi_arch: tuple[Path, dict[str, str]], tmp_path: Path, published: Publish
) -> None:
    layout, ids = multi_arch
    (other,) = set(ids) - {local_architecture()}
    podman = Podman.create(tmp_path / "other-podman")
    try:
        podman("pull", "-q", "--arch", other, f"oci:{layout}:list")
        theirs = strip_sha256(
            podman("image", "inspect", "--format", "{{.Id}}", f"localhost{layout}").stdout.strip()
        )
    finally:
        podman.cleanup()
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.pull(published(layout, "list"), platform=f"linux/{other}")
        assert image.id == ids[other] == theirs
        with pytest.raises(NoMatchingPlatform, match="architecture s390x"):
            await rt.pull(published(layout, "list"), platform="linux/s390x")


def test_the_command_line_takes_arch_as_podman_does(
    multi_arch: tuple[Path, dict[str, str]], store: Path
) -> None:
    layout, ids = multi_arch
    (other,) = set(ids) - {local_architecture()}
    result = aiopod_ok("pull", "-q", "--arch", other, f"oci:{layout}:list", root=store)
    assert result.stdout == f"{ids[other]}\n"
    both = aiopod(
        "pull", "--platform", "linux/arm64", "--arch", "arm64", f"oci:{layout}:list", root=store
    )
    assert both.returncode == 125
    assert "--platform option can not be specified with --arch or --os" in both.stderr
