"""The store's metadata database: ``aiopod/metadata.db`` (SQLite, WAL journal), format 2.

One row per image and per container, keyed by ID and kept in storage order (``seq``),
with the indexes a command needs to answer its questions without reading every image:
names, repository digests, blobs referenced, and the layer stacks (a key of each
image's diff_ids and of its diff_ids less the top one, for the layer tree).  A commit
writes only the rows it changed, in one SQLite transaction whose ``COMMIT`` is the
commit point (docs/design/commit-points.md CP1): it also records the commit's ID in
``meta``, which is how a commit that raised is told from one that happened (CP2).

Reading
    :meth:`MetadataDB.view` opens a connection holding a read transaction: the WAL
    journal keeps that view of the metadata as it was when opened, whatever commits
    follow, until it is closed (it closes when garbage collected, or with
    :meth:`DbView.close`).  A view is read lazily, row by row, by
    :class:`~aiopod.storage.records.StoreState`.  Where a WAL view cannot be opened (a
    read-only store, whose ``-shm`` file cannot be made, or a full disk) the caller
    reads everything at once instead (:func:`read_all`) under the store's shared lock.

Writing
    Only under the store's exclusive lock, through one connection per store
    (:meth:`MetadataDB.write`).  ``synchronous=FULL``: a commit is durable when
    ``COMMIT`` returns.  After each commit the WAL is checkpointed as far as no open view
    still reads it (a passive checkpoint).

Format
    ``meta.format`` is :data:`FORMAT_VERSION`; a store of an older format (version 1,
    ``aiopod/images.json``) is migrated on open by :mod:`aiopod.storage.store`, a newer
    one is refused (:class:`~aiopod.errors.StoreCorrupted`).

A view held long (a state kept by a long-lived program while other processes commit)
keeps the WAL from being checkpointed past it, so the WAL grows until the view is
dropped; a store's own state is replaced by the next command that finds the store
changed.  A database is replaced by rename only where no other process can be reading
it (the migration, a rebuild of one that cannot be read): SQLite in a process that still
held the old file open could delete the new one's WAL by name when it closes.

All of it blocks: call from worker threads (a single-row question, as a name lookup, is
a few tens of microseconds).  Each connection is used by one thread at a time (the
store's locks, and a lock per view).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiopod.errors import StorageFull, StoreCorrupted
from aiopod.storage.container_records import ContainerRecord
from aiopod.storage.gcpause import paused_gc
from aiopod.storage.layout import index_entries
from aiopod.storage.records import ImageRecord, layers_key

__all__ = (
    "FORMAT_VERSION",
    "Changes",
    "DbView",
    "MetadataDB",
    "create_database",
    "index_problems",
    "read_all",
    "read_commit",
    "read_format",
)

#: The store format this module reads and writes (1 was ``aiopod/images.json``).
FORMAT_VERSION = 2

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE images(
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL,
    layers_key TEXT NOT NULL,
    base_key TEXT,
    history_len INTEGER NOT NULL,
    index_entries TEXT
);
CREATE INDEX images_by_layers ON images(layers_key, history_len);
CREATE INDEX images_by_base ON images(base_key, history_len);
CREATE TABLE names(name TEXT PRIMARY KEY, image_id TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX names_by_image ON names(image_id);
CREATE TABLE digests(digest TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(digest, seq))
    WITHOUT ROWID;
CREATE TABLE blob_refs(digest TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(digest, seq))
    WITHOUT ROWID;
CREATE INDEX blob_refs_by_image ON blob_refs(seq);
CREATE TABLE containers(seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, record TEXT NOT NULL);
"""

#: How long a connection waits for SQLite's own locks (the store's lock is what orders
#: writers; this covers a checkpoint or a view being opened meanwhile), milliseconds.
_BUSY_MS = 60_000


def _connect(path: Path, *, read_only: bool = False, immutable: bool = False) -> sqlite3.Connection:
    """A connection to *path*, which must exist (a read never creates the database):
    read-write, read-only, or immutable (read-only, the WAL and SQLite's locks ignored)."""
    uri = path.resolve().as_uri()
    if immutable:
        uri += "?immutable=1"
    elif read_only:
        uri += "?mode=ro"
    else:
        uri += "?mode=rw"
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False, timeout=_BUSY_MS / 1000
    )
    return conn


def _database_error(exc: sqlite3.Error, path: Path, operation: str) -> Exception:
    """The aiopod error for an SQLite error: a full disk is :class:`StorageFull`, a file
    that is not a database :class:`StoreCorrupted`; others are returned unchanged."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
        return StorageFull(str(path), operation)
    if isinstance(exc, sqlite3.OperationalError) and "I/O error" in str(exc) and _no_room(path):
        # SQLite says "disk I/O error" when it cannot grow its WAL index on a full disk.
        return StorageFull(str(path), operation)
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT) or (
        isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc)
    ):
        return StoreCorrupted(
            f"{path.name} cannot be read ({exc}); run `aiopod system check --repair`"
        )
    return exc


def _no_room(path: Path) -> bool:
    """Whether the file system of *path* has (almost) no free space left."""
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < _ROOM


#: Free space below which an SQLite I/O error is taken for a full disk (bytes).
_ROOM = 256 << 10


@contextlib.contextmanager
def database_errors(path: Path, operation: str) -> Iterator[None]:
    """Turn SQLite's errors in the block into aiopod's (see :func:`_database_error`)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise _database_error(exc, path, operation) from exc


def read_format(path: Path) -> int | None:
    """The format version a database says it has, its WAL included (None: not readable
    as one)."""
    value = _read_meta(path, "format", of_this_format=False)
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _reading_modes(path: Path) -> tuple[bool, ...]:
    """How to open *path* for reading without writing anything, best first (True:
    immutable).  Without a WAL file (or with an empty one) the database file holds every
    commit and an immutable open reads it creating nothing; with one, a read-only open
    reads the WAL too (SQLite may make its ``-shm`` file), immutable being the fallback
    where even that cannot open (a directory the user may only read)."""
    try:
        wal = Path(f"{path}-wal").stat().st_size
    except FileNotFoundError:
        wal = 0
    if not path.exists():
        return ()  # never created by a read
    return (True,) if wal == 0 else (False, True)


def read_commit(path: Path) -> str | None:
    """The ID of the commit that last changed the database (read afresh, not from a view;
    None when it cannot be read)."""
    return _read_meta(path, "commit", of_this_format=True)


def _read_meta(path: Path, key: str, *, of_this_format: bool) -> str | None:
    """The value of *key* in the database's ``meta`` table, read afresh without writing
    anything (None when it cannot be read, or the database is not of this format and
    *of_this_format* is asked)."""
    try:
        conn = _open_reading(path, of_this_format=of_this_format)
    except (sqlite3.Error, StoreCorrupted):
        return None
    try:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _check_format(conn: sqlite3.Connection, path: Path) -> None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a file SQLite reads as an empty database
            raise StoreCorrupted(
                f"{path.name} holds no aiopod metadata; run `aiopod system check --repair`"
            ) from exc
        raise  # cannot be opened here (no room, no access), not damaged: the caller decides
    except sqlite3.DatabaseError as exc:
        raise StoreCorrupted(
            f"{path.name} cannot be read ({exc}); run `aiopod system check --repair`"
        ) from exc
    version = row[0] if row else None
    if version != str(FORMAT_VERSION):
        raise StoreCorrupted(
            f"{path.name} has store format {version!r}, this aiopod reads format "
            f"{FORMAT_VERSION}: use the aiopod that made the store"
        )


def create_database(
    path: Path,
    records: Iterable[ImageRecord],
    containers: Iterable[ContainerRecord],
    *,
    commit: str | None = None,
) -> None:
    """Make a database at *path* (which must not exist) holding *records* in their order
    and *containers*; it is complete and durable when this returns (the journal is
    checkpointed into the file and removed), so that it can be renamed into place.
    The file is private to its owner (mode 0600, as the store's other files)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    conn = _connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO meta VALUES ('format', ?)", (str(FORMAT_VERSION),))
        if commit is not None:
            conn.execute("INSERT INTO meta VALUES ('commit', ?)", (commit,))
        for record in records:
            _insert_image(conn, record)
        for container in containers:
            _insert_container(conn, container)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


@dataclass
class Changes:
    """What a commit changes: records put (added or replaced, in the order they were put),
    images removed, and the containers as they are to be (when they changed)."""

    put: list[ImageRecord]
    removed: list[str]
    containers: Sequence[ContainerRecord] | None
    #: Replace every image (a state not read from this database: a rebuild).
    replace_all: bool = False


def _record_text(record: ImageRecord) -> str:
    return json.dumps(record.to_json(), separators=(",", ":"))


def _insert_image(conn: sqlite3.Connection, record: ImageRecord) -> None:
    cursor = conn.execute(
        "INSERT INTO images(id, record, layers_key, base_key, history_len, index_entries) "
        "VALUES (?,?,?,?,?,?)",
        (record.id, _record_text(record), *_indexed_columns(record)),
    )
    _insert_indexes(conn, cursor.lastrowid, record)


def _indexed_columns(record: ImageRecord) -> tuple[str, str | None, int, str | None]:
    """The columns of *record*'s row that the indexes use: its layer-stack key, the key
    without the top layer, its number of history entries, its ``index.json`` text."""
    ids = record.diff_ids
    return (
        layers_key(ids),
        layers_key(ids[:-1]) if ids else None,
        len(record.history),
        index_entries(record) or None,
    )


def _insert_indexes(conn: sqlite3.Connection, seq: int | None, record: ImageRecord) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO names VALUES (?, ?)", [(name, record.id) for name in record.names]
    )
    conn.executemany(
        "INSERT OR IGNORE INTO digests VALUES (?, ?)", [(d, seq) for d in record.digests]
    )
    conn.executemany(
        "INSERT OR IGNORE INTO blob_refs VALUES (?, ?)",
        [(d, seq) for d in dict.fromkeys(record.blob_digests())],
    )


def _delete_indexes(conn: sqlite3.Connection, seq: int, image_id: str) -> None:
    conn.execute("DELETE FROM names WHERE image_id=?", (image_id,))
    conn.execute("DELETE FROM digests WHERE seq=?", (seq,))
    conn.execute("DELETE FROM blob_refs WHERE seq=?", (seq,))


def _insert_container(conn: sqlite3.Connection, container: ContainerRecord) -> None:
    conn.execute(
        "INSERT INTO containers(id, record) VALUES (?, ?)",
        (container.id, json.dumps(container.to_json(), separators=(",", ":"))),
    )


class MetadataDB:
    """The database of one store: read views and the writing connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._guard = threading.Lock()

    def close(self) -> None:
        """Close the writing connection (views close on their own)."""
        with self._guard:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def exists(self) -> bool:
        """Whether the database file is there."""
        return self.path.exists()

    def view(self) -> DbView:
        """A view of the metadata as committed now (see the module docstring).

        :raises sqlite3.OperationalError: a WAL view cannot be opened here (read-only
            directory, full disk): read everything with :func:`read_all` instead.
        :raises ~aiopod.errors.StoreCorrupted: not a database of this format.
        """
        conn = _connect(self.path)
        try:
            conn.execute("BEGIN")
            _check_format(conn, self.path)  # the first read starts the read transaction
        except BaseException:
            conn.close()
            raise
        return DbView(conn, self.path)

    def _connection(self) -> sqlite3.Connection:
        if self._writer is None:
            conn = _connect(self.path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            _check_format(conn, self.path)
            self._writer = conn
        return self._writer

    @contextlib.contextmanager
    def _transaction(self, operation: str) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writing connection, committed when the block
        ends (rolled back if it raises), then a checkpoint."""
        with self._guard, database_errors(self.path, operation):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        self.checkpoint()

    def write(self, changes: Changes, *, commit: str, operation: str) -> None:
        """Apply *changes* and record *commit* in one transaction; its ``COMMIT`` is the
        commit point.  Raises with nothing changed when it fails before (a full disk as
        :class:`StorageFull`); a ``COMMIT`` that raised may still have happened: ask
        :func:`read_commit`."""
        with self._transaction(operation) as conn:
            self._apply(conn, changes)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('commit', ?)", (commit,))

    def rebuild_indexes(self, operation: str) -> None:
        """Make every index again from the image records, in place, in one transaction
        (``system check --repair`` of indexes that disagree with the records)."""
        with self._transaction(operation) as conn:
            for table in ("names", "digests", "blob_refs"):
                conn.execute(f"DELETE FROM {table}")
            for seq, text in conn.execute("SELECT seq, record FROM images").fetchall():
                record = _parse_image(text)
                conn.execute(
                    "UPDATE images SET layers_key=?, base_key=?, history_len=?, "
                    "index_entries=? WHERE seq=?",
                    (*_indexed_columns(record), seq),
                )
                _insert_indexes(conn, seq, record)

    def checkpoint(self) -> None:
        """Move the WAL's pages into the database file, as far as no open view still
        reads them (a passive checkpoint: it never waits for views)."""
        with self._guard, contextlib.suppress(sqlite3.Error):
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def size(self) -> int:
        """The size of the database file (and its WAL), bytes."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total

    @staticmethod
    def _apply(conn: sqlite3.Connection, changes: Changes) -> None:
        if changes.replace_all:
            for table in ("images", "names", "digests", "blob_refs"):
                conn.execute(f"DELETE FROM {table}")
        for image_id in changes.removed:
            row = conn.execute("SELECT seq FROM images WHERE id=?", (image_id,)).fetchone()
            if row is not None:
                _delete_indexes(conn, row[0], image_id)
                conn.execute("DELETE FROM images WHERE seq=?", (row[0],))
        for record in changes.put:
            row = conn.execute("SELECT seq FROM images WHERE id=?", (record.id,)).fetchone()
            if row is None:
                _insert_image(conn, record)
                continue
            seq = row[0]
            _delete_indexes(conn, seq, record.id)
            conn.execute(
                "UPDATE images SET record=?, layers_key=?, base_key=?, history_len=?, "
                "index_entries=? WHERE seq=?",
                (_record_text(record), *_indexed_columns(record), seq),
            )
            _insert_indexes(conn, seq, record)
        if changes.containers is not None:
            conn.execute("DELETE FROM containers")
            for container in changes.containers:
                _insert_container(conn, container)


def _parse_image(text: str) -> ImageRecord:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise StoreCorrupted(
            f"malformed image record in metadata.db ({exc}); run `aiopod system check --repair`"
        ) from exc
    return ImageRecord.from_json(obj)


class DbView:
    """A read transaction on the metadata: every answer is of the same committed state.

    Blocking (SQLite reads); the records are parsed when first asked for and kept.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self._guard = threading.Lock()
        self._records: dict[str, ImageRecord | None] = {}
        self._all: list[ImageRecord] | None = None
        self._keys: list[Any] | None = None  # (layers_key, base_key, history_len) by seq
        self._count: int | None = None
        self._finalizer = weakref.finalize(self, conn.close)

    def close(self) -> None:
        """End the read transaction (further questions fail)."""
        self._finalizer()
        self._conn = None

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._guard:
            if self._conn is None:
                raise RuntimeError("the metadata view is closed")
            with database_errors(self.path, "reading the metadata"):
                return self._conn.execute(sql, args).fetchall()

    def get(self, image_id: str) -> ImageRecord | None:
        """The image *image_id*, if the view has it."""
        try:
            return self._records[image_id]
        except KeyError:
            pass
        rows = self._query("SELECT record FROM images WHERE id=?", (image_id,))
        record = _parse_image(rows[0][0]) if rows else None
        self._records[image_id] = record
        return record

    def count(self) -> int:
        """How many images."""
        if self._count is None:
            self._count = int(self._query("SELECT count(*) FROM images")[0][0])
        return self._count

    def ids(self) -> list[str]:
        """Every image ID, in storage order."""
        return [row[0] for row in self._query("SELECT id FROM images ORDER BY seq")]

    def records(self) -> list[ImageRecord]:
        """Every image, in storage order (read and parsed once)."""
        if self._all is None:
            rows = self._query(
                "SELECT id, record, layers_key, base_key, history_len FROM images ORDER BY seq"
            )
            self._all = self._parsed([row[:2] for row in rows])
            self._keys = [row[2:] for row in rows]
        return self._all

    def layer_keys(self) -> list[tuple[str, str | None, int]]:
        """Every image's layer-stack key, key without the top layer, and number of history
        entries, in storage order (the layer tree relates images by them)."""
        if self._keys is None:
            rows = self._query("SELECT layers_key, base_key, history_len FROM images ORDER BY seq")
            self._keys = rows
        return [(str(key), base, int(history)) for key, base, history in self._keys]

    def _parsed(self, rows: Iterable[tuple[str, str]]) -> list[ImageRecord]:
        """The records of *rows* (ID, JSON text), parsed once: those not parsed yet are
        parsed as one JSON array (one call instead of one per image), with the garbage
        collector paused (many objects, none cyclic)."""
        rows = list(rows)
        known = self._records
        new = [(image_id, text) for image_id, text in rows if known.get(image_id) is None]
        if len(new) > 1:
            with paused_gc():
                try:
                    objs = json.loads("[" + ",".join(text for _, text in new) + "]")
                except ValueError:
                    objs = None  # one of them is malformed: parsed one by one to say which
                if objs is not None and len(objs) == len(new):
                    for (image_id, _), obj in zip(new, objs, strict=True):
                        known[image_id] = ImageRecord.from_json(obj)
        out: list[ImageRecord] = []
        for image_id, text in rows:
            record = known.get(image_id)
            if record is None:
                record = known[image_id] = _parse_image(text)
            out.append(record)
        return out

    def image_of_name(self, name: str) -> str | None:
        """The ID of the image called *name*."""
        rows = self._query("SELECT image_id FROM names WHERE name=?", (name,))
        return str(rows[0][0]) if rows else None

    def names(self) -> list[tuple[str, str]]:
        """Every (name, image ID)."""
        return [(str(n), str(i)) for n, i in self._query("SELECT name, image_id FROM names")]

    def with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """IDs starting with *prefix* (lower-case hex), at most *limit*."""
        upper = prefix + "g"  # after every hex continuation
        rows = self._query(
            "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT ?", (prefix, upper, limit)
        )
        return [row[0] for row in rows]

    def with_digest(self, digest: str) -> list[str]:
        """IDs of the images with *digest* among their repository digests, storage order."""
        rows = self._query(
            "SELECT images.id FROM digests JOIN images USING (seq) WHERE digest=? ORDER BY seq",
            (digest,),
        )
        return [row[0] for row in rows]

    def with_layers(self, key: str, history: int) -> list[ImageRecord]:
        """The images whose layer stack has *key* and whose history has *history*
        entries, storage order."""
        rows = self._query(
            "SELECT id, record FROM images WHERE layers_key=? AND history_len=? ORDER BY seq",
            (key, history),
        )
        return self._parsed(rows)

    def above_layers(self, key: str, history: int) -> list[ImageRecord]:
        """The images whose layer stack, or stack less the top layer, has *key* and whose
        history has *history* entries, storage order."""
        rows = self._query(
            "SELECT seq, id, record FROM images WHERE layers_key=? AND history_len=? "
            "UNION SELECT seq, id, record FROM images WHERE base_key=? AND history_len=? "
            "ORDER BY seq",
            (key, history, key, history),
        )
        return self._parsed(row[1:] for row in rows)

    def position(self, image_ids: Iterable[str]) -> dict[str, int]:
        """The storage positions (``seq``) of *image_ids* present."""
        ids = list(image_ids)
        out: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for image_id, seq in self._query(
                f"SELECT id, seq FROM images WHERE id IN ({marks})",
                chunk,
            ):
                out[image_id] = seq
        return out

    def referencing(self, digests: Iterable[str], enough: int = 1) -> dict[str, set[str]]:
        """For each of *digests* some image needs: the IDs of those images, at most
        *enough* of them (a blob shared by every image costs as little as any other)."""
        out: dict[str, set[str]] = {}
        for digest in dict.fromkeys(digests):
            rows = self._query(
                "SELECT images.id FROM blob_refs JOIN images USING (seq) "
                "WHERE blob_refs.digest=? LIMIT ?",
                (digest, enough),
            )
            if rows:
                out[digest] = {row[0] for row in rows}
        return out

    def index_entries(self) -> list[str]:
        """The ``index.json`` descriptors of every named image, storage order."""
        rows = self._query(
            "SELECT index_entries FROM images WHERE index_entries IS NOT NULL ORDER BY seq"
        )
        return [row[0] for row in rows]

    def containers(self) -> list[ContainerRecord]:
        """Every container, storage order."""
        rows = self._query("SELECT record FROM containers ORDER BY seq")
        try:
            return [ContainerRecord.from_json(json.loads(row[0])) for row in rows]
        except ValueError as exc:
            raise StoreCorrupted(
                f"malformed container record in metadata.db ({exc}); "
                "run `aiopod system check --repair`"
            ) from exc


def index_problems(path: Path) -> list[str]:
    """How the database's indexes (names, digests, blobs, layer keys, ``index.json``
    text) differ from what its image records say (``system check``; the caller holds
    the store's lock).  Empty when they agree."""
    conn = _open_reading(path)
    try:
        rows = conn.execute(
            "SELECT seq, id, record, layers_key, base_key, history_len, index_entries "
            "FROM images ORDER BY seq"
        ).fetchall()
        tables = {
            table: set(conn.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("names", "digests", "blob_refs")
        }
    finally:
        conn.close()
    expected: dict[str, set[tuple[str, Any]]] = {table: set() for table in tables}
    problems: list[str] = []
    for seq, image_id, text, key, base, history, entries in rows:
        record = _parse_image(text)
        *columns, expected_entries = _indexed_columns(record)
        if record.id != image_id or [key, base, history] != columns:
            problems.append(f"metadata.db: the indexed layers of image {image_id} are wrong")
        if entries != expected_entries:
            problems.append(f"metadata.db: the index.json text of image {image_id} is wrong")
        expected["names"].update((name, record.id) for name in record.names)
        expected["digests"].update((digest, seq) for digest in record.digests)
        expected["blob_refs"].update((digest, seq) for digest in record.blob_digests())
    for table, have in tables.items():
        if have != expected[table]:
            problems.append(
                f"metadata.db: its {table} index disagrees with the image records "
                f"({len(have - expected[table])} rows too many, "
                f"{len(expected[table] - have)} missing)"
            )
    return problems


def _open_reading(path: Path, *, of_this_format: bool = True) -> sqlite3.Connection:
    """A connection that reads *path* (checked to be of this format, unless
    *of_this_format* is false) in a read transaction without writing anything (see
    :func:`_reading_modes`).

    :raises sqlite3.OperationalError: it cannot be opened.
    :raises sqlite3.DatabaseError: it is not a database (*of_this_format* false).
    :raises ~aiopod.errors.StoreCorrupted: it is not a database of this format.
    """
    error: sqlite3.OperationalError | None = None
    for immutable in _reading_modes(path):
        conn = _connect(path, read_only=True, immutable=immutable)
        try:
            conn.execute("BEGIN")
            if of_this_format:
                _check_format(conn, path)
            else:  # the first read opens the file (and its WAL) or fails
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            conn.close()
            error = exc
            continue
        except BaseException:
            conn.close()
            raise
        return conn
    raise error or sqlite3.OperationalError(f"{path} does not exist")


def read_all(path: Path) -> tuple[list[ImageRecord], list[ContainerRecord]]:
    """Every image and container, read at once (for read-only stores and a full disk, where
    no WAL view can be opened; the caller holds the store's lock)."""
    view = DbView(_open_reading(path), path)
    try:
        return view.records(), view.containers()
    finally:
        view.close()
