"""The collector's own health counters: what it received, refused, wrote and dropped.

One :class:`Health` per collector, incremented by ingest, the writer and the exporters,
read by the Prometheus collector (``llmpulse_collector_<name>_total``) and the Datadog
exporter (``llmpulse.collector.<name>``). :data:`COUNTERS` is the catalogue: every name,
its labels and its meaning, in one place, so the two exporters and the README agree.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass

__all__ = ["COUNTERS", "INSERT_BUCKETS", "Health", "HealthSnapshot"]

# name -> (label names, meaning)
COUNTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "spans_received": (("protocol",), "Spans in decoded OTLP requests, valid or not."),
    "spans_accepted": (("protocol",), "Spans acknowledged to the client (durable in the write-ahead log)."),
    "spans_rejected": (
        ("protocol", "reason"),
        "Spans not stored: invalid (partial success), wal_full or wal_error (the client was told to retry).",
    ),
    "requests_rejected": (
        ("protocol", "reason"),
        "Whole requests refused: bad_request, too_large, unsupported_media_type, wal_full, wal_error.",
    ),
    "feedback_accepted": ((), "Feedback posts acknowledged."),
    "storage_insert_batches": ((), "Write-ahead-log batches inserted into ClickHouse."),
    "storage_insert_rows": (("table",), "Rows inserted into ClickHouse, by table."),
    "storage_errors": (("kind",), "Failed ClickHouse inserts (unavailable or error) and log reads (wal_read)."),
    "dead_lettered_rows": (
        ("table",),
        "Acknowledged rows ClickHouse kept refusing as bad data, set aside in <data_dir>/dead-letter.jsonl "
        "so the log could move on.",
    ),
    "exporter_errors": (("exporter",), "Metric exporter failures (e.g. an unreachable DogStatsD agent)."),
    "samples_dropped": (
        ("exporter", "reason"),
        "Metric samples an exporter did not send as themselves: downsampled (sent with a lower "
        "sample rate, counts stay exact) or send_failed.",
    ),
}

# Seconds, for llmpulse_collector_storage_insert_duration_seconds.
INSERT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class HealthSnapshot:
    counters: dict[str, dict[tuple[str, ...], float]]
    insert_counts: list[float]  # per bucket of INSERT_BUCKETS, then +Inf
    insert_sum: float


class Health:
    """Thread-safe counters named in :data:`COUNTERS`, plus the insert-latency histogram."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in COUNTERS}
        self._insert_counts = [0.0] * (len(INSERT_BUCKETS) + 1)
        self._insert_sum = 0.0

    def inc(self, name: str, *labels: str, n: float = 1.0) -> None:
        """Add ``n`` to counter ``name`` with these label values (in :data:`COUNTERS` order)."""
        if n == 0:
            return
        series = self._counters[name]  # KeyError: a name missing from COUNTERS is a bug
        with self._lock:
            series[labels] = series.get(labels, 0.0) + n

    def insert_done(self, rows_by_table: dict[str, int], seconds: float) -> None:
        """One write-ahead-log batch landed in ClickHouse."""
        with self._lock:
            self._counters["storage_insert_batches"][()] = self._counters["storage_insert_batches"].get((), 0.0) + 1
            rows = self._counters["storage_insert_rows"]
            for table, n in rows_by_table.items():
                rows[(table,)] = rows.get((table,), 0.0) + n
            self._insert_counts[bisect_left(INSERT_BUCKETS, seconds)] += 1
            self._insert_sum += seconds

    def value(self, name: str, *labels: str) -> float:
        with self._lock:
            return self._counters[name].get(labels, 0.0)

    def snapshot(self) -> HealthSnapshot:
        with self._lock:
            return HealthSnapshot(
                counters={name: dict(series) for name, series in self._counters.items()},
                insert_counts=self._insert_counts.copy(),
                insert_sum=self._insert_sum,
            )
