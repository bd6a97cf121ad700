"""The connection to ClickHouse: embedded chDB or a server, through ``clickhouse-connect`` only.

``Store.connect("chdb:///abs/path")`` runs ClickHouse inside this process (chDB);
``Store.connect("http(s)://user:pass@host:8123")`` talks to a server. Everything above this
module (migrations, queries, the writer) runs the same SQL on both.

chDB hosts one data path per process and one process per path. Both mistakes get a plain
``StorageError`` here instead of chDB's generic one (whose real reason, "Cannot lock file
<path>/status", only reaches stderr): the path lock is checked with ``flock`` before chDB
tries, and re-checked if chDB fails anyway.

Threads: the writer inserts on one client while HTTP handlers query on a small pool of others,
so a long insert never queues a query behind it and concurrent requests (a dashboard loads
its panels at once) do not wait for each other's queries. A chDB client runs one statement at
a time; several clients on one chDB path work in one process and their queries run in
parallel. ``query_many`` runs independent statements of one request side by side. Inserts
are serialised by a lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import queue
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver import options as driver_options
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError, ProgrammingError

from llmpulse_collector.rows import ASSERTION_SCHEMA, FEEDBACK_SCHEMA, SPAN_SCHEMA

from . import StorageError, StorageUnavailable

__all__ = ["TABLE_SCHEMAS", "Store", "check_identifier", "wire_type"]

# (column, ClickHouse type, python default) per table that rows are inserted into.
TABLE_SCHEMAS: dict[str, tuple[tuple[str, str, Any], ...]] = {
    "spans": SPAN_SCHEMA,
    "assertions": ASSERTION_SCHEMA,
    "feedback": FEEDBACK_SCHEMA,
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

# ClickHouse error codes that mean "try again later", not "this statement is wrong".
_TRANSIENT_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        160,  # TOO_SLOW
        164,  # READONLY (a replica in read-only mode)
        173,  # CANNOT_ALLOCATE_MEMORY
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        225,  # NO_ZOOKEEPER
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        243,  # NOT_ENOUGH_SPACE
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        999,  # KEEPER_EXCEPTION
        1000,  # POCO_EXCEPTION
    }
)

# The server setting that sets the nice value of ClickHouse's merge threads while they merge.
_MERGE_NICE = "os_threads_nice_value_merge_mutate"
# Settings every insert carries. chDB defaults to async_insert=1, under which
# insert_deduplication_token does not deduplicate; max_partitions_per_insert_block=0 keeps a
# batch spanning many days (skewed client clocks) from failing forever in the writer's retries.
_INSERT_SETTINGS: dict[str, Any] = {
    "async_insert": 0,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "max_partitions_per_insert_block": 0,
    # LowCardinality columns go on the wire as plain String (see wire_type): ClickHouse
    # builds their dictionaries in C++, instead of clickhouse-connect in Python.
    "input_format_native_allow_types_conversion": 1,
}
_LOW_CARDINALITY = re.compile(r"LowCardinality\((.*?)\)")


def wire_type(column_type: str) -> str:
    """The type an insert sends a column as: LowCardinality(T) as T.

    clickhouse-connect builds a LowCardinality column's dictionary in Python, one dict lookup
    a value, holding the GIL (~12 µs a span over the span table's 13 such columns); sent as
    T, the server converts on insert, in C++ and without the GIL. Same stored data.
    """
    return _LOW_CARDINALITY.sub(r"\1", column_type)


# chDB: the one data path this process hosts, and how many Stores use it.
_embedded_lock = threading.Lock()
_embedded_path: str | None = None
_embedded_users = 0


def check_identifier(value: str, what: str) -> str:
    """Return ``value`` if it is a plain ClickHouse identifier, else raise ``ValueError`` naming it."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ValueError(f"{what} must be a plain identifier (letters, digits, underscores), got {value!r}")
    return value


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ProgrammingError | DataError):  # a bug, or a value the driver cannot serialise
        return False
    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, DatabaseError):
        code = getattr(exc, "code", None)
        # No ClickHouse code on a server error means something in between answered (a proxy's 502/503).
        return code is None or code in _TRANSIENT_CODES
    return isinstance(exc, OSError)  # chDB writes each insert to a temporary file first


def _create_database(admin: Client, database: str, on_cluster: str = "") -> None:
    """``CREATE DATABASE`` unless it exists. On a cluster even a no-op ``CREATE ... ON CLUSTER``
    goes through the DDL queue and waits for every node: a collector starting while one is down
    would wait up to ``distributed_ddl_task_timeout`` for a database that is already there."""
    found = admin.query(
        "SELECT count() FROM system.databases WHERE name = {name:String}", parameters={"name": database}
    )
    if not found.result_rows[0][0]:
        admin.command(f"CREATE DATABASE IF NOT EXISTS `{database}`{on_cluster}")


def _wrap(exc: BaseException, action: str) -> StorageError:
    """The storage exception for a driver error (the caller raises it ``from`` the original)."""
    message = f"{action} failed: {exc}"
    return StorageUnavailable(message) if _is_transient(exc) else StorageError(message)


def _redact(dsn: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", dsn)


def _status_locked_elsewhere(path: str) -> bool:
    """True if another process holds ClickHouse's lock on ``<path>/status``.

    ClickHouse takes an exclusive ``flock`` on that file for as long as it runs (and removes
    the file on a clean shutdown), so a failed non-blocking ``flock`` means a live owner.
    """
    status = os.path.join(path, "status")
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False  # no status file: nobody runs on this path
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _embedded_path_of(dsn: str) -> str:
    parsed = urlparse(dsn)
    location = parsed.netloc.rpartition("@")[2] if parsed.netloc else unquote(parsed.path)
    if location in ("", "memory", ":memory:"):
        return ":memory:"
    if not os.path.isabs(location):
        raise StorageError(f"the embedded store needs an absolute path (chdb:///abs/path), got {dsn!r}")
    return os.path.realpath(location)  # clickhouse-connect hands chDB the real path too


def _already_open(path: str) -> str:
    return f"chDB is already open at {path} in this process; one embedded store per process"


def _in_use(path: str) -> str:
    return f"the embedded store {path} is in use by another process (is another collector running?)"


def _acquire_embedded(path: str) -> None:
    global _embedded_path, _embedded_users
    with _embedded_lock:
        if _embedded_path is not None and _embedded_path != path:
            raise StorageError(_already_open(_embedded_path))
        if _embedded_path is None and path != ":memory:" and _status_locked_elsewhere(path):
            raise StorageError(_in_use(path))
        _embedded_path = path
        _embedded_users += 1


def _release_embedded() -> None:
    global _embedded_path, _embedded_users
    with _embedded_lock:
        _embedded_users -= 1
        if _embedded_users <= 0:
            _embedded_users = 0
            _embedded_path = None


def _embedded_open_error(path: str, exc: BaseException) -> StorageError:
    """Say plainly why chDB refused to open ``path`` (its own message is generic)."""
    text = str(exc)
    other = re.search(r"already initialized with path '([^']*)'", text)
    if other:
        return StorageError(_already_open(other.group(1)))
    if path != ":memory:" and _status_locked_elsewhere(path):
        return StorageError(_in_use(path))
    return StorageError(f"cannot open the embedded store at {path}: {text}")


class Store:
    """A ClickHouse database holding llmpulse's tables, on chDB or a server.

    Build it with ``Store.connect``; close it with ``close()`` (or use it as a context manager).
    ``insert`` is for the writer thread, ``query`` for readers; both may run concurrently.
    """

    def __init__(
        self,
        *,
        dsn: str,
        database: str,
        retention_days: int,
        cluster: str | None,
        embedded_path: str | None,
        writer: Client,
        readers: Sequence[Client],
        insert_nice: int = 0,
    ) -> None:
        """Use ``Store.connect``; this constructor only wires already-open clients."""
        if not readers:
            raise ValueError("a Store needs at least one reader client")
        self.dsn = _redact(dsn)
        self.database = database
        self.retention_days = retention_days
        self.cluster = cluster
        self.embedded_path = embedded_path
        # The nice value the embedded engine runs its merges at (see ``connect``); None on a server.
        self.merge_nice: int | None = None
        self._writer = writer
        self._readers = tuple(readers)
        self._idle: queue.SimpleQueue[Client] = queue.SimpleQueue()
        for client in self._readers:
            self._idle.put(client)
        self._insert_settings = dict(_INSERT_SETTINGS)
        if insert_nice and embedded_path is not None:
            self._insert_settings["os_thread_priority"] = insert_nice
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._types: dict[tuple[str, tuple[str, ...]], list[ClickHouseType] | None] = {}
        self._closed = False
        # The driver imports pandas and numpy (when installed) on its first insert, to test
        # the data's type: ~0.5 s. Pay it here, at startup, not on the first batch.
        _ = driver_options.pd, driver_options.np

    @property
    def embedded(self) -> bool:
        """True when this store runs chDB inside this process."""
        return self.embedded_path is not None

    @classmethod
    def connect(
        cls,
        dsn: str,
        *,
        database: str = "llmpulse",
        retention_days: int = 30,
        cluster: str | None = None,
        readers: int = 4,
        insert_nice: int = 0,
        merge_nice: int = 0,
    ) -> Store:
        """Open (and create if missing) ``database`` on the ClickHouse that ``dsn`` names.

        ``dsn`` is ``chdb:///abs/path`` for the embedded engine or
        ``http(s)://user:pass@host:8123`` for a server; ``database`` always names llmpulse's
        database (a database in the DSN is only where the connection starts). ``cluster``
        switches the schema to replicated tables behind ``Distributed`` ones (see
        ``migrations``). ``readers`` is how many queries may run at once (one client each).
        ``insert_nice`` (0 to 19) lowers the CPU priority of the threads chDB runs inserts on
        (embedded only: ClickHouse's ``os_thread_priority``, applied where the process may
        renice threads), so queries win when both want the CPU. ``merge_nice`` (0 to 19) does
        the same for the embedded engine's background merges (ClickHouse's server setting
        ``os_threads_nice_value_merge_mutate``, taken when the engine starts: the first store
        opened in a process; ``merge_nice`` then tells what the engine runs with). A server
        takes that setting from its own configuration.
        Raises ``StorageError`` (``StorageUnavailable`` if the server is unreachable);
        ``ValueError`` for a bad database, cluster name or reader count.

        >>> store = Store.connect("chdb:///tmp/llmpulse-doc", database="doc")  # doctest: +SKIP
        """
        check_identifier(database, "database")
        if cluster is not None and not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", cluster):
            raise ValueError(f"cluster must be a ClickHouse cluster name, got {cluster!r}")
        if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1:
            raise ValueError(f"retention_days must be a positive integer, got {retention_days!r}")
        if isinstance(readers, bool) or not isinstance(readers, int) or not 1 <= readers <= 64:
            raise ValueError(f"readers must be an integer from 1 to 64, got {readers!r}")
        if isinstance(insert_nice, bool) or not isinstance(insert_nice, int) or not 0 <= insert_nice <= 19:
            raise ValueError(f"insert_nice must be an integer from 0 to 19, got {insert_nice!r}")
        if isinstance(merge_nice, bool) or not isinstance(merge_nice, int) or not 0 <= merge_nice <= 19:
            raise ValueError(f"merge_nice must be an integer from 0 to 19, got {merge_nice!r}")
        if dsn.startswith("chdb:"):
            return cls._connect_embedded(dsn, database, retention_days, cluster, readers, insert_nice, merge_nice)
        if not dsn.startswith(("http://", "https://")):
            raise StorageError(f"unsupported storage DSN {_redact(dsn)!r}: use chdb:///abs/path or http(s)://host:8123")
        opened: list[Client] = []
        # No session ids (a session forbids concurrent queries on one client); bounded waits so
        # a hung server turns into StorageUnavailable and a retry, not a stuck writer.
        http: dict[str, Any] = {"autogenerate_session_id": False, "connect_timeout": 10, "send_receive_timeout": 120}
        try:
            admin = clickhouse_connect.get_client(dsn=dsn, **http)
            opened.append(admin)
            _create_database(admin, database, f" ON CLUSTER `{cluster}`" if cluster else "")
            writer = clickhouse_connect.get_client(dsn=dsn, database=database, **http)
            opened.append(writer)
            for _ in range(readers):
                opened.append(clickhouse_connect.get_client(dsn=dsn, database=database, **http))
        except Exception as exc:
            for client in opened:
                client.close()
            raise _wrap(exc, f"connecting to {_redact(dsn)}") from exc
        admin.close()
        return cls(
            dsn=dsn,
            database=database,
            retention_days=retention_days,
            cluster=cluster,
            embedded_path=None,
            writer=writer,
            readers=opened[2:],
        )

    @classmethod
    def _connect_embedded(
        cls,
        dsn: str,
        database: str,
        retention_days: int,
        cluster: str | None,
        readers: int,
        insert_nice: int,
        merge_nice: int,
    ) -> Store:
        if cluster is not None:
            raise StorageError("cluster mode needs a ClickHouse server (http(s)://...), not the embedded chDB")
        path = _embedded_path_of(dsn)
        _acquire_embedded(path)
        # Server settings: the engine takes them from the connection that starts it.
        engine: dict[str, Any] = {"chdb_options": {_MERGE_NICE: merge_nice}} if merge_nice else {}
        opened: list[Client] = []
        try:
            try:
                # The engine-level connection: the database may not exist yet.
                admin = clickhouse_connect.get_client(dsn=dsn, **engine)
            except ProgrammingError as exc:
                raise _embedded_open_error(path, exc) from exc
            opened.append(admin)
            _create_database(admin, database)
            setting = "SELECT value FROM system.server_settings WHERE name = {n:String}"
            running_merge_nice = int(str(admin.command(setting, parameters={"n": _MERGE_NICE}) or 0))
            writer = clickhouse_connect.get_client(dsn=dsn, database=database, **engine)
            opened.append(writer)
            for _ in range(readers):
                opened.append(clickhouse_connect.get_client(dsn=dsn, database=database, **engine))
        except StorageError:
            for client in reversed(opened):
                client.close()
            _release_embedded()
            raise
        except Exception as exc:
            for client in reversed(opened):
                client.close()
            _release_embedded()
            raise _wrap(exc, f"opening the embedded store {path}") from exc
        # Keep the admin handle until the others exist: closing chDB's last handle stops the engine.
        admin.close()
        store = cls(
            dsn=dsn,
            database=database,
            retention_days=retention_days,
            cluster=None,
            embedded_path=path,
            writer=writer,
            readers=opened[2:],
            insert_nice=insert_nice,
        )
        store.merge_nice = running_merge_nice
        return store

    def insert(
        self, table: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, dedup_token: str
    ) -> None:
        """Insert ``rows`` (dicts keyed by column) into ``table``, idempotently per ``dedup_token``.

        Values are taken in ``columns`` order; a missing key (or ``None`` in a non-Nullable
        column) takes the default from ``rows.py``. Timestamps are integers in the column's
        unit (ns for ``DateTime64(9)``, ms for ``DateTime64(3)``) and are stored exactly.
        Repeating an insert with the same token stores it once, in the table and in the
        rollups fed from it, so derive the token from the batch's identity. Raises
        ``StorageUnavailable`` (retry) or ``StorageError`` (a bug: unknown column, bad value).
        """
        if not rows:
            return
        check_identifier(table, "table")
        if not dedup_token:
            raise ValueError("dedup_token must be a non-empty string derived from the batch's identity")
        self.insert_columns(table, columns, _columns(table, rows, columns), dedup_token=dedup_token)

    def insert_columns(self, table: str, columns: Sequence[str], values: list[list[Any]], *, dedup_token: str) -> None:
        """Insert rows given column by column (``values[i]`` holds column ``columns[i]``).

        The writer's path: no per-row dicts. ``None`` in a column that is not Nullable takes
        the default from ``rows.py``, as in :meth:`insert`; otherwise the same contract.
        """
        if not values or not values[0]:
            return
        settings = self._settings_of_insert(table, dedup_token)
        data = _fill_defaults(table, columns, values)
        with self._write_lock:
            self._check_open()
            try:
                types = self._column_types(table, columns)
                self._writer.insert(
                    table,
                    data,
                    column_names=list(columns),
                    column_types=types,
                    column_oriented=True,
                    settings=settings,
                )
            except Exception as exc:
                raise _wrap(exc, f"insert of {len(data[0])} rows into {table}") from exc

    def insert_native(self, table: str, columns: Sequence[str], data: bytes, *, rows: int, dedup_token: str) -> None:
        """Insert ``rows`` rows given as ClickHouse Native blocks (``native.py``), as they are.

        The blocks name their columns and wire types (LowCardinality columns as their plain
        type, as :meth:`insert_columns` sends them); ``columns`` is the insert's column list.
        Same contract as :meth:`insert` otherwise: idempotent per ``dedup_token``, raises
        ``StorageUnavailable`` (retry) or ``StorageError``.
        """
        if not rows:
            return
        for column in columns:
            check_identifier(column, "column")
        settings = self._settings_of_insert(table, dedup_token)
        with self._write_lock:
            self._check_open()
            try:
                self._writer.raw_insert(table, list(columns), insert_block=data, settings=settings, fmt="Native")
            except Exception as exc:
                raise _wrap(exc, f"insert of {rows} rows into {table}") from exc

    def _settings_of_insert(self, table: str, dedup_token: str) -> dict[str, Any]:
        """One idempotent insert's settings (``table`` and ``dedup_token`` checked)."""
        check_identifier(table, "table")
        if not dedup_token:
            raise ValueError("dedup_token must be a non-empty string derived from the batch's identity")
        settings = dict(self._insert_settings, insert_deduplication_token=dedup_token)
        if self.cluster:
            settings["distributed_foreground_insert"] = 1  # acknowledged = written on the shards
        return settings

    def _column_types(self, table: str, columns: Sequence[str]) -> list[ClickHouseType] | None:
        key = (table, tuple(columns))
        if key not in self._types:
            schema = {name: ctype for name, ctype, _ in TABLE_SCHEMAS.get(table, ())}
            if all(c in schema for c in columns):
                self._types[key] = [get_from_name(wire_type(schema[c])) for c in columns]
            else:
                self._types[key] = None  # not a row table: the driver asks the server (one DESCRIBE)
        return self._types[key]

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT with driver-bound ``{name:Type}`` parameters; rows as dicts."""
        with self._reader() as reader:
            try:
                result = reader.query(sql, parameters=dict(parameters or {}))
                names = result.column_names
                return [dict(zip(names, row, strict=True)) for row in result.result_rows]
            except Exception as exc:
                raise _wrap(exc, "query") from exc

    def query_many(self, statements: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[list[dict[str, Any]]]:
        """Run independent SELECTs side by side (each on its own reader); their rows, in order.

        The first runs in the calling thread, the others on the store's query threads. Every
        statement finishes before this returns; the first error raised is re-raised.
        """
        if len(statements) <= 1 or len(self._readers) == 1:
            return [self.query(sql, params) for sql, params in statements]
        pool = self._query_pool()
        futures: list[Future[list[dict[str, Any]]]] = [
            pool.submit(self.query, sql, params) for sql, params in statements[1:]
        ]
        try:
            first = self.query(*statements[0])
        finally:
            rest_or_errors = [_outcome(future) for future in futures]
        results = [first]
        for outcome in rest_or_errors:
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        return results

    def _query_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            self._check_open()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(len(self._readers), thread_name_prefix="llmpulse-query")
            return self._pool

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Client]:
        """Borrow an idle reader client for one statement (waits while all are busy)."""
        while True:
            self._check_open()
            try:
                client = self._idle.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        try:
            yield client
        finally:
            self._idle.put(client)

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run a statement (DDL, ``SYSTEM``, ``OPTIMIZE``) on the writer's client; its raw result."""
        with self._write_lock:
            self._check_open()
            try:
                return self._writer.command(sql, parameters=dict(parameters or {}))
            except Exception as exc:
                raise _wrap(exc, "command") from exc

    def ping(self) -> bool:
        """True when the store answers a trivial query."""
        if self._closed:
            return False
        try:
            with self._reader() as reader:
                return bool(reader.ping())
        except Exception:
            return False

    def close(self) -> None:
        """Close every client (idempotent). On chDB the engine stops with its last client."""
        if self._closed:
            return
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._write_lock:
            self._closed = True
            for client in (*self._readers, self._writer):
                with contextlib.suppress(Exception):  # best effort: nothing useful to do with the error
                    client.close()
        if self.embedded_path is not None:
            _release_embedded()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the store is closed")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.dsn!r}, database={self.database!r}, cluster={self.cluster!r})"


def _outcome(future: Future[list[dict[str, Any]]]) -> list[dict[str, Any]] | BaseException:
    try:
        return future.result()
    except BaseException as exc:  # re-raised by the caller once every statement has finished
        return exc


def _columns(table: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[list[Any]]:
    """Column-oriented values for ``columns``; a key a row lacks takes the table's default."""
    schema = {name: default for name, _, default in TABLE_SCHEMAS.get(table, ())}
    data: list[list[Any]] = []
    for column in columns:
        if column in schema:
            default = schema[column]
        elif all(column in row for row in rows):
            default = None
        else:
            raise StorageError(f"{table}.{column}: no default for a missing value (not a column of rows.py's schema)")
        data.append([row.get(column, default) for row in rows])
    return data


def _fill_defaults(table: str, columns: Sequence[str], values: list[list[Any]]) -> list[list[Any]]:
    """``None`` in a column that is not Nullable → the table's default; times as integer ticks."""
    schema = {name: (ctype, default) for name, ctype, default in TABLE_SCHEMAS.get(table, ())}
    data: list[list[Any]] = []
    for column, given in zip(columns, values, strict=True):
        ctype, default = schema.get(column, ("", None))
        column_values = given
        if ctype.startswith("DateTime64"):
            # The driver writes Python ints as raw ticks (exact); datetimes would lose the nanoseconds.
            if not all(type(v) is int for v in given):
                column_values = [default if v is None else int(v) for v in given]
        elif ctype and not ctype.startswith("Nullable") and None in given:
            column_values = [default if v is None else v for v in given]
        data.append(column_values)
    return data
