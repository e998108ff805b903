"""``index.json`` after a commit is edited, not rendered (docs/design/commit-points.md
CP26): whatever the commits, it is byte for byte the ``index.json`` rendered from the
metadata, which ``skopeo``/``umoci`` read and ``system check`` compares."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from imagefactory import load_images, make_image

import aiopod
import aiopod.storage.store as store_module
from aiopod import Runtime
from aiopod.storage.layout import _INDEX_HEAD, StoreLayout, edit_index, render_index
from aiopod.storage.store import read_metadata

pytestmark = pytest.mark.anyio

IMAGES = [make_image(f"localhost/img{i}:1", seed=f"index-edit-{i}") for i in range(5)]


def rendered(root: Path) -> bytes:
    return render_index(read_metadata(StoreLayout(root)))


async def test_random_commits_leave_index_json_as_rendered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edited: list[bool] = []

    def counted(current: bytes, edits: Any, appended: Any) -> bytes | None:
        result = edit_index(current, edits, appended)
        edited.append(result is not None)
        return result

    monkeypatch.setattr(store_module, "edit_index", counted)
    root = tmp_path / "store"
    rng = random.Random(7)
    names = [f"localhost/name{i}:{t}" for i in range(6) for t in ("1", "2")]
    async with Runtime(root) as rt:
        await load_images(rt, tmp_path, *IMAGES)
        for step in range(60):
            present = [image.id for image in await rt.images(all=True)]
            action = rng.choice(["tag", "tag", "untag", "rmi", "load"])
            try:
                if action == "tag" and present:
                    await rt.tag(rng.choice(present), *rng.sample(names, rng.randint(1, 3)))
                elif action == "untag" and present:
                    image = await rt.get_image(rng.choice(present))
                    if image.names:
                        await rt.untag(image.id, rng.choice(image.names))
                elif action == "rmi" and present:
                    await rt.remove_images([rng.choice(present)], force=True)
                else:
                    await load_images(rt, tmp_path, *rng.sample(IMAGES, rng.randint(1, 2)))
            except aiopod.ImageNotKnown:
                continue
            assert (root / "index.json").read_bytes() == rendered(root), (step, action)
        assert (await rt.check()).ok
    assert sum(edited) > 30  # the edits were made, not renders that happened to agree


def test_edits_of_the_first_middle_and_last_entries_keep_the_document_whole() -> None:
    head = _INDEX_HEAD
    index = f'{head}{{"a":1}},{{"b":2}},{{"c":3}}]}}'.encode()
    assert edit_index(index, [('{"a":1}', "")], []) == f'{head}{{"b":2}},{{"c":3}}]}}'.encode()
    assert edit_index(index, [('{"b":2}', "")], []) == f'{head}{{"a":1}},{{"c":3}}]}}'.encode()
    assert edit_index(index, [('{"c":3}', "")], []) == f'{head}{{"a":1}},{{"b":2}}]}}'.encode()
    assert edit_index(index, [('{"b":2}', '{"B":2},{"B":3}')], ['{"d":4}']) == (
        f'{head}{{"a":1}},{{"B":2}},{{"B":3}},{{"c":3}},{{"d":4}}]}}'.encode()
    )
    only = f'{head}{{"a":1}}]}}'.encode()
    assert edit_index(only, [('{"a":1}', "")], []) == f"{head}]}}".encode()
    assert edit_index(f"{head}]}}".encode(), [], ['{"a":1}']) == only


def test_an_index_that_is_not_what_was_rendered_is_rendered_again() -> None:
    head = _INDEX_HEAD
    index = f'{head}{{"a":1}},{{"b":2}}]}}'.encode()
    assert edit_index(index, [('{"x":9}', "")], []) is None  # not there
    assert edit_index(index, [('"a":1', "")], []) is None  # not a whole entry
    assert edit_index(b'{"manifests":[]}', [], ['{"a":1}']) is None  # not aiopod's rendering
