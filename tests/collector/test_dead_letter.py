"""A batch ClickHouse keeps refusing as bad data must not block the write-ahead log for good: its
good requests land, the refused one is set aside in ``dead-letter.jsonl`` (nothing acknowledged is
dropped) and counted, and ingest goes on. Real chDB refuses the row; no mock."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from server_harness import running, wait_for
from test_metrics import scrape

from llmpulse_collector.settings import Settings
from llmpulse_collector.writer import encode_entry

pytestmark = pytest.mark.collector


def feedback(trace: str, name: str, time_ms: int) -> dict[str, Any]:
    return {"project": "default", "time": time_ms, "trace_id": trace, "response_id": "", "name": name,
            "value": 1.0, "comment": ""}  # fmt: skip


def test_rows_clickhouse_refuses_are_set_aside_and_the_log_moves_on(settings: Settings) -> None:
    trace = uuid.uuid4().hex
    now_ms = int(time.time() * 1000)
    with running(settings) as (url, app):
        wal = app.state.collector.wal
        # As if an older collector had acknowledged a time past Int64 (the fuzzer found one): never insertable.
        for name, t in (("before", now_ms), ("poison", 2**63 + 5), ("after", now_ms + 1)):
            wal.append("feedback", encode_entry({"feedback": [feedback(trace, name, t)]}))
        app.state.collector.writer.wake()

        def drained() -> bool:
            return httpx.get(f"{url}/readyz").json()["wal_pending"] == 0

        wait_for(drained, timeout=60)
        r = httpx.post(f"{url}/v1/feedback", json={"trace_id": trace, "name": "later", "value": 1})
        assert r.status_code == 200
        wait_for(drained)
        rows = app.state.collector.store.query(
            "SELECT name FROM feedback WHERE trace_id = {t:String} ORDER BY name", {"t": trace}
        )
        got = scrape(url)
    assert [r["name"] for r in rows] == ["after", "before", "later"]  # each exactly once
    (record,) = [orjson.loads(line) for line in (settings.data_dir / "dead-letter.jsonl").read_bytes().splitlines()]
    assert record["table"] == "feedback"
    assert record["rows"][0]["name"] == "poison"
    assert record["error"]
    assert got[("llmpulse_collector_dead_lettered_rows_total", (("table", "feedback"),))] == 1
    assert got[("llmpulse_collector_storage_errors_total", (("kind", "error"),))] >= 3


def test_isolation_does_not_double_a_table_that_already_landed(tmp_path: Any) -> None:
    """Spans of a batch were inserted, its assertions refused: isolating it retries the spans with
    the batch's own token (ClickHouse drops the repeat) and splits only the refusing table."""
    from llmpulse_collector.storage import StorageError
    from llmpulse_collector.wal import WriteAheadLog
    from llmpulse_collector.writer import Columns, Writer

    calls: list[tuple[str, int, str]] = []
    landed: set[str] = set()
    rows: dict[str, list[dict[str, Any]]] = {"spans": [], "assertions": []}

    def insert(table: str, data: Columns, token: str) -> None:
        calls.append((table, data.count, token))
        batch_rows = data.rows()
        if table == "assertions" and any(r["name"] == "bad" for r in batch_rows):
            raise StorageError("Unable to create native array for column `time`")
        if token not in landed:  # what insert_deduplication_token does
            landed.add(token)
            rows[table].extend(batch_rows)

    wal = WriteAheadLog(tmp_path / "wal.sqlite3", fsync=False)
    for i, bad in enumerate((False, True, False)):
        span = {"span_id": f"{i:016x}"}
        assertion = {"span_id": f"{i:016x}", "name": "bad" if bad else "ok"}
        wal.append("traces", encode_entry({"spans": [span], "assertions": [assertion]}))
    writer = Writer(wal, insert, dead_letter=tmp_path / "dead-letter.jsonl", isolate_after=2, idle_wait=0.01)
    writer.start()
    wait_for(lambda: wal.pending_entries == 0, timeout=30)
    writer.stop()
    wal.close()
    assert sorted(int(r["span_id"], 16) for r in rows["spans"]) == [0, 1, 2]  # once each, though retried
    assert sorted(int(r["span_id"], 16) for r in rows["assertions"]) == [0, 2]
    assert rows["spans"][0]["name"] == ""  # columns the entry lacks take the table's default
    (record,) = [orjson.loads(line) for line in (tmp_path / "dead-letter.jsonl").read_bytes().splitlines()]
    assert record["table"] == "assertions"
    assert record["rows"] == [{"span_id": f"{1:016x}", "name": "bad"}]  # the request's rows as sent
    assert {token.count(":") for table, _, token in calls if table == "assertions"} >= {2, 3}  # whole, then per entry
