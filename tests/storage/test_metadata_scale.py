"""The metadata at scale: what makes a command on a big store cheap gives the same results.

* ``StoreState.from_bytes`` / ``to_bytes``: a record a change leaves alone is written back
  as the text it was read from; a file in another JSON form is read as before; what
  ``json.loads`` refuses is still refused.
* ``render_index`` gives the bytes ``json.dumps`` of the document gives.
* ``LayerTree`` (computed on demand, by scans and then from an index) answers as the
  eager tree it replaces (every image related to every other up front), removals
  included; ``StoreState.referenced_among`` as ``referenced_blobs`` restricted.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import replace

import pytest

from aiopod.errors import StoreCorrupted
from aiopod.storage.layertree import LayerTree
from aiopod.storage.layout import INDEX_MEDIA_TYPE, REF_NAME_ANNOTATION, render_index
from aiopod.storage.records import (
    HistoryEntry,
    ImageRecord,
    LayerRecord,
    StoreState,
    chain_ids,
)


def _hex(*seed: object) -> str:
    return hashlib.sha256(repr(seed).encode()).hexdigest()


def _record(
    i: int, *, names: tuple[str, ...] = (), labels: dict[str, str] | None = None
) -> ImageRecord:
    layer = "sha256:" + _hex("layer", i)
    return ImageRecord(
        id=_hex("config", i),
        manifest_digest="sha256:" + _hex("manifest", i),
        manifest_media_type="application/vnd.oci.image.manifest.v1+json",
        manifest_size=400 + i,
        config_size=300,
        layers=(LayerRecord(layer, "application/vnd.oci.image.layer.v1.tar", 10, layer, 10),),
        history=(HistoryEntry(created="2000-01-01T00:00:00Z", created_by=f"step {i}"),),
        created="2000-01-01T00:00:00Z",
        names=names or (f"localhost/img{i}:latest",),
        names_history=names or (f"localhost/img{i}:latest",),
        digests=("sha256:" + _hex("manifest", i),),
        labels=labels if labels is not None else {},
    )


def _state(count: int) -> StoreState:
    return StoreState.from_records(_record(i) for i in range(count))


def test_a_loaded_state_writes_back_the_same_bytes() -> None:
    data = _state(5).to_bytes(commit="c1")
    state = StoreState.from_bytes(data)
    assert state.to_bytes(commit="c1") == data
    assert json.loads(state.to_bytes())["images"] == json.loads(data)["images"]


def test_only_changed_records_are_encoded_again() -> None:
    # A record written by another writer (non-ASCII kept, keys in another order) stays
    # as it was read; the one the change replaces is encoded by this module.
    doc = json.loads(_state(3).to_bytes())
    doc["images"][0]["labels"] = {"note": "café"}
    first = json.dumps(dict(reversed(doc["images"][0].items())), ensure_ascii=False)
    rest = ",".join(json.dumps(o, separators=(",", ":")) for o in doc["images"][1:])
    data = f'{{"version":1,"images":[{first},{rest}],"containers":[]}}'.encode()
    state = StoreState.from_bytes(data)
    assert state.images[doc["images"][0]["id"]].labels == {"note": "café"}
    changed = replace(state.images[doc["images"][2]["id"]], names=("localhost/new:1",))
    state.put(changed)
    out = state.to_bytes().decode()
    assert first in out
    assert json.dumps(changed.to_json(), separators=(",", ":")) in out
    assert json.loads(out)["images"][0] == doc["images"][0]


def test_another_json_form_reads_the_same() -> None:
    data = _state(4).to_bytes(commit="c2")
    pretty = json.dumps(json.loads(data), indent=2).encode()
    state = StoreState.from_bytes(pretty)
    assert state.to_bytes(commit="c2") == data
    assert list(state.by_name) == list(StoreState.from_bytes(data).by_name)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d + b"x",
        lambda d: d[:-1],
        lambda d: d.replace(b'"images":[', b'"images":[1,', 1),
        lambda d: d.replace(b'"version":1', b'"version":2', 1),
        lambda d: d[:-1] + b',"version":2}',
        lambda d: d.replace(b'"id":"', b'"id":"x', 1),
        lambda d: b"\xff" + d,
    ],
)
def test_what_json_refuses_is_still_refused(damage: object) -> None:
    data = _state(3).to_bytes(commit="c3")
    with pytest.raises(StoreCorrupted):
        StoreState.from_bytes(damage(data))  # type: ignore[operator]


def test_trailing_whitespace_and_an_empty_store_read() -> None:
    assert len(StoreState.from_bytes(_state(2).to_bytes() + b" \n").images) == 2
    assert not StoreState.from_bytes(b'{"version":1,"images":[]}').images
    assert StoreState.from_bytes(StoreState().to_bytes()).images == {}


def test_the_index_is_what_json_dumps_gives() -> None:
    state = _state(3)
    first = next(iter(state.images.values()))
    state.put(replace(first, names=('localhost/a"b:é', "localhost/x:1")))
    state.put(replace(_record(9), names=()))
    manifests = [
        {
            "mediaType": r.manifest_media_type,
            "digest": r.manifest_digest,
            "size": r.manifest_size,
            "annotations": {REF_NAME_ANNOTATION: name},
        }
        for r in state.images.values()
        for name in r.names
    ]
    doc = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}
    assert render_index(state) == json.dumps(doc, separators=(",", ":")).encode()
    assert (
        render_index(StoreState())
        == json.dumps(
            {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []},
            separators=(",", ":"),
        ).encode()
    )


class EagerTree:
    """The tree as it was computed before (every image against every other, up front)."""

    def __init__(self, state: StoreState) -> None:
        by_top: dict[str, list[ImageRecord]] = defaultdict(list)
        chains: dict[str, list[str]] = {}
        for record in state.images.values():
            chain = chain_ids(record.diff_ids)
            chains[record.id] = chain
            by_top[chain[-1] if chain else ""].append(record)
        self.parent: dict[str, str] = {}
        self.children: dict[str, list[str]] = defaultdict(list)
        for child in state.images.values():
            chain = chains[child.id]
            tops = [chain[-1] if chain else ""]
            if chain:
                tops.append(chain[-2] if len(chain) > 1 else "")
            for top in tops:
                for candidate in by_top.get(top, ()):
                    if candidate.id != child.id and _is_parent(candidate, child):
                        self.parent[child.id] = candidate.id
                        self.children[candidate.id].append(child.id)
                        break
                if child.id in self.parent:
                    break

    def remove(self, image_id: str) -> None:
        parent = self.parent.pop(image_id, None)
        if parent is not None and image_id in self.children.get(parent, ()):
            self.children[parent].remove(image_id)
        for child in self.children.pop(image_id, []):
            self.parent.pop(child, None)


def _is_parent(parent: ImageRecord, child: ImageRecord) -> bool:
    if len(child.history) != len(parent.history) + 1:
        return False
    if child.history[: len(parent.history)] != parent.history:
        return False
    p_ids, c_ids = parent.diff_ids, child.diff_ids
    return c_ids[: len(p_ids)] == p_ids and len(c_ids) - len(p_ids) in (0, 1)


def _random_state(rng: random.Random, trial: int, most: int) -> StoreState:
    records = []
    for i in range(rng.randint(1, most)):
        layers = tuple(
            LayerRecord("sha256:" + _hex(j), "t", 1, f"sha256:{rng.randint(0, 1)}", 1)
            for j in range(rng.randint(0, 3))
        )
        history = tuple(
            HistoryEntry(created=str(rng.randint(0, 1))) for _ in range(rng.randint(0, 3))
        )
        records.append(ImageRecord(_hex(trial, i), "sha256:m", "t", 1, 1, layers, history))
    return StoreState.from_records(records)


@pytest.mark.parametrize("most", [6, 60])
def test_the_tree_answers_as_the_eager_tree(most: int) -> None:
    rng = random.Random(most)
    for trial in range(300):
        state = _random_state(rng, trial, most)
        eager, lazy = EagerTree(state), LayerTree(state)
        ids = list(state.images)
        for _ in range(rng.randint(1, 3 * len(ids))):
            image_id = rng.choice(ids)
            if rng.random() < 0.5:
                assert lazy.parent_of(image_id) == eager.parent.get(image_id), trial
            else:
                assert lazy.children_of(image_id) == eager.children.get(image_id, []), trial
                assert lazy.has_children(image_id) == bool(eager.children.get(image_id))
            if rng.random() < 0.2:
                victim = rng.choice(ids)
                eager.remove(victim)
                lazy.remove(victim)
        for image_id in ids:  # then every image (a listing)
            assert lazy.parent_of(image_id) == eager.parent.get(image_id), trial
            assert lazy.children_of(image_id) == eager.children.get(image_id, []), trial


def test_referenced_among_is_referenced_blobs_restricted() -> None:
    state = _state(20)
    every = sorted(state.referenced_blobs())
    rng = random.Random(1)
    for _ in range(50):
        candidates = [*rng.sample(every, 4), "sha256:" + "0" * 64, "sha512:" + "1" * 128]
        assert state.referenced_among(candidates) == state.referenced_blobs() & set(candidates)
    assert state.referenced_among([]) == set()
