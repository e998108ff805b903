"""Bugs the kill and stress harnesses found, one test each (reproduced directly)."""

from __future__ import annotations

from pathlib import Path

import anyio
from imagefactory import load_images
from store_model import verify_store
from stress_ops import BASE

from aiopod import Runtime


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
