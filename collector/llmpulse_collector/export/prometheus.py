"""Prometheus exposition: one custom collector on an injected registry, read at scrape time.

:func:`build_registry` returns a fresh ``CollectorRegistry`` (never the global one, so
tests and several apps in one process stay apart), one per scrape for the scraper's
project, holding :class:`LlmCollector`, which turns that project's
:class:`~.aggregate.Aggregator` snapshot and the collector's
:class:`~.health.Health` into metric families, plus the process and platform collectors.
Names follow the OTel GenAI semantic conventions where one exists
(``gen_ai_client_operation_duration_seconds``: the OTel-to-Prometheus mapping of
``gen_ai.client.operation.duration``), ``llmpulse_*`` otherwise; the README's metrics
table is the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from .aggregate import LABELS, TOKEN_TYPES, Aggregator, Histogram
from .health import COUNTERS, INSERT_BUCKETS, Health

__all__ = ["LlmCollector", "WalGauges", "build_registry", "render"]


@dataclass(frozen=True)
class WalGauges:
    """The write-ahead log's state at scrape time."""

    bytes_used: int
    max_bytes: int
    pending_entries: int
    oldest_age_s: float


class LlmCollector(Collector):
    """Yields every llmpulse metric family from the current aggregates (see the README table)."""

    def __init__(
        self,
        aggregator: Aggregator,
        health: Health,
        wal: Callable[[], WalGauges] | None = None,
        version: str = "",
        project: str = "default",
    ) -> None:
        self._aggregator = aggregator
        self._project = project
        self._health = health
        self._wal = wal
        self._version = version

    def collect(self) -> Iterator[Metric]:
        yield from self._llm()
        yield from self._collector_health()

    def _llm(self) -> Iterator[Metric]:
        snap = self._aggregator.snapshot(self._project)
        labels = list(LABELS)
        duration = HistogramMetricFamily(
            "gen_ai_client_operation_duration_seconds", "GenAI operation duration (OTel semconv).", labels=labels
        )
        ttfc = HistogramMetricFamily(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Time to the first chunk of a streamed response (OTel semconv; streams only).",
            labels=labels,
        )
        usage = HistogramMetricFamily(
            "gen_ai_client_token_usage",
            "Input and output tokens per call (OTel semconv gen_ai.client.token.usage).",
            labels=[*labels, "gen_ai_token_type"],
        )
        calls = CounterMetricFamily(
            "llmpulse_llm_calls", "LLM calls, sample-weighted, by outcome.", labels=[*labels, "status"]
        )
        tokens = CounterMetricFamily("llmpulse_tokens", "Tokens, sample-weighted, by type.", labels=[*labels, "type"])
        cost = CounterMetricFamily("llmpulse_cost_usd", "Estimated cost in US dollars, sample-weighted.", labels=labels)
        for dims, s in snap.llm.items():
            key = list(dims)
            _add_histogram(duration, key, s.duration)
            if s.ttfc.count:
                _add_histogram(ttfc, key, s.ttfc)
            if s.tokens_input.count:
                _add_histogram(usage, [*key, "input"], s.tokens_input)
                _add_histogram(usage, [*key, "output"], s.tokens_output)
            calls.add_metric([*key, "ok"], s.calls_ok)
            calls.add_metric([*key, "error"], s.calls_error)
            for kind, n in zip(TOKEN_TYPES, s.tokens, strict=True):
                tokens.add_metric([*key, kind], n)
            cost.add_metric(key, s.cost_usd)
        refusals = CounterMetricFamily(
            "llmpulse_refusals",
            "Refused LLM calls, sample-weighted; source is provider or heuristic.",
            labels=[*labels, "source", "category"],
        )
        for (dims, source, category), n in snap.refusals.items():
            refusals.add_metric([*dims, source, category], n)
        assertions = CounterMetricFamily(
            "llmpulse_assertion_results",
            "Assertion outcomes on LLM outputs, sample-weighted.",
            labels=[*labels, "assertion", "result"],
        )
        for (dims, name), (passed, failed, errored) in snap.assertions.items():
            assertions.add_metric([*dims, name, "pass"], passed)
            assertions.add_metric([*dims, name, "fail"], failed)
            assertions.add_metric([*dims, name, "error"], errored)
        feedback = CounterMetricFamily("llmpulse_feedback", "Feedback posts, by name.", labels=["name"])
        feedback_value = SummaryMetricFamily(
            "llmpulse_feedback_value", "Feedback values (sum / count is the mean), by name.", labels=["name"]
        )
        for name, (count, total) in snap.feedback.items():
            feedback.add_metric([name], count)
            feedback_value.add_metric([name], count_value=int(count), sum_value=total)
        folded = CounterMetricFamily(
            "llmpulse_collector_series_folded",
            "Samples whose label set was over the series cap and was counted under __other__.",
            labels=["family"],
        )
        for family, n in snap.folded.items():
            folded.add_metric([family], n)
        yield from (duration, ttfc, usage, calls, tokens, cost, refusals, assertions, feedback, feedback_value, folded)

    def _collector_health(self) -> Iterator[Metric]:
        snap = self._health.snapshot()
        for name, (label_names, doc) in COUNTERS.items():
            family = CounterMetricFamily(f"llmpulse_collector_{name}", doc, labels=list(label_names))
            for values, n in snap.counters[name].items():
                family.add_metric(list(values), n)
            yield family
        latency = HistogramMetricFamily(
            "llmpulse_collector_storage_insert_duration_seconds",
            "Time to insert one write-ahead-log batch into ClickHouse.",
        )
        running = 0.0
        buckets = []
        for bound, n in zip((*INSERT_BUCKETS, float("inf")), snap.insert_counts, strict=True):
            running += n
            buckets.append((_le(bound), running))
        latency.add_metric([], buckets, snap.insert_sum)
        yield latency
        if self._wal is not None:
            wal = self._wal()
            yield GaugeMetricFamily(
                "llmpulse_collector_wal_bytes", "Bytes held by the write-ahead log.", value=wal.bytes_used
            )
            yield GaugeMetricFamily(
                "llmpulse_collector_wal_max_bytes",
                "The write-ahead log's cap; at it ingest answers 503.",
                value=wal.max_bytes,
            )
            yield GaugeMetricFamily(
                "llmpulse_collector_wal_pending_entries",
                "Acknowledged requests not yet written to ClickHouse.",
                value=wal.pending_entries,
            )
            yield GaugeMetricFamily(
                "llmpulse_collector_wal_oldest_unwritten_age_seconds",
                "Age of the oldest acknowledged request not yet in ClickHouse (0 when none).",
                value=wal.oldest_age_s,
            )
        info = InfoMetricFamily("llmpulse_collector_build", "The collector's version.")
        info.add_metric([], {"version": self._version})
        yield info


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _add_histogram(family: HistogramMetricFamily, labels: list[str], h: Histogram) -> None:
    family.add_metric(labels, [(_le(b), n) for b, n in h.cumulative()], h.sum)


def build_registry(
    aggregator: Aggregator,
    health: Health,
    wal: Callable[[], WalGauges] | None = None,
    *,
    project: str = "default",
    version: str = "",
    process: bool = True,
) -> CollectorRegistry:
    """A new registry with ``project``'s LLM metrics, the collector's health (and the process and
    platform metrics unless ``process=False``). Cheap: build one per scrape, for the scraper's project."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LlmCollector(aggregator, health, wal, version, project))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The exposition body and its content type, OpenMetrics when the scraper asks for it."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def metric_names(registry: CollectorRegistry) -> Iterable[str]:
    """Every sample name the registry currently exposes (for tests and dashboard checks)."""
    for family in registry.collect():
        for sample in family.samples:
            yield sample.name
