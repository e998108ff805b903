"""The metadata at scale: what makes a command on a big store cheap gives the same results.

* A state read from the metadata database (:class:`StoreState` over a
  :class:`~aiopod.storage.metadata_db.DbView`, read row by row and answered from the
  database's indexes) answers as the same state held in memory: images and their order,
  names, ID prefixes, repository digests, layer stacks, blobs referenced, ``index.json``
  and the layer tree; so does such a state with a transaction's changes over it, and the
  database those changes are written to.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.layertree import LayerTree
from aiopod.storage.layout import INDEX_MEDIA_TYPE, REF_NAME_ANNOTATION, render_index
from aiopod.storage.metadata_db import DbView, MetadataDB, create_database, read_commit
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


class Databases:
    """Metadata databases made in a temporary directory; their views are closed after
    the test."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made = 0
        self.views: list[DbView] = []

    def write(self, state: StoreState, *, commit: str = "c0") -> Path:
        """A new database holding *state* (its images in order, its containers)."""
        self.made += 1
        path = self.directory / f"metadata-{self.made}.db"
        create_database(path, state.images.values(), state.containers.values(), commit=commit)
        return path

    def read(self, path: Path) -> StoreState:
        """The state the database at *path* holds, read lazily through a view."""
        view = MetadataDB(path).view()
        self.views.append(view)
        return StoreState.from_view(view)

    def round_trip(self, state: StoreState) -> StoreState:
        return self.read(self.write(state))

    def close(self) -> None:
        for view in self.views:
            view.close()


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[Databases]:
    databases = Databases(tmp_path)
    try:
        yield databases
    finally:
        databases.close()


BACKINGS = ["memory", "database"]


def _backed(state: StoreState, backing: str, dbs: Databases) -> StoreState:
    return state if backing == "memory" else dbs.round_trip(state)


@pytest.mark.parametrize("backing", BACKINGS)
def test_the_index_is_what_json_dumps_gives(backing: str, dbs: Databases) -> None:
    state = _state(3)
    first = next(iter(state.images.values()))
    state.put(replace(first, names=('localhost/a"b:é', "localhost/x:1")))
    state.put(replace(_record(9), names=()))
    state = _backed(state, backing, dbs)
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
    assert len(manifests) == 4
    doc = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}
    assert render_index(state) == json.dumps(doc, separators=(",", ":")).encode()
    empty = _backed(StoreState(), backing, dbs)
    assert (
        render_index(empty)
        == json.dumps(
            {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []},
            separators=(",", ":"),
        ).encode()
    )


# ------------------------------------------------------------------- the database and memory

#: Few diff_ids and history entries, so that layer stacks and histories are shared often.
_DIFF_IDS = [f"sha256:{_hex('diff', k)}" for k in range(3)]


def _random_record(rng: random.Random, key: object, names: list[str]) -> ImageRecord:
    """A random image; it takes names (each at most once in a store) from *names*."""
    layers = tuple(
        LayerRecord(
            "sha256:" + _hex("blob", rng.randint(0, 5)),
            "application/vnd.oci.image.layer.v1.tar",
            1,
            rng.choice(_DIFF_IDS),
            1,
        )
        for _ in range(rng.randint(0, 3))
    )
    history = tuple(
        HistoryEntry(created=str(rng.randint(0, 1)), empty_layer=rng.random() < 0.2)
        for _ in range(rng.randint(0, 3))
    )
    taken = tuple(names.pop() for _ in range(min(len(names), rng.randint(0, 2))))
    digests = tuple({"sha256:" + _hex("repo", rng.randint(0, 4)) for _ in range(rng.randint(0, 2))})
    return ImageRecord(
        id=_hex("image", key),
        manifest_digest="sha256:" + _hex("manifest", rng.randint(0, 6)),
        manifest_media_type="application/vnd.oci.image.manifest.v1+json",
        manifest_size=rng.randint(100, 999),
        config_size=rng.randint(100, 999),
        layers=layers,
        history=history,
        created="2000-01-01T00:00:00Z",
        names=taken,
        names_history=taken,
        digests=digests,
        labels={"n": str(key)} if rng.random() < 0.5 else None,
    )


def _name_pool(trial: int) -> list[str]:
    return [f"localhost/n{trial}-{k}:latest" for k in range(12)]


def _random_store(rng: random.Random, trial: int, most: int) -> StoreState:
    names = _name_pool(trial)
    rng.shuffle(names)
    records = [_random_record(rng, (trial, i), names) for i in range(rng.randint(0, most))]
    containers = [
        ContainerRecord(_hex("container", trial, c), f"c{c}", rng.choice(records).id, "2000")
        for c in range(rng.randint(0, 3) if records else 0)
    ]
    return StoreState.from_records(records, containers)


@dataclass
class Questions:
    """Arguments for every kind of question a state answers."""

    stacks: list[tuple[tuple[str, ...], int]]  # diff_ids and number of history entries
    prefixes: list[str]
    digests: list[str]
    names: list[str]
    blob_sets: list[list[str]]


def _questions(rng: random.Random, state: StoreState, trial: int) -> Questions:
    """Questions of every kind, most about the store's own images."""
    records = state.images.values()
    stacks: list[tuple[tuple[str, ...], int]] = [(r.diff_ids, len(r.history)) for r in records]
    stacks += [
        (tuple(rng.choice(_DIFF_IDS) for _ in range(rng.randint(0, 3))), rng.randint(0, 3))
        for _ in range(5)
    ]
    stacks += [(ids[:-1], history - 1) for ids, history in stacks if ids and history]
    prefixes = {r.id[: rng.randint(1, 3)] for r in records} | {"0", "ab", "f" * 64, ""}
    prefixes.update(r.id for r in records[:3])
    digests = {d for r in records for d in r.digests} | {"sha256:" + _hex("repo", 99)}
    blobs = sorted({d for r in records for d in r.blob_digests()})
    return Questions(
        stacks=stacks,
        prefixes=sorted(prefixes),
        digests=sorted(digests),
        names=[*_name_pool(trial), "localhost/nobody:1"],
        blob_sets=[
            [*rng.sample(blobs, min(len(blobs), 3)), "sha256:" + "0" * 64] for _ in range(5)
        ],
    )


def _ids(records: list[ImageRecord]) -> list[str]:
    return [r.id for r in records]


def assert_same_answers(got: StoreState, expected: StoreState, questions: Questions) -> None:
    """*got* (read from a database) answers every question as *expected* (in memory)."""
    assert list(got.images) == list(expected.images)
    assert got.images.keys() == expected.images.keys()
    assert got.images.values() == expected.images.values()
    assert len(got.images) == len(expected.images)
    assert got.images == expected.images
    assert dict(got.by_name) == dict(expected.by_name)
    assert len(got.by_name) == len(expected.by_name)
    assert got.containers == expected.containers
    assert list(got.containers) == list(expected.containers)
    assert got.referenced_blobs() == expected.referenced_blobs()
    assert render_index(got) == render_index(expected)
    for ids, history in questions.stacks:
        assert _ids(got.with_layers(ids, history)) == _ids(expected.with_layers(ids, history))
        assert _ids(got.above_layers(ids, history)) == _ids(expected.above_layers(ids, history))
    for prefix in questions.prefixes:
        matching = [i for i in expected.images if i.startswith(prefix)]
        for limit in (1, 2, len(matching) + 1):
            # In no particular order; when more match than asked for, any *limit* of
            # them (as in memory: a lookup tells one match from several).
            found = _ids(got.with_id_prefix(prefix, limit))
            assert len(found) == len(set(found)) == min(limit, len(matching))
            assert set(found) <= set(matching), (prefix, limit, found, matching)
            assert len(expected.with_id_prefix(prefix, limit)) == len(found)
    for digest in questions.digests:
        assert _ids(got.with_digest(digest)) == _ids(expected.with_digest(digest)), digest
    for name in questions.names:
        assert got.by_name.get(name) == expected.by_name.get(name), name
        assert (name in got.by_name) == (name in expected.by_name)
    for blobs in questions.blob_sets:
        assert got.referenced_among(blobs) == expected.referenced_among(blobs)
    for image_id in [*expected.images, _hex("not", "there")]:
        assert got.images.get(image_id) == expected.images.get(image_id)
        assert (image_id in got.images) == (image_id in expected.images)
    assert_same_tree(got, expected)


def assert_same_tree(got: StoreState, expected: StoreState) -> None:
    ours, theirs = LayerTree(got), LayerTree(expected)
    for image_id in expected.images:
        assert ours.parent_of(image_id) == theirs.parent_of(image_id), image_id
        assert ours.children_of(image_id) == theirs.children_of(image_id), image_id


def test_a_state_read_from_the_database_answers_as_the_state_in_memory(dbs: Databases) -> None:
    rng = random.Random(2)
    for trial in range(60):
        expected = _random_store(rng, trial, 25)
        path = dbs.write(expected, commit=f"commit-{trial}")
        assert read_commit(path) == f"commit-{trial}"
        got = dbs.read(path)
        assert got.images.view is not None and got.images.unchanged
        assert_same_answers(got, expected, _questions(rng, expected, trial))


Op = Callable[[StoreState], None]


def _add(record: ImageRecord) -> Op:
    def op(state: StoreState) -> None:
        state.put(record)

    return op


def _rename(image_id: str, names: tuple[str, ...]) -> Op:
    def op(state: StoreState) -> None:
        if image_id in state.images:
            state.put(state.images[image_id].with_names(names))  # names move to it

    return op


def _remove(image_id: str) -> Op:
    def op(state: StoreState) -> None:
        if image_id in state.images:
            state.remove(image_id)

    return op


def _remove_and_add_again(image_id: str) -> Op:
    def op(state: StoreState) -> None:
        if image_id in state.images:
            state.put(state.remove(image_id))  # removed, then added again: it goes last

    return op


def _replace_a_container(container: ContainerRecord) -> Op:
    def op(state: StoreState) -> None:
        if state.containers:
            state.containers.pop(next(iter(state.containers)))
        state.containers[container.id] = container

    return op


def _random_ops(rng: random.Random, state: StoreState, trial: int) -> list[Op]:
    """A transaction's changes: images added, replaced (new names, taken from others),
    removed, removed and added again; containers added and removed."""
    ids = list(state.images)
    spare = [f"localhost/new{trial}-{k}:1" for k in range(6)]
    ops: list[Op] = []
    for step in range(rng.randint(1, 12)):
        roll = rng.random()
        if roll < 0.25 or not ids:
            record = _random_record(rng, (trial, "new", step), spare)
            ids.append(record.id)
            ops.append(_add(record))
        elif roll < 0.5:
            names = tuple(rng.sample(spare + _name_pool(trial), rng.randint(0, 2)))
            ops.append(_rename(rng.choice(ids), names))
        elif roll < 0.7:
            ops.append(_remove(rng.choice(ids)))
        elif roll < 0.85:
            ops.append(_remove_and_add_again(rng.choice(ids)))
        else:
            container = ContainerRecord(_hex("new-container", trial, step), f"n{step}", "", "")
            ops.append(_replace_a_container(container))
    return ops


def test_a_transaction_over_the_database_is_the_same_transaction_in_memory(
    dbs: Databases,
) -> None:
    rng = random.Random(3)
    for trial in range(80):
        start = _random_store(rng, trial, 15)
        path = dbs.write(start)
        read = dbs.read(path)
        in_memory, over_view = start.copy(), read.copy()
        for op in _random_ops(rng, start, trial):
            op(in_memory)
            op(over_view)
        questions = _questions(rng, in_memory, trial)
        # Before the commit: the changes held over the view.
        assert_same_answers(over_view, in_memory, questions)
        assert_same_answers(read, start, _questions(rng, start, trial))  # untouched
        # The commit: only the changes are written.
        changes = over_view.changes()
        assert not changes.replace_all
        MetadataDB(path).write(changes, commit=f"commit-{trial}", operation="test")
        assert read_commit(path) == f"commit-{trial}"
        assert_same_answers(dbs.read(path), in_memory, questions)
        assert_same_answers(read, start, _questions(rng, start, trial))  # its view holds


def test_a_replaced_image_keeps_its_place_and_one_added_again_goes_last(
    dbs: Databases,
) -> None:
    records = [_record(i) for i in range(4)]
    path = dbs.write(StoreState.from_records(records))
    state = dbs.read(path).copy()
    state.put(records[1].with_names(["localhost/renamed:1"]))
    state.put(state.remove(records[0].id))
    state.remove(records[2].id)
    state.put(_record(7))
    expected = [records[1].id, records[3].id, records[0].id, _record(7).id]
    assert list(state.images) == expected
    MetadataDB(path).write(state.changes(), commit="c1", operation="test")
    after = dbs.read(path)
    assert list(after.images) == expected
    assert after.images[records[1].id].names == ("localhost/renamed:1",)
    assert after.by_name.get("localhost/img1:latest") is None
    assert after.by_name["localhost/renamed:1"] == records[1].id


def test_an_image_given_more_repository_digests_is_found_by_them_before_the_commit(
    dbs: Databases,
) -> None:
    """A load or pull of an image the store has adds the manifest's digest to its record:
    asked by that digest in the same transaction, the state finds it."""
    records = [_record(i) for i in range(3)]
    path = dbs.write(StoreState.from_records(records))
    state = dbs.read(path).copy()
    extra = "sha256:" + _hex("another manifest")
    state.put(replace(records[1], digests=(*records[1].digests, extra)))
    in_memory = StoreState.from_records(state.images.values())
    assert _ids(in_memory.with_digest(extra)) == [records[1].id]
    assert _ids(state.with_digest(extra)) == [records[1].id]
    MetadataDB(path).write(state.changes(), commit="c1", operation="test")
    assert _ids(dbs.read(path).with_digest(extra)) == [records[1].id]


# ------------------------------------------------------------------------- the layer tree


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


@pytest.mark.parametrize("backing", BACKINGS)
@pytest.mark.parametrize("most", [6, 60])
def test_the_tree_answers_as_the_eager_tree(most: int, backing: str, dbs: Databases) -> None:
    rng = random.Random(most)
    for trial in range(300 if backing == "memory" else 100):
        state = _backed(_random_state(rng, trial, most), backing, dbs)
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


@pytest.mark.parametrize("backing", BACKINGS)
def test_referenced_among_is_referenced_blobs_restricted(backing: str, dbs: Databases) -> None:
    state = _backed(_state(20), backing, dbs)
    every = sorted(state.referenced_blobs())
    assert len(every) == 60
    rng = random.Random(1)
    for _ in range(50):
        candidates = [*rng.sample(every, 4), "sha256:" + "0" * 64, "sha512:" + "1" * 128]
        assert state.referenced_among(candidates) == state.referenced_blobs() & set(candidates)
    assert state.referenced_among([]) == set()
    # With changes over it: removed images' blobs are no longer referenced, added ones' are.
    changed = state.copy()
    gone = changed.remove(_record(3).id)
    changed.put(_record(30))
    for digest in [*gone.blob_digests(), *_record(30).blob_digests(), *every[:6]]:
        assert changed.referenced_among([digest]) == changed.referenced_blobs() & {digest}
