"""Shared fixtures: a fresh aiopod store, isolated peers, services and reference images.

Peers (podman, buildah, skopeo, umoci, dockerd, docker-registry) always run on private roots
and sockets under temporary directories. A test marked ``@pytest.mark.peer("NAME")`` is
skipped when NAME is missing locally and fails when ``CI=true`` (see ``peers.require_peer``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from httpfiles import HttpFiles, serve_files
from hypothesis import HealthCheck, settings
from peers import (
    BUSYBOX_IMAGE,
    DOCKERFILE_APP,
    DOCKERFILE_OTHER,
    Docker,
    PeerImages,
    Podman,
    Tool,
    private_dockerd,
    private_registry,
    registry_ready,
    require_peer,
    wait_until,
    write_busybox_rootfs,
)

from aiopod import Runtime
from aiopod.storage.store import Store

# Property tests: "ci" (the default) keeps the suite fast; ``--hypothesis-profile=long``
# runs fifty times the examples (benchmarks/README.md).  Tests that set max_examples themselves
# keep their own count.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("peer"):
        for name in mark.args:
            require_peer(name)


# --------------------------------------------------------------------------------------------
# aiopod


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (aiofiles, and the loop notebooks give aiopod); those of
    modules marked ``both_backends`` (the core API's) on trio too."""
    return "asyncio"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marked = metafunc.definition.get_closest_marker("both_backends") is not None
    if marked and "anyio_backend" in metafunc.fixturenames:
        metafunc.parametrize("anyio_backend", ["asyncio", "trio"])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A fresh aiopod store root (not yet created: aiopod creates it on first use)."""
    return tmp_path / "store"


def store_of(rt: Runtime) -> Store:
    """The store behind *rt*: ``Runtime`` keeps it private, and tests that look beneath the
    public API (blob files, container directories, the store's own methods) reach it here,
    in one place."""
    return rt._store


@pytest.fixture
async def rt(store: Path, busybox_rootfs_tar: Path) -> AsyncIterator[Runtime]:
    """A runtime on a fresh store holding the busybox base image (``BUSYBOX_IMAGE``);
    modules that want another runtime define their own ``rt``."""
    async with Runtime(store) as runtime:
        await runtime.import_image(busybox_rootfs_tar, BUSYBOX_IMAGE)
        yield runtime


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A stand-in for the host: ``<tmp_path>/host`` with a secret and a directory (hostile
    inputs aim at it; tests then check it is exactly as before)."""
    from conftest_context import make_tree  # tests/builder's helper: only build tests use this

    return make_tree(
        tmp_path / "host", {"secret": "HOST SECRET\n", "dir/keep": "host file\n", "dir/": 0o755}
    )


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[HttpFiles]:
    """A loopback HTTP server for ``<tmp_path>/http`` (see ``httpfiles.serve_files``)."""
    root = tmp_path / "http"
    root.mkdir()
    with serve_files(root) as files:
        yield files


# --------------------------------------------------------------------------------------------
# Peers on private roots


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    """podman on a fresh private vfs store; ``podman.buildah(...)`` shares that store."""
    podman = Podman.create(tmp_path / "podman")
    yield podman
    podman.cleanup()


@pytest.fixture
def skopeo(tmp_path: Path) -> Tool:
    require_peer("skopeo")
    return Tool("skopeo", tmp_path / "skopeo")


@pytest.fixture
def umoci(tmp_path: Path) -> Tool:
    require_peer("umoci")
    return Tool("umoci", tmp_path / "umoci")


@pytest.fixture
def buildah(podman: Podman) -> Podman:
    """The test's podman store, for ``buildah.buildah(...)`` / ``buildah.build(...)``."""
    require_peer("buildah")
    return podman


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Docker]:
    """A docker engine: ``$AIOPOD_TEST_DOCKER_HOST`` (CI starts one) or a private dockerd.

    The engine is shared by the session: tests use ``docker.forget(ID)`` before loading so
    that what they observe comes from their own load.
    """
    host = os.environ.get("AIOPOD_TEST_DOCKER_HOST")
    if host:
        require_peer("docker")
        docker = Docker(host)
        wait_until(docker.ready, 30, f"docker engine at {host}")
        yield docker
        return
    with private_dockerd() as docker:
        yield docker


@pytest.fixture(scope="session")
def registry() -> Iterator[str]:
    """``host:port`` of a plain-HTTP registry: ``$AIOPOD_TEST_REGISTRY`` or a private one."""
    address = os.environ.get("AIOPOD_TEST_REGISTRY")
    if address:
        wait_until(lambda: registry_ready(address), 30, f"registry at {address}")
        yield address
        return
    with private_registry() as address:
        yield address


# --------------------------------------------------------------------------------------------
# Reference images built by real peers


@pytest.fixture(scope="session")
def busybox_rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deterministic rootfs tar: /bin/busybox, applet symlinks, /etc/passwd and group."""
    busybox = Path(require_peer("busybox")).resolve()
    return write_busybox_rootfs(tmp_path_factory.mktemp("rootfs") / "busybox-rootfs.tar", busybox)


@pytest.fixture(scope="session")
def peer_images(
    tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path
) -> Iterator[PeerImages]:
    """Import the busybox rootfs into an isolated podman and build images on it with buildah."""
    require_peer("podman")
    require_peer("buildah")
    base = tmp_path_factory.mktemp("peer-images")
    podman = Podman.create(base / "podman")
    try:
        build_peer_images(podman, busybox_rootfs_tar, base)
    except BaseException:
        podman.cleanup()
        raise
    names = [BUSYBOX_IMAGE, "localhost/app:1", "localhost/app:2", "localhost/other:latest"]
    ids = {name: podman.image_id(name) for name in names}
    workdir = base / "archives"
    workdir.mkdir()
    yield PeerImages(podman, ids, workdir)
    podman.cleanup()


def build_peer_images(podman: Podman, busybox_rootfs_tar: Path, base: Path) -> None:
    podman("import", busybox_rootfs_tar, BUSYBOX_IMAGE)
    ctx = base / "context"
    ctx.mkdir()
    (ctx / "Dockerfile.app").write_text(DOCKERFILE_APP)
    (ctx / "Dockerfile.other").write_text(DOCKERFILE_OTHER)
    (ctx / "data.txt").write_text("some data\n")
    podman.build(ctx, ctx / "Dockerfile.app", "localhost/app:1")
    podman("tag", "localhost/app:1", "localhost/app:2")
    podman.build(ctx, ctx / "Dockerfile.other", "localhost/other:latest")
