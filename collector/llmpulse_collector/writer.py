"""Drains the write-ahead log into ClickHouse in large batches, idempotently.

One daemon thread asks the log for its oldest unfinished batch (a replay after a crash
comes back with the same entries and token), inserts each table's rows with the dedup
token ``<batch token>:<table>``, and only then completes the batch. Storage outages are
retried with capped exponential backoff; nothing acknowledged is ever dropped here.

A batch ClickHouse keeps refusing as bad data (a non-transient ``StorageError``, three times
in a row) would block the log for good, so it is *isolated*: each table is tried whole once
more (same token, so what already landed is not doubled), and a table that still fails is
inserted request by request (token ``<batch token>:<table>:<entry id>``, stable across
replays). A request whose rows are still refused is appended to the dead-letter file
(``dead-letter.jsonl`` beside the log, fsynced, with the error) and counted; the rest of the
batch lands and the log moves on.

Payloads (``encode_entry``) hold each table's rows as a ClickHouse Native block where the C
extension is built (``native.py``): the writer concatenates a batch's blocks and inserts them
without touching a value in Python. Otherwise, and for rows the encoder leaves to the driver,
they are column-oriented JSON: one array per column instead of one object per row, handed to
ClickHouse as columns. Entries written by older collectors (JSON columns, or a list of row
objects per table) are still read (``decode_entry``), so a log left on disk by an upgrade
replays as it was; a batch mixing formats goes through the columns path.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
import structlog

from . import native
from .priority import lower_thread_priority
from .rows import ASSERTION_SCHEMA, FEEDBACK_SCHEMA, SPAN_SCHEMA
from .storage import StorageError, StorageUnavailable
from .wal import Batch, WalClosed, WriteAheadLog

__all__ = ["TABLES", "Columns", "Native", "Writer", "decode_entry", "encode_entry"]

log = structlog.get_logger("llmpulse.collector")

# WAL payload key -> (table, column list)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "spans": ("spans", tuple(c for c, _, _ in SPAN_SCHEMA)),
    "assertions": ("assertions", tuple(c for c, _, _ in ASSERTION_SCHEMA)),
    "feedback": ("feedback", tuple(c for c, _, _ in FEEDBACK_SCHEMA)),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "spans": {c: d for c, _, d in SPAN_SCHEMA},
    "assertions": {c: d for c, _, d in ASSERTION_SCHEMA},
    "feedback": {c: d for c, _, d in FEEDBACK_SCHEMA},
}


class Columns:
    """Rows of one table, column by column: ``values[i]`` holds column ``names[i]`` of every row."""

    __slots__ = ("count", "names", "values")

    def __init__(self, names: Sequence[str], values: list[list[Any]], count: int) -> None:
        self.names = tuple(names)
        self.values = values
        self.count = count

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> Columns:
        """Rows as dicts (the first row's keys name the columns; a key a row lacks reads None)."""
        names: dict[str, None] = {}
        for row in rows:
            names.update(dict.fromkeys(row))
        return cls(tuple(names), [[row.get(n) for row in rows] for n in names], len(rows))

    def rows(self) -> list[dict[str, Any]]:
        """Back to one dict per row (the dead-letter file keeps rows in this shape)."""
        return [dict(zip(self.names, values, strict=True)) for values in zip(*self.values, strict=True)]

    def __repr__(self) -> str:
        return f"Columns({self.count} rows of {', '.join(self.names)})"


class Native:
    """Rows of one table as ClickHouse Native blocks (one per log entry, concatenated)."""

    __slots__ = ("count", "data", "names")

    def __init__(self, names: Sequence[str], count: int, data: bytes) -> None:
        self.names = tuple(names)
        self.count = count
        self.data = data

    def columns(self) -> Columns:
        names, values, count = native.read_blocks(self.data)
        if names != self.names or count != self.count:
            raise ValueError(f"Native rows do not match their header: {count} rows of {names}")
        return Columns(names, values, count)

    def rows(self) -> list[dict[str, Any]]:
        return self.columns().rows()

    def __repr__(self) -> str:
        return f"Native({self.count} rows of {', '.join(self.names)})"


def encode_entry(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """A WAL payload: Native blocks (``native.encode``) where the C encoder takes the rows, else JSON.

    JSON: per table, ``{"columns": [names], "values": [[one column's values], ...]}``. Rows
    normally share one key set (the normaliser builds each from one template); if they do
    not, the table is written as a list of row objects instead, the format older collectors
    wrote, which ``decode_entry`` still reads.
    """
    blocks = native.encode(rows)
    if blocks is not None:
        return blocks
    out: dict[str, Any] = {}
    for key, table_rows in rows.items():
        if not table_rows:
            continue
        names = tuple(table_rows[0])
        n = len(names)
        values: Any = None
        if n > 1:
            try:
                tuples = list(map(itemgetter(*names), table_rows))
            except KeyError:
                tuples = None
            if tuples is not None and all(len(r) == n for r in table_rows):
                values = list(zip(*tuples, strict=True))
        elif n == 1 and all(len(r) == 1 for r in table_rows):
            (name,) = names
            if all(name in r for r in table_rows):
                values = [[r[name] for r in table_rows]]
        out[key] = {"columns": names, "values": values} if values is not None else list(table_rows)
    return orjson.dumps(out)


def decode_entry(payload: bytes) -> dict[str, Columns | Native]:
    """A WAL payload, any format, as ``Native`` or ``Columns`` per table key."""
    if payload[:1] == native.MAGIC:
        return {key: Native(names, count, data) for key, (names, count, data) in native.decode(payload).items()}
    out: dict[str, Columns | Native] = {}
    for key, part in orjson.loads(payload).items():
        if type(part) is dict:  # column-oriented
            values = part["values"]
            out[key] = Columns(part["columns"], values, len(values[0]) if values else 0)
        elif part:  # a list of row objects: collectors before the column-oriented log
            out[key] = Columns.from_rows(part)
    return out


def _merge(key: str, parts: Sequence[Columns | Native]) -> Columns | Native:
    """One table's parts as one insert: Native blocks concatenated when every part is one with
    the same columns; else columns in the table's order, missing ones filled with defaults.

    Deterministic for a given batch, so a replay sends the same insert under the same token.
    """
    natives = [p for p in parts if isinstance(p, Native) and p.names == parts[0].names]
    if len(natives) == len(parts):
        if len(natives) == 1:
            return natives[0]
        return Native(natives[0].names, sum(p.count for p in natives), b"".join(p.data for p in natives))
    columns = TABLES[key][1]
    defaults = _DEFAULTS[key]
    values: list[list[Any]] = [[] for _ in columns]
    count = 0
    for given in parts:
        part = given.columns() if isinstance(given, Native) else given
        index = {name: i for i, name in enumerate(part.names)}
        for out, name in zip(values, columns, strict=True):
            i = index.get(name)
            if i is None:
                out.extend([defaults[name]] * part.count)
            else:
                out.extend(part.values[i])
        count += part.count
    return Columns(columns, values, count)


class Writer:
    """The single consumer of the log."""

    def __init__(
        self,
        wal: WriteAheadLog,
        insert: Callable[[str, Columns | Native, str], None],
        *,
        max_entries: int = 1000,
        max_bytes: int = 16 << 20,
        idle_wait: float = 0.2,
        on_batch: Callable[[dict[str, int], float], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        dead_letter: Path | None = None,
        on_dead_letter: Callable[[str, int], None] | None = None,
        isolate_after: int = 3,
        linger: float = 0.25,
        quiet: float = 0.1,
        nice: int = 0,
    ) -> None:
        self._wal = wal
        self._insert = insert
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._idle_wait = idle_wait
        self._on_batch = on_batch
        self._on_error = on_error
        self._dead_letter = dead_letter
        self._on_dead_letter = on_dead_letter
        self._isolate_after = isolate_after
        self._linger = linger
        self._quiet = quiet  # stop gathering once no request has arrived for this long
        self._nice = nice  # the writer thread's CPU priority (see priority.py)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._abandon = threading.Event()  # set when stop() gave up waiting: exit at once
        self._thread: threading.Thread | None = None
        self.batches_written = 0
        self.rows_written = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="llmpulse-writer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New entries are waiting: don't wait for the idle timeout."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """Drain what is in the log (within ``timeout``), then stop. True if drained."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                # Storage is still down: leave the batch in the log; the next start replays it.
                self._abandon.set()
                self._thread.join(1.0)
                return False
        return True

    def _run(self) -> None:
        backoff = 0.0
        refused = (0, 0)  # (batch id, consecutive non-transient failures)
        while True:
            # Every round: ClickHouse puts a thread back to nice 0 when a query with
            # os_thread_priority ends on it, and the inserts run on this thread.
            lower_thread_priority(self._nice)
            self._gather()
            try:
                batch = self._wal.next_batch(max_entries=self._max_entries, max_bytes=self._max_bytes)
            except WalClosed:
                return  # shutdown gave up on us; unfinished batches replay on the next start
            except Exception as exc:  # the log itself failed: report, wait, retry
                log.exception("wal_read_failed")
                if self._on_error is not None:
                    self._on_error(exc)
                backoff = min(5.0, max(0.1, backoff * 2))
                if self._abandon.wait(backoff):
                    return
                continue
            if batch is None:
                if self._stop.is_set():
                    return
                self._wake.wait(self._idle_wait)
                self._wake.clear()
                continue
            try:
                if refused[0] == batch.id and refused[1] >= self._isolate_after:
                    self.isolate(batch)
                else:
                    self.write(batch)
                backoff = 0.0
                refused = (0, 0)
            except WalClosed:
                return
            except (StorageUnavailable, StorageError) as exc:
                if not isinstance(exc, StorageUnavailable):
                    refused = (batch.id, refused[1] + 1 if refused[0] == batch.id else 1)
                # Retry the same batch (same token: ClickHouse stores it once) until it lands.
                backoff = min(5.0, max(0.1, backoff * 2))
                log.warning("storage_write_failed", error=str(exc), retry_in_s=backoff, batch=batch.id)
                if self._on_error is not None:
                    self._on_error(exc)
                if self._abandon.wait(backoff):
                    return

    def _gather(self) -> None:
        """Under load, let a small batch grow for up to ``linger`` s, while requests keep coming.

        Each insert makes a part per table and rollup: fewer, larger inserts cost ClickHouse
        much less (parts, merges). Once no request has arrived for ``quiet`` s, waiting
        longer gains nothing, so a lone request waits that long at most.
        """
        small = self._max_bytes // 4
        if self._linger <= 0 or self._stop.is_set() or not 0 < self._wal.bytes_used < small:
            return
        deadline = time.monotonic() + self._linger
        self._wake.clear()
        while (left := deadline - time.monotonic()) > 0 and self._wal.bytes_used < small:
            if not self._wake.wait(min(left, self._quiet)) or self._stop.is_set():
                return
            self._wake.clear()

    def write(self, batch: Batch) -> None:
        """Insert one batch's rows, table by table, then complete it in the log."""
        started = time.perf_counter()
        parts: dict[str, list[Columns | Native]] = {}
        for entry in batch.entries:
            for key, part in decode_entry(entry.payload).items():
                parts.setdefault(key, []).append(part)
        written: dict[str, int] = {}
        # Spans last: a reader that sees a span sees its assertions too.
        for key in sorted(parts, key=lambda k: k == "spans"):
            table_parts = parts[key]
            if key not in TABLES:
                log.error("wal_unknown_table", key=key, rows=sum(p.count for p in table_parts))
                continue
            table = TABLES[key][0]
            data = _merge(key, table_parts)
            self._insert(table, data, f"{batch.token}:{table}")
            written[table] = data.count
        self._finish(batch, written, started)

    def isolate(self, batch: Batch) -> None:
        """Write a batch ClickHouse keeps refusing, setting aside only the requests it refuses."""
        started = time.perf_counter()
        per_entry = [(entry.id, decode_entry(entry.payload)) for entry in batch.entries]
        written: dict[str, int] = {}
        for key in sorted(TABLES, key=lambda k: k == "spans"):  # spans last, as in write()
            table = TABLES[key][0]
            parts = [payload[key] for _, payload in per_entry if key in payload]
            if not parts:
                continue
            try:
                data = _merge(key, parts)
                self._insert(table, data, f"{batch.token}:{table}")  # what may have landed already
                written[table] = data.count
                continue
            except StorageUnavailable:
                raise
            except StorageError:
                pass
            for entry_id, payload in per_entry:
                part = payload.get(key)
                if part is None or not part.count:
                    continue
                try:
                    self._insert(table, _merge(key, [part]), f"{batch.token}:{table}:{entry_id}")
                    written[table] = written.get(table, 0) + part.count
                except StorageUnavailable:
                    raise
                except StorageError as exc:
                    self._set_aside(batch, entry_id, table, part, exc)
        self._finish(batch, written, started)

    def _set_aside(self, batch: Batch, entry_id: int, table: str, part: Columns | Native, exc: Exception) -> None:
        if self._dead_letter is None:
            raise exc  # nowhere to keep them: keep retrying rather than lose them
        record: dict[str, Any] = {"batch": batch.token, "entry": entry_id, "table": table, "error": str(exc)[:2000]}
        try:
            record["rows"] = part.rows()
        except ValueError as undecodable:  # a block Python cannot read back: keep its bytes as they were
            if not isinstance(part, Native):
                raise
            record["rows"] = []
            record["native_columns"] = list(part.names)
            record["native_base64"] = base64.b64encode(part.data).decode()
            record["decode_error"] = str(undecodable)[:2000]
        with self._dead_letter.open("ab") as f:
            f.write(orjson.dumps(record) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        log.error("rows_dead_lettered", table=table, rows=part.count, entry=entry_id, error=str(exc)[:300])
        if self._on_dead_letter is not None:
            self._on_dead_letter(table, part.count)

    def _finish(self, batch: Batch, written: dict[str, int], started: float) -> None:
        self._wal.complete(batch.id)
        self.batches_written += 1
        self.rows_written += sum(written.values())
        if self._on_batch is not None:
            self._on_batch(written, time.perf_counter() - started)
