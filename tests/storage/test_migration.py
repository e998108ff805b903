"""Store format 1 (``aiopod/images.json``) is migrated to format 2 (``aiopod/metadata.db``).

Opening a store that has ``images.json`` and no ``metadata.db`` makes the database aside
from it, renames it into place and deletes ``images.json``: images, their names, their
order and the containers are kept, and ``system check`` finds nothing.  A migration cut
short leaves either format whole: a database in place wins (``images.json`` goes), a
half-made one aside is removed.  An ``images.json`` that cannot be read is reported, and
``system check --repair`` rebuilds the metadata from ``index.json``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from imagefactory import FakeImage, index_refs, load_images, make_image
from peers import aiopod

from aiopod import Runtime, StoreCorrupted
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.layout import StoreLayout, render_index
from aiopod.storage.legacy_v1 import render_images_json
from aiopod.storage.metadata_db import FORMAT_VERSION, read_commit, read_format
from aiopod.storage.records import ImageRecord, StoreState
from aiopod.storage.store import read_metadata

T = TypeVar("T")

APP = make_image("localhost/app:1", "localhost/app:2", seed="migrate-app")
OTHER = make_image("localhost/other:1", seed="migrate-other")
LONE = make_image("localhost/lone:1", seed="migrate-lone")


def with_runtime(
    root: Path, func: Callable[[Runtime], Awaitable[T]], *, read_only: bool = False
) -> T:
    async def body() -> T:
        async with Runtime(root, read_only=read_only) as rt:
            return await func(rt)

    return anyio.run(body)


@dataclass(frozen=True)
class Contents:
    """What a store holds, as the migration must keep it."""

    images: list[ImageRecord]  # in storage order
    names: dict[str, str]  # name -> image ID
    containers: list[ContainerRecord]  # in storage order

    @classmethod
    def of(cls, state: StoreState) -> Contents:
        return cls(
            list(state.images.values()), dict(state.by_name), list(state.containers.values())
        )


def contents(root: Path) -> Contents:
    return Contents.of(read_metadata(StoreLayout(root)))


def metadata_files(root: Path) -> list[str]:
    """The metadata files in the store's ``aiopod`` directory (either format's, and
    leftovers), the database's WAL journal files left out (they come and go with its
    connections)."""
    return sorted(
        p.name
        for p in (root / "aiopod").iterdir()
        if p.name.startswith(("images.json", "metadata.db", ".tmp-"))
        and p.name not in ("metadata.db-wal", "metadata.db-shm")
    )


def remove_database(root: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / 'aiopod' / 'metadata.db'}{suffix}").unlink(missing_ok=True)


def make_store(root: Path, workdir: Path, *images: FakeImage) -> str:
    """A (format 2) store holding *images*, LONE untagged and a container of APP's; returns
    the container's ID."""

    async def setup(rt: Runtime) -> str:
        await load_images(rt, workdir, *images)
        await rt.untag(LONE.id)
        container = await rt.create_working_container(APP.id)
        return container.id

    return with_runtime(root, setup)


def to_format_1(root: Path, *, reorder: bool = False, commit: str | None = None) -> Contents:
    """Turn the store at *root* into a format-1 store (its metadata in ``images.json``,
    the database gone), with its images in reverse order if *reorder* (``index.json``
    rendered in that order, as aiopod did); return what it holds."""
    state = read_metadata(StoreLayout(root))
    records = list(state.images.values())
    if reorder:
        records.reverse()
    containers = list(state.containers.values())
    (root / "aiopod" / "images.json").write_bytes(
        render_images_json(records, containers, commit=commit)
    )
    held = StoreState.from_records(records, containers)
    if reorder:
        (root / "index.json").write_bytes(render_index(held))
    else:
        assert (root / "index.json").read_bytes() == render_index(held)
    remove_database(root)
    assert metadata_files(root) == ["images.json"]
    return Contents.of(held)


def listed(root: Path) -> list[tuple[str, list[str]]]:
    async def images(rt: Runtime) -> list[tuple[str, list[str]]]:
        return [(image.id, sorted(image.names)) for image in await rt.images(all=True)]

    return with_runtime(root, images)


@pytest.mark.parametrize("reorder", [False, True])
def test_a_format_1_store_is_migrated_when_opened(tmp_path: Path, reorder: bool) -> None:
    root = tmp_path / "store"
    container = make_store(root, tmp_path, APP, OTHER, LONE)
    expected = to_format_1(root, reorder=reorder, commit="0123456789abcdef")
    assert len(expected.images) == 3 and len(expected.containers) == 1
    index_before = (root / "index.json").read_bytes()

    async def open_and_look(rt: Runtime) -> tuple[list[tuple[str, list[str]]], bool]:
        images = [(image.id, sorted(image.names)) for image in await rt.images(all=True)]
        return images, (await rt.check()).ok

    images, clean = with_runtime(root, open_and_look)

    assert metadata_files(root) == ["metadata.db"]
    assert read_format(root / "aiopod" / "metadata.db") == FORMAT_VERSION
    assert read_commit(root / "aiopod" / "metadata.db") == "0123456789abcdef"
    assert contents(root) == expected  # images (in their order), names, containers
    assert images == [(r.id, sorted(r.names)) for r in expected.images]
    assert [r.id for r in expected.images] == (
        [LONE.id, OTHER.id, APP.id] if reorder else [APP.id, OTHER.id, LONE.id]
    )
    assert [c.id for c in expected.containers] == [container]
    assert clean
    assert (root / "index.json").read_bytes() == index_before
    assert sorted(index_refs(root)) == sorted(
        (name, r.manifest_digest) for r in expected.images for name in r.names
    )
    result = aiopod("system", "check", root=root)
    assert (result.returncode, result.stdout) == (0, "store is consistent\n"), result.stderr


def test_a_migrated_store_works_as_any_other(tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_store(root, tmp_path, APP, OTHER, LONE)
    to_format_1(root)

    # Migrated by the first command, whatever it is; the changes after it are kept.
    tagged = aiopod("tag", OTHER.id, "localhost/other:2", root=root)
    assert tagged.returncode == 0, tagged.stderr
    assert metadata_files(root) == ["metadata.db"]
    removed = aiopod("rmi", "localhost/app:2", root=root)
    assert removed.returncode == 0, removed.stderr
    names = {image_id: sorted(n) for image_id, n in listed(root)}
    assert names == {
        APP.id: ["localhost/app:1"],
        OTHER.id: ["localhost/other:1", "localhost/other:2"],
        LONE.id: [],
    }
    assert aiopod("system", "check", root=root).stdout == "store is consistent\n"
    assert metadata_files(root) == ["metadata.db"]


def test_a_read_only_runtime_reads_a_format_1_store_without_migrating_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    make_store(root, tmp_path, APP, OTHER, LONE)
    expected = to_format_1(root)
    document = (root / "aiopod" / "images.json").read_bytes()

    images = listed_read_only(root)

    assert images == [(r.id, sorted(r.names)) for r in expected.images]
    assert metadata_files(root) == ["images.json"]
    assert (root / "aiopod" / "images.json").read_bytes() == document


def listed_read_only(root: Path) -> list[tuple[str, list[str]]]:
    async def images(rt: Runtime) -> list[tuple[str, list[str]]]:
        return [(image.id, sorted(image.names)) for image in await rt.images(all=True)]

    return with_runtime(root, images, read_only=True)


# ------------------------------------------------------------------ a migration cut short


def test_a_database_in_place_wins_over_an_images_json_left_beside_it(tmp_path: Path) -> None:
    """The migration died after renaming the database into place, before deleting
    ``images.json``: the database is the metadata (here it has a change images.json does
    not), images.json goes."""
    root = tmp_path / "store"
    make_store(root, tmp_path, APP, OTHER, LONE)
    state = read_metadata(StoreLayout(root))
    older = [r for r in state.images.values() if r.id != OTHER.id]
    (root / "aiopod" / "images.json").write_bytes(
        render_images_json(older, state.containers.values())
    )
    expected = contents(root)
    assert len(expected.images) == 3

    assert with_runtime(root, lambda rt: rt.check()).ok

    assert metadata_files(root) == ["metadata.db"]
    assert contents(root) == expected


def test_a_database_in_place_wins_over_an_unreadable_images_json(tmp_path: Path) -> None:
    root = tmp_path / "store"
    make_store(root, tmp_path, APP, OTHER, LONE)
    expected = contents(root)
    (root / "aiopod" / "images.json").write_bytes(b'{"version":1,"ima')

    assert with_runtime(root, lambda rt: rt.check()).ok

    assert metadata_files(root) == ["metadata.db"]
    assert contents(root) == expected


def test_a_half_made_database_is_removed_and_the_migration_runs_again(tmp_path: Path) -> None:
    """The migration died while making the database aside: images.json is still the
    metadata; the next open removes the leftover and migrates."""
    root = tmp_path / "store"
    make_store(root, tmp_path, APP, OTHER, LONE)
    expected = to_format_1(root)
    leftover = root / "aiopod" / ".tmp-metadata-0123456789ab.db"
    leftover.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    Path(f"{leftover}-wal").write_bytes(b"half a journal")

    assert with_runtime(root, lambda rt: rt.check()).ok

    assert metadata_files(root) == ["metadata.db"]
    assert contents(root) == expected


def test_a_leftover_temporary_database_beside_a_migrated_store_is_removed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    make_store(root, tmp_path, APP, OTHER, LONE)
    expected = contents(root)
    (root / "aiopod" / ".tmp-metadata-ba9876543210.db").write_bytes(b"torn")
    (root / "aiopod" / "images.json").write_bytes(render_images_json([], []))

    assert aiopod("system", "check", root=root).stdout == "store is consistent\n"

    assert metadata_files(root) == ["metadata.db"]
    assert contents(root) == expected


# ------------------------------------------------------------------ an unreadable images.json


def test_an_unreadable_images_json_is_reported_and_repair_rebuilds_the_metadata(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    with_runtime(root, lambda rt: load_images(rt, tmp_path, APP, OTHER))
    expected = to_format_1(root)
    (root / "aiopod" / "images.json").write_bytes(b'{"version":1,"ima')

    async def list_images(rt: Runtime) -> object:
        return await rt.images()

    with pytest.raises(StoreCorrupted, match=r"images\.json is not valid JSON"):
        with_runtime(root, list_images)
    listing = aiopod("images", root=root)
    assert listing.returncode == 125
    assert "run `aiopod system check --repair`" in listing.stderr
    found = aiopod("system", "check", root=root)
    assert found.returncode == 1, found.stderr
    assert "problem: images.json is not valid JSON" in found.stdout
    assert metadata_files(root) == ["images.json"]  # nothing replaced by a mere check

    repaired = aiopod("system", "check", "--repair", root=root)
    assert repaired.returncode == 0, repaired.stderr
    assert "repaired: rebuilt the metadata from index.json (2 images)" in repaired.stdout
    assert metadata_files(root) == ["metadata.db"]
    assert contents(root).names == expected.names
    assert sorted(r.id for r in contents(root).images) == sorted(r.id for r in expected.images)
    assert aiopod("system", "check", root=root).stdout == "store is consistent\n"


def test_an_images_json_of_an_unknown_version_is_not_migrated(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with_runtime(root, lambda rt: load_images(rt, tmp_path, APP))
    to_format_1(root)
    document = b'{"version": 99, "images": [], "containers": []}'
    (root / "aiopod" / "images.json").write_bytes(document)

    found = aiopod("system", "check", root=root)
    assert found.returncode == 1, found.stderr
    assert "images.json has an unknown format version" in found.stdout
    assert metadata_files(root) == ["images.json"]
    assert (root / "aiopod" / "images.json").read_bytes() == document
    assert os.listdir(root / "aiopod" / "journal") == []
