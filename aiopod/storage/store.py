"""The store: an OCI image layout plus aiopod's metadata, safe across tasks and processes.

Locking
    Readers take the store lock shared, writers exclusive (see :mod:`aiopod.storage.lock`);
    inside one ``Store`` object an :class:`anyio.Lock` also serialises writers so that
    tasks queue instead of polling.  After every acquisition the change token is compared
    with the one this object last saw, and the metadata is reloaded when another process
    (or another ``Store`` object) changed it.

Commit protocol (referents before referrers; metadata is the truth)
    1. a journal record listing every blob the commit adds or may free;
    2. staged blobs renamed into ``blobs/`` (content-addressed, so idempotent);
    3. a new change token, then ``aiopod/images.json`` replaced atomically;
    4. ``index.json`` re-rendered from the metadata;
    5. blobs no image references any more deleted;
    6. the journal removed.
    A crash anywhere leaves a journal; the next open rolls to whatever ``images.json``
    says: blobs it does not reference are deleted, ``index.json`` is re-rendered.

Cancellation
    Waiting for a lock is cancellable.  A commit, once begun, runs to its end in a
    worker thread under a shielded cancel scope, so a cancelled caller never leaves a
    half-applied change.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread

from aiopod.storage.crashpoints import crashpoint
from aiopod.storage.fsutil import atomic_write, fsync_dir, make_private_dir
from aiopod.storage.ingest import StagedBlob, StagingArea, recover_stale_staging
from aiopod.storage.layout import LAYOUT_FILE_CONTENT, StoreLayout, render_index
from aiopod.storage.lock import LockHandle, StoreLock
from aiopod.storage.records import ImageRecord, StoreState

__all__ = ("Store", "Transaction", "default_root")


def default_root() -> Path:
    """``$AIOPOD_ROOT``, else ``$XDG_DATA_HOME/aiopod``, else ``~/.local/share/aiopod``."""
    if root := os.environ.get("AIOPOD_ROOT"):
        return Path(root)
    if data_home := os.environ.get("XDG_DATA_HOME"):
        return Path(data_home) / "aiopod"
    return Path.home() / ".local" / "share" / "aiopod"


class Transaction:
    """Changes to the store made under its exclusive lock; committed when the block ends.

    ``state`` is a private copy of the metadata; change it only through :meth:`put`,
    :meth:`remove` and :meth:`add_blob`.
    """

    def __init__(self, state: StoreState) -> None:
        self.state = state
        self.added_blobs: dict[str, StagedBlob] = {}
        self.removed: list[ImageRecord] = []
        self.dirty = False

    def put(self, record: ImageRecord) -> None:
        """Add or replace an image record (its names move to it from any other image)."""
        self.state.put(record)
        self.dirty = True

    def remove(self, image_id: str) -> ImageRecord:
        """Remove an image record; its blobs are freed unless another image needs them."""
        record = self.state.remove(image_id)
        self.removed.append(record)
        self.dirty = True
        return record

    def add_blob(self, blob: StagedBlob) -> None:
        """Move a staged blob into the store at commit (a no-op if it is already there)."""
        self.added_blobs.setdefault(blob.digest, blob)
        self.dirty = True


class Store:
    """One store root.  Open it with :meth:`open` before use.

    :param root: the store directory (created with mode 0700).
    :param lock_timeout: seconds to wait for the store lock.
    """

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 120.0) -> None:
        self.layout = StoreLayout(root)
        self._lock = StoreLock(self.layout.lock_file, timeout=lock_timeout)
        self._writer = anyio.Lock()
        self._state = StoreState()
        self._token: bytes | None = None

    @property
    def root(self) -> Path:
        """The store's root directory."""
        return self.layout.root

    async def open(self) -> None:
        """Create the store if needed, then recover from interrupted work.

        Takes the exclusive lock briefly.  Idempotent.
        """
        await anyio.to_thread.run_sync(self._create_dirs)
        async with self._writer, self._lock.hold(exclusive=True) as handle:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._recover, handle)

    # -- reading -------------------------------------------------------------------------

    async def snapshot(self) -> StoreState:
        """The current metadata (reloaded if another process changed it).

        The returned state must be treated as read-only.  Takes the shared lock briefly.
        """
        async with self._lock.hold(exclusive=False) as handle:
            await self._refresh(handle)
            return self._state

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[StoreState]:
        """Hold the shared lock for the block (no writer can delete blobs meanwhile)."""
        async with self._lock.hold(exclusive=False) as handle:
            await self._refresh(handle)
            yield self._state

    def blob_path(self, digest: str) -> Path:
        """Where a blob lives (the digest is validated first)."""
        return self.layout.blob_path(digest)

    # -- writing -------------------------------------------------------------------------

    def new_staging_area(self) -> StagingArea:
        """A staging area for incoming blobs (blocking; call from a worker thread)."""
        return StagingArea.create(self.layout.tmp)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Change the store under its exclusive lock; the change is committed on exit.

        If the block raises, nothing is committed.  The commit itself is shielded from
        cancellation.
        """
        async with self._writer, self._lock.hold(exclusive=True) as handle:
            await self._refresh(handle)
            txn = Transaction(self._state.copy())
            yield txn
            if txn.dirty:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._commit, handle, txn)

    # -- internals (blocking; run in worker threads) ---------------------------------------

    def _create_dirs(self) -> None:
        layout = self.layout
        make_private_dir(layout.root)
        for path in (
            layout.meta,
            layout.journal,
            layout.tmp,
            layout.blobs,
            layout.blobs / "sha256",
        ):
            make_private_dir(path)
        if not layout.oci_layout.exists():
            atomic_write(layout.oci_layout, LAYOUT_FILE_CONTENT)

    async def _refresh(self, handle: LockHandle) -> None:
        token = handle.read_token()
        if token != self._token or self._token is None:
            self._state = await anyio.to_thread.run_sync(self._load_state)
            self._token = token

    def _load_state(self) -> StoreState:
        try:
            data = self.layout.images_json.read_bytes()
        except FileNotFoundError:
            return StoreState()
        return StoreState.from_bytes(data)

    def _recover(self, handle: LockHandle) -> None:
        layout = self.layout
        for directory in (layout.root, layout.meta):
            for stale in directory.glob(".tmp-*"):
                stale.unlink(missing_ok=True)
        state = self._load_state()
        journals = sorted(layout.journal.glob("*.json"))
        for journal in journals:
            try:
                candidates = json.loads(journal.read_bytes()).get("blobs", [])
            except ValueError:
                candidates = []
            self._delete_unreferenced(state, candidates)
        # A commit without blobs writes no journal, so a crash between images.json and
        # index.json is only visible here: re-render whenever index.json disagrees.
        index = render_index(state)
        try:
            current = layout.index_json.read_bytes()
        except FileNotFoundError:
            current = None
        if current != index:
            atomic_write(layout.index_json, index)
        for journal in journals:
            journal.unlink()
        recover_stale_staging(layout.tmp)
        self._token = handle.new_token()
        self._state = state

    def _delete_unreferenced(self, state: StoreState, candidates: Iterable[str]) -> None:
        referenced = state.referenced_blobs()
        for digest in candidates:
            if digest not in referenced:
                with contextlib.suppress(FileNotFoundError, ValueError):
                    self.layout.blob_path(digest).unlink()

    def _commit(self, handle: LockHandle, txn: Transaction) -> None:
        layout = self.layout
        candidates = set(txn.added_blobs)
        for record in txn.removed:
            candidates.update(record.blob_digests())
        journal: Path | None = None
        if candidates:
            journal = layout.journal / f"{secrets.token_hex(8)}.json"
            atomic_write(journal, json.dumps({"blobs": sorted(candidates)}).encode())
        crashpoint("commit:journal")
        try:
            if txn.added_blobs:
                for digest, blob in txn.added_blobs.items():
                    target = layout.blob_path(digest)
                    if target.exists():
                        blob.path.unlink(missing_ok=True)
                    else:
                        os.replace(blob.path, target)
                fsync_dir(layout.blobs / "sha256")
                crashpoint("commit:blobs")
            self._token = handle.new_token()
            atomic_write(layout.images_json, txn.state.to_bytes())
            self._state = txn.state
            crashpoint("commit:metadata")
            atomic_write(layout.index_json, render_index(txn.state))
            crashpoint("commit:index")
            if candidates:
                self._delete_unreferenced(txn.state, candidates)
                crashpoint("commit:gc")
        except BaseException:
            # Leave the journal: the next open (or this recovery) rolls to images.json.
            self._token = None
            with contextlib.suppress(Exception):
                self._recover(handle)
            raise
        if journal is not None:
            journal.unlink()
