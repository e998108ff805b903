"""``aiopod system check``: verify a store and, on request, repair it.

Checks: the metadata parses; every image's blobs exist with the right size and digest;
the manifest and config agree with the record; every name belongs to one image; every
container's image exists; ``index.json`` matches the metadata; no orphan blobs, stray
files, stale staging areas or journals; no working container of a build whose process is
gone; the store directories are mode 0700.  A staging area of a live process (a load or
pull outside the store lock), also one that ends while the check looks, is never a
problem.

Repair removes damaged images (as podman does) with their ``Untagged`` and ``Deleted``
events, deletes orphans and strays, re-renders ``index.json`` and fixes modes.  The
containers to remove are listed in the report (``containers_to_remove``: killed builds'
working containers, containers of a missing image, containers of a damaged image) and the
runtime removes them as ``rm`` would, with their events (:meth:`aiopod.Runtime.check`).
A damaged image some container uses is kept (``kept_damaged``) until its containers are
gone: the runtime then checks again, so no image is deleted from under a container.
Unreadable metadata is rebuilt from ``index.json`` and the blobs; what the
rebuild cannot give back (containers, images no blob gives back) is removed with its
events, so that the event log still replays to the store (:mod:`aiopod.storage.rebuild`).

Runs under the store's exclusive lock; the hashing runs in a worker thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import anyio
import anyio.to_thread

from aiopod._display import Displayable, html_table, plural
from aiopod._relay import ProgressSink
from aiopod.errors import StoreCorrupted
from aiopod.events.model import Event, EventKind
from aiopod.storage.cancellation import raise_if_cancelled
from aiopod.storage.digest import is_sha256_hex
from aiopod.storage.fsutil import atomic_write, remove_tree
from aiopod.storage.layout import render_index
from aiopod.storage.metadata_db import FORMAT_VERSION, index_problems, read_format
from aiopod.storage.rebuild import rebuild_metadata
from aiopod.storage.records import ImageRecord, StoreState
from aiopod.storage.store import Store, read_metadata
from aiopod.storage.threads import run_to_completion

__all__ = ("CheckProgress", "CheckProgressTarget", "CheckReport", "check_store")


@dataclass
class CheckReport(Displayable):
    """What ``check`` found (``problems``) and, with repair, what it did (``repaired``)."""

    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    removed_images: list[str] = field(default_factory=list)
    #: Working containers whose build's process is gone (a killed build left them).
    leftover_containers: list[str] = field(default_factory=list)
    #: Containers repair must remove, with why: the leftover working containers, the
    #: containers of a missing image and those of a damaged image.
    containers_to_remove: dict[str, str] = field(default_factory=dict)
    #: Damaged images repair kept because a container uses them (removed once the
    #: containers are).
    kept_damaged: list[str] = field(default_factory=list)
    #: The events of what repair changed (the removal of leftover containers; what the
    #: rebuild of unreadable metadata lost).
    events: list[Event] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the store had no problems."""
        return not self.problems

    def _summary(self) -> str:
        if self.ok:
            return "CheckReport: the store is consistent"
        repaired = f", {len(self.repaired)} repaired" if self.repaired else ""
        return f"CheckReport: {plural(len(self.problems), 'problem')}{repaired}"

    def display_text(self) -> str:
        """A summary line, then ``system check``'s ``problem:`` and ``repaired:`` lines."""
        lines = [f"problem: {p}" for p in self.problems]
        lines += [f"repaired: {r}" for r in self.repaired]
        return "\n".join([self._summary(), *lines])

    def display_html(self) -> str:
        rows = [("problem", p) for p in self.problems] + [("repaired", r) for r in self.repaired]
        return html_table(["", "What"], rows, caption=self._summary())


@dataclass(frozen=True, slots=True)
class CheckProgress:
    """``done`` of ``total`` bytes of the images' blobs have been verified (each blob
    once, however many images share it)."""

    done: int
    total: int

    @property
    def text(self) -> str:
        """Nothing: a count for a progress bar."""
        return ""


#: Where a check's records go (``progress=``), as for a load (:mod:`aiopod._relay`).
CheckProgressTarget: TypeAlias = ProgressSink[CheckProgress]


class _Hashed:
    """Bytes hashed so far, reported to a check's progress."""

    def __init__(self, total: int, report: Callable[[CheckProgress], None] | None) -> None:
        self.total = total
        self.done = 0
        self._report = report

    def add(self, size: int) -> None:
        self.done += size
        if self._report is not None:
            self._report(CheckProgress(self.done, self.total))


def _hash_file(path: Path, hashed: _Hashed) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            raise_if_cancelled()
            digest.update(chunk)
            size += len(chunk)
            hashed.add(len(chunk))
    return "sha256:" + digest.hexdigest(), size


def _blob_sizes(record: ImageRecord) -> dict[str, int]:
    """Every blob of *record* and the size its metadata gives."""
    sizes = {record.manifest_digest: record.manifest_size, record.config_digest: record.config_size}
    sizes.update({layer.digest: layer.size for layer in record.layers})
    return sizes


def _image_problems(
    store: Store, record: ImageRecord, verified: dict[str, tuple[str, int]], hashed: _Hashed
) -> list[str]:
    problems = []
    for digest, size in _blob_sizes(record).items():
        try:
            path = store.blob_path(digest)
        except (ValueError, TypeError):
            problems.append(f"image {record.id}: malformed digest {digest!r}")
            continue
        if digest not in verified:
            if not path.is_file():
                problems.append(f"image {record.id}: blob {digest} is missing")
                continue
            verified[digest] = _hash_file(path, hashed)
        actual, actual_size = verified[digest]
        if actual != digest or actual_size != size:
            problems.append(
                f"image {record.id}: blob {digest} is damaged "
                f"(content {actual}, {actual_size} bytes; expected {size} bytes)"
            )
    if problems:
        return problems
    try:
        manifest = json.loads(store.blob_path(record.manifest_digest).read_bytes())
        config_digest = manifest["config"]["digest"]
        layer_digests = [layer["digest"] for layer in manifest["layers"]]
        config = json.loads(store.blob_path(record.config_digest).read_bytes())
        diff_ids = config["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"image {record.id}: manifest or config unreadable ({exc!r})"]
    if config_digest != record.config_digest:
        problems.append(f"image {record.id}: manifest names config {config_digest}")
    if layer_digests != [layer.digest for layer in record.layers]:
        problems.append(f"image {record.id}: manifest layers differ from the metadata")
    if diff_ids != list(record.diff_ids):
        problems.append(f"image {record.id}: config diff_ids differ from the metadata")
    return problems


def _check(
    store: Store, repair: bool, report_progress: Callable[[CheckProgress], None] | None = None
) -> tuple[CheckReport, StoreState | None]:
    """The report, and (repair only) the repaired metadata if it differs from the stored;
    *report_progress* receives how much of the blobs has been verified."""
    layout = store.layout
    report = CheckReport()
    repaired_state = None
    try:
        state = read_metadata(layout)
    except StoreCorrupted as exc:
        if repair:
            raise  # the rebuild (check_store) takes it from here
        report.problems.append(str(exc))
        return report, None  # nothing else can be judged without metadata
    if layout.metadata_db.exists() and (drift := index_problems(layout.metadata_db)):
        report.problems.extend(drift)
        if repair:  # the records are the truth: the indexes are made again from them
            store.rebuild_indexes("check")
            report.repaired.append("rebuilt the indexes of metadata.db from its records")
    owners: dict[str, str] = {}
    for record in state.images.values():
        for name in record.names:
            if name in owners:
                report.problems.append(f"name {name} belongs to {owners[name]} and {record.id}")
            owners[name] = record.id
    verified: dict[str, tuple[str, int]] = {}
    sizes = {d: n for r in state.images.values() for d, n in _blob_sizes(r).items()}
    hashed = _Hashed(sum(sizes.values()), report_progress)
    damaged = []
    for record in list(state.images.values()):
        problems = _image_problems(store, record, verified, hashed)
        report.problems.extend(problems)
        if problems:
            damaged.append(record.id)
    used_by: dict[str, list[str]] = {}
    for container in state.containers.values():
        if container.image_id:
            used_by.setdefault(container.image_id, []).append(container.id)
            if container.image_id not in state.images:
                report.problems.append(
                    f"container {container.id} ({container.name}) uses image "
                    f"{container.image_id}, which is not in the store"
                )
                report.containers_to_remove[container.id] = "its image is missing"
    if repair:
        for image_id in damaged:
            if image_id in used_by:
                report.kept_damaged.append(image_id)
                for container_id in used_by[image_id]:
                    report.containers_to_remove[container_id] = f"it uses damaged image {image_id}"
                continue
            state.remove(image_id)
            report.removed_images.append(image_id)
            report.repaired.append(f"removed damaged image {image_id}")
        if damaged or any("belongs to" in p for p in report.problems):
            state = StoreState.from_records(
                [replace_names(r, state) for r in state.images.values()]
            )
            repaired_state = state  # committed by check_store, with a new change token
    referenced = state.referenced_blobs()
    blob_dir = layout.blobs / "sha256"
    for entry in sorted(blob_dir.iterdir()) if blob_dir.is_dir() else []:
        digest = "sha256:" + entry.name
        if not is_sha256_hex(entry.name) or not entry.is_file() or entry.is_symlink():
            report.problems.append(f"stray entry in blobs/sha256: {entry.name}")
        elif digest not in referenced:
            report.problems.append(f"orphan blob {digest}")
        else:
            continue
        if repair:
            remove_tree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            report.repaired.append(f"removed {entry.name} from blobs/sha256")
    for container in state.containers.values():
        if container.owner is not None and container.owner.is_gone():
            report.leftover_containers.append(container.id)
            report.containers_to_remove[container.id] = (
                f"the build that made it (process {container.owner.pid}) is gone"
            )
            report.problems.append(
                f"leftover container {container.id} ({container.name}): the build that made "
                f"it (process {container.owner.pid}) is no longer running"
            )
    expected_index = render_index(state)
    try:
        index_ok = layout.index_json.read_bytes() == expected_index
    except FileNotFoundError:
        index_ok = False
    if not index_ok:
        report.problems.append("index.json does not match the metadata")
        if repair:
            atomic_write(layout.index_json, expected_index)
            report.repaired.append("rewrote index.json")
    leftovers = [*layout.journal.glob("*"), *layout.tmp.glob("*")]
    live = _live_staging(layout.tmp)  # after the listing: a listed live area is in it
    for leftover in leftovers:
        if leftover.name in live or not os.path.lexists(leftover):
            continue  # another process is staging there (or just finished), outside the lock
        report.problems.append(
            f"leftover from interrupted work: {leftover.relative_to(layout.root)}"
        )
        if repair:
            remove_tree(leftover) if leftover.is_dir() else leftover.unlink(missing_ok=True)
            report.repaired.append(f"removed {leftover.relative_to(layout.root)}")
    # A store may be made readable for others (read-only use); writable by others it is not.
    for directory in (layout.root, layout.meta, layout.blobs, blob_dir):
        if directory.is_dir() and (mode := directory.stat().st_mode & 0o777) & 0o022:
            report.problems.append(f"{directory} is writable by other users (mode {mode:04o})")
            if repair:
                os.chmod(directory, mode & ~0o022)
                report.repaired.append(f"set mode {mode & ~0o022:04o} on {directory}")
    return report, repaired_state


def _live_staging(tmp: Path) -> set[str]:
    """Names under *tmp* of staging areas whose lock a live process holds."""
    live: set[str] = set()
    for lock_path in tmp.glob("*.lock"):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # closed meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            live.update({lock_path.name, lock_path.name.removesuffix(".lock")})
        finally:
            os.close(fd)
    return live


def replace_names(record: ImageRecord, state: StoreState) -> ImageRecord:
    """Keep only the names the state's index gives to *record* (drops duplicate owners)."""
    from dataclasses import replace

    return replace(
        record, names=tuple(n for n in record.names if state.by_name.get(n) == record.id)
    )


async def check_store(
    store: Store,
    *,
    repair: bool = False,
    report: Callable[[CheckProgress], None] | None = None,
) -> CheckReport:
    """Check (and with *repair*, fix) *store* under its exclusive lock; *report* receives
    :class:`CheckProgress` records from the worker thread.

    Unreadable metadata is reported; repair rebuilds it from ``index.json`` and
    the blobs, committed with the events of what was lost
    (:func:`~aiopod.storage.rebuild.rebuild_metadata`), and then checks the rebuilt store.
    """
    try:
        return await _check_readable(store, repair=repair, report=report)
    except StoreCorrupted as exc:
        if not repair:
            return CheckReport(problems=[str(exc)])
        newer = await anyio.to_thread.run_sync(_newer_format, store.layout.metadata_db)
        if newer is not None:  # readable, by a newer aiopod: a rebuild would lose its data
            return CheckReport(
                problems=[
                    f"metadata.db is in store format {newer}, newer than this aiopod reads "
                    f"({FORMAT_VERSION}): not repaired; check it with the aiopod that wrote it"
                ]
            )
        rebuilt = await rebuild_metadata(store)
        result = await _check_readable(store, repair=True, report=report)
        result.problems[:0] = [str(exc), *rebuilt.problems]
        result.repaired[:0] = rebuilt.repaired
        result.removed_images[:0] = rebuilt.removed_images
        result.events[:0] = rebuilt.events
        return result


def _newer_format(path: Path) -> int | None:
    """The format version of the database at *path* when it says it is of a newer
    format than this aiopod reads, else None."""
    version = read_format(path)
    if version is not None and version > FORMAT_VERSION:
        return version
    return None


async def _check_readable(
    store: Store, *, repair: bool, report: Callable[[CheckProgress], None] | None
) -> CheckReport:
    if store.read_only and not repair:  # verified under the shared lock: nothing to write
        async with store.reading():
            result, _ = await anyio.to_thread.run_sync(_check, store, False, report)
        return result
    async with store.transaction() as txn:
        with anyio.CancelScope(shield=repair):
            if repair:  # runs to its end under the lock, however the caller is cancelled
                result, repaired = await run_to_completion(_check, store, repair, report)
            else:
                result, repaired = await anyio.to_thread.run_sync(_check, store, repair, report)
            if repaired is not None:
                # Through the transaction, so that the change token changes with
                # the metadata: a runtime holding the old metadata reloads it instead of
                # writing the damaged images back with its next commit.
                for image_id in result.removed_images:
                    removed = txn.remove(image_id)
                    txn.emit(
                        [Event(EventKind.UNTAGGED, "image", image_id, n) for n in removed.names]
                        + [Event(EventKind.DELETED, "image", image_id)]
                    )
                for record in repaired.images.values():
                    if record != txn.state.images[record.id]:
                        txn.put(record)
    if repair and result.repaired:
        await store.open()  # reload what repair rewrote
    return result
