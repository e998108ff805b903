"""The store: an OCI image layout plus aiopod's metadata, safe across tasks and processes.

Locking
    Readers take the store lock shared, writers exclusive (see :mod:`aiopod.storage.lock`);
    inside one ``Store`` object an :class:`anyio.Lock` also serialises writers so that
    tasks queue instead of polling.  After every acquisition the change token is compared
    with the one this object last saw, and the metadata is reloaded when another process
    (or another ``Store`` object) changed it.

Metadata (store format 2)
    The records live in an SQLite database, ``aiopod/metadata.db``
    (:mod:`aiopod.storage.metadata_db`): a command reads the images it asks about, and a
    commit writes the rows it changed, so neither grows with the number of images.  A
    store of format 1 (``aiopod/images.json``) is migrated when it is first opened
    writable: the database is made aside from it and renamed into place, then
    ``images.json`` is deleted (a crash before the rename leaves format 1 to migrate
    again; after it, the database is the metadata).

Commit protocol (referents before referrers; metadata is the truth)
    1. a journal record listing every blob the commit adds or may free;
    2. staged blobs renamed into ``blobs/`` (content-addressed, so idempotent);
    3. a new change token, then the changed records written to the metadata database
       in one SQLite transaction that also records the commit's ID -- its ``COMMIT`` is
       **the commit point**;
    4. the commit's events appended to the event log;
    5. ``index.json`` re-rendered from the metadata (from text the database keeps per
       image, so without reading the images);
    6. blobs no image references any more deleted, removed containers' data deleted;
    7. the journal removed.
    A crash anywhere leaves a journal; the next open rolls to whatever the metadata
    says: blobs it does not reference are deleted, the journal's events are appended if
    the metadata is the commit's, ``index.json`` is re-rendered.

Outcomes (docs/design/commit-points.md; the labels below are its rules)
    Every operation that changes the store (tag, untag, rmi, load, import, pull, a build's
    commit, container create and remove, prune) is one transaction, and its commit point
    is the ``COMMIT`` of its metadata.  A failure before it (a full
    disk included) leaves the store as it was -- the blobs and container directories the
    commit had moved in are taken out again -- and raises (a full disk as
    :class:`~aiopod.errors.StorageFull`).  After it the operation has happened, whatever
    fails next: steps 4-7 that fail leave the journal, are reported as a
    :class:`~aiopod.errors.CommitUnfinished` warning, and are finished by the next
    commit or open.  Whether the metadata is the commit's is read back from the database
    (the commit ID it records), never assumed from where an error came from (CP1-CP4).

Unfinished work and reading
    Opening runs recovery, but a recovery that cannot write (a full disk) does not stop
    the open: the metadata is the committed state, every blob it names is present,
    so reading (``images``, ``inspect``, ``save``) needs nothing from the journal; the
    open warns and the work is finished later.  Before a commit, the journal of an
    unfinished one gets its events appended (so that the log stays in commit order);
    if even that cannot be written the new commit fails before its commit point (CP5, CP6).

Removal on a full disk
    The store keeps a reserve file (``aiopod/reserve``, at least 1 MiB and twice the
    size of the metadata) allocated while there is room.  A commit that only removes
    (images, containers) deletes the reserve before it writes anything, so that its
    journal, metadata, events and index fit even when the disk is full; the data it then
    deletes gives the room back, and the reserve is re-allocated after a commit whenever
    it fits.  Freeing first by deleting blobs before the metadata no longer names them
    would break "referents before referrers" (a crash would leave images without their
    blobs), hence a reserve rather than a different order (CP20-CP23).

Opening
    A store is created only where there is nothing yet (a missing or empty directory) or
    where the caller asked for one (``create``); podman's store and an OCI layout are
    never taken over (:mod:`aiopod.storage.survey`).  An existing store's modes are never
    changed, so a store made readable for others stays so.  A store opened read-only
    (asked for, or one the caller cannot write) takes only the shared lock, from a lock
    file opened for reading, never recovers nor writes, and refuses every change with
    :class:`~aiopod.errors.ReadOnlyStore`.

Additional stores (podman's ``additionalimagestores``)
    Other aiopod stores opened read-only under this one: :meth:`Store.snapshot` and
    :meth:`Store.reading` show their images too (under their shared locks), an image of
    this store first, and :meth:`Store.blob_path` finds their blobs.  They are never
    written.  A commit that stores an image needing their blobs (a build on one of their
    images) links or copies those blobs into this store first; one that adds a container
    of their image first copies its record here without names and marked read-only (the
    names stay theirs; the commit that removes its last container drops the copy), so
    this store stays whole on its own.
    Transactions see this store's images only.

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
import operator
import os
import secrets
import shutil
import sqlite3
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import anyio.to_thread

from aiopod.errors import (
    CommitUnfinished,
    ContentRemoved,
    NotAStore,
    ReadOnlyStore,
    StorageFull,
)
from aiopod.events.log import EventLog, PreparedEvents
from aiopod.events.model import Event, EventKind
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.crashpoints import crashpoint
from aiopod.storage.digest import is_sha256_hex
from aiopod.storage.fsutil import (
    PRIVATE_DIR_MODE,
    atomic_write,
    disk_errors,
    fsync_dir,
    fsync_file,
    is_disk_full,
    remove_tree,
)
from aiopod.storage.ingest import StagedBlob, StagingArea, recover_stale_staging
from aiopod.storage.layer_check import DEFAULT_LIMITS, LayerLimits
from aiopod.storage.layout import (
    LAYOUT_FILE_CONTENT,
    StoreLayout,
    edit_index,
    index_entries,
    render_index,
)
from aiopod.storage.legacy_v1 import parse_images_json
from aiopod.storage.lock import LockHandle, StoreLock
from aiopod.storage.metadata_db import (
    Changes,
    MetadataDB,
    create_database,
    database_errors,
    read_all,
    read_commit,
)
from aiopod.storage.records import ImageRecord, StoreState
from aiopod.storage.survey import RootKind, describe, survey_root
from aiopod.storage.threads import run_to_completion

__all__ = ("RESERVE_MIN", "Store", "Transaction", "default_root", "read_metadata")

#: The least space the store holds back for removals on a full disk (bytes).
RESERVE_MIN = 1 << 20
#: Images a commit may change for ``index.json`` to be edited rather than rendered.
_INDEX_EDITS = 16


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
        #: The IDs of the records :meth:`put` added or replaced.
        self.put_ids: set[str] = set()
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
        #: What of the commit is left to recovery (after its commit point), one line each.
        self.unfinished: list[str] = []

    @property
    def operation(self) -> str:
        """What the transaction does, for messages: the removal's command (``rmi``,
        ``rm``, ``prune``, as its events record it), else its first event's verb (``tag``,
        ``untag``, ``load``, ...), else ``commit``."""
        if reason := self.options.get("reason"):
            return reason
        return self.events[0].action if self.events else "commit"

    @property
    def frees_space(self) -> bool:
        """Whether the commit only removes (images or containers), adding no data: such a
        commit may use the store's reserve on a full disk."""
        removes = bool(self.removed or self.removed_containers or self.intents)
        return removes and not self.added_blobs and not self.added_containers

    def put(self, record: ImageRecord) -> None:
        """Add or replace an image record (its names move to it from any other image)."""
        self.state.put(record)
        self.put_ids.add(record.id)
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

    :param root: the store directory (created with mode 0700 when missing; an existing
        directory keeps its mode).
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
    :param create: make a store in a directory that is not empty (never in podman's
        store nor over an OCI layout); a missing or empty one needs no asking.
    :param read_only: open an existing store for reading only (also chosen by
        :meth:`open` when the caller cannot write the store).
    :param additional_stores: read-only aiopod stores whose images this one shows and
        uses (see the module's docstring).
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
        create: bool = False,
        read_only: bool = False,
        additional_stores: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        self.layout = StoreLayout(root)
        self.additional = tuple(
            Store(path, lock_timeout=lock_timeout, layer_limits=layer_limits, read_only=True)
            for path in additional_stores
        )
        #: The IDs of the images that only the additional stores hold (as last read).
        self.additional_ids: frozenset[str] = frozenset()
        self.create = create
        self.read_only = read_only
        self.policy = policy
        self.layer_limits = layer_limits
        self.allow_special_files = allow_special_files
        self._event_log = event_log
        self._publish_events = publish_events
        self._commit_started = commit_started
        self._lock = StoreLock(self.layout.lock_file, timeout=lock_timeout, read_only=read_only)
        self._db = MetadataDB(self.layout.metadata_db)
        self._writer = anyio.Lock()
        self._state = StoreState()
        self._token: bytes | None = None
        self._merged: tuple[tuple[StoreState, ...], StoreState] | None = None

    @property
    def root(self) -> Path:
        """The store's root directory."""
        return self.layout.root

    async def open(self) -> None:
        """Create the store if needed, then recover from interrupted work.

        Takes the exclusive lock briefly; a read-only store only reads its metadata under
        the shared lock.  Idempotent.  A recovery that cannot write (the disk is full)
        warns (:class:`~aiopod.errors.CommitUnfinished`) and leaves the work for later:
        the store reads as committed meanwhile.

        :raises ~aiopod.errors.NotAStore: the directory holds something else (see
            :mod:`aiopod.storage.survey`), or nothing when read-only.
        """
        for other in self.additional:
            await other.open()
        if await anyio.to_thread.run_sync(self._prepare_root):
            self.read_only = self._lock.read_only = True
            await self.snapshot()
            return
        async with self._writer, self._lock.hold(exclusive=True) as handle:
            try:
                await run_to_completion(self._recover, handle)
            except StorageFull as exc:
                self._token = None
                await self._refresh(handle)
                warnings.warn(
                    CommitUnfinished(
                        f"recovery of earlier work could not finish ({_reason(exc)}): the "
                        "store reads as committed; the next aiopod command with room finishes it"
                    ),
                    stacklevel=2,
                )

    def close(self) -> None:
        """Close the metadata database's writing connection and let go of the last
        state read (this store's and its additional stores'); the store can be used
        again (they are opened when needed).  A state a caller still holds keeps its
        view open until it is dropped.  Blocking."""
        self._db.close()
        self._state, self._token, self._merged = StoreState(), None, None
        for other in self.additional:
            other.close()

    def check_writable(self) -> None:
        """Raise :class:`~aiopod.errors.ReadOnlyStore` when the store is read-only."""
        if self.read_only:
            raise ReadOnlyStore(
                f"the store {self.root} is read-only: it can be listed, inspected and saved "
                "from, not changed (open it writable, as a user who may write it)"
            )

    # -- reading -------------------------------------------------------------------------

    @property
    def event_log(self) -> EventLog | None:
        """The log commits append their events to (None: they are not recorded)."""
        return self._event_log

    @property
    def last_state(self) -> StoreState:
        """The metadata as this process last read or committed it, without I/O or locks
        (another process may have changed it since; for displays, never for decisions)."""
        return self._state

    async def snapshot(self) -> StoreState:
        """The current metadata (reloaded if another process changed it).

        The returned state must be treated as read-only.  Takes the shared lock briefly.
        With additional stores, their images are in it too.
        """
        async with self.reading() as state:
            return state

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[StoreState]:
        """Hold the shared lock for the block (no writer can delete blobs meanwhile), and
        those of the additional stores, whose images the state shows too."""
        async with contextlib.AsyncExitStack() as stack:
            handle = await stack.enter_async_context(self._lock.hold(exclusive=False))
            await self._refresh(handle)
            others = [await stack.enter_async_context(o.reading()) for o in self.additional]
            yield self._with_additional(self._state, others)

    def blob_path(self, digest: str) -> Path:
        """Where a blob lives (the digest is validated first): in this store, else in the
        first additional store that has it."""
        path = self.layout.blob_path(digest)
        if self.additional and not path.exists():
            for other in self.additional:
                if (found := other.blob_path(digest)).exists():
                    return found
        return path

    def _with_additional(self, state: StoreState, others: Sequence[StoreState]) -> StoreState:
        """*state* with the images of *others* added (their names that no image here has);
        the same object again while none of them was reloaded."""
        if not others:
            return state
        key = (state, *others)  # held, so that they are compared by identity safely
        cached = self._merged
        same = cached is not None and len(cached[0]) == len(key)
        if cached is not None and same and all(map(operator.is_, cached[0], key)):
            return cached[1]
        merged = state.copy()
        only_theirs: set[str] = set()
        for other in others:
            for record in other.images.values():
                names = [n for n in record.names if n not in merged.by_name]
                mine = merged.images.get(record.id)
                if mine is None:
                    only_theirs.add(record.id)
                    merged.put(replace(record, names=tuple(names), read_only=True))
                elif names:
                    merged.put(replace(mine, names=(*mine.names, *names)))
        self.additional_ids = frozenset(only_theirs)
        self._merged = (key, merged)
        return merged

    # -- writing -------------------------------------------------------------------------

    def new_staging_area(self) -> StagingArea:
        """A staging area for incoming blobs (blocking; call from a worker thread)."""
        self.check_writable()
        return StagingArea.create(self.layout.tmp, self.layer_limits)

    @asynccontextmanager
    async def transaction(self, *, unreadable: bool = False) -> AsyncIterator[Transaction]:
        """Change the store under its exclusive lock; the change is committed on exit.

        If the block raises, nothing is committed.  The commit itself runs to its end
        whatever cancels the caller; its recorded events are published even then.

        :param unreadable: the metadata cannot be read (``check --repair`` rebuilding it,
            :mod:`aiopod.storage.rebuild`): the transaction starts from an empty state,
            which replaces the metadata at commit (unfinished commits are finished against
            it, CP24).
        :raises ~aiopod.errors.ReadOnlyStore: the store is read-only.
        """
        self.check_writable()
        async with self._writer, self._lock.hold(exclusive=True) as handle:
            if unreadable:
                self._state, self._token = StoreState(), None
            else:
                await self._refresh(handle)
            txn = Transaction(self._state.copy())
            try:
                yield txn
            except BaseException:
                if txn.intents:
                    # Container data is already gone: roll the intent forward now (on a
                    # full disk the next open or commit does it).
                    with contextlib.suppress(StorageFull):
                        await run_to_completion(self._recover, handle)
                raise
            if unreadable:
                txn.dirty = True
                self._state = txn.state.copy()
            if self.additional and txn.dirty:
                async with contextlib.AsyncExitStack() as theirs:  # no blob of theirs goes
                    for other in self.additional:
                        await theirs.enter_async_context(other.reading())
                    await run_to_completion(self._adopt_additional, txn)
            if txn.dirty or txn.events:
                announced = bool(txn.events) and self._commit_started is not None
                if announced and self._commit_started is not None:
                    self._commit_started()
                try:
                    await run_to_completion(self._commit, handle, txn)
                except StorageFull as exc:
                    raise StorageFull(exc.path, txn.operation, errno=exc.errno) from exc
                finally:
                    if (announced or txn.recorded) and self._publish_events is not None:
                        self._publish_events(txn.recorded)
                _warn_unfinished(txn.unfinished)

    async def purge_containers(
        self,
        txn: Transaction,
        container_ids: Sequence[str],
        *,
        limit: int = 8,
        on_purged: Callable[[int], object] | None = None,
    ) -> dict[str, str]:
        """Delete the data of containers concurrently, inside a transaction.

        First an intent naming the containers is made durable, so that a crash from here
        on is rolled forward (the records go too) when the store is next opened.  Then
        each container's directory is deleted in a worker thread, at most *limit* at a
        time; one failure does not stop the others.  Returns ``{container ID: error}``
        for the failures.  The caller removes the records of the ones that succeeded.
        ``on_purged`` (called in the event loop, must not block) gets the number of
        containers done so far after each one ends, failed or not.
        Cancellation waits for the deletions already started (they are shielded).
        """
        if not container_ids:
            return {}
        intent = self.layout.journal / f"intent-{secrets.token_hex(8)}.json"
        doc = json.dumps({"containers": list(container_ids)}).encode()
        txn.intents.append(intent)  # first: however the write ends, the intent is recovered
        try:
            await run_to_completion(self._write_intent, intent, doc)
        except StorageFull as exc:
            raise StorageFull(exc.path, "remove", errno=exc.errno) from exc
        crashpoint("purge:intent")
        failures: dict[str, str] = {}
        limiter = anyio.CapacityLimiter(limit)
        done = 0

        async def purge(container_id: str) -> None:
            nonlocal done
            try:
                await run_to_completion(self._purge_container_dir, container_id, limiter=limiter)
            except OSError as exc:
                failures[container_id] = exc.strerror or str(exc)
            done += 1
            if on_purged is not None:
                on_purged(done)

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

    # -- internals (blocking; run in worker threads) ---------------------------------------

    def _write_intent(self, intent: Path, doc: bytes) -> None:
        # A removal: the reserve makes room for the intent (and for the commit after it).
        self._release_reserve()
        atomic_write(intent, doc)

    def _release_reserve(self) -> None:
        """Give the reserve's space back to the file system (for a removal)."""
        self.layout.reserve.unlink(missing_ok=True)

    def _keep_reserve(self, metadata_size: int) -> None:
        """Allocate the reserve (at least :data:`RESERVE_MIN`, and twice *metadata_size*
        plus room for a journal and events, in MiB steps) if it is smaller; best-effort:
        when it does not fit, a later commit tries again."""
        need = 2 * metadata_size + (256 << 10)
        want = max(RESERVE_MIN, -(-need // RESERVE_MIN) * RESERVE_MIN)
        path = self.layout.reserve
        try:
            if path.stat().st_size >= want:
                return
        except FileNotFoundError:
            pass
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, want)
            finally:
                os.close(fd)

    def _adopt_additional(self, txn: Transaction) -> None:
        """Make this store whole before a commit: copy here (without names, marked
        ``read_only``) the record of an additional store's image that a new container
        uses, drop such copies no container uses any more, and link or copy the additional
        stores' blobs that a new or changed image needs into staging."""
        theirs = {r.id: r for o in self.additional for r in o.last_state.images.values()}
        for container_id in txn.added_containers:
            image_id = txn.state.containers[container_id].image_id
            if image_id not in txn.state.images and image_id in theirs:
                txn.put(replace(theirs[image_id], names=(), read_only=True))
        used = {c.image_id for c in txn.state.containers.values()}
        unused = {c.image_id for c in self._state.containers.values()} - used
        for image_id in sorted(unused):
            record = txn.state.images.get(image_id)
            if record is not None and record.read_only and image_id in theirs:
                txn.remove(image_id)  # a container's copy of their image, unused now
        before = self._state.images
        put, _ = txn.state.images.changes()  # the images this commit adds or changes
        for record in put:
            if before.get(record.id) is record:
                continue
            for digest in record.blob_digests():
                if digest in txn.added_blobs or self.layout.blob_path(digest).exists():
                    continue
                source = self.blob_path(digest)
                if not source.exists():
                    continue  # missing everywhere: check reports it
                staged = self.layout.tmp / f"adopted-{secrets.token_hex(8)}"
                try:
                    os.link(source, staged)
                except OSError:
                    shutil.copyfile(source, staged)
                size = staged.stat().st_size
                txn.add_blob(StagedBlob(digest, size, staged, "none", digest, size))

    def _purge_container_dir(self, container_id: str) -> None:
        directory = self.container_dir(container_id)
        if not directory.exists():
            return
        trash = self.layout.tmp / f"trash-{container_id}-{secrets.token_hex(4)}"
        os.rename(directory, trash)
        remove_tree(trash)

    def _prepare_root(self) -> bool:
        """Check what the root holds; create the store's directories if it may.  Returns
        whether the store is to be read only (asked for, or not writable by the caller)."""
        root = self.layout.root
        kind = survey_root(root)
        if kind is RootKind.AIOPOD:
            if self.read_only or not _writable(self.layout):
                return True
        elif self.read_only:
            raise NotAStore(
                f"{root} is not an aiopod store ({describe(kind)}): a read-only runtime "
                "opens an existing store only"
            )
        elif kind is RootKind.PODMAN:
            raise NotAStore(
                f"{root} is podman's store (containers/storage), not an aiopod store: "
                "give aiopod a directory of its own (--root DIR)"
            )
        elif kind is RootKind.OCI_LAYOUT:
            raise NotAStore(
                f"{root} is an OCI image layout, not an aiopod store (aiopod would rewrite "
                "its index.json): load it (aiopod load -i DIR) into a store of its own"
            )
        elif kind is RootKind.OTHER and not self.create:
            raise NotAStore(
                f"{root} is not empty and is not an aiopod store: give a new or empty "
                "directory, or --create (create=True) to make a store in it anyway"
            )
        self._create_dirs()
        return False

    def _create_dirs(self) -> None:
        layout = self.layout
        layout.root.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        for path in (
            layout.meta,
            layout.journal,
            layout.tmp,
            layout.containers,
            layout.blobs,
            layout.blobs / "sha256",
        ):
            path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)  # an existing one keeps its mode

    async def _refresh(self, handle: LockHandle) -> None:
        token = handle.read_token()
        if token != self._token or self._token is None:
            self._state = await anyio.to_thread.run_sync(self._load_state)
            self._token = token

    def _load_state(self) -> StoreState:
        """The committed metadata: a view of the database, read lazily; read at once
        where no view can be opened (a read-only store, a full disk), and from a format-1
        ``images.json`` that was not migrated yet (a read-only store).

        :raises ~aiopod.errors.StoreCorrupted: the metadata cannot be read.
        """
        if not self.read_only and self._db.exists():
            try:
                return StoreState.from_view(self._db.view())
            except sqlite3.OperationalError:
                pass  # no WAL view here: read it all, as a read-only store does
        return read_metadata(self.layout)

    def _migrate(self) -> None:
        """Give the store its metadata database: from a format-1 ``images.json`` if there
        is one (the migration), else empty.  The database is made aside and renamed into
        place (a crash before leaves the old format, removed ``.tmp-*`` files aside);
        ``images.json`` is deleted after.

        :raises ~aiopod.errors.StoreCorrupted: ``images.json`` cannot be read (``system
            check --repair`` rebuilds the metadata).
        """
        layout = self.layout
        if self._db.exists():
            layout.images_json.unlink(missing_ok=True)  # a migration that died at its end
            return
        try:
            records, containers, commit = parse_images_json(layout.images_json.read_bytes())
        except FileNotFoundError:
            records, containers, commit = [], [], None
        self._replace_database(records, containers, commit, "migrating the metadata")

    def _recover(self, handle: LockHandle) -> None:
        layout = self.layout
        for directory in (layout.root, layout.meta, layout.journal):
            for stale in directory.glob(".tmp-*"):
                stale.unlink(missing_ok=True)
        if not layout.oci_layout.exists():
            # Written here, under the exclusive lock, not when the directories are made:
            # processes opening a new store at once would remove each other's temporary
            # file (the loop above) while it is being written.
            atomic_write(layout.oci_layout, LAYOUT_FILE_CONTENT)
        self._migrate()
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
            if removed:
                # Only when records go: a commit that removed them already (it died after
                # its commit point, before it deleted its intent) is the metadata, and its
                # ID there is what tells recovery to append its journal's events.
                handle.new_token()  # before the metadata changes, as every writer does
                self._write_metadata(state.changes(), secrets.token_hex(8), "recovery")
                state = self._load_state()
                if self._event_log is not None:
                    self._event_log.append(removed)
            for intent in intents:
                intent.unlink()
        for directory in layout.containers.iterdir() if layout.containers.is_dir() else ():
            if directory.name not in state.containers:
                remove_tree(directory)  # made or being removed when a process died
        for trash in layout.tmp.glob("trash-*"):
            remove_tree(trash)
        changed = self._finish_journals(handle, state, self._pending_journals()) or bool(intents)
        recover_stale_staging(layout.tmp)
        # A clean open changes nothing, so other processes need not reload.
        self._token = handle.new_token() if changed else handle.read_token()
        self._state = state

    def _pending_journals(self) -> list[Path]:
        """The journals of commits that have not ended (intents excluded)."""
        return sorted(
            p for p in self.layout.journal.glob("*.json") if not p.name.startswith("intent-")
        )

    def _finish_journals(self, handle: LockHandle, state: StoreState, journals: list[Path]) -> bool:
        """Roll the commits of *journals* to *state* (the metadata as it is): append their
        events where *state* is theirs, delete the blobs it does not reference, re-render
        ``index.json``, remove the journals.  Returns whether anything may have changed.

        :raises ~aiopod.errors.StorageFull: a write failed for want of space (the journals
            that remain are finished later).
        """
        layout = self.layout
        for journal in journals:
            try:
                doc = json.loads(journal.read_bytes())
            except ValueError:
                doc = {}
            with disk_errors("recording events", layout.meta / "events.jsonl"):
                self._append_journal_events(doc)
            self._delete_unreferenced(state, doc.get("blobs", []))
        # Every commit writes a journal first, so a commit that died between the metadata
        # and index.json left one: only then can index.json disagree with the metadata.
        changed = bool(journals)
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
        return changed

    def _finish_pending(self, handle: LockHandle) -> bool:
        """Before a commit: the events of an unfinished commit go to the log first (the
        log keeps commit order); the rest of its work is tried, and left for later if it
        cannot be done now.  Returns whether ``index.json`` is now rendered from the
        metadata (no unfinished commit left it behind).

        :raises ~aiopod.errors.StorageFull: those events cannot be written (nothing of
            the new commit has happened).
        """
        journals = self._pending_journals()
        if not journals:
            return True
        for journal in journals:
            try:
                doc = json.loads(journal.read_bytes())
            except (OSError, ValueError):
                continue
            with disk_errors("recording events of an earlier change", self.layout.meta):
                self._append_journal_events(doc)
        try:
            self._finish_journals(handle, self._state, journals)
        except StorageFull:
            return False
        return True

    def _committed(self, commit_id: str) -> bool:
        """Whether the metadata is the one commit *commit_id* wrote (read back)."""
        return read_commit(self.layout.metadata_db) == commit_id

    def _write_metadata(self, changes: Changes, commit_id: str, operation: str) -> None:
        """Write *changes* (:meth:`StoreState.changes`) with *commit_id*: the commit point.

        The changes of a state that is not a view of the database (a rebuild, or one read
        at once on a full disk) replace the whole database.
        """
        if changes.replace_all:
            self._replace_database(changes.put, changes.containers or (), commit_id, operation)
        else:
            self._db.write(changes, commit=commit_id, operation=operation)

    def rebuild_indexes(self, operation: str) -> None:
        """Make the metadata database's indexes again from its image records (``system
        check --repair`` of indexes that disagree with them), in place: the records, the
        commit ID and the store's content do not change.  Blocking; under the exclusive
        lock."""
        self._db.rebuild_indexes(operation)

    def _replace_database(
        self,
        records: Iterable[ImageRecord],
        containers: Iterable[ContainerRecord],
        commit_id: str | None,
        operation: str,
    ) -> None:
        """Make a new metadata database aside and rename it over the old one (the commit
        point); the old one's journal files go first, so that they are never applied to
        the new one.  A format-1 ``images.json`` goes after."""
        layout = self.layout
        tmp = layout.meta / f".tmp-metadata-{secrets.token_hex(6)}.db"
        try:
            with database_errors(tmp, operation), disk_errors(operation, tmp):
                create_database(tmp, records, containers, commit=commit_id)
                fsync_file(tmp)
                self._db.close()
                for suffix in ("-wal", "-shm"):
                    Path(f"{layout.metadata_db}{suffix}").unlink(missing_ok=True)
                os.replace(tmp, layout.metadata_db)
                fsync_dir(layout.meta)
        except BaseException:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)
            raise
        layout.images_json.unlink(missing_ok=True)

    def _roll_back(self, txn: Transaction, journal: Path) -> None:
        """Undo what a commit that did not reach its commit point moved into the store:
        its blobs the metadata does not reference, its container directories, its journal."""
        state = self._load_state()
        self._delete_unreferenced(state, txn.added_blobs)
        for container_id in txn.added_containers:
            if container_id not in state.containers:
                remove_tree(self.container_dir(container_id))
        journal.unlink(missing_ok=True)

    def _delete_unreferenced(self, state: StoreState, candidates: Iterable[str]) -> None:
        candidates = list(candidates)
        referenced = state.referenced_among(candidates)
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

    def _check_content(self, txn: Transaction) -> None:
        """Refuse (before anything is written) a commit whose new images need blobs that
        are neither staged by it nor in the store: content found present before the lock
        was taken (a build's base layers, a blob a load skipped) that another process's
        removal deleted meanwhile.  Under the exclusive lock nothing deletes blobs, so
        what exists now stays (CP9).

        :raises ~aiopod.errors.ContentRemoved: such blobs are missing.
        """
        before = self._state.images
        missing: dict[str, None] = {}
        for image_id in sorted(txn.put_ids):
            record = txn.state.images.get(image_id)
            if record is None or image_id in before:
                continue
            for digest in record.blob_digests():
                if digest not in txn.added_blobs and not self.layout.blob_path(digest).exists():
                    missing[digest] = None
        if missing:
            raise ContentRemoved(list(missing), txn.operation)

    def _commit(self, handle: LockHandle, txn: Transaction) -> None:
        """Commit *txn* (see the module docstring: the commit point is the ``COMMIT`` of
        its metadata).  Raises only before the commit point, with the store as it was;
        what fails after it is left to recovery and listed in ``txn.unfinished``."""
        if txn.frees_space:
            self._release_reserve()
        try:
            index_current = self._finish_pending(handle)
        except StorageFull as exc:
            if txn.dirty:
                raise
            # Events only: the operation has happened; its events cannot go before the
            # unfinished commit's, so they are not recorded (CP7).
            txn.unfinished.append(f"its events could not be recorded ({_reason(exc)})")
            return
        prepared = self._prepare(txn)
        if not txn.dirty:
            # Events only (a save, a tag of a name the image has): the metadata is unchanged,
            # so no journal and no new change token; the operation has happened already.
            if prepared is not None and self._event_log is not None:
                try:
                    txn.recorded = self._event_log.write(prepared)
                except OSError as exc:
                    txn.unfinished.append(f"its events could not be recorded ({_reason(exc)})")
            return
        self._check_content(txn)
        layout = self.layout
        candidates = set(txn.added_blobs)
        for record in txn.removed:
            candidates.update(record.blob_digests())
        # The journal names the blobs the commit adds or may free and holds its events; it
        # also tells the next open that this commit may have died between the metadata and
        # the event log or index.json.
        commit_id = secrets.token_hex(8)
        journal = layout.journal / f"{commit_id}.json"
        changes = txn.state.changes()
        doc: dict[str, object] = {"blobs": sorted(candidates), "commit": commit_id}
        if prepared is not None:
            doc.update(events=prepared.data.decode(), base_seq=prepared.base_seq)
        try:
            with disk_errors(txn.operation, layout.meta):
                atomic_write(journal, json.dumps(doc, ensure_ascii=False).encode())
                crashpoint("commit:journal")
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
                self._write_metadata(changes, commit_id, txn.operation)  # the commit point
        except BaseException:
            if not self._committed(commit_id):
                self._token = None
                with contextlib.suppress(Exception):
                    self._roll_back(txn, journal)
                raise
        crashpoint("commit:committed")  # the metadata is the commit's; its intents remain
        before = self._state
        try:
            self._state = self._load_state()  # the committed metadata, without changes over it
        except Exception:
            self._state = txn.state
        self._after_commit_point(
            txn, prepared, candidates, journal, (before, changes) if index_current else None
        )
        self._keep_reserve(self._db.size())

    def _after_commit_point(
        self,
        txn: Transaction,
        prepared: PreparedEvents | None,
        candidates: set[str],
        journal: Path,
        basis: tuple[StoreState, Changes] | None,
    ) -> None:
        """The steps after the commit point: each that fails is noted in
        ``txn.unfinished`` and the journal stays for recovery to finish them.  *basis*
        is the metadata before the commit and the commit's changes, when ``index.json``
        was rendered from that metadata (it is then edited, :meth:`_index_after`)."""
        layout = self.layout
        unfinished = txn.unfinished
        for intent in txn.intents:
            with contextlib.suppress(OSError):
                intent.unlink(missing_ok=True)
        crashpoint("commit:state")
        if prepared is not None and self._event_log is not None:
            try:
                txn.recorded = self._event_log.write(prepared)
            except OSError as exc:
                unfinished.append(f"its events are not in the log yet ({_reason(exc)})")
        crashpoint("commit:metadata")
        try:
            atomic_write(layout.index_json, self._index_after(basis))
        except OSError as exc:
            unfinished.append(f"index.json is not rendered yet ({_reason(exc)})")
        crashpoint("commit:index")
        try:
            if candidates:
                self._delete_unreferenced(self._state, candidates)
                crashpoint("commit:gc")
            for container_id in txn.removed_containers:
                self._purge_container_dir(container_id)
        except OSError as exc:
            unfinished.append(f"data it freed is not deleted yet ({_reason(exc)})")
        if not unfinished:
            try:
                journal.unlink()
            except OSError as exc:
                unfinished.append(f"its journal is not removed yet ({_reason(exc)})")

    def _index_after(self, basis: tuple[StoreState, Changes] | None) -> bytes:
        """``index.json`` after a commit: edited from the one rendered before it
        (:meth:`_edited_index`) when *basis* gives the metadata before it and the commit's
        changes, else rendered from the metadata."""
        edited = self._edited_index(*basis) if basis is not None else None
        return edited if edited is not None else render_index(self._state)

    def _edited_index(self, before: StoreState, changes: Changes) -> bytes | None:
        """``index.json`` as rendered from *before* with the entries of the images
        *changes* changed edited (:func:`~aiopod.storage.layout.edit_index`); None when
        that is not a few edits, or an edit cannot say where an entry goes."""
        if before.images.view is None or len(changes.put) + len(changes.removed) > _INDEX_EDITS:
            return None
        removed = set(changes.removed)
        edits: list[tuple[str, str]] = []
        appended: list[str] = []
        for image_id in changes.removed:
            old = before.images.get(image_id)
            if old is not None and (old_text := index_entries(old)):
                edits.append((old_text, ""))
        for record in changes.put:
            new_text = index_entries(record)
            old = None if record.id in removed else before.images.get(record.id)
            old_text = index_entries(old) if old is not None else ""
            if old is None:
                if new_text:
                    appended.append(new_text)  # an image added goes last
            elif old_text:
                if old_text != new_text:
                    edits.append((old_text, new_text))
            elif new_text:
                return None  # an untagged image got names: its place is not in the text
        try:
            current = self.layout.index_json.read_bytes()
        except FileNotFoundError:
            return None
        return edit_index(current, edits, appended)

    def _append_journal_events(self, journal: dict[str, object]) -> None:
        """Append the events of a commit that died after writing the metadata and before
        its events were in the log (nothing when the metadata is not its state, or when the
        log already goes past where the commit found it)."""
        lines, base_seq = journal.get("events"), journal.get("base_seq")
        if self._event_log is None or not isinstance(lines, str) or not isinstance(base_seq, int):
            return
        committed = read_commit(self.layout.metadata_db)
        if (
            committed is None
            or committed != journal.get("commit")
            or self._event_log.last_seq() != base_seq
        ):
            return
        self._event_log.write(PreparedEvents.from_lines(lines.encode(), base_seq))


def read_metadata(layout: StoreLayout) -> StoreState:
    """The whole metadata of the store at *layout*, read at once into memory (blocking;
    the caller holds the store's lock): its database, else a format-1 ``images.json``
    not yet migrated, else nothing (a new store).

    :raises ~aiopod.errors.StoreCorrupted: it cannot be read.
    """
    if layout.metadata_db.exists():
        records, containers = read_all(layout.metadata_db)
        return StoreState.from_records(records, containers)
    try:
        data = layout.images_json.read_bytes()
    except FileNotFoundError:
        return StoreState()
    records, containers, _ = parse_images_json(data)
    return StoreState.from_records(records, containers)


def _writable(layout: StoreLayout) -> bool:
    """Whether this process may change the store (its root, metadata and blobs)."""
    paths = (layout.root, layout.meta, layout.blobs / "sha256")
    return all(os.access(p, os.W_OK | os.X_OK) for p in paths if p.exists())


def _recovered_removal(record: ContainerRecord) -> Event:
    """The event of a container whose removal a crash interrupted and recovery finished."""
    image = record.runtime.image_name if record.runtime else record.image_id
    return Event(
        EventKind.REMOVED,
        "container",
        record.id,
        record.name,
        attributes=record.event_attributes(image),
        options={"reason": "recovery"},
    )


def _reason(exc: OSError) -> str:
    """A short reason for a failed step: the error and the file."""
    where = f" writing {exc.filename}" if exc.filename else ""
    if is_disk_full(exc):
        return f"no space left on device{where}"
    return f"{exc.strerror or exc}{where}"


def _warn_unfinished(problems: Sequence[str]) -> None:
    """Warn (:class:`CommitUnfinished`) that a change happened but steps are pending."""
    if problems:
        warnings.warn(
            CommitUnfinished(
                "the change was made, but "
                + "; ".join(problems)
                + ": the next aiopod command finishes it (free space if the disk is full)"
            ),
            stacklevel=3,
        )
