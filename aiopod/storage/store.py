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
    worker thread and the locks are held until it has ended, whatever cancels the caller
    (asyncio's ``Task.cancel()`` included, see :mod:`aiopod.storage.threads`), so a
    cancelled caller never leaves a half-applied change.  The events a commit recorded
    are handed to ``publish_events`` as soon as it has ended, even when the caller is
    being cancelled.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.to_thread

from aiopod.events.log import EventLog, PreparedEvents
from aiopod.events.model import Event, EventKind
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.crashpoints import crashpoint
from aiopod.storage.digest import is_sha256_hex
from aiopod.storage.fsutil import atomic_write, fsync_dir, make_private_dir, remove_tree
from aiopod.storage.ingest import StagedBlob, StagingArea, recover_stale_staging
from aiopod.storage.layer_check import DEFAULT_LIMITS, LayerLimits
from aiopod.storage.layout import LAYOUT_FILE_CONTENT, StoreLayout, render_index
from aiopod.storage.lock import LockHandle, StoreLock
from aiopod.storage.records import ImageRecord, StoreState
from aiopod.storage.threads import run_to_completion

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
        self.added_containers: dict[str, Path] = {}
        self.removed_containers: list[str] = []
        self.events: list[Event] = []
        self.recorded: list[Event] = []
        #: The policy and options in effect, recorded with events that name none.
        self.policy: str | None = None
        self.options: dict[str, str] = {}
        self.intents: list[Path] = []
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

    def add_container(self, record: ContainerRecord, staged_dir: Path) -> None:
        """Add a container whose directory (holding ``rootfs``) was prepared in staging."""
        self.state.containers[record.id] = record
        self.added_containers[record.id] = staged_dir
        self.dirty = True

    def remove_container(self, container_id: str) -> ContainerRecord:
        """Remove a container record; its directory goes at commit (if still there)."""
        record = self.state.containers.pop(container_id)
        self.removed_containers.append(container_id)
        self.dirty = True
        return record

    def emit(self, events: Iterable[Event]) -> None:
        """Record events with this change (they go to the event log at commit)."""
        self.events.extend(events)


class Store:
    """One store root.  Open it with :meth:`open` before use.

    :param root: the store directory (created with mode 0700).
    :param lock_timeout: seconds to wait for the store lock.
    :param event_log: the log a commit appends its events to (with the change: they are
        prepared first and kept in the commit's journal, so that a crash after the
        metadata was replaced still appends them, and one before drops them).
    :param publish_events: called in the event loop's thread with the recorded events
        once their commit has ended (it must not block); also with none when a commit
        announced to *commit_started* ended without recording any.
    :param commit_started: called in the event loop's thread before a commit with events
        begins (followers in this process then wait for *publish_events* rather than
        read the log the commit is writing).
    :param policy: the policy recorded with events whose transaction names none.
    :param layer_limits: the bounds every layer read into or out of the store is held to
        (its staging areas enforce them; root file systems are unpacked with them).
    :param allow_special_files: make device nodes and FIFOs of layers in root file
        systems (else they are skipped there; the layer blobs keep them).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        lock_timeout: float = 120.0,
        event_log: EventLog | None = None,
        publish_events: Callable[[Sequence[Event]], None] | None = None,
        commit_started: Callable[[], None] | None = None,
        policy: str | None = None,
        layer_limits: LayerLimits = DEFAULT_LIMITS,
        allow_special_files: bool = False,
    ) -> None:
        self.layout = StoreLayout(root)
        self.policy = policy
        self.layer_limits = layer_limits
        self.allow_special_files = allow_special_files
        self._event_log = event_log
        self._publish_events = publish_events
        self._commit_started = commit_started
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
            await run_to_completion(self._recover, handle)

    # -- reading -------------------------------------------------------------------------

    @property
    def last_state(self) -> StoreState:
        """The metadata as this process last read or committed it, without I/O or locks
        (another process may have changed it since; for displays, never for decisions)."""
        return self._state

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
        return StagingArea.create(self.layout.tmp, self.layer_limits)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Change the store under its exclusive lock; the change is committed on exit.

        If the block raises, nothing is committed.  The commit itself runs to its end
        whatever cancels the caller; its recorded events are published even then.
        """
        async with self._writer, self._lock.hold(exclusive=True) as handle:
            await self._refresh(handle)
            txn = Transaction(self._state.copy())
            try:
                yield txn
            except BaseException:
                if txn.intents:
                    # Container data is already gone: roll the intent forward now.
                    await run_to_completion(self._recover, handle)
                raise
            if txn.dirty or txn.events:
                announced = bool(txn.events) and self._commit_started is not None
                if announced and self._commit_started is not None:
                    self._commit_started()
                try:
                    await run_to_completion(self._commit, handle, txn)
                finally:
                    if (announced or txn.recorded) and self._publish_events is not None:
                        self._publish_events(txn.recorded)

    async def purge_containers(
        self, txn: Transaction, container_ids: Sequence[str], *, limit: int = 8
    ) -> dict[str, str]:
        """Delete the data of containers concurrently, inside a transaction.

        First an intent naming the containers is made durable, so that a crash from here
        on is rolled forward (the records go too) when the store is next opened.  Then
        each container's directory is deleted in a worker thread, at most *limit* at a
        time; one failure does not stop the others.  Returns ``{container ID: error}``
        for the failures.  The caller removes the records of the ones that succeeded.
        Cancellation waits for the deletions already started (they are shielded).
        """
        if not container_ids:
            return {}
        intent = self.layout.journal / f"intent-{secrets.token_hex(8)}.json"
        doc = json.dumps({"containers": list(container_ids)}).encode()
        txn.intents.append(intent)  # first: however the write ends, the intent is recovered
        await run_to_completion(atomic_write, intent, doc)
        crashpoint("purge:intent")
        failures: dict[str, str] = {}
        limiter = anyio.CapacityLimiter(limit)

        async def purge(container_id: str) -> None:
            try:
                await run_to_completion(self._purge_container_dir, container_id, limiter=limiter)
            except OSError as exc:
                failures[container_id] = exc.strerror or str(exc)

        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                for container_id in container_ids:
                    group.start_soon(purge, container_id)
        crashpoint("purge:done")
        return failures

    def container_dir(self, container_id: str) -> Path:
        """The directory of a container (``rootfs`` is inside it)."""
        if not is_sha256_hex(container_id):
            raise ValueError(f"invalid container ID {container_id!r}")
        return self.layout.containers / container_id

    async def replace_unreadable_metadata(self, state: StoreState) -> None:
        """Write *state* as the metadata without reading the current one (which cannot be
        read: this is how ``check --repair`` recovers from an unreadable images.json).

        Takes the exclusive lock; then recovers as an open does.
        """
        async with self._writer, self._lock.hold(exclusive=True) as handle:

            def write() -> None:
                self._token = handle.new_token()
                atomic_write(self.layout.images_json, state.to_bytes())
                atomic_write(self.layout.index_json, render_index(state))
                self._recover(handle)

            await run_to_completion(write)

    # -- internals (blocking; run in worker threads) ---------------------------------------

    def _purge_container_dir(self, container_id: str) -> None:
        directory = self.container_dir(container_id)
        if not directory.exists():
            return
        trash = self.layout.tmp / f"trash-{container_id}-{secrets.token_hex(4)}"
        os.rename(directory, trash)
        remove_tree(trash)

    def _create_dirs(self) -> None:
        layout = self.layout
        make_private_dir(layout.root)
        for path in (
            layout.meta,
            layout.journal,
            layout.tmp,
            layout.containers,
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
        for directory in (layout.root, layout.meta, layout.journal):
            for stale in directory.glob(".tmp-*"):
                stale.unlink(missing_ok=True)
        state = self._load_state()
        intents = sorted(layout.journal.glob("intent-*.json"))
        if intents:
            # Container data was being deleted when a process died: finish the job.
            removed: list[Event] = []
            for intent in intents:
                try:
                    ids = json.loads(intent.read_bytes()).get("containers", [])
                except ValueError:
                    ids = []
                for container_id in ids:
                    record = state.containers.pop(container_id, None)
                    if record is not None:
                        removed.append(_recovered_removal(record))
            handle.new_token()  # before the metadata changes, as every writer does
            atomic_write(layout.images_json, state.to_bytes())
            if removed and self._event_log is not None:
                self._event_log.append(removed)
            for intent in intents:
                intent.unlink()
        for directory in layout.containers.iterdir() if layout.containers.is_dir() else ():
            if directory.name not in state.containers:
                remove_tree(directory)  # made or being removed when a process died
        for trash in layout.tmp.glob("trash-*"):
            remove_tree(trash)
        journals = sorted(layout.journal.glob("*.json"))
        for journal in journals:
            try:
                doc = json.loads(journal.read_bytes())
            except ValueError:
                doc = {}
            self._append_journal_events(doc)
            self._delete_unreferenced(state, doc.get("blobs", []))
        # Every commit writes a journal first, so a commit that died between images.json
        # and index.json left one: only then can index.json disagree with the metadata.
        changed = bool(intents or journals)
        if journals or not layout.index_json.exists():
            index = render_index(state)
            try:
                current = layout.index_json.read_bytes()
            except FileNotFoundError:
                current = None
            if current != index:
                changed = True
                handle.new_token()
                atomic_write(layout.index_json, index)
        for journal in journals:
            journal.unlink()
        recover_stale_staging(layout.tmp)
        # A clean open changes nothing, so other processes need not reload.
        self._token = handle.new_token() if changed else handle.read_token()
        self._state = state

    def _delete_unreferenced(self, state: StoreState, candidates: Iterable[str]) -> None:
        referenced = state.referenced_blobs()
        for digest in candidates:
            if digest not in referenced:
                with contextlib.suppress(FileNotFoundError, ValueError):
                    self.layout.blob_path(digest).unlink()

    def _prepare(self, txn: Transaction) -> PreparedEvents | None:
        """The commit's events stamped as the log's next records (policy and options of
        the transaction added), or None when there are none."""
        if not txn.events or self._event_log is None:
            return None
        policy = txn.policy or self.policy
        options = txn.options
        events = [
            e if e.policy is not None else replace(e, policy=policy, options=e.options or options)
            for e in txn.events
        ]
        return self._event_log.prepare(events)

    def _commit(self, handle: LockHandle, txn: Transaction) -> None:
        prepared = self._prepare(txn)
        if not txn.dirty:
            # Events only (a save, a tag of a name the image has): the metadata is unchanged,
            # so no journal and no new change token.
            if prepared is not None and self._event_log is not None:
                txn.recorded = self._event_log.write(prepared)
            return
        layout = self.layout
        candidates = set(txn.added_blobs)
        for record in txn.removed:
            candidates.update(record.blob_digests())
        # The journal names the blobs the commit adds or may free and holds its events; it
        # also tells the next open that this commit may have died between images.json and
        # the event log or index.json.
        commit_id = secrets.token_hex(8)
        journal = layout.journal / f"{commit_id}.json"
        doc: dict[str, object] = {"blobs": sorted(candidates), "commit": commit_id}
        if prepared is not None:
            doc.update(events=prepared.data.decode(), base_seq=prepared.base_seq)
        atomic_write(journal, json.dumps(doc, ensure_ascii=False).encode())
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
            for container_id, staged in txn.added_containers.items():
                os.rename(staged, self.container_dir(container_id))
            if txn.added_containers:
                fsync_dir(layout.containers)
            self._token = handle.new_token()
            atomic_write(layout.images_json, txn.state.to_bytes(commit=commit_id))
            self._state = txn.state
            for intent in txn.intents:
                intent.unlink(missing_ok=True)
            crashpoint("commit:state")
            if prepared is not None and self._event_log is not None:
                txn.recorded = self._event_log.write(prepared)
            crashpoint("commit:metadata")
            atomic_write(layout.index_json, render_index(txn.state))
            crashpoint("commit:index")
            if candidates:
                self._delete_unreferenced(txn.state, candidates)
                crashpoint("commit:gc")
            for container_id in txn.removed_containers:
                self._purge_container_dir(container_id)
        except BaseException:
            # Leave the journal: the next open (or this recovery) rolls to images.json.
            self._token = None
            with contextlib.suppress(Exception):
                self._recover(handle)
            raise
        journal.unlink()

    def _append_journal_events(self, journal: dict[str, object]) -> None:
        """Append the events of a commit that died after replacing images.json and before
        its events were in the log (nothing when images.json is not its state, or when the
        log already goes past where the commit found it)."""
        lines, base_seq = journal.get("events"), journal.get("base_seq")
        if self._event_log is None or not isinstance(lines, str) or not isinstance(base_seq, int):
            return
        try:
            committed = json.loads(self.layout.images_json.read_bytes()).get("commit")
        except (FileNotFoundError, ValueError, AttributeError):
            return
        if committed != journal.get("commit") or self._event_log.last_seq() != base_seq:
            return
        self._event_log.write(PreparedEvents.from_lines(lines.encode(), base_seq))


def _recovered_removal(record: ContainerRecord) -> Event:
    """The event of a container whose removal a crash interrupted and recovery finished."""
    image = record.runtime.image_name if record.runtime else record.image_id
    return Event(
        EventKind.REMOVED,
        "container",
        record.id,
        record.name,
        attributes={"image": image, "external": str(record.runtime is None).lower()},
        options={"reason": "recovery"},
    )
