"""Hostile OTLP through the real collector, end to end: whatever a client sends is answered
without a 5xx, and whatever is acknowledged can be written (no row that passes decoding may make
ClickHouse refuse the batch: that would block the write-ahead log for good)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from server_harness import running, wait_for
from test_ingest import TRACE, _requests, _span, _wrap
from test_metrics import scrape

from llmpulse_collector.settings import Settings

pytestmark = [pytest.mark.collector, pytest.mark.slow]

JSON = {"content-type": "application/json"}
PROTOBUF = {"content-type": "application/x-protobuf"}


@pytest.fixture
def url(settings: Settings) -> Iterator[str]:
    with running(settings) as (u, _):
        yield u


def drained_cleanly(url: str) -> None:
    """Everything acknowledged reached ClickHouse, and no insert was refused as bad data."""

    def empty() -> bool:
        return httpx.get(f"{url}/readyz").json()["wal_pending"] == 0

    wait_for(empty, timeout=60)
    got = scrape(url)
    assert not got.get(("llmpulse_collector_storage_errors_total", (("kind", "error"),))), got


def test_generated_otlp_json_never_5xx_and_always_drains(url: str) -> None:
    codes: dict[int, int] = {}

    @given(doc=_requests)
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def post(doc: Any) -> None:
        r = httpx.post(f"{url}/v1/traces", content=json.dumps(doc).encode(), headers=JSON, timeout=30)
        codes[r.status_code] = codes.get(r.status_code, 0) + 1
        assert r.status_code < 500, r.text[:300]
        if r.status_code == 400:
            assert r.json()["message"].strip()

    post()
    assert codes.get(200), codes
    drained_cleanly(url)


@pytest.mark.parametrize(
    "tokens",
    [-5, 2**64, 2**63, float("nan"), float("inf"), -1e300, 1e300, "12", "lots", True, [1, 2]],
)
def test_odd_token_counts_and_weights(url: str, tokens: Any) -> None:
    attrs = [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "gen_ai.request.model", "value": {"stringValue": "m"}},
        {"key": "gen_ai.usage.input_tokens", "value": _any(tokens)},
        {"key": "gen_ai.usage.output_tokens", "value": _any(tokens)},
        {"key": "llmpulse.sample_weight", "value": _any(tokens)},
        {"key": "llmpulse.cost.usd", "value": _any(tokens)},
        {"key": "gen_ai.response.time_to_first_chunk", "value": _any(tokens)},
    ]
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "chat m",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000500000000",
        "attributes": attrs,
    }
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    body = json.dumps(doc, allow_nan=True).encode()
    r = httpx.post(f"{url}/v1/traces", content=body, headers=JSON)
    assert r.status_code in (200, 400), r.text
    drained_cleanly(url)


def _now(**fields: Any) -> Any:
    """A span of this test-suite's builder, started now (2023's default is past the 30-day retention)."""
    now = time.time_ns()
    return _span(start_time_unix_nano=now, end_time_unix_nano=now + 1_000_000, **fields)


def _any(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v if math.isfinite(v) else str(v)}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_any(x) for x in v]}}
    return {"stringValue": v}


def test_a_ten_megabyte_attribute_is_cut_and_stored(url: str) -> None:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    big = "z" * (10 << 20)
    body = _wrap(_now(name="big", attributes=[KeyValue(key="blob", value=AnyValue(string_value=big))]))
    r = httpx.post(f"{url}/v1/traces", content=body, headers=PROTOBUF, timeout=60)
    assert r.status_code == 200, r.text
    drained_cleanly(url)
    spans = httpx.get(f"{url}/api/traces/{TRACE}").json()["spans"]
    blob = spans[0]["attributes"]["blob"]
    assert len(blob) < 70_000
    assert "truncated" in blob


def test_invalid_utf8_and_wrong_id_lengths(url: str) -> None:
    good = _wrap(_now(name="NAME"))
    r = httpx.post(f"{url}/v1/traces", content=good.replace(b"NAME", b"N\xffME"), headers=PROTOBUF)
    assert r.status_code == 400
    short_id = _now(name="short-id", trace_id=b"\x01" * 8)
    mixed = _wrap(_now(name="ok"), short_id, _now(name="ok2", span_id=b"\x02" * 8))
    r = httpx.post(f"{url}/v1/traces", content=mixed, headers=PROTOBUF)
    assert r.status_code == 200
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    partial = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == 1
    assert "traceId" in partial.error_message or "trace_id" in partial.error_message
    drained_cleanly(url)
    names = sorted(s["name"] for s in httpx.get(f"{url}/api/traces/{TRACE}").json()["spans"])
    assert names == ["ok", "ok2"]  # the two valid spans stored, the bad one not
