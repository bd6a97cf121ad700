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
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

from .rows import ASSERTION_COLUMNS, FEEDBACK_COLUMNS, SPAN_COLUMNS
from .storage import StorageError, StorageUnavailable
from .wal import Batch, WalClosed, WriteAheadLog

__all__ = ["TABLES", "Writer", "encode_entry"]

log = structlog.get_logger("llmpulse.collector")

# WAL payload key -> (table, column list)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "spans": ("spans", SPAN_COLUMNS),
    "assertions": ("assertions", ASSERTION_COLUMNS),
    "feedback": ("feedback", FEEDBACK_COLUMNS),
}


def encode_entry(rows: dict[str, list[dict[str, Any]]]) -> bytes:
    """A WAL payload: ``{"spans": [...], "assertions": [...]}`` as orjson bytes."""
    return orjson.dumps({k: v for k, v in rows.items() if v})


class Writer:
    """The single consumer of the log."""

    def __init__(
        self,
        wal: WriteAheadLog,
        insert: Callable[[str, list[dict[str, Any]], tuple[str, ...], str], None],
        *,
        max_entries: int = 1000,
        max_bytes: int = 16 << 20,
        idle_wait: float = 0.2,
        on_batch: Callable[[dict[str, int], float], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        dead_letter: Path | None = None,
        on_dead_letter: Callable[[str, int], None] | None = None,
        isolate_after: int = 3,
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

    def write(self, batch: Batch) -> None:
        """Insert one batch's rows, table by table, then complete it in the log."""
        started = time.perf_counter()
        tables: dict[str, list[dict[str, Any]]] = {}
        for entry in batch.entries:
            payload = orjson.loads(entry.payload)
            for key, rows in payload.items():
                tables.setdefault(key, []).extend(rows)
        self._finish(batch, self._insert_tables(batch, tables), started)

    def _insert_tables(self, batch: Batch, tables: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        written: dict[str, int] = {}
        for key, rows in tables.items():
            if key not in TABLES:
                log.error("wal_unknown_table", key=key, rows=len(rows))
                continue
            table, columns = TABLES[key]
            self._insert(table, rows, columns, f"{batch.token}:{table}")
            written[table] = len(rows)
        return written

    def isolate(self, batch: Batch) -> None:
        """Write a batch ClickHouse keeps refusing, setting aside only the requests it refuses."""
        started = time.perf_counter()
        per_entry: list[tuple[int, dict[str, list[dict[str, Any]]]]] = [
            (entry.id, orjson.loads(entry.payload)) for entry in batch.entries
        ]
        written: dict[str, int] = {}
        for key, (table, columns) in TABLES.items():
            rows = [row for _, payload in per_entry for row in payload.get(key, ())]
            if not rows:
                continue
            try:
                self._insert(table, rows, columns, f"{batch.token}:{table}")  # what may have landed already
                written[table] = len(rows)
                continue
            except StorageUnavailable:
                raise
            except StorageError:
                pass
            for entry_id, payload in per_entry:
                entry_rows = payload.get(key)
                if not entry_rows:
                    continue
                try:
                    self._insert(table, entry_rows, columns, f"{batch.token}:{table}:{entry_id}")
                    written[table] = written.get(table, 0) + len(entry_rows)
                except StorageUnavailable:
                    raise
                except StorageError as exc:
                    self._set_aside(batch, entry_id, table, entry_rows, exc)
        self._finish(batch, written, started)

    def _set_aside(self, batch: Batch, entry_id: int, table: str, rows: list[dict[str, Any]], exc: Exception) -> None:
        record = {"batch": batch.token, "entry": entry_id, "table": table, "error": str(exc)[:2000], "rows": rows}
        if self._dead_letter is None:
            raise exc  # nowhere to keep them: keep retrying rather than lose them
        with self._dead_letter.open("ab") as f:
            f.write(orjson.dumps(record) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        log.error("rows_dead_lettered", table=table, rows=len(rows), entry=entry_id, error=str(exc)[:300])
        if self._on_dead_letter is not None:
            self._on_dead_letter(table, len(rows))

    def _finish(self, batch: Batch, written: dict[str, int], started: float) -> None:
        self._wal.complete(batch.id)
        self.batches_written += 1
        self.rows_written += sum(written.values())
        if self._on_batch is not None:
            self._on_batch(written, time.perf_counter() - started)
