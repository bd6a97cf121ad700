"""The LLM aggregates every exporter reads: one place that turns rows into weighted counts.

:class:`Aggregator` is fed the rows of each acknowledged request (``record_spans``,
``record_feedback``) and keeps cumulative, sample-weighted totals per label set:

- label sets come from an allow-list (:data:`LABELS`: service, environment, provider,
  model, operation, prompt, prompt_version), never user, session, trace or free-text values;
- every count is multiplied by the row's ``sample_weight`` (1 / the SDK's sample rate), so
  a 10% sample still yields correct rates; histogram buckets hold weighted counts too;
- each family of series has a cap on its distinct label sets (``series_cap``): once
  ``series_cap - 1`` label sets exist, new ones are folded into a single set whose open
  labels all read :data:`OTHER`, and :attr:`Aggregator.folded` counts the folded samples,
  so a client sending 10,000 model names costs ``series_cap`` series, with totals exact.

Totals are kept per project (the API key's project), so a scrape shows one project's series
only. The Prometheus collector reads :meth:`Aggregator.snapshot` at scrape time; the Datadog
exporter reads the same snapshot for its counters (sending deltas) and receives each
histogram observation through ``on_samples`` for its distributions. Both therefore see
the same label sets, the same cap and the same weights.

Thread-safe: one lock, taken once per request (not per span) and for snapshots.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DURATION_BUCKETS",
    "LABELS",
    "OTHER",
    "TOKEN_BUCKETS",
    "TOKEN_TYPES",
    "Aggregator",
    "Histogram",
    "LlmSeries",
    "Sample",
    "Snapshot",
]

# The allow-listed labels on every LLM metric, in this order in every key.
LABELS = ("service", "environment", "provider", "model", "operation", "prompt", "prompt_version")
OTHER = "__other__"
_OTHER_DIMS = (OTHER,) * len(LABELS)

# OTel GenAI semantic conventions' explicit bucket boundaries.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0,
    1048576.0, 4194304.0, 16777216.0, 67108864.0,
)  # fmt: skip

# llmpulse_tokens_total{type}: index into LlmSeries.tokens
TOKEN_TYPES = ("input", "output", "cache_read", "reasoning")
_TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens")

# Families, as named in the folded-samples counter.
FAMILIES = ("llm", "refusals", "assertions", "feedback")

Dims = tuple[str, ...]


class Histogram:
    """Weighted explicit-bucket histogram: per-bucket (not cumulative) counts, sum, count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0.0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0.0

    def observe(self, value: float, weight: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (Prometheus `le`).
        self.counts[bisect_left(self.bounds, value)] += weight
        self.sum += value * weight
        self.count += weight

    def copy(self) -> Histogram:
        h = Histogram(self.bounds)
        h.counts = self.counts.copy()
        h.sum = self.sum
        h.count = self.count
        return h

    def cumulative(self) -> list[tuple[float, float]]:
        """(upper bound, cumulative weighted count) pairs, the last bound ``inf``."""
        out = []
        running = 0.0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class LlmSeries:
    """Everything counted for one label set of LLM calls."""

    __slots__ = ("calls_error", "calls_ok", "cost_usd", "duration", "tokens", "tokens_input", "tokens_output", "ttfc")

    def __init__(self) -> None:
        self.calls_ok = 0.0
        self.calls_error = 0.0
        self.duration = Histogram(DURATION_BUCKETS)
        self.ttfc = Histogram(DURATION_BUCKETS)
        self.tokens_input = Histogram(TOKEN_BUCKETS)
        self.tokens_output = Histogram(TOKEN_BUCKETS)
        self.tokens = [0.0] * len(TOKEN_TYPES)
        self.cost_usd = 0.0

    def copy(self) -> LlmSeries:
        s = LlmSeries.__new__(LlmSeries)
        s.calls_ok = self.calls_ok
        s.calls_error = self.calls_error
        s.duration = self.duration.copy()
        s.ttfc = self.ttfc.copy()
        s.tokens_input = self.tokens_input.copy()
        s.tokens_output = self.tokens_output.copy()
        s.tokens = self.tokens.copy()
        s.cost_usd = self.cost_usd
        return s


@dataclass(frozen=True, slots=True)
class Sample:
    """One histogram observation, for exporters that send raw values (DogStatsD distributions).

    ``project`` is the project of the row; ``metric`` is ``duration``, ``ttfc``, ``tokens_input``, ``tokens_output`` or
    ``feedback_value``; ``dims`` the (folded) label values, in :data:`LABELS` order, or
    ``(name,)`` for feedback.
    """

    project: str
    metric: str
    dims: Dims
    value: float
    weight: float


@dataclass
class Snapshot:
    """A consistent copy of every cumulative total, for one scrape or one flush."""

    llm: dict[Dims, LlmSeries] = field(default_factory=dict)
    refusals: dict[tuple[Dims, str, str], float] = field(default_factory=dict)  # (dims, source, category)
    assertions: dict[tuple[Dims, str], list[float]] = field(default_factory=dict)  # (dims, name) -> [pass, fail, error]
    feedback: dict[str, list[float]] = field(default_factory=dict)  # name -> [count, sum]
    folded: dict[str, int] = field(default_factory=dict)  # family -> samples folded into __other__


_RESULTS = {"pass": 0, "fail": 1, "error": 2}


class _Capped(dict[Any, Any]):
    """A dict of label sets that admits at most ``cap - 1`` distinct keys plus one fold key."""

    __slots__ = ("cap", "fold_key")

    def __init__(self, cap: int, fold_key: Any) -> None:
        super().__init__()
        self.cap = cap
        self.fold_key = fold_key


class _Tables:
    """One project's cumulative aggregates."""

    __slots__ = ("assertions", "feedback", "folded", "llm", "refusals")

    def __init__(self, cap: int) -> None:
        self.llm = _Capped(cap, _OTHER_DIMS)
        self.refusals = _Capped(cap, (_OTHER_DIMS, OTHER, OTHER))
        self.assertions = _Capped(cap, (_OTHER_DIMS, OTHER))
        self.feedback = _Capped(cap, OTHER)
        self.folded = dict.fromkeys(FAMILIES, 0)


class Aggregator:
    """Cumulative weighted LLM aggregates per project, with a per-family series cap. See the module doc."""

    def __init__(self, series_cap: int = 2000, on_samples: Callable[[list[Sample]], None] | None = None) -> None:
        if series_cap < 2:
            raise ValueError(f"series_cap must be at least 2 (one real label set and {OTHER}), got {series_cap}")
        self.series_cap = series_cap
        self.on_samples = on_samples
        self._lock = threading.Lock()
        self._projects: dict[str, _Tables] = {}

    def _tables(self, project: str) -> _Tables:
        tables = self._projects.get(project)
        if tables is None:
            tables = self._projects[project] = _Tables(self.series_cap)
        return tables

    # -- recording ---------------------------------------------------------------------------

    def record_spans(
        self, project: str, spans: Iterable[dict[str, Any]], assertions: Iterable[dict[str, Any]] = ()
    ) -> None:
        """Count the LLM spans and assertion results of one acknowledged request of ``project``."""
        samples: list[Sample] | None = [] if self.on_samples is not None else None
        with self._lock:
            tables = self._tables(project)
            by_span: dict[str, Dims] = {}
            for row in spans:
                if row["is_llm"]:
                    by_span[row["span_id"]] = self._record_llm(tables, project, row, samples)
            for row in assertions:
                dims = by_span.get(row["span_id"])
                if dims is None:  # not from an LLM span of this request: label it from its own columns
                    dims = _dims(row, row.get("operation", ""))
                self._record_assertion(tables, dims, row)
        if samples:
            self._emit(samples)

    def record_feedback(self, project: str, rows: Iterable[dict[str, Any]]) -> None:
        """Count feedback posts: one per row (feedback is never sampled), and the value's sum."""
        samples: list[Sample] | None = [] if self.on_samples is not None else None
        with self._lock:
            tables = self._tables(project)
            for row in rows:
                key = self._admit(tables, tables.feedback, row["name"], "feedback")
                entry = tables.feedback.get(key)
                if entry is None:
                    entry = tables.feedback[key] = [0.0, 0.0]
                entry[0] += 1.0
                entry[1] += row["value"]
                if samples is not None:
                    samples.append(Sample(project, "feedback_value", (key,), row["value"], 1.0))
        if samples:
            self._emit(samples)

    def _emit(self, samples: list[Sample]) -> None:
        assert self.on_samples is not None
        self.on_samples(samples)

    @staticmethod
    def _admit(tables: _Tables, table: _Capped, key: Any, family: str) -> Any:
        if key in table:
            return key
        real = len(table) - (table.fold_key in table)
        if real < table.cap - 1:
            return key
        tables.folded[family] += 1
        return table.fold_key

    def _record_llm(self, tables: _Tables, project: str, row: dict[str, Any], samples: list[Sample] | None) -> Dims:
        w = row["sample_weight"]
        dims: Dims = self._admit(tables, tables.llm, _dims(row, row["operation"]), "llm")
        series = tables.llm.get(dims)
        if series is None:
            series = tables.llm[dims] = LlmSeries()
        if row["status_code"] == 2:
            series.calls_error += w
        else:
            series.calls_ok += w
        duration = row["duration_s"]
        series.duration.observe(duration, w)
        ttfc = row["ttft_s"]
        if ttfc is not None:
            series.ttfc.observe(ttfc, w)
        tin = row["input_tokens"]
        tout = row["output_tokens"]
        if tin or tout:  # usage reported (a failed call has none)
            series.tokens_input.observe(tin, w)
            series.tokens_output.observe(tout, w)
        tokens = series.tokens
        for i, column in enumerate(_TOKEN_COLUMNS):
            n = row[column]
            if n:
                tokens[i] += n * w
        cost = row["cost_usd"]
        if cost is not None:
            series.cost_usd += cost * w
        if row["refusal"]:
            key = self._admit(
                tables, tables.refusals, (dims, row["refusal_source"], row["refusal_category"]), "refusals"
            )
            tables.refusals[key] = tables.refusals.get(key, 0.0) + w
        if samples is not None:
            samples.append(Sample(project, "duration", dims, duration, w))
            if ttfc is not None:
                samples.append(Sample(project, "ttfc", dims, ttfc, w))
            if tin or tout:
                samples.append(Sample(project, "tokens_input", dims, float(tin), w))
                samples.append(Sample(project, "tokens_output", dims, float(tout), w))
        return dims

    def _record_assertion(self, tables: _Tables, dims: Dims, row: dict[str, Any]) -> None:
        key = self._admit(tables, tables.assertions, (dims, row["name"]), "assertions")
        counts = tables.assertions.get(key)
        if counts is None:
            counts = tables.assertions[key] = [0.0, 0.0, 0.0]
        counts[_RESULTS[row["label"]]] += row["sample_weight"]

    # -- reading -----------------------------------------------------------------------------

    def projects(self) -> list[str]:
        with self._lock:
            return list(self._projects)

    def snapshot(self, project: str) -> Snapshot:
        """A copy of ``project``'s totals (empty for a project with no data)."""
        with self._lock:
            t = self._projects.get(project)
            if t is None:
                return Snapshot(folded=dict.fromkeys(FAMILIES, 0))
            return Snapshot(
                llm={k: v.copy() for k, v in t.llm.items()},
                refusals=dict(t.refusals),
                assertions={k: v.copy() for k, v in t.assertions.items()},
                feedback={k: v.copy() for k, v in t.feedback.items()},
                folded=dict(t.folded),
            )


def _dims(row: dict[str, Any], operation: str) -> Dims:
    return (
        row["service"],
        row["environment"],
        row["provider"],
        row["model"],
        operation,
        row["prompt_name"],
        row["prompt_version"],
    )
