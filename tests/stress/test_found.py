"""Bugs the kill and stress harnesses found, one test each (reproduced directly)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from conftest import store_of
from imagefactory import load_images
from store_model import verify_store
from stress_ops import BASE

from aiopod import ContentRemoved, Runtime


def test_a_torn_journal_file_is_removed_on_open(tmp_path: Path) -> None:
    """A process killed while writing a commit's journal (``atomic_write``'s temporary
    file, before the rename) left ``journal/.tmp-*``: opening must remove it, or ``check``
    reports a leftover after every such kill (found by ``test_kills``: ``rmi -f`` killed
    at 0.155 s)."""
    root = tmp_path / "store"

    async def load() -> None:
        async with Runtime(root) as rt:
            await load_images(rt, tmp_path, BASE)

    anyio.run(load)
    torn = root / "aiopod" / "journal" / ".tmp-0123456789abcdef.json-0123456789ab"
    torn.write_bytes(b'{"commit":"0123')
    verify_store(root)
    assert not torn.exists()


def test_an_image_whose_blobs_another_writer_removed_is_not_committed(tmp_path: Path) -> None:
    """A build commits its base image's layers, found in the store before it took the
    lock; another writer's ``rmi -f`` of the base deleted them meanwhile.  The image was
    committed without its blobs, and creating a container of it later failed with a raw
    ``FileNotFoundError`` (found by ``test_stress``).  Now the commit is refused with
    :class:`ContentRemoved` and changes nothing (commit-points.md, CP9)."""
    root = tmp_path / "store"

    async def body() -> None:
        async with Runtime(root) as rt:
            await load_images(rt, tmp_path, BASE)
            store = store_of(rt)
            record = (await store.snapshot()).images[BASE.id]
            await rt.remove_images([BASE.id], force=True)  # "another writer"
            with pytest.raises(ContentRemoved) as caught:
                async with store.transaction() as txn:
                    txn.put(replace(record, names=("localhost/built:latest",)))
            assert BASE.diff_ids[0].removeprefix("sha256:")[:12] in str(caught.value)
            assert "nothing was changed" in str(caught.value)
            assert await rt.images(all=True) == []

    anyio.run(body)
    verify_store(root)  # the log replays to the state: the refused commit recorded nothing
    assert b"localhost/built" not in (root / "aiopod" / "events.jsonl").read_bytes()
