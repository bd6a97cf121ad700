"""Datadog over DogStatsD: the known batch sent through the real ingest path arrives at a real UDP
peer on 127.0.0.1 with exact counts, weighted distributions (sample rates) and the right tags;
the series cap and downsampling keep counts exact; an unreachable agent is counted, never felt by
ingest; shutdown flushes."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from datadog.dogstatsd.base import DogStatsd
from dogstatsd_peer import DogStatsdPeer, Metric
from known_batch import ENVIRONMENT, SERVICE, Call, calls, encode
from server_harness import running, wait_for
from test_metrics import scrape

from llmpulse._cost import PriceBook
from llmpulse._refusal import RefusalDetector
from llmpulse_collector.export.aggregate import Aggregator
from llmpulse_collector.export.datadog import DatadogExporter, datadog_configured
from llmpulse_collector.export.health import Health
from llmpulse_collector.ingest import Limits
from llmpulse_collector.ingest.otlp import decode_traces
from llmpulse_collector.settings import Settings

pytestmark = pytest.mark.collector

PROTOBUF = {"content-type": "application/x-protobuf"}


@pytest.fixture
def peer() -> Iterator[DogStatsdPeer]:
    p = DogStatsdPeer()
    yield p
    p.close()
    assert not p.errors, p.errors[:3]  # every datagram parsed


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"datadog_flush_interval": 0.2, "datadog_tags": "team:ml"})


def dd_tags(c: Call) -> frozenset[str]:
    return frozenset(
        {
            "project:default",
            f"service:{SERVICE}",
            f"env:{ENVIRONMENT}",
            f"provider:{c.provider}",
            f"model:{c.model}",
            "operation:chat",
            "prompt:support-reply",
            f"prompt_version:{c.version}",
            "team:ml",
        }
    )


def expected_counts(batch: list[Call]) -> dict[tuple[str, frozenset[str]], float]:
    want: dict[tuple[str, frozenset[str]], float] = defaultdict(float)
    for c in batch:
        tags = dd_tags(c)
        w = c.weight
        want[("llmpulse.llm.calls", tags | {"status:error" if c.error else "status:ok"})] += w
        for kind, n in (("input", c.input_tokens), ("output", c.output_tokens), ("cache_read", c.cache_read)):
            if n:
                want[("llmpulse.tokens", tags | {f"type:{kind}"})] += n * w
        if c.cost:
            want[("llmpulse.cost.usd", tags)] += c.cost * w
        if c.refusal:
            extra = {f"source:{c.refusal}"} | ({f"category:{c.category}"} if c.category else set())
            want[("llmpulse.refusals", tags | extra)] += w
        for name, label in c.assertions:
            want[("llmpulse.assertion.results", tags | {f"assertion:{name}", f"result:{label}"})] += w
    return dict(want)


def distributions(metrics: list[Metric], name: str) -> dict[frozenset[str], Counter[tuple[float, float]]]:
    """(value, count it stands for) per tag set, as an agent would weight each value."""
    out: dict[frozenset[str], Counter[tuple[float, float]]] = defaultdict(Counter)
    for m in metrics:
        if m.name == name:
            assert m.type == "d", m
            out[frozenset(m.tags)][(m.value, round(1 / m.rate, 9))] += 1
    return dict(out)


def test_datadog_is_off_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not datadog_configured({})
    assert datadog_configured({"DD_AGENT_HOST": "agent"})
    assert datadog_configured({"DD_DOGSTATSD_URL": "unix:///var/run/datadog/dsd.socket"})
    monkeypatch.delenv("DD_AGENT_HOST", raising=False)
    assert DatadogExporter.from_environment(Aggregator(), Health()) is None


def test_known_batch_reaches_dogstatsd_exactly(
    settings: Settings, peer: DogStatsdPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DD_AGENT_HOST", "127.0.0.1")
    monkeypatch.setenv("DD_DOGSTATSD_PORT", str(peer.port))
    monkeypatch.setenv("DD_ENV", "staging")
    monkeypatch.setenv("DD_SERVICE", "llmpulse-collector")
    monkeypatch.setenv("DD_VERSION", "1.2.3")
    batch = calls()
    want = expected_counts(batch)
    total_calls = sum(c.weight for c in batch)
    with running(settings) as (url, _app):
        httpx.post(f"{url}/v1/traces", content=encode(batch), headers=PROTOBUF).raise_for_status()

        def calls_sent() -> float:
            return sum(v for (name, _), v in peer.counts().items() if name == "llmpulse.llm.calls")

        peer.wait(lambda: calls_sent() >= total_calls)
    metrics = peer.snapshot()
    got = {k: v for k, v in peer.counts("llmpulse.").items() if not k[0].startswith("llmpulse.collector.")}
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9), k
    # distributions: each value once, standing for its span's sample weight
    durations = distributions(metrics, "gen_ai.client.operation.duration")
    want_durations: dict[frozenset[str], Counter[tuple[float, float]]] = defaultdict(Counter)
    want_ttfc: dict[frozenset[str], Counter[tuple[float, float]]] = defaultdict(Counter)
    want_tokens: dict[frozenset[str], Counter[tuple[float, float]]] = defaultdict(Counter)
    for c in batch:
        want_durations[dd_tags(c)][(c.duration, c.weight)] += 1
        if c.ttft is not None:
            want_ttfc[dd_tags(c)][(c.ttft, c.weight)] += 1
        if not c.error:
            want_tokens[dd_tags(c) | {"gen_ai_token_type:input"}][(c.input_tokens, c.weight)] += 1
            want_tokens[dd_tags(c) | {"gen_ai_token_type:output"}][(c.output_tokens, c.weight)] += 1
    assert durations == want_durations
    assert distributions(metrics, "gen_ai.client.operation.time_to_first_chunk") == want_ttfc
    assert distributions(metrics, "gen_ai.client.token.usage") == want_tokens
    # user and session ids never become tags; the collector's DD_* identity stays off LLM metrics
    for m in metrics:
        names = {t.split(":", 1)[0] for t in m.tags}
        assert not names & {"user_id", "user", "session_id", "session", "trace_id"}, m
        if m.name.startswith("llmpulse.collector."):
            assert {"service:llmpulse-collector", "env:staging", "version:1.2.3", "team:ml"} <= set(m.tags), m
        elif not m.name.startswith("datadog."):
            assert "service:llmpulse-collector" not in m.tags, m
            assert "env:staging" not in m.tags, m
    health = peer.counts("llmpulse.collector.")
    received = [v for (name, tags), v in health.items() if name == "llmpulse.collector.spans.received"]
    assert received == [len(batch)]


def test_shutdown_flushes_what_is_pending(
    settings: Settings, peer: DogStatsdPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DD_AGENT_HOST", "127.0.0.1")
    monkeypatch.setenv("DD_DOGSTATSD_PORT", str(peer.port))
    batch = calls(12)
    with running(settings.model_copy(update={"datadog_flush_interval": 3600.0})) as (url, _app):
        httpx.post(f"{url}/v1/traces", content=encode(batch), headers=PROTOBUF).raise_for_status()
        assert not [m for m in peer.snapshot() if m.name.startswith("llmpulse.")]
    peer.wait(lambda: any(m.name == "llmpulse.llm.calls" for m in peer.snapshot()), timeout=10)
    sent = sum(v for (name, _), v in peer.counts().items() if name == "llmpulse.llm.calls")
    assert sent == sum(c.weight for c in batch)


def test_unreachable_agent_is_counted_and_ingest_is_unaffected(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DD_DOGSTATSD_URL", f"unix://{tmp_path / 'no-agent.sock'}")
    with running(settings.model_copy(update={"datadog_flush_interval": 0.1})) as (url, _app):
        for i in range(3):
            r = httpx.post(f"{url}/v1/traces", content=encode(calls(10), trace_base=0x1000 * (i + 1)), headers=PROTOBUF)
            assert r.status_code == 200
        errors = ("llmpulse_collector_exporter_errors_total", (("exporter", "datadog"),))
        got = wait_for(lambda: (g := scrape(url)).get(errors) and g)
        assert got[("llmpulse_collector_spans_accepted_total", (("protocol", "otlp_protobuf"),))] == 30
        weighted = 3 * sum(c.weight for c in calls(10))
        wait_for(lambda: sum(g["calls"] for g in httpx.get(f"{url}/api/stats").json()["groups"]) == weighted)


def test_downsampling_past_max_samples_keeps_the_count_exact(peer: DogStatsdPeer) -> None:
    health = Health()
    aggregator = Aggregator()
    statsd = DogStatsd(host="127.0.0.1", port=peer.port, disable_buffering=False, origin_detection_enabled=False)
    exporter = DatadogExporter(aggregator, health, statsd, max_samples=5)
    aggregator.on_samples = exporter.add_samples
    batch = [Call("openai", "gpt-4o", "v1", 1.0 + (i % 3), 0.1 * (i + 1), 10, 5, 0.0) for i in range(100)]
    result = decode_traces(
        encode(batch),
        content_type="application/x-protobuf",
        content_encoding=None,
        project="p",
        limits=Limits(),
        prices=PriceBook(),
        refusals=RefusalDetector(),
    )
    aggregator.record_spans("p", result.spans, result.assertions)
    assert exporter.flush()
    exporter.stop()
    peer.wait(lambda: len([m for m in peer.snapshot() if m.name == "gen_ai.client.operation.duration"]) >= 5)
    sent = [m for m in peer.snapshot() if m.name == "gen_ai.client.operation.duration"]
    assert len(sent) == 5
    assert sum(1 / m.rate for m in sent) == pytest.approx(sum(c.weight for c in batch), rel=1e-9)
    assert {round(m.value, 6) for m in sent} <= {round(c.duration, 6) for c in batch}  # real values, kept whole
    # 100 observations each of duration, input and output tokens; 5 of each sent as themselves
    assert health.value("samples_dropped", "datadog", "downsampled") == 3 * 95
