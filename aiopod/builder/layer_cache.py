"""The layer cache of ``--layers`` builds: which stored image an earlier build made for
the same step.

A stored image is the same step when its history is the stage's history so far (every
field, as buildah compares it) plus one entry with the step's ``created_by`` (with a layer
when the step adds one), its layers are the stage's plus that one, and its runtime config
equals the one the step leaves (so an instruction whose text is the same but whose values
differ, such as ``ENV X=$ARG``, misses).

Instead of comparing every image of the store at every step, :class:`LayerCache` keeps an
index of the images by their last history entry (``created_by``, whether it has a layer,
and the history's length): a step looks up the few images filed under its own entry and
compares only those.  The index follows the store: when the store's state object changes
(a commit, here or in another process), the records that are new or gone are filed or
dropped; records are immutable, so an unchanged one is recognised by identity and costs
no comparison.  Config documents read for the last comparison are kept by digest (blobs
never change).

Blocking: :meth:`LayerCache.find` reads config blobs in a worker thread.  Not safe for
concurrent use by several tasks; a build uses its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import anyio.to_thread

from aiopod.storage.records import HistoryEntry, ImageRecord, StoreState
from aiopod.storage.store import Store

__all__ = ("CacheHit", "LayerCache", "read_config")

_Key = tuple[int, str, bool]


def read_config(store: Store, record: ImageRecord) -> dict[str, Any]:
    """The config document of *record*'s image.  Blocking."""
    doc = json.loads(store.blob_path(record.config_digest).read_bytes())
    if not isinstance(doc, dict):
        raise ValueError(f"the config of image {record.id} is not a JSON object")
    return doc


def _key(record: ImageRecord) -> _Key | None:
    if not record.history:
        return None
    last = record.history[-1]
    return len(record.history), last.created_by, last.empty_layer


class CacheHit:
    """An image that holds the step: its record and config document."""

    __slots__ = ("config", "record")

    def __init__(self, record: ImageRecord, config: dict[str, Any]) -> None:
        self.record = record
        self.config = config


class LayerCache:
    """The index of one store's images by their last step (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._state: StoreState | None = None
        self._filed: dict[str, ImageRecord] = {}
        self._index: dict[_Key, dict[str, ImageRecord]] = {}
        self._configs: dict[str, dict[str, Any]] = {}

    def _follow(self, state: StoreState) -> None:
        """File the images of *state* that are new and drop those that are gone."""
        if state is self._state:
            return
        images = dict(state.images.items())  # one read of every image (a view's rows)
        # Equal, not identical: another read of the same image is another object.
        for image_id in [i for i, r in self._filed.items() if images.get(i) != r]:
            self._drop(self._filed.pop(image_id))
        for image_id, record in images.items():
            if image_id not in self._filed:
                self._filed[image_id] = record
                key = _key(record)
                if key is not None:
                    self._index.setdefault(key, {})[image_id] = record
        self._state = state

    def _drop(self, record: ImageRecord) -> None:
        key = _key(record)
        if key is not None:
            bucket = self._index.get(key, {})
            bucket.pop(record.id, None)
            if not bucket:
                self._index.pop(key, None)

    async def find(
        self,
        *,
        history: Sequence[Mapping[str, Any]],
        diff_ids: Sequence[str],
        created_by: str,
        adds_layer: bool,
        config: Mapping[str, Any],
    ) -> CacheHit | None:
        """The stored image that holds the step *created_by* after *history* and
        *diff_ids* (the stage so far), leaving the runtime *config*; ``None`` if none
        does.  Takes the store's shared lock briefly; reads at most the config blobs of
        the images filed under the step."""
        state = await self._store.snapshot()
        if state is not self._state:  # reading every image: in a worker thread
            await anyio.to_thread.run_sync(self._follow, state)
        candidates = self._index.get((len(history) + 1, created_by, not adds_layer))
        if not candidates:
            return None
        wanted_layers = len(diff_ids) + (1 if adds_layer else 0)
        wanted_history: list[HistoryEntry] | None = None
        for record in list(candidates.values()):
            layers = record.diff_ids
            if len(layers) != wanted_layers or list(layers[: len(diff_ids)]) != list(diff_ids):
                continue
            if wanted_history is None:
                wanted_history = [HistoryEntry.from_config(h) for h in history]
            if list(record.history[:-1]) != wanted_history:
                continue  # another base, or another build's steps (created times differ)
            doc = self._configs.get(record.config_digest)
            if doc is None:
                doc = await anyio.to_thread.run_sync(read_config, self._store, record)
                self._configs[record.config_digest] = doc
            if (doc.get("config") or {}) == config:
                return CacheHit(record, doc)
        return None
