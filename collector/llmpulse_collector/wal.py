"""The collector's write-ahead log: an acknowledged span is never lost.

The ingest routes answer an OTLP request only after :meth:`WriteAheadLog.append` has
returned, i.e. after the request's rows are committed (and, with ``fsync=True``, fsynced) to
a SQLite database in WAL mode. The writer thread drains the log into ClickHouse with
:meth:`~WriteAheadLog.next_batch` / :meth:`~WriteAheadLog.complete`; after a crash, a
restart or a failed insert the same batch comes back with the same entries and the same
token, which ClickHouse uses as ``insert_deduplication_token`` so a replay is stored once.

Threads and connections::

    request threads --append()--> deque --> committer thread: everything queued in one
                                             transaction, one fsync, then wakes the callers
    writer thread   --next_batch() / complete()--> a second connection

Both connections write (appends; plans and completions), and SQLite allows one writer at a
time: an in-process lock hands the write lock over directly instead of through SQLite's
sleeping busy handler (``busy_timeout`` stays as the backstop), and an advisory file lock
keeps a second collector off the same log.

Schema (version 1)::

    meta(key, value)                                         log_uuid, schema_version
    entries(id AUTOINCREMENT, kind, size, created_at, payload)
    batches(id AUTOINCREMENT, first_id, last_id, created_at)  a plan is an id range

``payload`` is the last column so that reading ``size`` never walks a blob's overflow
pages. A plan is an id range rather than a column on each entry: plans are made in id order
over the oldest unplanned entries and ids are never reused, so the range is exact, and
planning never rewrites (re-journals) the payload rows. The unplanned entries are those past
the newest plan's ``last_id`` (all of them when there is no plan).

SQLite's commits are atomic, so there are no checksums here: after a crash the log holds
exactly the committed transactions. ``fsync=False`` (``synchronous=NORMAL``) still survives
the process being killed, only not the machine losing power.

Errors::

    WalError          base class
     +-- WalFull      over the byte cap, or the disk is full: answer 503 + Retry-After
     +-- WalClosed    the log is closed (or this process is a fork of the one that opened it)
     +-- WalLocked    another WriteAheadLog has the file open

Example::

    wal = WriteAheadLog(".llmpulse/wal.sqlite3")
    wal.append("spans", payload)            # durable when it returns
    batch = wal.next_batch()                # in the writer thread
    if batch is not None:
        insert(batch.entries, dedup_token=batch.token)
        wal.complete(batch.id)
    wal.close()
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["Batch", "Entry", "WalClosed", "WalError", "WalFull", "WalLocked", "WriteAheadLog"]

SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at REAL NOT NULL,
        payload BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        created_at REAL NOT NULL
    )""",
)

_BUSY_TIMEOUT_S = 10.0  # the backstop: in-process writers take turns on a lock, other processes are locked out
_IDLE_WAIT_S = 1.0  # the committer's bounded wait; every append wakes it at once
_VACUUM_MIN_FREE_BYTES = 64 << 20  # give disk back once this much is free and free space dwarfs live data
_VACUUM_STEP_BYTES = 8 << 20  # at most this much per complete(), so the writer is never stalled long
_JOURNAL_SIZE_LIMIT = 64 << 20  # truncate the -wal file back to this after a burst


class WalError(Exception):
    """Base class of the write-ahead log's errors; a bare WalError is a failed commit (retry later)."""


class WalFull(WalError):
    """The log is over its byte cap: answer 503 + Retry-After."""


class WalClosed(WalError):
    """The log is closed (or this process is a fork of the one that opened it): nothing was written."""


class WalLocked(WalError):
    """Another WriteAheadLog, in this process or another, has the file open."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One appended payload, as stored."""

    id: int  # monotonically increasing, never reused (AUTOINCREMENT)
    kind: str  # e.g. "spans", "feedback"
    payload: bytes  # opaque to the log (the collector stores Native blocks or JSON columns: writer.py)
    created_at: float  # time.time() when append was called


@dataclass(frozen=True, slots=True)
class Batch:
    """A durable plan over the oldest entries; a replay carries the same entries and token."""

    id: int
    token: str  # stable across restarts: f"{log_uuid}:{batch_id}"
    entries: tuple[Entry, ...]


class _Pending:
    """One append waiting for the committer."""

    __slots__ = ("created_at", "done", "error", "id", "kind", "payload")

    def __init__(self, kind: str, payload: bytes, created_at: float) -> None:
        self.kind = kind
        self.payload = payload
        self.created_at = created_at
        self.done = threading.Event()
        self.id = 0
        self.error: BaseException | None = None


def _connect(path: Path, fsync: bool) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions. Every write is an explicit BEGIN IMMEDIATE,
    # which takes SQLite's write lock up front (a deferred read-then-write can fail with BUSY).
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        # FULL: the -wal file is fsynced at every commit. NORMAL: only at checkpoints, which
        # survives a killed process but not a power cut.
        conn.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")
        # macOS's fsync() does not flush the drive's cache, F_FULLFSYNC does (a no-op elsewhere).
        conn.execute(f"PRAGMA fullfsync = {int(fsync)}")
        conn.execute(f"PRAGMA checkpoint_fullfsync = {int(fsync)}")
        conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
        # Some builds (Debian's) default to secure_delete=ON, which zeroes every freed page: complete()
        # would then rewrite a whole batch into the -wal file while holding the write lock (~200 ms
        # for 50 MB, stalling appends). FAST only zeroes what costs no extra I/O.
        conn.execute("PRAGMA secure_delete = FAST")
    except BaseException:
        conn.close()
        raise
    return conn


def _lock_file(path: Path) -> IO[bytes]:
    """An exclusive advisory lock beside the db: two collectors on one log would replay each other's plans."""
    handle = open(path.with_name(path.name + ".lock"), "ab")  # noqa: SIM115 -- held until close()
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; SQLite's own locking still keeps the file consistent
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise WalLocked(
            f"the write-ahead log {path} is already open (another collector, or another WriteAheadLog in "
            "this process); give each collector its own data directory"
        ) from None
    except BaseException:
        handle.close()
        raise
    return handle


class WriteAheadLog:
    """A durable, byte-capped queue of payloads with replayable batches (SQLite in WAL mode).

    Any number of threads may call :meth:`append` at once; one committer thread (started by
    the first append) writes everything queued in one transaction with one fsync, then wakes
    those callers (group commit). :meth:`next_batch` and :meth:`complete` belong to one
    writer thread and use their own connection.

    Shutdown order: stop the writer thread, then :meth:`close`, which commits what is
    already queued, wakes those callers, and refuses later appends with :class:`WalClosed`.
    """

    def __init__(self, path: str | Path, *, max_bytes: int = 1 << 30, fsync: bool = True) -> None:
        """Open (or create) the log at ``path``, keeping unfinished entries and plans.

        ``max_bytes`` caps the payload bytes not yet completed. ``fsync=False`` trades
        durability across power loss (not across a crash of the process) for speed.
        Raises :class:`WalLocked` when another WriteAheadLog has the file open.
        """
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._pid = os.getpid()
        self._lock = threading.Lock()  # guards the queue, the flags and the counters below
        self._db_lock = threading.Lock()  # guards self._db: the writer thread, and close()
        self._write_lock = threading.Lock()  # one write transaction at a time across both connections
        self._queue: deque[_Pending] = deque()
        self._wake = threading.Event()
        self._committer: threading.Thread | None = None
        self._closing = False
        self._db_closed = False
        self._db_released = False
        self._db_close_pending = False
        self._commit_db_released = False
        self._open_connections = 2  # the file lock is released when both are closed
        self._commits = 0
        self._appends = 0
        self._reserved = 0  # payload bytes queued, not yet committed
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_handle = _lock_file(self.path)
        try:
            self._db = _connect(self.path, fsync)
            try:
                self.log_uuid = self._init_schema(self._db)
                count, size = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM entries").fetchone()
                self._oldest_at = self._oldest_created_at(self._db)
                self._commit_db = _connect(self.path, fsync)  # the committer thread's, once it starts
            except BaseException:
                self._db.close()
                raise
        except BaseException:
            self._lock_handle.close()
            raise
        self._pending_entries: int = count
        self._committed_bytes: int = size

    # -- the request side -------------------------------------------------------------------

    def append(self, kind: str, payload: bytes, timeout: float = 10.0) -> int:
        """Append ``payload``; durable when it returns (group commit). Returns the entry's id.

        Raises :class:`WalFull` over the byte cap or when the disk is full, :class:`WalClosed`
        after :meth:`close`, :class:`WalError` when the commit failed, and ``TimeoutError``
        when the commit did not happen within ``timeout`` seconds. After any of these the
        caller must not acknowledge. (On a timeout the entry is withdrawn if the committer had
        not taken it yet; otherwise it may still be written, and delivered, later.)
        """
        size = len(payload)
        item = _Pending(kind, payload, time.time())
        with self._lock:
            if self._closing:
                raise WalClosed(f"the write-ahead log {self.path} is closed")
            if os.getpid() != self._pid:
                raise WalClosed("the write-ahead log was opened before fork(); open a new one in this process")
            used = self._committed_bytes + self._reserved
            if used + size > self.max_bytes:
                raise WalFull(
                    f"the write-ahead log holds {used} of its {self.max_bytes} bytes and cannot take {size} more "
                    "until the writer catches up; retry later"
                )
            if self._committer is None:
                self._start_committer()
            self._reserved += size
            self._queue.append(item)
        self._wake.set()
        if not item.done.wait(timeout):
            with self._lock:
                if not item.done.is_set():
                    with contextlib.suppress(ValueError):  # ValueError: the committer has it, cannot withdraw
                        self._queue.remove(item)
                        self._reserved -= size
            if not item.done.is_set():
                raise TimeoutError(f"the write-ahead log did not commit within {timeout} s; do not acknowledge")
        if item.error is not None:
            raise item.error
        return item.id

    def _start_committer(self) -> None:
        thread = threading.Thread(target=self._run, name="llmpulse-wal-committer", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown"
            raise WalClosed("the interpreter is shutting down; the write-ahead log takes no more appends") from None
        self._committer = thread

    def _run(self) -> None:
        """The committer: take everything queued, write it in one transaction, wake the callers."""
        try:
            while True:
                self._wake.wait(_IDLE_WAIT_S)
                self._wake.clear()  # before taking the queue: an append after this sets it again
                with self._lock:
                    items = list(self._queue)
                    self._queue.clear()
                    closing = self._closing
                if items:
                    self._commit(items)
                elif closing:
                    return
        finally:
            self._release(self._commit_db)

    def _commit(self, items: list[_Pending]) -> None:
        conn = self._commit_db
        rows = [(it.kind, len(it.payload), it.created_at, it.payload) for it in items]
        size = sum(r[1] for r in rows)
        error: Exception | None = None
        last = 0
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO entries (kind, size, created_at, payload) VALUES (?, ?, ?, ?)", rows)
                # The only inserter, holding the write lock: AUTOINCREMENT hands out consecutive ids.
                last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                conn.execute("COMMIT")
            except Exception as exc:
                error = exc
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
            with self._lock:
                self._reserved -= size
                if error is None:
                    self._commits += 1
                    self._appends += len(items)
                    self._pending_entries += len(items)
                    self._committed_bytes += size
                    if self._oldest_at is None:
                        self._oldest_at = items[0].created_at
        if error is not None:
            failure = self._as_wal_error(error)
            for it in items:
                it.error = failure
                it.done.set()
            return
        first = last - len(items) + 1
        for offset, it in enumerate(items):
            it.id = first + offset
            it.done.set()

    def _as_wal_error(self, error: Exception) -> WalError:
        if isinstance(error, sqlite3.Error) and error.sqlite_errorcode == sqlite3.SQLITE_FULL:
            failure: WalError = WalFull(f"the disk holding the write-ahead log {self.path} is full; retry later")
        else:
            failure = WalError(f"the write-ahead log could not commit ({error}); retry later")
        failure.__cause__ = error
        return failure

    # -- the writer side --------------------------------------------------------------------

    def next_batch(self, *, max_entries: int = 1000, max_bytes: int = 16 << 20) -> Batch | None:
        """The oldest unfinished batch, or None when the log is empty. Only one writer calls this.

        First any batch planned before (a replay after a crash, a restart or a failed insert,
        with its original entries and token); else a new plan over the oldest unplanned
        entries (at most ``max_entries`` and ``max_bytes`` of payload, but always at least
        one entry), made durable before it is returned.
        """
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        with self._writer_db() as db:
            plan = db.execute("SELECT id, first_id, last_id FROM batches ORDER BY id LIMIT 1").fetchone()
            if plan is None:
                plan = self._plan(db, max_entries, max_bytes)
                if plan is None:
                    return None
            batch_id, first_id, last_id = plan
            # Outside any write transaction: WAL readers do not block the committer.
            entries = tuple(
                Entry(*row)
                for row in db.execute(
                    "SELECT id, kind, payload, created_at FROM entries WHERE id BETWEEN ? AND ? ORDER BY id",
                    (first_id, last_id),
                )
            )
        return Batch(batch_id, f"{self.log_uuid}:{batch_id}", entries)

    def _plan(self, db: sqlite3.Connection, max_entries: int, max_bytes: int) -> tuple[int, int, int] | None:
        # No plan exists (the caller looked, holding _db_lock, and only next_batch makes plans),
        # so every entry is unplanned: take the oldest.
        with self._write_lock, self._transaction(db):
            first_id = last_id = total = 0
            for entry_id, size in db.execute("SELECT id, size FROM entries ORDER BY id LIMIT ?", (max_entries,)):
                if last_id and total + size > max_bytes:
                    break
                first_id = first_id or entry_id
                last_id = entry_id
                total += size
            if not last_id:
                return None
            cur = db.execute(
                "INSERT INTO batches (first_id, last_id, created_at) VALUES (?, ?, ?)", (first_id, last_id, time.time())
            )
            return (int(cur.lastrowid or 0), first_id, last_id)

    def complete(self, batch_id: int) -> None:
        """Delete the batch's entries and its plan in one transaction. Unknown ids are ignored."""
        with self._writer_db() as db:
            with self._write_lock, self._transaction(db):
                bounds = db.execute("SELECT first_id, last_id FROM batches WHERE id = ?", (batch_id,)).fetchone()
                if bounds is None:
                    return  # already completed: completing is idempotent
                count, size = db.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM entries WHERE id BETWEEN ? AND ?", bounds
                ).fetchone()
                db.execute("DELETE FROM entries WHERE id BETWEEN ? AND ?", bounds)
                db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
                oldest = self._oldest_created_at(db)
                with self._lock:  # inside the write lock, so the committer cannot interleave
                    self._pending_entries -= count
                    self._committed_bytes -= size
                    self._oldest_at = oldest
            self._maybe_vacuum(db)

    def _maybe_vacuum(self, db: sqlite3.Connection) -> None:
        """Give disk back after a backlog drains, a bounded step per call (auto_vacuum=INCREMENTAL)."""
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        free_pages = db.execute("PRAGMA freelist_count").fetchone()[0]
        if free_pages * page_size < max(_VACUUM_MIN_FREE_BYTES, 4 * self._committed_bytes):
            return  # steady state: new appends are about to reuse the free pages
        with self._write_lock, self._transaction(db):
            # The pragma returns a zero-column row per page it frees, and Python's sqlite3 steps
            # a statement without columns only once: so one page per execute, in one transaction.
            for _ in range(min(free_pages, _VACUUM_STEP_BYTES // page_size)):
                db.execute("PRAGMA incremental_vacuum(1)")

    @contextlib.contextmanager
    def _writer_db(self) -> Iterator[sqlite3.Connection]:
        with self._db_lock:
            if self._db_closed:
                self._close_writer_db()
                raise WalClosed(f"the write-ahead log {self.path} is closed")
            if os.getpid() != self._pid:
                raise WalClosed("the write-ahead log was opened before fork(); open a new one in this process")
            try:
                yield self._db
            finally:
                if self._db_close_pending:  # close() stopped waiting for this call: close on its behalf
                    self._close_writer_db()

    @staticmethod
    @contextlib.contextmanager
    def _transaction(db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- state ------------------------------------------------------------------------------

    @property
    def bytes_used(self) -> int:
        """Payload bytes not yet completed, including appends queued for the next commit."""
        with self._lock:
            return self._committed_bytes + self._reserved

    @property
    def pending_entries(self) -> int:
        """Committed entries not yet completed (planned or not)."""
        with self._lock:
            return self._pending_entries

    @property
    def commits(self) -> int:
        """Append transactions this instance committed; each is one fsync when ``fsync=True``."""
        with self._lock:
            return self._commits

    @property
    def appends(self) -> int:
        """Entries this instance committed; ``appends / commits`` is the mean group size."""
        with self._lock:
            return self._appends

    def oldest_age_s(self) -> float:
        """Age in seconds of the oldest unfinished entry; 0.0 when the log is empty. Never touches the db."""
        with self._lock:
            oldest = self._oldest_at
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    # -- lifecycle --------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Commit what is queued (waking those callers), then close; safe to call twice.

        Stop the writer thread first: from here on its :meth:`next_batch` and
        :meth:`complete` raise :class:`WalClosed`, and so does :meth:`append`. A committer
        or writer call still running at the deadline finishes and closes its own connection.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
            committer = self._committer
            release_commit_db = committer is None and not self._commit_db_released
            self._commit_db_released = True
        self._wake.set()
        if release_commit_db:
            self._release(self._commit_db)  # never handed to a thread
        elif committer is not None and committer is not threading.current_thread():
            committer.join(max(0.0, deadline - time.monotonic()))
        if self._db_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                self._close_writer_db()
            finally:
                self._db_lock.release()
        else:  # the running next_batch/complete closes it on the way out; later calls refuse
            self._db_close_pending = self._db_closed = True
            if self._db_lock.acquire(blocking=False):  # unless it finished in the meantime
                try:
                    self._close_writer_db()
                finally:
                    self._db_lock.release()

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------

    def _close_writer_db(self) -> None:
        """Close the writer connection once; the caller holds ``_db_lock``."""
        self._db_closed = True
        if not self._db_released:
            self._db_released = True
            self._release(self._db)

    def _release(self, conn: sqlite3.Connection) -> None:
        """Close a connection; the last one to go releases the file lock."""
        try:
            conn.close()
        finally:
            with self._lock:
                self._open_connections -= 1
                last = self._open_connections == 0
            if last:
                self._lock_handle.close()

    @staticmethod
    def _oldest_created_at(db: sqlite3.Connection) -> float | None:
        row = db.execute("SELECT created_at FROM entries ORDER BY id LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def _init_schema(self, db: sqlite3.Connection) -> str:
        # auto_vacuum only takes effect before the first table exists; it and WAL mode persist in the file.
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise WalError(f"cannot put {self.path} in WAL mode (got {mode!r}); keep the data directory local")
        with self._transaction(db):
            for statement in _SCHEMA:
                db.execute(statement)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if not meta:  # a new log
                meta = {"schema_version": str(SCHEMA_VERSION), "log_uuid": uuid.uuid4().hex}
                db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise WalError(
                f"{self.path} holds write-ahead log schema {meta.get('schema_version', 'unknown')}, this "
                f"llmpulse reads {SCHEMA_VERSION}; drain it with the llmpulse version that wrote it"
            )
        return str(meta["log_uuid"])
