"""``info`` and ``Runtime.info``: the fields aiopod shares with ``podman info`` have
podman's names and, for the same images and containers on the same host, its values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from imagefactory import child_image, make_image, write_oci_archive
from peers import aiopod_ok
from twins import Twins

import aiopod as api
from aiopod.sync import Runtime as SyncRuntime

BASE = make_image("localhost/base:1", seed="info-base")
ONE = child_image(BASE, "localhost/one:1", files={"one": b"1\n"})

#: The fields both have, by their path in ``info --format json``.
SHARED = [
    ("host", "arch"),
    ("host", "cpus"),
    ("host", "hostname"),
    ("host", "kernel"),
    ("host", "os"),
    ("store", "graphDriverName"),
    ("store", "imageStore", "number"),
    ("store", "containerStore", "number"),
    ("store", "containerStore", "paused"),
    ("store", "containerStore", "running"),
    ("store", "containerStore", "stopped"),
    ("version", "Os"),
    ("version", "OsArch"),
]


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[Twins]:
    twins = Twins(tmp_path, [BASE, ONE])
    twins.both("create", "one:1", "sh")
    yield twins
    twins.cleanup()


def _at(document: dict[str, object], path: tuple[str, ...]) -> object:
    value: object = document
    for key in path:
        assert isinstance(value, dict), path
        value = value[key]
    return value


@pytest.mark.peer("podman")
def test_info_shares_podmans_fields_and_values(twins: Twins) -> None:
    podman, root = twins.podman, twins.root
    theirs = json.loads(podman("info", "--format", "json").stdout)
    ours = json.loads(aiopod_ok("info", "--format", "json", root=root).stdout)
    assert {path: _at(ours, path) for path in SHARED} == {
        path: _at(theirs, path) for path in SHARED
    }
    assert ours["store"]["graphRoot"] == str(root)
    yaml = aiopod_ok("info", root=root).stdout.splitlines()
    podman_yaml = podman("info").stdout.splitlines()
    for line in ("host:", "  arch: amd64", "  graphDriverName: vfs", "store:", "version:"):
        assert (line in yaml) == (line in podman_yaml), line


@pytest.mark.peer("podman")
@pytest.mark.parametrize(
    "template",
    [
        "{{.Store.ImageStore.Number}} {{ .Store.ContainerStore.Stopped }} {{.Host.Arch}}",
        "{{.Version.OsArch}}\t{{.Store.GraphDriverName}}",
        "{{.Nope}}",
    ],
)
def test_info_templates_are_podmans(twins: Twins, template: str) -> None:
    expected, got = twins.run("info", "--format", template)
    assert got == expected


def test_info_counts_the_store(tmp_path: Path) -> None:
    archive = write_oci_archive(tmp_path / "images.tar", [BASE, ONE])
    with SyncRuntime(tmp_path / "store", policy="podman") as rt:
        images = rt.load(archive)
        rt.create_container("one:1", ["sh"])
        rt.create_working_container("base:1")
        info = rt.info()
    assert isinstance(info, api.Info) and info.policy == "podman"
    assert (info.store.images, info.store.containers, info.store.external_containers) == (2, 1, 1)
    assert info.store.root == tmp_path / "store"
    assert info.store.event_log == tmp_path / "store" / "aiopod" / "events.jsonl"
    # Shared layers once: BASE's layer is in both images.
    assert sum(i.size for i in images) > info.store.size > max(i.size for i in images)
    assert 0 < info.store.root_used <= info.store.root_allocated
    assert info.version.version == metadata.version("aiopod")
    assert info.version.os_arch == f"linux/{info.host.arch}"
    text = info.display_text()
    assert "  imageStore:\n    number: 2\n" in text and "policy: podman" in text
