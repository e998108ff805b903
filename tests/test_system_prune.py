"""``system prune [-a] [-f] [--external]`` and ``Runtime.prune_system``: the runtime
containers go, then the images a prune removes; podman 4.3's question, output and exit
status, compared with podman on the same images, containers and working containers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from imagefactory import child_image, make_image, write_oci_archive
from peers import aiopod_ok
from twins import Twins

import aiopod as api
from aiopod.sync import Runtime as SyncRuntime

BASE = make_image("localhost/base:1", seed="prune-base")
ONE = child_image(BASE, "localhost/one:1", files={"one": b"1\n"})
DANGLING = make_image(seed="prune-dangling")
DANGLING_TOO = make_image(seed="prune-dangling-too")
IMAGES = [BASE, ONE, DANGLING, DANGLING_TOO]


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[Twins, dict[str, str]]]:
    """Both stores with IMAGES, a container ``web`` of ONE and a working container ``wc``
    of BASE; with the containers' IDs and a placeholder for them."""
    twins = Twins(tmp_path, IMAGES)
    created = twins.both("create", "--name", "web", "one:1", "sh")
    twins.podman.buildah("from", "--name", "wc", "base:1")
    aiopod_ok("from", "--name", "wc", "base:1", root=twins.root)
    yield twins, {result.stdout.strip(): "<web>" for result in created}
    twins.cleanup()


@pytest.mark.peer("podman")
@pytest.mark.parametrize(
    ("args", "answer"),
    [
        (["-f"], None),
        (["-a", "-f"], None),  # web's image goes too, wc's stays
        ([], "n\n"),
        ([], "y\n"),
        (["-a"], "Y\n"),
        ([], ""),  # no answer: podman's "EOF"
        (["x"], None),
    ],
)
def test_system_prune_is_podmans(
    twins: tuple[Twins, dict[str, str]], args: list[str], answer: str | None
) -> None:
    stores, ids = twins
    podman, root = stores.podman, stores.root
    expected, got = stores.run("system", "prune", *args, input=answer, replacements=ids)
    assert got == expected
    podman_left = sorted(
        row["Names"][0]
        for row in json.loads(podman("ps", "-a", "--external", "--format", "json").stdout)
    )
    aiopod_left = sorted(
        row["Names"][0]
        for row in json.loads(
            aiopod_ok("ps", "-a", "--external", "--format", "json", root=root).stdout
        )
    )
    assert aiopod_left == podman_left
    assert aiopod_ok("images", "-a", "-q", root=root).stdout == podman("images", "-a", "-q").stdout


def test_prune_system_reports_what_it_removed_and_the_space(tmp_path: Path) -> None:
    archive = write_oci_archive(tmp_path / "images.tar", IMAGES)
    with SyncRuntime(tmp_path / "store") as rt:
        sizes = {image.id: image.size for image in rt.load(archive)}
        web = rt.create_container("one:1", ["sh"])
        rt.create_working_container("base:1")
        kept = rt.prune_system(all=True)
        assert isinstance(kept, api.SystemPruneReport)
        assert kept.containers.removed_containers == [web.id]
        assert kept.images.deleted == [ONE.id, DANGLING.id, DANGLING_TOO.id]
        assert kept.reclaimed == sizes[ONE.id] + sizes[DANGLING.id] + sizes[DANGLING_TOO.id]
        assert [i.id for i in rt.images()] == [BASE.id]  # its working container keeps it
        external = rt.prune_system(all=True, external=True)
        assert external.images.deleted == [BASE.id] and rt.images() == []
        assert rt.containers(external=True) == []
    assert external.exit_code == 0 and external.errors == []
    assert external.lines() == [
        "Deleted Images",
        BASE.id,
        f"Total reclaimed space: {external.reclaimed / 1000:.4g}kB",
    ]
