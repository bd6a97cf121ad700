"""The writer lets a small batch grow for a moment (``linger``) so ClickHouse gets fewer, larger
inserts, and still drains at once on shutdown."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from server_harness import wait_for

from llmpulse_collector.wal import WriteAheadLog
from llmpulse_collector.writer import Columns, Writer, encode_entry

pytestmark = pytest.mark.collector


def _span(i: int) -> dict[str, str]:
    return {"span_id": f"{i:016x}"}


def test_requests_arriving_within_the_linger_go_in_one_insert(tmp_path: Path) -> None:
    inserts: list[list[str]] = []

    def insert(table: str, data: Columns, token: str) -> None:
        inserts.append([r["span_id"] for r in data.rows()])

    wal = WriteAheadLog(tmp_path / "wal.sqlite3", fsync=False)
    # The first request is in the log before the writer looks, so it starts gathering at once;
    # a quiet window as long as the linger keeps it gathering however slow the machine is.
    writer = Writer(wal, insert, linger=3.0, quiet=3.0, idle_wait=30)
    wal.append("traces", encode_entry({"spans": [_span(0)]}))
    writer.start()
    for i in range(1, 3):
        wal.append("traces", encode_entry({"spans": [_span(i)]}))
        writer.wake()
    wait_for(lambda: wal.pending_entries == 0, timeout=30)
    assert inserts == [[f"{i:016x}" for i in range(3)]]
    writer.stop()
    wal.close()


def test_stop_drains_without_lingering(tmp_path: Path) -> None:
    inserts: list[int] = []
    wal = WriteAheadLog(tmp_path / "wal.sqlite3", fsync=False)
    writer = Writer(wal, lambda table, data, token: inserts.append(data.count), linger=60.0, idle_wait=0.01)
    writer.start()
    wal.append("traces", encode_entry({"spans": [_span(1), _span(2)]}))
    started = time.monotonic()
    assert writer.stop(timeout=30)
    assert time.monotonic() - started < 30  # not the 60 s linger
    assert inserts == [2]
    assert wal.pending_entries == 0
    wal.close()


def test_a_batch_inserts_its_spans_last(tmp_path: Path) -> None:
    """Readers wait for spans; once a span is visible its assertions must be too."""
    tables: list[str] = []
    wal = WriteAheadLog(tmp_path / "wal.sqlite3", fsync=False)
    writer = Writer(wal, lambda table, data, token: tables.append(table), linger=0, idle_wait=0.01)
    wal.append("traces", encode_entry({"spans": [_span(1)], "assertions": [{"span_id": f"{1:016x}", "name": "a"}]}))
    wal.append("feedback", encode_entry({"feedback": [{"name": "thumbs_up", "value": 1.0}]}))
    writer.start()
    assert writer.stop(timeout=30)
    wal.close()
    assert tables[-1] == "spans"
    assert sorted(tables) == ["assertions", "feedback", "spans"]


def test_a_lone_request_does_not_wait_out_the_linger(tmp_path: Path) -> None:
    inserted: list[float] = []
    wal = WriteAheadLog(tmp_path / "wal.sqlite3", fsync=False)
    writer = Writer(wal, lambda table, data, token: inserted.append(time.monotonic()), linger=60.0, idle_wait=0.01)
    writer.start()
    appended = time.monotonic()
    wal.append("traces", encode_entry({"spans": [_span(1)]}))
    writer.wake()
    wait_for(lambda: inserted, timeout=50)  # written once requests stop coming, not after 60 s
    assert inserted[0] - appended < 50
    writer.stop()
    wal.close()
