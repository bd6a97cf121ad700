"""End to end: the llmpulse SDK and third-party OTel exporters → the real collector over HTTP
→ write-ahead log → chDB → /api/stats and /api/traces."""

from __future__ import annotations

import contextlib
import gzip
import time
import uuid
from typing import Any

import httpx
import pytest
from server_harness import running, wait_for

import llmpulse
from llmpulse import check
from llmpulse_collector.settings import Settings

pytestmark = pytest.mark.collector


def openai_reply(text: str, model: str = "gpt-4o-mini-2024-07-18") -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:8]}",
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 0}},
    }


def test_sdk_spans_reach_stats_and_traces(collector: str) -> None:
    llmpulse.init(service="e2e-bot", endpoint=collector, environment="test", export_interval=0.1)
    prompt = llmpulse.Prompt("support", "Be casual.")

    @llmpulse.llm(provider="openai", model="gpt-4o-mini", prompt=prompt, assertions=[check.starts_lowercase()])
    def reply(text: str) -> dict[str, Any]:
        return openai_reply(text)

    @llmpulse.observe(name="handle")
    def handle(text: str) -> str | None:
        reply(text)
        return llmpulse.current_trace_id()

    traces = [handle(t) for t in ["sure thing", "Hello there", "I'm sorry, but I can't help with that.", "ok!"]]
    assert llmpulse.flush(10)

    def stats() -> Any:
        body = httpx.get(f"{collector}/api/stats", params={"window": 3600, "group_by": "service,model"}).json()
        groups = body["groups"]
        return groups if groups and groups[0]["calls"] == 4 else None

    (group,) = wait_for(stats)
    assert group["service"] == "e2e-bot"
    assert group["model"] == "gpt-4o-mini-2024-07-18"
    assert group["refusals"] == 1
    assert group["refusal_rate"] == pytest.approx(0.25)
    assert group["input_tokens"] == 400
    assert group["output_tokens"] == 80
    assert group["cost_usd"] > 0
    assert group["latency_s"]["p50"] >= 0
    assert group["assertions"]["starts_lowercase"]["pass"] == 2  # "sure thing", "ok!"
    assert group["assertions"]["starts_lowercase"]["fail"] == 2

    listing = httpx.get(f"{collector}/api/traces", params={"refusal": "true"}).json()
    assert [t["trace_id"] for t in listing["traces"]] == [traces[2]]
    detail = httpx.get(f"{collector}/api/traces/{traces[2]}").json()
    # The listing's start as a hint: the same trace, found by time.
    around = {"around": listing["traces"][0]["start"]}
    assert httpx.get(f"{collector}/api/traces/{traces[2]}", params=around).json() == detail
    names = sorted(s["name"] for s in detail["spans"])
    assert names == ["chat gpt-4o-mini", "handle"]
    llm_span = next(s for s in detail["spans"] if s["name"] == "chat gpt-4o-mini")
    assert llm_span["refusal"]
    assert llm_span["assertions"][0]["name"] == "starts_lowercase"
    assert llm_span["assertions"][0]["label"] == "fail"


def _groups_by_model(url: str, service: str, *, calls: int) -> list[dict[str, Any]]:
    """``service``'s last-hour stats by model, once they count ``calls`` calls."""

    def stats() -> Any:
        params = {"window": 3600, "group_by": "model", "service": service}
        groups = httpx.get(f"{url}/api/stats", params=params).json()["groups"]
        return groups if sum(g["calls"] for g in groups) == calls else None

    groups: list[dict[str, Any]] = wait_for(stats)
    return groups


def test_failed_calls_count_under_the_model_name_of_their_answered_siblings(collector: str) -> None:
    # OpenAI answers "gpt-4o-mini" as "gpt-4o-mini-2024-07-18"; a failed call has no answer.
    # One name for both, in the stats and the metrics, so the error ratio by model is 1 in 3.
    llmpulse.init(service="e2e-models", endpoint=collector, export_interval=0.1)

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def reply(text: str) -> dict[str, Any]:
        if text == "fail":
            raise TimeoutError("upstream timed out")
        return openai_reply(text)

    for text in ("hi", "fail", "hello"):
        with contextlib.suppress(TimeoutError):
            reply(text)
    assert llmpulse.flush(10)

    (group,) = _groups_by_model(collector, "e2e-models", calls=3)
    assert group["model"] == "gpt-4o-mini-2024-07-18"
    assert (group["calls"], group["errors"]) == (3, 1)
    metrics = httpx.get(f"{collector}/metrics").text
    lines = [
        line for line in metrics.splitlines() if line.startswith("llmpulse_llm_calls_total{") and "e2e-models" in line
    ]
    assert len(lines) == 2, lines  # ok and error, one model
    assert all('model="gpt-4o-mini-2024-07-18"' in line for line in lines)
    assert any('status="error"' in line and line.endswith(" 1.0") for line in lines)


def test_a_restarted_collector_names_failures_from_the_stored_answers(settings: Settings) -> None:
    # Answers stored before the (re)start name the failures that arrive before any new answer.
    from llmpulse_collector.rows import SPAN_COLUMNS
    from llmpulse_collector.storage import Store
    from llmpulse_collector.storage.migrations import migrate

    now = time.time_ns()
    answered = {
        "project": "default", "trace_id": uuid.uuid4().hex, "span_id": uuid.uuid4().hex[:16],
        "service": "restarted", "is_llm": 1, "operation": "chat", "provider": "openai",
        "request_model": "gpt-4o-mini", "response_model": "gpt-4o-mini-2024-07-18",
        "model": "gpt-4o-mini-2024-07-18", "start_time": now - 600 * 10**9, "end_time": now - 599 * 10**9,
    }  # fmt: skip
    with Store.connect(settings.storage_dsn, database=settings.database) as store:
        migrate(store)
        store.insert("spans", [answered], SPAN_COLUMNS, dedup_token="before-restart")
    with running(settings) as (url, _app):
        llmpulse.init(service="restarted", endpoint=url, export_interval=0.1)

        @llmpulse.llm(provider="openai", model="gpt-4o-mini")
        def reply() -> dict[str, Any]:
            raise TimeoutError("upstream timed out")

        with contextlib.suppress(TimeoutError):
            reply()
        assert llmpulse.flush(10)

        (group,) = _groups_by_model(url, "restarted", calls=2)
        assert (group["model"], group["calls"], group["errors"]) == ("gpt-4o-mini-2024-07-18", 2, 1)


def test_feedback_is_accepted_and_validated(collector: str) -> None:
    ok = httpx.post(f"{collector}/v1/feedback", json={"trace_id": "a" * 32, "name": "thumbs_up", "value": 1})
    assert ok.status_code == 200
    for bad, word in [
        ({"trace_id": "xyz", "name": "t", "value": 1}, "trace_id"),
        ({"name": "t", "value": 1}, "trace_id or response_id"),
        ({"trace_id": "a" * 32, "name": "", "value": 1}, "name"),
        ({"trace_id": "a" * 32, "name": "t", "value": "high"}, "value"),
    ]:
        r = httpx.post(f"{collector}/v1/feedback", json=bad)
        assert r.status_code == 400, r.text
        assert word in r.json()["error"]


def test_bad_payloads_get_clear_4xx(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 4096})
    with running(small) as (url, _):
        r = httpx.post(f"{url}/v1/traces", content=b"\x00garbage", headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 400
        r = httpx.post(f"{url}/v1/traces", content=b"{}", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = httpx.post(f"{url}/v1/traces", content=b"x" * 10_000, headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 413
        r = httpx.post(
            f"{url}/v1/traces", content=b'{"resourceSpans": 5}', headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400
        assert "resourceSpans" in r.text
        empty = gzip.compress(b"")
        r = httpx.post(
            f"{url}/v1/traces",
            content=empty,
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert r.status_code == 200


def test_query_parameters_are_validated(collector: str) -> None:
    r = httpx.get(f"{collector}/api/stats", params={"group_by": "model;DROP TABLE spans"})
    assert r.status_code == 400
    assert "group_by" in r.json()["error"]
    assert httpx.get(f"{collector}/api/stats", params={"window": 5}).status_code == 400
    assert httpx.get(f"{collector}/api/traces/not-a-trace").status_code == 400
    assert httpx.get(f"{collector}/api/traces/{'b' * 32}").status_code == 404
    for around in ("0", "-1", "soon", str(2**63)):
        r = httpx.get(f"{collector}/api/traces/{'b' * 32}", params={"around": around})
        assert r.status_code == 400, around
        assert "around" in r.json()["error"]
    r = httpx.get(f"{collector}/api/traces", params={"service": "x' OR 1=1 --"})
    assert r.status_code == 200
    assert r.json()["traces"] == []


def test_health_and_readiness(collector: str) -> None:
    assert httpx.get(f"{collector}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{collector}/readyz")
    assert ready.status_code == 200
    assert ready.json()["storage"] is True
    assert "/v1/traces" in httpx.get(f"{collector}/openapi.json").json()["paths"]


def test_storage_outage_fills_the_log_then_503_then_everything_drains(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ClickHouse down (a storage wrapper that fails; chDB cannot be taken down from inside
    this process): requests are acknowledged into the log up to its cap, then refused with
    503 + Retry-After; after recovery every acknowledged span is stored."""
    import threading

    from llmpulse._otlp import ProtobufEncoder
    from llmpulse._span import KIND_CLIENT, SpanRecord
    from llmpulse_collector import app as app_module
    from llmpulse_collector.storage import StorageUnavailable

    storage_up = threading.Event()
    real_insert = app_module.Collector.insert

    def flaky_insert(self: Any, *args: Any) -> None:
        if not storage_up.is_set():
            raise StorageUnavailable("simulated outage")
        real_insert(self, *args)

    monkeypatch.setattr(app_module.Collector, "insert", flaky_insert)
    encoder = ProtobufEncoder({"service.name": "outage"}, "test", "1")
    padding = "x" * 20_000  # ~20 KB a span: the 1 MiB log fills after a few dozen requests

    def body(trace_id: int) -> bytes:
        span = SpanRecord(
            "chat m",
            trace_id,
            1,
            0,
            KIND_CLIENT,
            time.time_ns(),
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "pad": padding},
        )
        span.end_ns = span.start_ns + 1000
        return encoder.encode([span])

    small = settings.model_copy(update={"wal_max_bytes": 1 << 20, "retry_after_s": 2})
    with running(small) as (url, _):
        acked: list[str] = []
        refused = None
        for i in range(1, 200):
            r = httpx.post(f"{url}/v1/traces", content=body(i), headers={"Content-Type": "application/x-protobuf"})
            if r.status_code == 200:
                acked.append(f"{i:032x}")
            else:
                refused = r
                break
        assert refused is not None, "the log never filled"
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "2"
        assert len(acked) > 10
        assert httpx.get(f"{url}/readyz").status_code == 503  # not ready while the log is full
        storage_up.set()

        def all_stored() -> bool:
            return all(httpx.get(f"{url}/api/traces/{t}").status_code == 200 for t in acked)

        wait_for(all_stored, timeout=60)
        assert httpx.get(f"{url}/readyz").status_code == 200


def test_spans_past_the_retention_get_a_partial_success_not_a_silent_loss(collector: str) -> None:
    now = time.time_ns()
    spans = [
        {"traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": name, "startTimeUnixNano": str(start),
         "endTimeUnixNano": str(start + 10**9)}
        for i, (name, start) in enumerate((("recent", now - 10**9), ("ancient", now - 31 * 86_400 * 10**9)))
    ]  # fmt: skip
    body = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]}
    response = httpx.post(f"{collector}/v1/traces", json=body)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "spans[1].startTimeUnixNano: started before the store's retention window" in partial["errorMessage"]
    assert wait_for(lambda: httpx.get(f"{collector}/api/traces/{1:032x}").status_code == 200)
    assert httpx.get(f"{collector}/api/traces/{2:032x}").status_code == 404
