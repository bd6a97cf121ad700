"""Prometheus ``/metrics``: exact, sample-weighted values for a known batch sent through the real
ingest path, the collector's own health, the series cap, ``promtool check metrics``, and a real
Prometheus server scraping the collector and answering PromQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from known_batch import Call, Key, calls, encode, expected_prometheus, key
from prometheus_client.parser import text_string_to_metric_families
from server_harness import free_port, running, wait_for

from llmpulse._otlp import ProtobufEncoder
from llmpulse._span import KIND_CLIENT, SpanRecord
from llmpulse_collector.settings import Settings

pytestmark = pytest.mark.collector

PROTOBUF_TYPE = "application/x-protobuf"
PROTOBUF = {"content-type": PROTOBUF_TYPE}


def scrape(url: str) -> dict[Key, float]:
    text = httpx.get(f"{url}/metrics").raise_for_status().text
    out: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[key(s.name, **s.labels)] = s.value
    return out


def post(url: str, batch: list[Call], trace_base: int = 0xA000) -> httpx.Response:
    return httpx.post(f"{url}/v1/traces", content=encode(batch, trace_base), headers=PROTOBUF).raise_for_status()


def test_known_batch_gives_exact_weighted_values(collector: str) -> None:
    batch = calls()
    post(collector, batch)
    got = scrape(collector)
    want = expected_prometheus(batch)
    llm_names = ("gen_ai_", "llmpulse_llm_", "llmpulse_tokens", "llmpulse_cost", "llmpulse_refusals", "llmpulse_assert")
    llm_got = {k: v for k, v in got.items() if k[0].startswith(llm_names)}
    # every expected sample is there with its value ...
    mismatched = {k: (v, llm_got.get(k)) for k, v in want.items() if llm_got.get(k) != pytest.approx(v, rel=1e-12)}
    assert not mismatched, list(mismatched.items())[:5]
    # ... and nothing else but zero-valued token types the batch never used (reasoning)
    extra = {k: v for k, v in llm_got.items() if k not in want}
    assert extra
    assert all(dict(k[1]).get("type") == "reasoning" and v == 0 for k, v in extra.items()), extra
    # the sampled spans really count tenfold: weighted calls exceed the number of spans
    total_calls = sum(v for k, v in got.items() if k[0] == "llmpulse_llm_calls_total")
    assert total_calls == sum(c.weight for c in batch) > len(batch)
    # user and session ids never become labels
    labels = {name for k in got for name, _ in k[1]}
    assert not labels & {"user_id", "user", "session_id", "session", "trace_id"}
    assert got[key("llmpulse_collector_spans_received_total", protocol="otlp_protobuf")] == len(batch)
    assert got[key("llmpulse_collector_spans_accepted_total", protocol="otlp_protobuf")] == len(batch)


def test_feedback_counts_and_value_summary(collector: str) -> None:
    trace = uuid.uuid4().hex
    for value in (1, 0, 1, 1):
        httpx.post(f"{collector}/v1/feedback", json={"trace_id": trace, "name": "thumbs_up", "value": value})
    httpx.post(f"{collector}/v1/feedback", json={"trace_id": trace, "name": "rating", "value": 4.5})
    got = scrape(collector)
    assert got[key("llmpulse_feedback_total", name="thumbs_up")] == 4
    assert got[key("llmpulse_feedback_value_count", name="thumbs_up")] == 4
    assert got[key("llmpulse_feedback_value_sum", name="thumbs_up")] == 3
    assert got[key("llmpulse_feedback_value_sum", name="rating")] == 4.5
    assert got[key("llmpulse_collector_feedback_accepted_total")] == 5


def test_health_counts_rejections_by_reason_and_protocol(collector: str) -> None:
    def send(body: bytes, content_type: str) -> int:
        return httpx.post(f"{collector}/v1/traces", content=body, headers={"content-type": content_type}).status_code

    assert send(b"x", "text/plain") == 415
    assert send(b"\xff\xff", "application/x-protobuf") == 400
    assert send(b"{", "application/json") == 400
    # one valid span and one with an end before its start: partial success
    now = time.time_ns()
    good = SpanRecord("chat", 1, 1, 0, KIND_CLIENT, now, {"gen_ai.operation.name": "chat"})
    good.end_ns = now + 1000
    bad = SpanRecord("chat", 2, 2, 0, KIND_CLIENT, now, {"gen_ai.operation.name": "chat"})
    bad.end_ns = now - 10_000_000_000
    assert send(ProtobufEncoder({"service.name": "bot"}, "llmpulse", "0.1.0").encode([good, bad]), PROTOBUF_TYPE) == 200
    got = scrape(collector)
    rejected = "llmpulse_collector_requests_rejected_total"
    assert got[key(rejected, protocol="otlp_protobuf", reason="unsupported_media_type")] == 1
    assert got[key(rejected, protocol="otlp_protobuf", reason="bad_request")] == 1
    assert got[key(rejected, protocol="otlp_json", reason="bad_request")] == 1
    assert got[key("llmpulse_collector_spans_received_total", protocol="otlp_protobuf")] == 2
    assert got[key("llmpulse_collector_spans_rejected_total", protocol="otlp_protobuf", reason="invalid")] == 1
    assert got[key("llmpulse_collector_spans_accepted_total", protocol="otlp_protobuf")] == 1
    # the writer's side, once it has drained the log
    rows = key("llmpulse_collector_storage_insert_rows_total", table="spans")
    got = wait_for(lambda: (g := scrape(collector)).get(rows) and g)
    assert got[rows] == 1
    assert got[key("llmpulse_collector_storage_insert_batches_total")] >= 1
    assert got[key("llmpulse_collector_storage_insert_duration_seconds_count")] >= 1
    for gauge in ("wal_bytes", "wal_max_bytes", "wal_pending_entries", "wal_oldest_unwritten_age_seconds"):
        assert key(f"llmpulse_collector_{gauge}") in got
    assert got[key("llmpulse_collector_wal_max_bytes")] == 1 << 30
    assert key("process_resident_memory_bytes") in got


def test_storage_errors_are_counted(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmpulse_collector.app import Collector
    from llmpulse_collector.storage import StorageUnavailable

    failures = {"left": 2}
    real_insert = Collector.insert

    def flaky(self: Collector, *args: Any, **kwargs: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise StorageUnavailable("connection refused (test)")
        real_insert(self, *args, **kwargs)

    # A wrapper that fails the first two inserts: a real storage outage cannot be staged on chDB.
    monkeypatch.setattr(Collector, "insert", flaky)
    with running(settings) as (url, _app):
        post(url, calls(3))
        got = wait_for(lambda: (g := scrape(url)).get(key("llmpulse_collector_storage_insert_batches_total")) and g)
    assert got[key("llmpulse_collector_storage_errors_total", kind="unavailable")] == 2
    assert got[key("llmpulse_collector_storage_insert_rows_total", table="spans")] == 3


def test_series_cap_folds_ten_thousand_models_into_other(settings: Settings) -> None:
    cap = 50
    models = [f"model-{i:05d}" for i in range(10_000)]
    batch = [
        Call("openai", m, "v1", 2.0 if i % 2 else 1.0, 0.5, 10, 3, 0.001, assertions=[("casual_tone", "pass")])
        for i, m in enumerate(models)
    ]
    with running(settings.model_copy(update={"metrics_series_cap": cap})) as (url, _app):
        for start in range(0, len(batch), 2000):
            post(url, batch[start : start + 2000], trace_base=0x10000 + start)
        got = scrape(url)
    calls_ok = {k: v for k, v in got.items() if k[0] == "llmpulse_llm_calls_total" and ("status", "ok") in k[1]}
    assert len(calls_ok) == cap
    other = {k: v for k, v in calls_ok.items() if ("model", "__other__") in k[1]}
    assert len(other) == 1
    ((other_key, folded_calls),) = other.items()
    assert all(value == "__other__" for name, value in other_key[1] if name not in ("status",))
    total = sum(c.weight for c in batch)
    assert sum(calls_ok.values()) == total  # totals stay exact
    histogram_counts = [v for k, v in got.items() if k[0] == "gen_ai_client_operation_duration_seconds_count"]
    assert len(histogram_counts) == cap
    assert sum(histogram_counts) == total
    assertion_series = {k for k in got if k[0] == "llmpulse_assertion_results_total" and ("result", "pass") in k[1]}
    assert len(assertion_series) == cap
    folded_spans = len(batch) - (cap - 1)
    assert got[key("llmpulse_collector_series_folded_total", family="llm")] == folded_spans
    assert got[key("llmpulse_collector_series_folded_total", family="assertions")] == folded_spans
    assert folded_calls == sum(c.weight for c in batch[cap - 1 :])


def test_output_passes_promtool_check_metrics(collector: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs Debian's prometheus package"
    post(collector, calls())
    httpx.post(f"{collector}/v1/feedback", json={"trace_id": uuid.uuid4().hex, "name": "thumbs_up", "value": 1})
    httpx.post(f"{collector}/v1/traces", content=b"x", headers={"content-type": "text/plain"})
    text = httpx.get(f"{collector}/metrics").text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""  # no lint findings either
    # OpenMetrics, when the scraper asks for it
    om = httpx.get(f"{collector}/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[Any]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: `make test` installs Debian's prometheus package"
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [{"job_name": "llmpulse", "static_configs": [{"targets": [target]}]}],
                }
            )
        )
        with (tmp_path / "prometheus.log").open("wb") as log:  # the child keeps its own descriptor
            processes.append(
                subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        return f"http://127.0.0.1:{port}"

    yield start
    for p in processes:
        p.terminate()
        p.wait(30)


def promql(prom: str, query: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{prom}/api/v1/query?query={urllib.parse.quote(query)}", timeout=10)
    r.raise_for_status()
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


def test_real_prometheus_scrapes_and_answers_the_refusal_ratio(collector: str, prometheus_server: Any) -> None:
    batch = calls()
    post(collector, batch)
    prom = prometheus_server(collector.removeprefix("http://"))
    query = "sum by (model) (llmpulse_refusals_total) / sum by (model) (llmpulse_llm_calls_total)"

    def answered() -> list[dict[str, Any]] | None:
        try:
            result = promql(prom, query)
        except httpx.HTTPError:
            return None
        return result or None

    result = wait_for(answered, timeout=60)
    got = {r["metric"]["model"]: float(r["value"][1]) for r in result}
    want = {}
    for _, model in {(c.provider, c.model) for c in batch}:
        of_model = [c for c in batch if c.model == model]
        refused = sum(c.weight for c in of_model if c.refusal)
        if refused:
            want[model] = refused / sum(c.weight for c in of_model)
    assert got == pytest.approx(want, rel=1e-12)
    up = promql(prom, 'up{job="llmpulse"}')
    assert [r["value"][1] for r in up] == ["1"]
