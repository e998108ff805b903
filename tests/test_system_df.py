"""``system df [-v] [--format]`` and ``Runtime.disk_usage``: podman 4.3's accounting of
shared and unique image sizes, compared with podman's output on the same images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from imagefactory import child_image, make_image, write_oci_archive
from twins import Twins

import aiopod as api
from aiopod.sync import Runtime as SyncRuntime

BASE = make_image("localhost/base:1", seed="df-base")
ONE = child_image(BASE, "localhost/one:1", files={"one": b"1\n"})
TWO = child_image(BASE, "localhost/two:1", files={"two": b"2\n" * 30000})
DANGLING = make_image(seed="df-dangling")
IMAGES = [BASE, ONE, TWO, DANGLING]


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[Twins, dict[str, str]]]:
    """Both stores with IMAGES (ONE tagged twice) and a container ``web`` of ONE; with
    the containers' IDs and a placeholder for them."""
    twins = Twins(tmp_path, IMAGES)
    twins.both("tag", "one:1", "one:2")
    created = twins.both("create", "--name", "web", "one:1", "sh", "-c", "echo hi")
    yield twins, {result.stdout.strip()[:12]: "<web>" for result in created}
    twins.cleanup()


@pytest.mark.peer("podman")
@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-v"],
        ["--format", "{{.Type}} {{.Total}}\t{{.Active}} {{.Reclaimable}}"],
        ["--format", "table {{.Type}}\t{{.Size}}"],
        ["--format", "json"],  # podman takes it as a template: "json" on every line
        ["--format", "{{.Nope}}"],
        ["x"],
    ],
    ids=" ".join,
)
def test_system_df_is_podmans(twins: tuple[Twins, dict[str, str]], args: list[str]) -> None:
    stores, ids = twins
    expected, got = stores.run("system", "df", *args, replacements=ids)
    assert got == expected


def test_disk_usage_shares_what_parents_and_children_share(tmp_path: Path) -> None:
    archive = write_oci_archive(tmp_path / "images.tar", IMAGES)
    with SyncRuntime(tmp_path / "store") as rt:
        loaded = {image.id: image for image in rt.load(archive)}
        rt.create_container("two:1", ["true"])
        rt.create_working_container("base:1")  # a storage container uses an image too
        usage = rt.disk_usage()
    assert isinstance(usage, api.DiskUsage)
    by_id = {row.id: row for row in usage.images}
    base, one, two = (loaded[i.id] for i in (BASE, ONE, TWO))
    assert (by_id[BASE.id].shared_size, by_id[BASE.id].unique_size) == (base.size, 0)  # children
    assert (by_id[ONE.id].shared_size, by_id[ONE.id].unique_size) == (
        base.size,
        one.size - base.size,
    )
    assert by_id[TWO.id].unique_size == two.size - base.size > one.size - base.size
    assert (by_id[DANGLING.id].repository, by_id[DANGLING.id].shared_size) == ("<none>", 0)
    assert [(row.id, row.containers) for row in usage.images] == [
        (BASE.id, 1),
        (ONE.id, 0),
        (TWO.id, 1),
        (DANGLING.id, 0),
    ]
    images, containers, volumes = usage.summary
    assert (images.total, images.active) == (4, 2)
    assert images.size == sum(row.size for row in usage.images)
    assert images.reclaimable == one.size + loaded[DANGLING.id].size
    assert images.reclaimable_percent == round(images.reclaimable / images.size * 100)
    assert (containers.total, volumes.total) == (1, 0)  # runtime containers only
    assert usage.display_text().splitlines()[0].split() == [
        "TYPE",
        "TOTAL",
        "ACTIVE",
        "SIZE",
        "RECLAIMABLE",
    ]
