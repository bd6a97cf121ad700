"""The write-ahead log's payload format: column-oriented now, row objects before.

A user upgrading with entries still in the log must not lose them: entries written in the old
format (a list of row objects per table, what ``encode_entry`` wrote before) replay into
ClickHouse next to new ones, through the real collector and real chDB.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from known_batch import calls, encode
from server_harness import running, wait_for

from llmpulse._cost import PriceBook
from llmpulse._refusal import RefusalDetector
from llmpulse_collector.ingest import Limits
from llmpulse_collector.ingest.otlp import decode_traces
from llmpulse_collector.settings import Settings
from llmpulse_collector.wal import WriteAheadLog
from llmpulse_collector.writer import Columns, decode_entry, encode_entry

pytestmark = pytest.mark.collector


def _decoded(trace_base: int) -> Any:
    return decode_traces(
        encode(calls(20), trace_base=trace_base), content_type="application/x-protobuf", content_encoding=None,
        project="default", limits=Limits(), prices=PriceBook(), refusals=RefusalDetector(),
    )  # fmt: skip


def _old_format(rows: dict[str, list[dict[str, Any]]]) -> bytes:
    """``encode_entry`` as collectors before the column-oriented log wrote it."""
    return orjson.dumps({k: v for k, v in rows.items() if v})


def test_both_formats_decode_to_the_same_columns() -> None:
    result = _decoded(0xB000)
    rows = {"spans": result.spans, "assertions": result.assertions}
    new, old = decode_entry(encode_entry(rows)), decode_entry(_old_format(rows))
    assert set(new) == set(old) == {"spans", "assertions"}
    for key in new:
        assert new[key].rows() == old[key].rows() == orjson.loads(orjson.dumps(rows[key]))
    assert len(encode_entry(rows)) < len(_old_format(rows))  # column names once, not once a row


def test_rows_with_different_keys_keep_the_row_format() -> None:
    rows = [{"name": "a", "value": 1.0}, {"name": "b"}, {"name": "c", "value": 3.0, "comment": "x"}]
    payload = encode_entry({"feedback": rows})
    assert type(orjson.loads(payload)["feedback"]) is list
    columns = decode_entry(payload)["feedback"]
    assert columns.count == 3
    assert columns.rows() == [
        {"name": "a", "value": 1.0, "comment": None},
        {"name": "b", "value": None, "comment": None},
        {"name": "c", "value": 3.0, "comment": "x"},
    ]
    one = decode_entry(encode_entry({"feedback": [{"name": "a"}, {"name": "b"}]}))["feedback"]
    assert (one.names, one.values) == (("name",), [["a", "b"]])
    assert repr(Columns(("a",), [[1]], 1)) == "Columns(1 rows of a)"


def test_a_log_left_by_an_older_collector_replays_after_the_upgrade(settings: Settings) -> None:
    old, new = _decoded(0xC000), _decoded(0xD000)
    settings.data_dir.mkdir(parents=True)
    with WriteAheadLog(settings.wal_path, fsync=False) as wal:  # acknowledged, never written: then the upgrade
        wal.append("traces", _old_format({"spans": old.spans, "assertions": old.assertions}))
        wal.append("traces", encode_entry({"spans": new.spans, "assertions": new.assertions}))
    with running(settings) as (url, app):
        wait_for(lambda: httpx.get(f"{url}/readyz").json()["wal_pending"] == 0, timeout=60)
        store = app.state.collector.store
        spans = store.query("SELECT trace_id, input_tokens, cost_usd, start_time FROM spans ORDER BY trace_id")
        assertions = store.query("SELECT count() AS n FROM assertions")[0]["n"]
        stats = httpx.get(f"{url}/api/stats", params={"window": 86400}).json()["groups"]
    expected = sorted(old.spans + new.spans, key=lambda r: r["trace_id"])
    assert [r["trace_id"] for r in spans] == [r["trace_id"] for r in expected]  # each once
    assert [r["input_tokens"] for r in spans] == [r["input_tokens"] for r in expected]
    assert [r["cost_usd"] for r in spans] == [r["cost_usd"] for r in expected]
    assert assertions == len(old.assertions) + len(new.assertions) > 0
    assert sum(g["calls"] for g in stats) == sum(r["sample_weight"] for r in expected)
