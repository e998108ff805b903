"""A stat-keyed cache of the content digests of ``COPY``/``ADD`` sources.

:func:`aiopod.builder.sources.content_digest.sources_digest` reads every source file to compute the
``file:<hex>``/``dir:<hex>`` summary that the history records and the layer cache
compares.  A rebuild of an unchanged context would read it all again; this cache
remembers each source entry's digest under a *fingerprint* of everything that digest
depends on, the way git's index or BuildKit's content-hash cache do, so that a rebuild
only walks and ``lstat``\\ s the context.

The fingerprint of one entry (one match of a source argument) is the sha256 of

* :data:`FORMAT` and the digest's own revision (``sources_digest`` passes it);
* the digest options: ``chown``, ``chmod``, ``preserve_ownership``, ``strip_setid`` and the
  name a single file is renamed to;
* for a directory, every member in walk order: its path below the directory, and its
  ``lstat`` fields ``st_dev``, ``st_ino``, ``st_mode``, ``st_uid``, ``st_gid``,
  ``st_size``, ``st_mtime_ns``, ``st_ctime_ns``, ``st_nlink`` and ``st_rdev``, a
  symlink's target and the extended attributes the digest carries; for a file, the
  same of the file itself (under the name it is copied as);
* what the user and group names the digest gives the entry's owners depend on
  (:func:`aiopod.builder.sources.account_names.name_sources`: the stat of the source
  root's and the host's account files and ``nsswitch.conf``, and the caller's uid), so
  that a hit costs no name lookup.

A content change always changes ``st_ctime_ns`` (which no process can set back, unlike
``st_mtime``), so a file rewritten with the same size and its old mtime restored is seen.
The cache trusts the file system's ctime, as git does.

Racy entries: a file changed within the same timestamp tick as the ``lstat`` that
fingerprinted it would look unchanged.  So a digest is *not recorded* when any file in
its fingerprint has an mtime or ctime less than :data:`RACY_WINDOW_NS` (2 s) before the
moment the digest was computed (or in the future); the next build computes it again.

The cache lives in the store, ``<root>/aiopod/digest-cache.json`` (:func:`cache_path`):
at most :data:`MAX_ENTRIES` entries, the oldest recorded evicted first; one slot per
(context, source path, kind, options), so a changed entry replaces its old digest.
It is a cache only: a missing, unreadable, corrupt or oversized file is treated as empty
and a failed write is ignored; neither ever fails a build.  Writes are atomic
(:func:`aiopod.storage.fsutil.atomic_write`, not fsynced); two processes writing at the
same time may lose some of each other's new entries (they are computed again), never
corrupt the file.

A build activates one cache for its own context (:func:`activated`, a context variable
that worker threads started with ``anyio.to_thread.run_sync`` inherit); ``sources_digest``
uses the active cache, or the one it is given.  Sources of other directories (``COPY
--from``'s working containers) are never cached.

Blocking and locking: :meth:`DigestCache.lookup`, :meth:`~DigestCache.record`,
:meth:`~DigestCache.fingerprint` and :meth:`~DigestCache.flush` block (file I/O, hashing)
and are called from worker threads only; a :class:`threading.Lock` guards the in-memory
table, so threads may share one cache.  Creating a cache and :func:`activated` do no I/O.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiopod.builder.sources.context import SourceEntry
from aiopod.storage.fsutil import atomic_write

__all__ = (
    "CACHE_FILE_NAME",
    "FORMAT",
    "MAX_ENTRIES",
    "RACY_WINDOW_NS",
    "DigestCache",
    "Fingerprint",
    "activated",
    "active",
    "cache_path",
)

#: The file in the store's ``aiopod/`` directory.
CACHE_FILE_NAME = "digest-cache.json"
#: The version of the file format and of the fingerprint (a change empties old caches).
FORMAT = 1
#: Entries kept; the oldest recorded go first.
MAX_ENTRIES = 4096
#: A file changed less than this long before its digest was computed is not recorded.
RACY_WINDOW_NS = 2_000_000_000
#: A cache file larger than this is ignored (4,096 entries take about 1 MiB).
MAX_FILE_BYTES = 16 << 20

_HEX = frozenset("0123456789abcdef")

#: The cache of the build running in this context (see :func:`activated`).
_ACTIVE: contextvars.ContextVar[DigestCache | None] = contextvars.ContextVar(
    "aiopod_digest_cache", default=None
)


def cache_path(meta_dir: str | os.PathLike[str]) -> Path:
    """The cache file of the store whose metadata directory is *meta_dir* (``<root>/aiopod``)."""
    return Path(meta_dir) / CACHE_FILE_NAME


def active() -> DigestCache | None:
    """The cache activated for the code running in this context, if any.  No I/O."""
    return _ACTIVE.get()


@contextlib.contextmanager
def activated(cache: DigestCache | None) -> Iterator[DigestCache | None]:
    """Make *cache* the active one for the block (and for worker threads started in it
    through ``anyio.to_thread.run_sync``, which run in a copy of this context).  No I/O:
    safe on the event loop."""
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What one entry's digest is filed under: ``slot`` names the entry (context, path,
    kind, options), ``stats`` is the sha256 of everything the digest depends on, and
    ``newest_ns`` the latest mtime or ctime among the files fingerprinted."""

    slot: str
    stats: str
    newest_ns: int


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX.issuperset(value)


def _field(h: hashlib._Hash, data: bytes) -> None:
    """Feed *data* length-prefixed, so that no two field sequences hash alike."""
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def _stat_fields(st: os.stat_result) -> bytes:
    return (
        f"{st.st_dev} {st.st_ino} {st.st_mode} {st.st_uid} {st.st_gid} {st.st_size} "
        f"{st.st_mtime_ns} {st.st_ctime_ns} {st.st_nlink} {st.st_rdev}"
    ).encode()


def _newest(st: os.stat_result) -> int:
    return max(st.st_mtime_ns, st.st_ctime_ns)


class DigestCache:
    """The digests of the sources of one build context, kept in the file *path*.

    :param path: the cache file (:func:`cache_path` of the store).
    :param context: the only context served (``None``: any); entries of other
        directories are neither looked up nor recorded.
    :param lookups: ``False`` records fresh digests but never serves one (``--no-cache``).
    :param max_entries: the bound on the entries kept.
    :param racy_window_ns: see the module docstring (default :data:`RACY_WINDOW_NS`).
    :param clock: the wall clock, in nanoseconds (tests replace it).

    The file is read on the first lookup, written by :meth:`flush`.  Blocking (see the
    module docstring); thread-safe.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        context: str | os.PathLike[str] | None = None,
        lookups: bool = True,
        max_entries: int = MAX_ENTRIES,
        racy_window_ns: int | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = Path(path)
        self.context = os.path.abspath(context) if context is not None else None
        self.lookups = lookups
        self.max_entries = max_entries
        self.racy_window_ns = RACY_WINDOW_NS if racy_window_ns is None else racy_window_ns
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, str, int]] | None = None
        self._loaded_stat: tuple[int, int, int] | None = None
        self._new: dict[str, tuple[str, str, int]] = {}

    # -- keys ------------------------------------------------------------------------------

    def serves(self, context: str | os.PathLike[str]) -> bool:
        """Whether entries of *context* are cached here."""
        return self.context is None or os.path.abspath(context) == self.context

    def fingerprint(
        self,
        entry: SourceEntry,
        *,
        options: Sequence[object],
        names: Iterable[tuple[str, str]],
        revision: object = 0,
    ) -> Fingerprint:
        """The fingerprint of *entry* (see the module docstring).

        *options* are the digest's options (their ``repr`` is hashed: ints, bools,
        ``None`` and tuples of them); *names* ``(label, value)`` pairs standing for what
        the digest's user and group names depend on; *revision* the digest algorithm's
        revision.
        Blocking only in that it hashes the entry's metadata (no file is opened).
        """
        context = os.path.abspath(entry.context)
        ident = repr((FORMAT, revision, context, entry.realpath, entry.kind, tuple(options)))
        slot = hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()
        h = hashlib.sha256()
        newest = 0
        for label, text in names:
            _field(h, label.encode())
            _field(h, text.encode("utf-8", "surrogateescape"))
        if entry.is_dir:
            for member in entry.members:
                st = member.stat
                _field(h, os.fsencode(member.relname))
                _field(h, _stat_fields(st))
                if stat.S_ISLNK(st.st_mode):
                    _field(h, os.fsencode(member.link_target or ""))
                for key, value in member.xattrs:
                    _field(h, os.fsencode(key))
                    _field(h, value)
                _field(h, b"")
                newest = max(newest, _newest(st))
        else:
            _field(h, os.fsencode(entry.name))
            _field(h, _stat_fields(entry.stat))
            for key, value in entry.xattrs:
                _field(h, os.fsencode(key))
                _field(h, value)
            newest = max(newest, _newest(entry.stat))
        return Fingerprint(slot, h.hexdigest(), newest)

    # -- the table -------------------------------------------------------------------------

    def lookup(self, fingerprint: Fingerprint) -> str | None:
        """The digest recorded under *fingerprint*, or ``None``.  Blocking: the first
        call reads the cache file."""
        if not self.lookups:
            return None
        with self._lock:
            entries = self._load()
            found = entries.get(fingerprint.slot)
            if found is not None and found[0] == fingerprint.stats:
                self.hits += 1
                return found[1]
            self.misses += 1
            return None

    def record(self, fingerprint: Fingerprint, digest: str) -> bool:
        """Remember *digest* (64 hex digits) under *fingerprint*, unless it is racy (a
        fingerprinted file changed less than ``racy_window_ns`` before now, or has a
        future timestamp).  Returns whether it was recorded; :meth:`flush` writes it."""
        if not _is_hex64(digest):
            raise ValueError(f"not a sha256 hex digest: {digest!r}")
        now = self.clock()
        if fingerprint.newest_ns >= now - self.racy_window_ns:
            return False
        value = (fingerprint.stats, digest, now)
        with self._lock:
            entries = self._load()
            self._new.pop(fingerprint.slot, None)
            self._new[fingerprint.slot] = value
            entries.pop(fingerprint.slot, None)
            entries[fingerprint.slot] = value
            return True

    def flush(self) -> None:
        """Write the entries recorded since the last flush into the file (merged with
        what another process may have written meanwhile; the oldest beyond
        ``max_entries`` evicted).  Blocking: reads and atomically replaces the file.
        Never raises for an I/O error: the entries are then lost."""
        with self._lock:
            if not self._new:
                return
            try:
                current = self._read_stat()
                if self._entries is None or current != self._loaded_stat:
                    self._entries = None
                    entries = self._load()
                else:
                    entries = self._entries
                for slot, value in self._new.items():
                    entries.pop(slot, None)
                    entries[slot] = value
                ordered = sorted(entries.items(), key=lambda kv: kv[1][2])
                kept = dict(ordered[max(0, len(ordered) - self.max_entries) :])
                doc = {
                    "format": FORMAT,
                    "entries": {slot: list(value) for slot, value in kept.items()},
                }
                data = json.dumps(doc, separators=(",", ":")).encode()
                atomic_write(self.path, data, durable=False)
                self._entries = kept
                self._loaded_stat = self._read_stat()
            except OSError:
                pass
            finally:
                self._new.clear()

    # -- the file (the caller holds the lock) ----------------------------------------------

    def _read_stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _load(self) -> dict[str, tuple[str, str, int]]:
        if self._entries is not None:
            return self._entries
        self._entries = {}
        self._loaded_stat = None
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_size > MAX_FILE_BYTES:
                    return self._entries
                self._loaded_stat = (st.st_ino, st.st_mtime_ns, st.st_size)
                doc = json.loads(f.read(MAX_FILE_BYTES + 1))
        except (OSError, ValueError):
            return self._entries
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            return self._entries
        raw = doc.get("entries")
        if not isinstance(raw, dict):
            return self._entries
        valid: list[tuple[str, tuple[str, str, int]]] = []
        for slot, value in raw.items():
            if (
                _is_hex64(slot)
                and isinstance(value, list)
                and len(value) == 3
                and _is_hex64(value[0])
                and _is_hex64(value[1])
                and isinstance(value[2], int)
                and not isinstance(value[2], bool)
            ):
                valid.append((slot, (value[0], value[1], value[2])))
        valid.sort(key=lambda kv: kv[1][2])
        self._entries = dict(valid[max(0, len(valid) - self.max_entries) :])
        return self._entries
