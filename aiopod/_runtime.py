"""The runtime: the public entry point that programs ``await``.

``Runtime`` is an async context manager around one store.  It serialises its state
changes with an :class:`anyio.Lock` (and the store's cross-process lock), and after it
is closed every call raises :class:`~aiopod.errors.RuntimeStopped`.

Cancellation: every method may be cancelled while it waits (for a lock, or while an
archive is being staged); a change that has started committing is finished first, so a
cancelled call never leaves a half-applied change.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from html import escape
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from aiopod._containers import (
    Container,
    container_from_record,
    create_container,
    plan_container_removal,
)
from aiopod._display import Displayable, plural
from aiopod._images import Image, ImageList, image_from_record, inspect_document
from aiopod._reference import check_tag_name, check_untag_name
from aiopod._text import human_size
from aiopod.errors import (
    AiopodError,
    ImageNotKnown,
    ReadOnlyStore,
    RuntimeStopped,
    StoreCorrupted,
    TagNotKnown,
    UsageError,
)
from aiopod.events.log import EventLog, Retention
from aiopod.events.model import Event, EventKind
from aiopod.events.stream import EventStream
from aiopod.removal.docker import check_docker_usage, plan_docker
from aiopod.removal.executor import execute_plan
from aiopod.removal.libpod import plan_libpod
from aiopod.removal.plan import Plan, RemovalOptions, RemovalReport
from aiopod.removal.podman import plan_podman
from aiopod.removal.prune import plan_prune, pruned_ids
from aiopod.storage.gcpause import paused_gc
from aiopod.storage.layer_check import DEFAULT_MAX_LAYER_RATIO, DEFAULT_MAX_LAYER_SIZE, LayerLimits
from aiopod.storage.layertree import LayerTree
from aiopod.storage.layout import StoreLayout
from aiopod.storage.lookup import lookup_image
from aiopod.storage.records import ImageRecord, StoreState
from aiopod.storage.store import Store, Transaction, default_root
from aiopod.storage.threads import run_until_stopped
from aiopod.transports.jsonutil import parse_json_object

if TYPE_CHECKING:
    import httpx

    from aiopod._history import ImageHistory
    from aiopod._info import Info
    from aiopod._prune import SystemPruneReport
    from aiopod._trees import ImageTree
    from aiopod._usage import DiskUsage
    from aiopod.builder.options import BuildPullPolicy
    from aiopod.builder.progress import ProgressTarget
    from aiopod.removal.progress import RemovalProgressTarget
    from aiopod.storage.check import CheckProgressTarget, CheckReport
    from aiopod.transports.archive_progress import ArchiveProgressTarget
    from aiopod.transports.registry.blob_locations import BlobLocations
    from aiopod.transports.registry.credentials import Credentials
    from aiopod.transports.registry.endpoints import ImageDestination
    from aiopod.transports.registry.login import LoginOutcome, LogoutOutcome
    from aiopod.transports.registry.progress import TransferCallback
    from aiopod.transports.registry.push import Compression
    from aiopod.transports.registry.target import RegistryOptions

# Imported where used, not here, so that a command that needs none of them starts
# faster: the transports (load, import, save), the registry, the store check, the
# builder, and what only info, df, history, image tree and system prune show.

__all__ = (
    "POLICIES",
    "PULL_POLICIES",
    "SAVE_COMPRESSIONS",
    "SAVE_FORMATS",
    "Policy",
    "PullPolicy",
    "Runtime",
    "SaveCompression",
    "SaveFormat",
)

Policy = Literal["libpod", "podman", "docker"]
POLICIES: tuple[Policy, ...] = ("libpod", "podman", "docker")

PullPolicy = Literal["always", "missing", "newer"]
PULL_POLICIES: tuple[PullPolicy, ...] = ("always", "missing", "newer")

SaveFormat = Literal["docker-archive", "oci-archive", "oci-dir"]
SAVE_FORMATS: tuple[SaveFormat, ...] = ("docker-archive", "oci-archive", "oci-dir")

SaveCompression = Literal["gzip", "zstd"]
SAVE_COMPRESSIONS: tuple[SaveCompression, ...] = ("gzip", "zstd")


class Runtime(Displayable):
    """A store of images driven with ``await``.

    :param root: the store directory; default ``$AIOPOD_ROOT``, else
        ``$XDG_DATA_HOME/aiopod``, else ``~/.local/share/aiopod``.
    :param lock_timeout: seconds to wait for another process holding the store lock.
    :param max_layer_size: the most bytes one layer may inflate to (default 64 GiB).
    :param max_layer_ratio: the most times one layer may inflate its compressed size,
        judged once it has inflated to 1 GiB (default 1000; ``None``: no limit).
    :param allow_special_files: make the device nodes and FIFOs of layers in the root file
        systems of containers and builds (device nodes only as real root); by default
        they are skipped there, as rootless podman skips device nodes.  Layer blobs keep
        them either way.

    A layer that passes a limit, in a load, import, pull, build or container, is refused
    with :class:`~aiopod.errors.LimitExceeded` as soon as it does: a decompression bomb is
    never inflated further (``docs/design/hostile-input.md``, L16 and L24).
    :param caller: who the event log records as acting (default: the command line).
    :param event_retention: how much of the event log's sealed history to keep (default:
        all); a pruned prefix leaves a checkpoint.
    :param create: make the store in a directory that is neither empty nor a store (a
        missing or empty directory, the default one included, needs no asking); podman's
        store and an OCI layout are refused even so
        (:class:`~aiopod.errors.NotAStore`).
    :param read_only: open an existing store for reading only: images, inspections,
        saves, history, trees and events work under the shared lock alone (no mode,
        metadata or event log is written; a save records no event); every change raises
        :class:`~aiopod.errors.ReadOnlyStore`.  Chosen automatically when the caller
        cannot write the store (``rt.read_only`` says which it is once open).
    :param additional_stores: read-only aiopod stores layered under this one (podman's
        ``additionalimagestores``): their images are listed, inspected, saved and usable
        as build bases and container images, and they are never written (a build or
        container links or copies the blobs it needs into this store).  Removing one of
        their images is refused with podman's ``cannot remove read-only image "ID"``.

    Use it as ``async with aiopod.Runtime(root=...) as rt:``.

    Every call that changes the store (tag, untag, remove_images, prune_images, load,
    import_image, pull, build, create_container, remove_containers) commits through the
    replacement of the store's metadata, its commit point (``docs/design/commit-points.md``,
    CP10-CP18; a forced removal's containers and a build's ``layers`` images commit on
    their own, CP12 and CP14): a change whose commit raised,
    :class:`~aiopod.errors.StorageFull` for a full disk included, is not in the store; a
    call that returns has made its change, and warns
    (:class:`~aiopod.errors.CommitUnfinished`) when a later step was left to recovery.
    Removals work on a full disk; reading works on a store with unfinished work.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        policy: Policy = "libpod",
        lock_timeout: float = 120.0,
        concurrency: int = 8,
        max_layer_size: int = DEFAULT_MAX_LAYER_SIZE,
        max_layer_ratio: float | None = DEFAULT_MAX_LAYER_RATIO,
        allow_special_files: bool = False,
        caller: str | None = None,
        event_retention: Retention | None = None,
        create: bool = False,
        read_only: bool = False,
        additional_stores: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        if policy not in POLICIES:
            raise UsageError(f"unknown policy {policy!r}: use one of {', '.join(POLICIES)}")
        if max_layer_size <= 0:
            raise UsageError(
                f"max_layer_size must be a positive number of bytes, not {max_layer_size}"
            )
        if max_layer_ratio is not None and not max_layer_ratio >= 1:
            raise UsageError(f"max_layer_ratio must be at least 1 (or None), not {max_layer_ratio}")
        root_path = Path(root if root is not None else default_root())
        self.policy: Policy = policy
        self.concurrency = concurrency
        self._event_log = EventLog(
            StoreLayout(root_path).meta / "events.jsonl",
            durable=True,
            retention=event_retention,
            caller=caller,
        )
        #: The store's events, of every process: ``async with rt.events.subscribe(...)``.
        self.events = EventStream(self._event_log)
        self._store = Store(
            root_path,
            lock_timeout=lock_timeout,
            event_log=self._event_log,
            publish_events=self.events.publish,
            commit_started=self.events.commit_started,
            policy=policy,
            layer_limits=LayerLimits(
                max_bytes=max_layer_size, max_compression_ratio=max_layer_ratio
            ),
            allow_special_files=allow_special_files,
            create=create,
            read_only=read_only,
            additional_stores=additional_stores,
        )
        self._blob_locations: BlobLocations | None = None  # made by the first pull or push
        self._lock = anyio.Lock()
        self._state: Literal["new", "open", "closed"] = "new"
        self._damaged: StoreCorrupted | None = None
        self._http: httpx.AsyncClient | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open (and, if needed, create and recover) the store.  Idempotent."""
        if self._state == "closed":
            raise RuntimeStopped()
        if self._state == "new":
            try:
                await self._store.open()
            except StoreCorrupted as exc:
                # Only check() works on a store whose metadata cannot be read.
                self._damaged = exc
            try:
                last_seq = await anyio.to_thread.run_sync(self._event_log.last_seq)
            except PermissionError:
                if not self.read_only:
                    raise
                last_seq = 0  # a shared store whose event log its owner kept private
            self.events.note_seq(last_seq)
            self._state = "open"

    async def aclose(self) -> None:
        """Close the runtime; every later call raises :class:`~aiopod.errors.RuntimeStopped`.

        Waits for a change in progress (the runtime lock); ends every subscription.
        """
        async with self._lock:
            self._state = "closed"
            self.events.close()
            http, self._http = self._http, None
            if http is not None:
                await http.aclose()
            await anyio.to_thread.run_sync(self._store.close)

    @asynccontextmanager
    async def _changing(self) -> AsyncIterator[Transaction]:
        """The runtime lock and a store transaction (whose events the store publishes)."""
        async with self._lock:
            self._check_open()
            async with self._store.transaction() as txn:
                yield txn

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeStopped()
        if self._damaged is not None:
            raise self._damaged

    @property
    def event_log(self) -> EventLog:
        """The store's persistent event log (shared by every process using the store;
        ``rt.events`` reads it for subscribers)."""
        return self._event_log

    @property
    def root(self) -> Path:
        """The store directory."""
        return self._store.root

    @property
    def read_only(self) -> bool:
        """Whether the store is read-only (asked for, or found not writable by open)."""
        return self._store.read_only

    # -- reading ---------------------------------------------------------------------------

    async def _snapshot(self) -> tuple[StoreState, LayerTree]:
        self._check_open()
        state = await self._store.snapshot()
        return state, LayerTree(state)

    async def images(self, *, all: bool = False) -> ImageList:
        """The images in storage order; intermediate images only with ``all=True``.

        The list shows itself as podman's ``images`` table in IPython and Jupyter.
        """
        state, tree = await self._snapshot()

        def listing() -> list[Image]:
            with paused_gc():  # a store of 100,000 images lists 100,000
                return [image_from_record(r, tree) for r in state.images.values()]

        # In a worker thread: the images are read from the metadata database here.
        result = await anyio.to_thread.run_sync(listing)
        return ImageList(result if all else [i for i in result if not i.intermediate])

    async def get_image(self, reference: str) -> Image:
        """The image *reference* names (a name, an ID, a unique ID prefix, a digest).

        :raises ~aiopod.errors.ImageNotKnown: nothing matches.
        :raises ~aiopod.errors.InvalidReference: the reference is malformed.
        """
        state, tree = await self._snapshot()
        record, _ = lookup_image(state, reference)
        return image_from_record(record, tree)

    async def inspect_image(self, reference: str) -> dict[str, Any]:
        """``podman image inspect``'s JSON object for the image *reference* names."""
        self._check_open()
        async with self._store.reading() as state:
            record, _ = lookup_image(state, reference)
            image = image_from_record(record, LayerTree(state))
            config_bytes, manifest_bytes = await anyio.to_thread.run_sync(
                lambda: (
                    self._store.blob_path(record.config_digest).read_bytes(),
                    self._store.blob_path(record.manifest_digest).read_bytes(),
                )
            )
        config = parse_json_object(config_bytes, what="config", max_size=len(config_bytes))
        manifest = parse_json_object(manifest_bytes, what="manifest", max_size=len(manifest_bytes))
        return inspect_document(image, config, manifest, record.manifest_media_type)

    # -- names -----------------------------------------------------------------------------

    async def tag(self, reference: str, *names: str) -> Image:
        """Add *names* (normalised: ``app`` → ``localhost/app:latest``) to an image.

        A name another image had moves to this one; a name it already has is a no-op.
        An image of an additional store is copied into this store with its names and the
        new ones (as podman does; the additional store is not changed).
        """
        self._check_open()
        full = [str(check_tag_name(name)) for name in names]
        if not full:
            raise UsageError("at least one name is needed")
        merged = await self._store.snapshot() if self._store.additional else None
        async with self._changing() as txn:
            record = _lookup_for_change(txn.state, merged, reference)
            if record.read_only or any(name not in record.names for name in full):
                named = record.with_names([*record.names, *full])
                txn.put(replace(named, read_only=False))  # an additional store's: copied
            # Every name given is an event, a name the image had too (podman logs it);
            # podman's carries the name as typed, ours the full name.
            typed = names if self.policy == "podman" else full
            txn.emit(Event(EventKind.TAGGED, "image", record.id, n) for n in typed)
            image = image_from_record(txn.state.images[record.id], LayerTree(txn.state))
        return image

    async def untag(self, reference: str, *names: str) -> Image:
        """Remove *names* from an image, or every name when none are given.

        The image itself is never deleted; removed names stay in its names history.

        :raises ~aiopod.errors.TagNotKnown: a name is not one of the image's names.
        :raises ~aiopod.errors.ReadOnlyStore: the image is an additional store's.
        """
        self._check_open()
        wanted = [str(check_untag_name(name)) for name in names]
        merged = await self._store.snapshot() if self._store.additional else None
        async with self._changing() as txn:
            record = _lookup_for_change(txn.state, merged, reference)
            if record.read_only:
                raise ReadOnlyStore(
                    f'cannot untag read-only image "{record.id}": it is in an additional store'
                )
            for name in wanted:
                if name not in record.names:
                    raise TagNotKnown(name)
            remaining = [n for n in record.names if n not in wanted] if wanted else []
            if remaining != list(record.names):
                txn.put(record.with_names(remaining))
            txn.emit(
                Event(EventKind.UNTAGGED, "image", record.id, n)
                for n in record.names
                if n not in remaining
            )
            image = image_from_record(txn.state.images[record.id], LayerTree(txn.state))
        return image

    # -- exchange formats ------------------------------------------------------------------

    async def load(
        self,
        path: str | os.PathLike[str],
        *,
        progress: ArchiveProgressTarget | None = None,
    ) -> list[Image]:
        """Load a docker-archive, an oci-archive or an OCI layout directory.

        Everything is verified before anything is stored; on error the store is unchanged.
        *progress* receives :data:`~aiopod.ArchiveRecord` records (the bytes of the archive
        read, then podman's lines for each image): a callable, called in the event loop's
        thread, or an anyio memory object stream, closed when the load ends.  Neither
        ever holds the load up (a slow consumer gets the latest byte count, not every one);
        an exception the callable raises fails the load before anything is stored.

        :raises ~aiopod.errors.InvalidArchive: the input is malformed (the message says how).
        """
        from aiopod.transports.load import load_archive

        self._check_open()
        from aiopod._relay import relay

        async with relay(progress) as relayed:
            records, _ = await load_archive(
                self._store, Path(path), report=relayed.report, checkpoint=relayed.flush
            )
        state, tree = await self._snapshot()
        return [image_from_record(state.images.get(r.id, r), tree) for r in records]

    async def import_image(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        progress: ArchiveProgressTarget | None = None,
    ) -> Image:
        """Make a one-layer image from a root file system tarball, optionally named;
        *progress* as for :meth:`load`."""
        from aiopod.transports.load import import_tarball

        self._check_open()
        names = [str(check_tag_name(name))] if name else []
        from aiopod._relay import relay

        async with relay(progress) as relayed:
            [record], _ = await import_tarball(
                self._store, Path(path), names, report=relayed.report, checkpoint=relayed.flush
            )
        state, tree = await self._snapshot()
        return image_from_record(state.images.get(record.id, record), tree)

    async def save(
        self,
        path: str | os.PathLike[str],
        references: Sequence[str],
        *,
        format: SaveFormat = "docker-archive",
        compression: SaveCompression | None = None,
        progress: ArchiveProgressTarget | None = None,
    ) -> None:
        """Save images to *path* as a docker-archive, an oci-archive or an OCI directory.

        Images given by name are saved under that name; images given by ID under all
        of their names.  The output appears only when it is complete.  *progress* as for
        :meth:`load`: podman's lines for each blob as it is written, with its bytes.

        *compression* (``"gzip"`` or ``"zstd"``; oci-archive and oci-dir only) writes the
        layers stored uncompressed compressed, with several threads per layer, and those
        stored compressed as they are; the manifests describe the layers as written, the
        configs are unchanged, so the images keep their IDs wherever they are loaded.
        By default every layer is written as stored.

        :raises ~aiopod.errors.UsageError: an unknown format or compression, or a
            compression for a docker-archive (whose layers are uncompressed tars).
        """
        self._check_open()
        if format not in SAVE_FORMATS:
            raise UsageError(f"unknown format {format!r}: use one of {', '.join(SAVE_FORMATS)}")
        if compression is not None and compression not in SAVE_COMPRESSIONS:
            raise UsageError(
                f"unknown compression {compression!r}: use one of {', '.join(SAVE_COMPRESSIONS)}"
            )
        if compression is not None and format == "docker-archive":
            raise UsageError(
                "a docker-archive holds uncompressed layers: compress an oci-archive or "
                "an oci-dir instead"
            )
        if not references:
            raise UsageError("at least one image is needed")
        async with self._store.reading() as state:
            chosen: dict[str, tuple[ImageRecord, list[str]]] = {}
            for ref in references:
                record, resolved = lookup_image(state, ref)
                names = chosen.setdefault(record.id, (record, []))[1]
                for name in [resolved] if resolved in record.names else record.names:
                    if name not in names:
                        names.append(name)
            images = list(chosen.values())
            target = Path(path)
            # The shared lock is held until the writer has stopped reading blobs, whatever
            # cancels the caller (a cancelled save stops at its next chunk, no output left).
            from aiopod._relay import relay

            async with relay(progress) as relayed:
                report = relayed.report
                if format == "docker-archive":
                    from aiopod.transports.docker_archive import write_docker_archive

                    await run_until_stopped(
                        write_docker_archive, target, images, self._store.blob_path, report
                    )
                else:
                    from aiopod.transports.oci_layout import write_oci_layout

                    archive = format == "oci-archive"
                    await run_until_stopped(
                        lambda: write_oci_layout(
                            target,
                            images,
                            self._store.blob_path,
                            archive=archive,
                            report=report,
                            compression=compression,
                        )
                    )
        if self.read_only:
            return  # nothing may be written, the event log included
        attributes = {"path": str(target), "format": format}
        if compression is not None:
            attributes["compression"] = compression
        async with self._changing() as txn:
            txn.emit(
                Event(
                    EventKind.SAVED,
                    "image",
                    record.id,
                    names[0] if names else None,
                    attributes=attributes,
                )
                for record, names in images
            )

    # -- registries ------------------------------------------------------------------------

    @staticmethod
    def _registry_options(
        tls_verify: bool | None,
        credentials: str | tuple[str, str] | Credentials | None,
        authfile: str | os.PathLike[str] | None,
        cert_dir: str | os.PathLike[str] | None,
        retry: int,
    ) -> RegistryOptions:
        """A call's registry keywords as :class:`RegistryOptions`."""
        from aiopod.transports.registry.credentials import Credentials
        from aiopod.transports.registry.retry import RetryPolicy

        if isinstance(credentials, str):
            credentials = Credentials.parse(credentials)
        elif isinstance(credentials, tuple):
            credentials = Credentials(*credentials)
        from aiopod.transports.registry.target import RegistryOptions

        return RegistryOptions(
            tls_verify=tls_verify,
            cert_dir=Path(cert_dir) if cert_dir is not None else None,
            credentials=credentials,
            authfile=Path(authfile) if authfile is not None else None,
            retry=RetryPolicy(retries=retry),
        )

    async def pull(
        self,
        reference: str,
        *,
        platform: str | None = None,
        policy: PullPolicy = "always",
        tls_verify: bool | None = None,
        credentials: str | tuple[str, str] | Credentials | None = None,
        authfile: str | os.PathLike[str] | None = None,
        cert_dir: str | os.PathLike[str] | None = None,
        retry: int = 3,
        progress: TransferCallback | None = None,
    ) -> Image:
        """Pull the image *reference* names into the store and return it.

        *reference* is ``oci:PATH[:REFERENCE]`` (an OCI layout directory).  An index (a
        multi-platform image) is resolved to the host's platform, or to *platform*
        (``OS/ARCH[/VARIANT]``) with podman's variant rules.  *policy*: ``"always"``
        contacts the source every time; ``"missing"`` only when the store has no image of
        that name; ``"newer"`` when the source's manifest digest is not one of the local
        image's digests.

        Every manifest, config and layer is verified before anything is stored, and
        blobs the store has are not transferred again.  *progress* is called in the event
        loop's thread with each :data:`~aiopod.transports.registry.progress.TransferRecord`
        (podman's lines as ``.text``); it must not block.

        Cancellation or failure leaves the store as it was; the store's exclusive lock
        is taken only for the final commit, which emits a ``Pulled`` event.

        :raises ~aiopod.errors.ImageNotKnown: the source has no such image.
        :raises ~aiopod.errors.NoMatchingPlatform: a multi-platform image lacks *platform*.
        :raises ~aiopod.errors.InvalidInputError: the content fails a check (the message
            says which: ``DigestMismatch``, ``LimitExceeded``, ``InvalidArchive``, ...).
        """
        from aiopod._platforms import parse_platform, wanted_platforms
        from aiopod.transports.registry.locate import PullAttempt, locate_pull, pull_failure
        from aiopod.transports.registry.progress import NameResolved, PullStarted
        from aiopod.transports.registry.pull import pull_image, resolve_manifest
        from aiopod.transports.registry.repository import RegistryRepository

        self._check_open()
        if policy not in PULL_POLICIES:
            raise UsageError(f"unknown pull policy {policy!r}: use {', '.join(PULL_POLICIES)}")
        wanted = wanted_platforms()
        if platform is not None:
            chosen = parse_platform(platform)
            wanted = wanted_platforms(chosen.os, chosen.architecture, chosen.variant or None)
        options = self._registry_options(tls_verify, credentials, authfile, cert_dir, retry)
        located = await locate_pull(self._registry_client, reference, options)
        names = [t.name for a in located.attempts for t in a.targets if t.name is not None]
        local = None
        if policy != "always":
            state, tree = await self._snapshot()
            image_id = next((state.by_name[n] for n in names if n in state.by_name), None)
            if image_id is not None:
                local = state.images[image_id]
                if policy == "missing":
                    return image_from_record(local, tree)
        if located.resolution is not None and progress is not None:
            progress(NameResolved(located.resolution))
        failures: list[tuple[PullAttempt, AiopodError]] = []
        for attempt in located.attempts:
            if attempt.announce is not None and progress is not None:
                progress(PullStarted(attempt.announce))
            if attempt.blocked is not None:
                failures.append((attempt, attempt.blocked))
                continue
            error: AiopodError | None = None
            for target in attempt.targets:  # mirrors first, then the registry
                try:
                    resolved = await resolve_manifest(target.repository, target.reference, wanted)
                except AiopodError as exc:
                    error = error or exc
                    continue
                if local is not None and resolved.top_digest in local.digests:
                    return await self.get_image(local.id)
                pulled = await pull_image(
                    self._store,
                    target.repository,
                    resolved,
                    name=target.name,
                    event_name=target.event_name,
                    progress=progress,
                )
                if isinstance(target.repository, RegistryRepository):
                    stored = pulled.record
                    blobs = [stored.config_digest, *(layer.digest for layer in stored.layers)]
                    await self._known_blob_locations().record(target.repository.name, blobs)
                state, tree = await self._snapshot()
                return image_from_record(state.images.get(pulled.record.id, pulled.record), tree)
            assert error is not None
            failures.append((attempt, error))
        raise pull_failure(failures)

    async def push(
        self,
        image: str,
        destination: str | None = None,
        *,
        compression: Compression | None = None,
        tls_verify: bool | None = None,
        credentials: str | tuple[str, str] | Credentials | None = None,
        authfile: str | os.PathLike[str] | None = None,
        cert_dir: str | os.PathLike[str] | None = None,
        retry: int = 3,
        digestfile: str | os.PathLike[str] | None = None,
        progress: TransferCallback | None = None,
    ) -> str:
        """Push the image *image* names to *destination* (default: *image* itself, as a
        registry reference) and return the digest of the manifest pushed.

        *destination* is ``oci:PATH[:TAG]``.  Layers go in parallel; *compression* is
        ``None`` (podman's default: uncompressed layers are gzip-compressed, compressed
        ones go as stored), ``"gzip"`` or ``"zstd"`` (every layer in that compression)
        or ``"none"`` (every layer as stored).  A blob the destination has is not sent.
        *digestfile* receives the digest, as ``podman push --digestfile``.  *progress* as
        for :meth:`pull`.

        Holds the store's shared lock while it reads blobs (removals wait); cancelling
        stops the transfers.  Emits a ``Pushed`` event when done.
        """
        from aiopod.transports.registry.blob_locations import MountingDestination
        from aiopod.transports.registry.locate import locate_push
        from aiopod.transports.registry.push import push_image, write_digestfile
        from aiopod.transports.registry.repository import RegistryRepository

        self._check_open()
        options = self._registry_options(tls_verify, credentials, authfile, cert_dir, retry)
        state, _ = await self._snapshot()
        lookup_image(state, image)  # as podman: an unknown image before a bad destination
        target = await locate_push(self._registry_client, destination or image, options)
        if target.reference.startswith("sha256:"):
            raise UsageError(f"{destination or image}: cannot push to a digest; name a tag")
        async with self._store.reading() as state:
            record, _ = lookup_image(state, image)
            repository: ImageDestination = target.repository
            if isinstance(repository, RegistryRepository):  # mount what the registry has
                stored = [record.config_digest, *(layer.digest for layer in record.layers)]
                repository = MountingDestination(
                    repository, self._known_blob_locations(), named_in=record.names, stored=stored
                )
            digest = await push_image(
                self._store,
                record,
                repository,
                target.reference or None,
                compression=compression,
                progress=progress,
            )
        if digestfile is not None:
            await anyio.to_thread.run_sync(write_digestfile, digestfile, digest)
        async with self._changing() as txn:
            txn.emit([Event(EventKind.PUSHED, "image", record.id, target.event_name)])
        return digest

    def _known_blob_locations(self) -> BlobLocations:
        """Where the blobs of this store were seen on registries (for mounts on push)."""
        if self._blob_locations is None:
            from aiopod.transports.registry.blob_locations import BlobLocations

            self._blob_locations = BlobLocations(self._store.layout.meta)
        return self._blob_locations

    def _registry_client(self) -> httpx.AsyncClient:
        """The runtime's one HTTP client for registries: created on first use, closed by
        :meth:`aclose`; every pull, push and login shares its connections (a pool per
        TLS configuration, see :mod:`aiopod.transports.registry.transport`)."""
        self._check_open()
        if self._http is None:
            from aiopod.transports.registry.transport import new_registry_client

            self._http = new_registry_client()
        return self._http

    async def login(
        self,
        registry: str | None,
        username: str | None = None,
        password: str | None = None,
        *,
        authfile: str | os.PathLike[str] | None = None,
        tls_verify: bool | None = None,
        cert_dir: str | os.PathLike[str] | None = None,
    ) -> LoginOutcome:
        """Log in to *registry* (``HOST[:PORT]``, or a namespace on it) as ``podman
        login``: the credentials are checked against the registry, then written to the
        auth file (*authfile*, else podman's default; mode 0600).  Without *username*
        and *password* the stored credentials are checked instead.  *tls_verify*
        overrides ``registries.conf``'s ``insecure``; *cert_dir* is ``--cert-dir``.

        The password is never part of an error, a log or an event.  Cancellation
        before the check ends writes nothing.

        :raises ~aiopod.errors.AuthenticationFailed: the registry refused them.
        :raises ~aiopod.errors.RegistryError: the registry could not be asked.
        """
        from aiopod.transports.registry.login import login

        return await login(
            self._registry_client(),
            registry,
            username,
            password,
            authfile=Path(authfile) if authfile is not None else None,
            tls_verify=tls_verify,
            cert_dir=Path(cert_dir) if cert_dir is not None else None,
        )

    async def logout(
        self,
        registry: str | None = None,
        *,
        all: bool = False,
        authfile: str | os.PathLike[str] | None = None,
    ) -> LogoutOutcome:
        """Remove the stored credentials of *registry*, or of every registry (*all*),
        as ``podman logout``.

        :raises ~aiopod.errors.NotLoggedIn: none are stored for *registry*.
        """
        from aiopod.transports.registry.login import logout

        return await logout(
            self._registry_client(),
            registry,
            all=all,
            authfile=Path(authfile) if authfile is not None else None,
        )

    async def logged_in_user(
        self, registry: str, *, authfile: str | os.PathLike[str] | None = None
    ) -> str:
        """The user name stored for *registry* (``podman login --get-login``).

        :raises ~aiopod.errors.NotLoggedIn: none is stored.
        """
        from aiopod.transports.registry.login import logged_in_user

        self._check_open()
        return await logged_in_user(
            registry, authfile=Path(authfile) if authfile is not None else None
        )

    # -- removal ---------------------------------------------------------------------------

    def _planner_for(
        self, policy: Policy | None, references: Sequence[str], options: RemovalOptions
    ) -> Callable[[StoreState, Mapping[str, str]], Plan]:
        chosen = policy or self.policy
        if chosen not in POLICIES:
            raise UsageError(f"unknown policy {chosen!r}: use one of {', '.join(POLICIES)}")
        if chosen == "docker":
            check_docker_usage(references, options)
        plan = {"podman": plan_podman, "docker": plan_docker}.get(chosen, plan_libpod)
        return lambda state, failures: plan(state, references, options, failures)

    async def remove_images(
        self,
        references: Sequence[str] = (),
        *,
        force: bool = False,
        all: bool = False,
        ignore: bool = False,
        no_prune: bool = False,
        dry_run: bool = False,
        policy: Policy | None = None,
        progress: RemovalProgressTarget | None = None,
    ) -> RemovalReport:
        """Remove (untag or delete) images, as ``rmi`` does under the runtime's policy.

        Every reference is looked up first; images are handled once each, in the order
        they were named; errors do not stop the others and all of them are in the
        report (with the exit code the command line uses).  ``force`` also removes the
        containers that use an image (runtime ones as containers, with events; storage
        containers concurrently).  ``dry_run`` returns the plan and changes nothing.

        *progress* receives :data:`~aiopod.RemovalRecord` records (the plan, then the
        containers and the images removed, counted before and after each step; see
        :mod:`aiopod.removal.progress`), as a load's (:meth:`load`): a callable, called in
        the event loop's thread, or an anyio memory object stream, closed when the call
        ends; neither ever holds the removal up.  An exception the callable raises fails
        the removal before anything is changed when it is raised for the plan.

        Holds the runtime lock and the store's exclusive lock for the decision and the
        commit; cancellation before the commit changes nothing, after it is too late
        (the commit is shielded).

        :raises ~aiopod.errors.UsageError: no references without ``all``, or both.
        """
        from aiopod._relay import relay

        options = RemovalOptions(force=force, all=all, ignore=ignore, no_prune=no_prune)
        planner = self._planner_for(policy, references, options)
        # The relay outside the lock: a slow stream consumer never holds the lock.
        async with relay(progress) as relayed, self._lock:
            self._check_open()
            if self._store.additional:
                planner = _refusing_additional(planner, await self._store.snapshot())
            report = await execute_plan(
                self._store,
                planner,
                dry_run=dry_run,
                concurrency=self.concurrency,
                policy=policy or self.policy,
                options=_flags(force=force, all=all, ignore=ignore, no_prune=no_prune),
                report=relayed.report,
                checkpoint=relayed.flush,
            )
        return report

    async def remove_image(
        self,
        reference: str,
        *,
        force: bool = False,
        ignore: bool = False,
        no_prune: bool = False,
        dry_run: bool = False,
        policy: Policy | None = None,
        progress: RemovalProgressTarget | None = None,
    ) -> RemovalReport:
        """Remove one image: :meth:`remove_images` of ``[reference]``, with the same
        keywords (but ``all``, which takes no reference), locking and cancellation."""
        return await self.remove_images(
            [reference],
            force=force,
            ignore=ignore,
            no_prune=no_prune,
            dry_run=dry_run,
            policy=policy,
            progress=progress,
        )

    async def prune_images(
        self, *, all: bool = False, external: bool = False, dry_run: bool = False
    ) -> RemovalReport:
        """Remove dangling images (with ``all``: every image no container uses).

        With ``external`` an image that only external (storage-only) containers use is
        removed too, and those containers with it (``image prune --external``).  The
        report's ``deleted`` lists every image removed, parents included.
        """
        policy = self.policy
        if policy == "docker":
            raise UsageError(
                "image prune is not implemented for the docker policy: "
                "use --policy podman or libpod"
            )

        def planner(state: StoreState, failures: Mapping[str, str]) -> Plan:
            plan = plan_prune(
                state, all=all, external=external, policy=policy, container_failures=failures
            )
            return plan

        async with self._lock:
            self._check_open()
            report = await execute_plan(
                self._store,
                planner,
                dry_run=dry_run,
                operation="prune",
                options=_flags(all=all, external=external),
            )
        report.deleted = pruned_ids(report.plan) if report.plan else []
        return report

    # -- containers ------------------------------------------------------------------------

    async def containers(self, *, external: bool = False) -> list[Container]:
        """Runtime containers (``external=True``: storage-only containers too)."""
        state, _ = await self._snapshot()
        return [
            container_from_record(record, state)
            for record in state.containers.values()
            if external or record.runtime is not None
        ]

    async def create_container(
        self, image: str, command: Sequence[str] = (), *, name: str | None = None
    ) -> Container:
        """Create a runtime container of *image* with its own root file system.

        The command defaults to the image's entrypoint and command.  The image is
        unpacked outside the store lock; the container appears atomically.
        """
        return await self._create(image, command, name=name, external=False)

    async def create_working_container(self, image: str, *, name: str | None = None) -> Container:
        """Create a storage-only working container of *image* (as ``buildah from``),
        named ``<image>-working-container`` (``-1``, ``-2`` … when taken)."""
        return await self._create(image, (), name=name, external=True)

    async def _create(
        self, image: str, command: Sequence[str], *, name: str | None, external: bool
    ) -> Container:
        self._check_open()
        record, _ = await create_container(
            self._store, image, name=name, command=command, external=external
        )
        state, _ = await self._snapshot()
        return container_from_record(record, state)

    async def remove_containers(
        self, references: Sequence[str] = (), *, all: bool = False, ignore: bool = False
    ) -> RemovalReport:
        """Remove containers (runtime and storage-only) by name or ID; their root file
        systems are deleted concurrently.  Errors are in the report."""

        def planner(state: StoreState, failures: Mapping[str, str]) -> Plan:
            return plan_container_removal(
                state, references, all=all, ignore=ignore, container_failures=failures
            )

        async with self._lock:
            self._check_open()
            report = await execute_plan(
                self._store,
                planner,
                concurrency=self.concurrency,
                operation="rm",
                options=_flags(all=all, ignore=ignore),
            )
        return report

    # -- builds ----------------------------------------------------------------------------

    async def build(
        self,
        context: str | os.PathLike[str],
        *,
        dockerfile: str | os.PathLike[str] | None = None,
        tags: Sequence[str] = (),
        build_args: Mapping[str, str] | None = None,
        layers: bool = False,
        timestamp: int | None = None,
        target: str | None = None,
        no_cache: bool = False,
        secrets: Mapping[str, str | os.PathLike[str]] | None = None,
        progress: ProgressTarget | None = None,
        pull: BuildPullPolicy = "missing",
        tls_verify: bool | None = None,
        credentials: str | tuple[str, str] | Credentials | None = None,
        authfile: str | os.PathLike[str] | None = None,
        cert_dir: str | os.PathLike[str] | None = None,
        pull_progress: TransferCallback | None = None,
    ) -> Image:
        """Build a Dockerfile (default ``CONTEXT/Dockerfile``) into the store.

        The build's working containers are storage containers of this store (``ps
        --external`` shows them while it runs; they are removed when it ends).  With
        *layers* every step commits an intermediate image that later builds reuse.
        Cancelling the call kills the running step and removes the working containers.

        *progress* receives the build's records as they happen (:data:`aiopod.ProgressRecord`:
        ``StepStarted``, ``StepOutput``, ``StepCached``, ``StepCommitted``,
        ``ImageCommitted``, ``BuildFinished``), each with podman's line(s) as ``.text``.
        It is either

        * a callable, called in the event loop's thread with each record: it must not
          block (it holds up the build, RUN output included); an exception it raises
          fails the build (a RUN running then is killed); or
        * the send end of an anyio memory object stream, which the build closes when it
          ends, however it ends, so that ``async for`` on the receive end finishes::

              send, receive = anyio.create_memory_object_stream[ProgressRecord](64)
              async with anyio.create_task_group() as tg:
                  tg.start_soon(show, receive)       # async for record in receive: ...
                  image = await rt.build("ctx", progress=send)

          A slow consumer delays the build only between steps: every record but RUN
          output is sent with ``await send.send()`` (waiting for room).  RUN output never
          waits, so a running command is never stalled: what does not fit is held (up
          to ``OUTPUT_BACKLOG``, 1 MiB) and the oldest is dropped beyond that, an
          ``OutputDropped(size)`` record taking its place.  If the consumer closes the
          receive end, the build goes on unreported.

        *secrets* maps secret IDs to files for ``RUN --mount=type=secret,id=ID`` (``podman
        build --secret id=ID,src=FILE``): a step that mounts one reads the file then; its
        contents are never stored in the image or its history.

        *pull* is when the images that ``FROM``, ``COPY --from`` and ``RUN --mount from=``
        name are pulled (:meth:`pull`, with *tls_verify*, *credentials*, *authfile*,
        *cert_dir* and *pull_progress*): ``"missing"`` (podman's default) when the store
        has none of that name, ``"always"`` and ``"newer"`` every time (``newer``
        transfers only when the source's manifest differs), ``"never"`` not at all.  A
        failed pull fails the build with a :class:`~aiopod.errors.BuildError`.

        :raises ~aiopod.errors.DockerfileError: the Dockerfile is malformed.
        :raises ~aiopod.errors.BuildError: a step failed (the message says which and why;
            for RUN ``command_status`` is the command's exit status and ``str()`` ends
            with the tail of its output).
        """
        from aiopod.builder.executor import BuildOptions, build_image
        from aiopod.builder.options import BUILD_PULL_POLICIES

        self._check_open()
        if pull not in BUILD_PULL_POLICIES:
            raise UsageError(f"unknown pull policy {pull!r}: use {', '.join(BUILD_PULL_POLICIES)}")

        async def pull_image(reference: str, policy: str) -> str:
            image = await self.pull(
                reference,
                policy=policy,  # type: ignore[arg-type]  # the builder passes a PullPolicy
                tls_verify=tls_verify,
                credentials=credentials,
                authfile=authfile,
                cert_dir=cert_dir,
                progress=pull_progress,
            )
            return image.id

        options = BuildOptions(
            context=Path(context),
            dockerfile=Path(dockerfile) if dockerfile is not None else None,
            tags=tuple(tags),
            build_args=dict(build_args or {}),
            layers=layers,
            timestamp=timestamp,
            target=target,
            no_cache=no_cache,
            secrets={key: Path(value) for key, value in (secrets or {}).items()},
            pull_policy=pull,
            pull=pull_image,
        )
        result = await build_image(self._store, options, progress=progress)
        state, tree = await self._snapshot()
        return image_from_record(state.images.get(result.image.id, result.image), tree)

    # -- maintenance -----------------------------------------------------------------------

    async def check(
        self, *, repair: bool = False, progress: CheckProgressTarget | None = None
    ) -> CheckReport:
        """Verify the store (blobs, metadata, orphans, working containers of builds that
        were killed, the event log's hash chain); with ``repair`` fix what is wrong (a
        broken event log is reported, never rewritten: it is evidence).  *progress*
        receives :class:`~aiopod.CheckProgress` records (bytes of the blobs verified), as a
        load's (:meth:`load`).

        Repair removes damaged images with their ``Untagged`` and ``Deleted`` events, and
        as :meth:`remove_containers` does (with their ``Removed`` events) the containers
        a killed build left, those whose image is missing and those using a damaged
        image (first, so that no image is deleted from under a container; the report's
        ``repaired`` says why each went).  A container whose build still runs, in this
        process or another, is left alone.
        """
        from aiopod.storage.check import check_store

        if self._state != "open":
            raise RuntimeStopped()
        if repair:
            self._store.check_writable()
        async with self._lock:
            from aiopod._relay import relay

            async with relay(progress) as relayed:
                report = await check_store(self._store, repair=repair, report=relayed.report)
            if repair and self._damaged is not None:
                try:
                    await self._store.open()
                    self._damaged = None
                except StoreCorrupted as exc:  # not repaired (a newer aiopod's metadata)
                    self._damaged = exc
            if repair and report.containers_to_remove:
                reasons = report.containers_to_remove

                def planner(state: StoreState, failures: Mapping[str, str]) -> Plan:
                    present = [c for c in reasons if c in state.containers]
                    if not present:
                        return Plan("containers", [], [])
                    return plan_container_removal(state, present, container_failures=failures)

                removal = await execute_plan(
                    self._store, planner, concurrency=self.concurrency, operation="check"
                )
                report.events.extend(removal.events)
                report.repaired.extend(
                    f"removed leftover container {c}"
                    if c in report.leftover_containers
                    else f"removed container {c}: {reasons[c]}"
                    for c in removal.removed_containers
                )
                report.problems.extend(e.message for e in removal.errors)
                if report.kept_damaged and not removal.errors:
                    again = await check_store(self._store, repair=True)  # now unused: removed
                    report.removed_images.extend(again.removed_images)
                    report.repaired.extend(again.repaired)
                    report.kept_damaged = again.kept_damaged
            verified = await self.events.verify()
            if verified.problem is not None:
                report.problems.append(
                    f"event log: {verified.problem.kind} record: {verified.problem.message}"
                )
        return report

    # -- pictures and displays -------------------------------------------------------------

    async def image_tree(self, reference: str, *, what_requires: bool = False) -> ImageTree:
        """The layers of the image *reference* names, as ``podman image tree`` draws them
        (``str()`` of the result is its output): the image's layers, and as
        ``dependents`` its top layer with every layer built on it (``--whatrequires``,
        which *what_requires* makes ``str()`` draw).

        :raises ~aiopod.errors.ImageNotKnown: nothing matches.
        """
        state, tree = await self._snapshot()
        record, _ = lookup_image(state, reference)
        image = image_from_record(record, tree)
        from aiopod._trees import build_image_tree

        return build_image_tree(state, record, image, what_requires=what_requires)

    async def history(self, reference: str) -> list[ImageHistory]:
        """The history of the image *reference* names, newest first, as ``podman history``
        gives it: each entry with the image whose top layer its layer is (or ``None``)
        and that layer's size.

        :raises ~aiopod.errors.ImageNotKnown: nothing matches.
        """
        state, _ = await self._snapshot()
        record, _ = lookup_image(state, reference)
        from aiopod._history import image_history

        return image_history(state, record)

    async def disk_usage(self) -> DiskUsage:
        """The store's disk usage as ``podman system df`` reports it (images with the size
        they share and their own, containers)."""
        state, _ = await self._snapshot()
        from aiopod._usage import disk_usage

        return disk_usage(state)

    async def prune_system(self, *, all: bool = False, external: bool = False) -> SystemPruneReport:
        """``system prune``: remove every runtime container (aiopod runs none, so all are
        stopped), then prune images as :meth:`prune_images` does with *all* and
        *external* (an image only a storage container uses stays unless *external*).

        The two removals run one after the other, each under the runtime lock, with the
        cancellation guarantees of :meth:`remove_containers` and :meth:`prune_images`.
        """

        def containers(state: StoreState, failures: Mapping[str, str]) -> Plan:
            ids = [c.id for c in state.containers.values() if c.runtime is not None]
            if not ids:
                return Plan("containers", [], [])
            return plan_container_removal(state, ids, container_failures=failures)

        async with self._lock:
            self._check_open()
            removed = await execute_plan(self._store, containers, concurrency=self.concurrency)
        before, _ = await self._snapshot()
        pruned = await self.prune_images(all=all, external=external)
        reclaimed = sum(before.images[i].size for i in pruned.deleted if i in before.images)
        from aiopod._prune import SystemPruneReport

        return SystemPruneReport(removed, pruned, reclaimed)

    async def info(self) -> Info:
        """``aiopod info``: the host, the store (root, counts, size, its file system's
        use), the versions and the policy."""
        state, _ = await self._snapshot()
        from aiopod._info import gather_info

        return await anyio.to_thread.run_sync(
            gather_info, state, self.root, self._event_log.path, self.policy
        )

    def __repr__(self) -> str:
        """``<aiopod.Runtime root='...' open: 4 images, 57.6 kB>``: the counts are those
        last read by this process (no I/O; another process may have changed them)."""
        where = f"<aiopod.Runtime root={str(self.root)!r}"
        if self._state != "open":
            return f"{where} {'not open' if self._state == 'new' else 'closed'}>"
        state = self._store.last_state
        from aiopod._trees import stored_size

        size = human_size(stored_size(state.images.values()))
        return f"{where} open: {plural(len(state.images), 'image')}, {size}>"

    def _last_images(self) -> ImageList:
        state = self._store.last_state
        tree = LayerTree(state)
        return ImageList(image_from_record(r, tree) for r in state.images.values())

    def display_text(self) -> str:
        """The repr, then the images (as last read) as podman's ``images -a`` table."""
        if self._state != "open":
            return repr(self)
        return f"{self!r}\n{self._last_images().display_text()}"

    def display_html(self) -> str:
        if self._state != "open":
            return f"<p>{escape(repr(self))}</p>"
        return f"<p>{escape(repr(self))}</p>{self._last_images().display_html()}"


def _lookup_for_change(state: StoreState, merged: StoreState | None, reference: str) -> ImageRecord:
    """The image *reference* names in this store's *state*, else (with additional stores)
    the additional store's image that *merged* shows, as a record of this store's
    (``read_only`` set: a change that puts it copies it here)."""
    try:
        record, _ = lookup_image(state, reference)
    except ImageNotKnown:
        if merged is None:
            raise
        record, _ = lookup_image(merged, reference)
        if not record.read_only:
            raise
    return record


def _refusing_additional(
    planner: Callable[[StoreState, Mapping[str, str]], Plan], merged: StoreState
) -> Callable[[StoreState, Mapping[str, str]], Plan]:
    """*planner*, with "image not known" for an image that only an additional store
    (*merged* shows their images) holds replaced by podman's ``cannot remove read-only
    image "ID"`` (exit 125)."""

    def refusing(state: StoreState, failures: Mapping[str, str]) -> Plan:
        plan = planner(state, failures)
        for i, error in enumerate(plan.errors):
            if isinstance(error, ImageNotKnown):
                try:
                    record, _ = lookup_image(merged, error.reference)
                except AiopodError:
                    continue
                plan.errors[i] = ReadOnlyStore(f'cannot remove read-only image "{record.id}"')
        return plan

    return refusing


def _flags(**flags: bool) -> dict[str, str]:
    """The options an event records: ``{"force": "true", ...}``."""
    return {key: str(value).lower() for key, value in flags.items()}
