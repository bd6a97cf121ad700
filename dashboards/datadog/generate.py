"""Build llmpulse's Datadog dashboard and monitors and write them as JSON.

- ``llm-overview.json``: the Grafana "LLM overview" on the DogStatsD names the collector sends
  (``llmpulse.llm.calls``, ``gen_ai.client.operation.duration``, ...), with template variables
  service, env, model, prompt and prompt_version. Body of ``POST /api/v1/dashboard``.
- ``monitors.json``: a list of monitor definitions, each the body of ``POST /api/v1/monitor``:
  refusal-rate, error-rate and assertion-failure spikes (each with a minimum-traffic guard),
  a p95 latency regression, and the collector rejecting spans, falling behind or filling its
  write-ahead log. Every message links its runbook section in ``docs/runbooks.md``.

Both assume no ``LLMPULSE_DATADOG_PREFIX`` (with one, every name starts with the prefix).
``python dashboards/datadog/generate.py`` rewrites the files; ``--check`` exits 1 when they
differ from what this script builds; ``--validate`` also deserializes them with
``datadog-api-client`` (what ``tests/dashboards/test_datadog.py`` does).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from committed import sync  # noqa: E402  (dashboards/committed.py, shared by both generators)

GRID_WIDTH = 12
"""Datadog's ordered-layout grid is 12 columns wide."""

RUNBOOKS = "docs/runbooks.md"
TEMPLATE_VARIABLES = ("service", "env", "model", "prompt", "prompt_version")
SCOPE = "{" + ",".join(f"${name}" for name in TEMPLATE_VARIABLES) + "}"
"""Every LLM metric query is scoped by all the template variables (``*`` when unset)."""

CALLS = "llmpulse.llm.calls"
REFUSALS = "llmpulse.refusals"
ASSERTIONS = "llmpulse.assertion.results"
TOKENS = "llmpulse.tokens"
COST = "llmpulse.cost.usd"
DURATION = "gen_ai.client.operation.duration"
TTFC = "gen_ai.client.operation.time_to_first_chunk"
TOKEN_USAGE = "gen_ai.client.token.usage"

Json = dict[str, Any]

# --- queries -------------------------------------------------------------------------------


def metric(
    agg: str, name: str, *, scope: str = SCOPE, tags: tuple[str, ...] = (), by: str = "", modifier: str = ""
) -> str:
    """``agg:name{scope,tags} by {by}.modifier`` -- one Datadog metric query."""
    inner = scope[1:-1]
    if inner == "*" and tags:
        inner = ""  # {*} means every tag value: with tags, the tags alone are the scope
    full_scope = "{" + ",".join(part for part in (inner, *tags) if part) + "}"
    group = f" by {{{by}}}" if by else ""
    return f"{agg}:{name}{full_scope}{group}{modifier}"


def count(name: str, *tags: str, by: str = "", scope: str = SCOPE) -> str:
    return metric("sum", name, scope=scope, tags=tags, by=by, modifier=".as_count()")


def per_second(name: str, *tags: str, by: str = "", scope: str = SCOPE) -> str:
    return metric("sum", name, scope=scope, tags=tags, by=by, modifier=".as_rate()")


def _query(name: str, query: str, aggregator: str | None = None) -> Json:
    q: Json = {"data_source": "metrics", "name": name, "query": query}
    if aggregator:
        q["aggregator"] = aggregator
    return q


def _unit(unit: str) -> Json:
    return {"unit": {"type": "canonical_unit", "unit_name": unit}}


def _formula(formula: str, alias: str = "", unit: str = "") -> Json:
    f: Json = {"formula": formula}
    if alias:
        f["alias"] = alias
    if unit:
        f["number_format"] = _unit(unit)
    return f


# --- widgets -------------------------------------------------------------------------------


def timeseries(
    title: str,
    queries: list[Json],
    formulas: list[Json],
    *,
    description: str = "",
    display: str = "line",
    y_min: str = "0",
) -> Json:
    return {
        "type": "timeseries",
        "title": title,
        "title_align": "left",
        "title_size": "16",
        "description": description,
        "show_legend": True,
        "legend_layout": "auto",
        "legend_columns": ["avg", "min", "max", "value"],
        "yaxis": {"include_zero": True, "min": y_min, "scale": "linear"},
        "requests": [
            {
                "response_format": "timeseries",
                "queries": queries,
                "formulas": formulas,
                "display_type": display,
                "style": {"palette": "dog_classic", "line_type": "solid", "line_width": "normal"},
            }
        ],
    }


def query_value(title: str, queries: list[Json], formula: Json, *, description: str = "", precision: int = 2) -> Json:
    return {
        "type": "query_value",
        "title": title,
        "title_align": "left",
        "title_size": "16",
        "description": description,
        "autoscale": True,
        "precision": precision,
        "requests": [{"response_format": "scalar", "queries": queries, "formulas": [formula]}],
    }


def query_table(title: str, queries: list[Json], formulas: list[Json], *, description: str = "") -> Json:
    return {
        "type": "query_table",
        "title": title,
        "title_align": "left",
        "title_size": "16",
        "description": description,
        "has_search_bar": "auto",
        "requests": [{"response_format": "scalar", "queries": queries, "formulas": formulas}],
    }


class Group:
    """A group widget whose children are laid out left to right on the 12-column grid."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.widgets: list[Json] = []
        self._x = 0
        self._y = 0
        self._line_height = 0

    def add(self, definition: Json, *, w: int, h: int) -> Group:
        if not 0 < w <= GRID_WIDTH:
            raise ValueError(f"widget width {w} is not within 1..{GRID_WIDTH}")
        if self._x + w > GRID_WIDTH:
            self._y += self._line_height
            self._x = 0
            self._line_height = 0
        self.widgets.append({"definition": definition, "layout": {"x": self._x, "y": self._y, "width": w, "height": h}})
        self._x += w
        self._line_height = max(self._line_height, h)
        return self

    @property
    def height(self) -> int:
        return self._y + self._line_height

    def widget(self, y: int) -> Json:
        return {
            "definition": {
                "type": "group",
                "title": self.title,
                "title_align": "left",
                "show_title": True,
                "layout_type": "ordered",
                "background_color": "vivid_blue",
                "widgets": self.widgets,
            },
            # a group's height counts its title bar (one row)
            "layout": {"x": 0, "y": y, "width": GRID_WIDTH, "height": self.height + 1},
        }


# --- the dashboard -------------------------------------------------------------------------

PERCENT = "percent"


def _ratio(title: str, numerator: str, denominator: str, description: str) -> Json:
    """A percentage over time: ``100 * numerator / denominator``, both count queries with the same grouping."""
    return timeseries(
        title,
        [_query("num", numerator), _query("den", denominator)],
        [_formula("100 * num / den", "%", PERCENT)],
        description=description,
    )


def _latency(
    title: str, name: str, by: str, description: str, quantiles: tuple[str, ...] = ("p50", "p95", "p99")
) -> Json:
    return timeseries(
        title,
        [_query(q, metric(q, name, by=by)) for q in quantiles],
        [_formula(q, q, "second") for q in quantiles],
        description=description,
    )


def summary() -> Group:
    g = Group("Summary (over the time frame)")
    note = "Over the whole time frame, for the selected services, envs, models and prompt versions."
    g.add(
        query_value("Calls / s", [_query("calls", per_second(CALLS), "avg")], _formula("calls"), description=note),
        w=2,
        h=2,
    )
    g.add(
        query_value(
            "Error rate",
            [_query("errors", count(CALLS, "status:error"), "sum"), _query("calls", count(CALLS), "sum")],
            _formula("100 * errors / calls", unit=PERCENT),
            description=note,
        ),
        w=2,
        h=2,
    )
    g.add(
        query_value(
            "Refusal rate",
            [_query("refusals", count(REFUSALS), "sum"), _query("calls", count(CALLS), "sum")],
            _formula("100 * refusals / calls", unit=PERCENT),
            description=note,
        ),
        w=2,
        h=2,
    )
    g.add(
        query_value(
            "Assertion pass rate",
            [_query("passed", count(ASSERTIONS, "result:pass"), "sum"), _query("results", count(ASSERTIONS), "sum")],
            _formula("100 * passed / results", unit=PERCENT),
            description=note + " All assertions.",
        ),
        w=2,
        h=2,
    )
    g.add(
        query_value(
            "p95 latency",
            [_query("p95", metric("p95", DURATION), "percentile")],
            _formula("p95", unit="second"),
            description=note + " Needs percentiles enabled on the distribution.",
        ),
        w=2,
        h=2,
    )
    g.add(
        query_value(
            "Cost / hour",
            [_query("cost", per_second(COST), "avg")],
            _formula("cost * 3600", unit="dollar"),
            description=note + " Estimated; unpriced models add nothing.",
            precision=3,
        ),
        w=2,
        h=2,
    )
    return g


def traffic() -> Group:
    g = Group("Traffic and quality")
    g.add(
        timeseries(
            "Calls / s by model and status",
            [_query("calls", per_second(CALLS, by="model,status"))],
            [_formula("calls")],
            description="LLM calls per second (sample-weighted), by model and outcome.",
            display="bars",
        ),
        w=4,
        h=3,
    )
    g.add(
        _ratio(
            "Error rate by model (%)",
            count(CALLS, "status:error", by="model"),
            count(CALLS, by="model"),
            "Share of calls that ended in an error.",
        ),
        w=4,
        h=3,
    )
    g.add(
        _ratio(
            "Refusal rate by model (%)",
            count(REFUSALS, by="model"),
            count(CALLS, by="model"),
            "Share of calls the model refused (provider signal or the phrase heuristic).",
        ),
        w=4,
        h=3,
    )
    g.add(
        timeseries(
            "Refusals / s by source and category",
            [_query("refusals", per_second(REFUSALS, by="source,category"))],
            [_formula("refusals")],
            description="Refused calls per second: source is provider or heuristic.",
            display="bars",
        ),
        w=4,
        h=3,
    )
    g.add(
        _ratio(
            "Assertion pass rate by assertion (%)",
            count(ASSERTIONS, "result:pass", by="assertion"),
            count(ASSERTIONS, by="assertion"),
            "Share of assertion results that passed (fail and error count as not passed).",
        ),
        w=4,
        h=3,
    )
    g.add(
        timeseries(
            "Assertion failures / s by assertion",
            [_query("failures", per_second(ASSERTIONS, "!result:pass", by="assertion,result"))],
            [_formula("failures")],
            description="Assertion results per second that failed or errored (the check itself raised).",
            display="bars",
        ),
        w=4,
        h=3,
    )
    return g


def latency() -> Group:
    g = Group("Latency")
    g.add(
        _latency(
            "Latency p50 / p95 / p99",
            DURATION,
            "",
            "Duration of each LLM call (gen_ai.client.operation.duration distribution; enable percentiles on it).",
        ),
        w=4,
        h=3,
    )
    g.add(
        _latency(
            "Time to first token p50 / p95 / p99",
            TTFC,
            "",
            "Time to the first chunk of streamed calls (gen_ai.client.operation.time_to_first_chunk).",
        ),
        w=4,
        h=3,
    )
    g.add(
        timeseries(
            "p95 latency by model",
            [_query("p95", metric("p95", DURATION, by="model"))],
            [_formula("p95", "p95", "second")],
            description="95th percentile call duration per model.",
        ),
        w=4,
        h=3,
    )
    return g


def tokens_and_cost() -> Group:
    g = Group("Tokens and cost")
    g.add(
        timeseries(
            "Tokens / s by type",
            [_query("tokens", per_second(TOKENS, by="type"))],
            [_formula("tokens")],
            description="Tokens per second: input, output, and the cache_read and reasoning parts of them.",
        ),
        w=4,
        h=3,
    )
    g.add(
        timeseries(
            "Tokens per call p50 / p95",
            [_query(q, metric(q, TOKEN_USAGE, by="gen_ai_token_type")) for q in ("p50", "p95")],
            [_formula("p50", "p50"), _formula("p95", "p95")],
            description="Input and output tokens per call (gen_ai.client.token.usage distribution).",
        ),
        w=4,
        h=3,
    )
    g.add(
        timeseries(
            "Cost / hour by model",
            [_query("cost", per_second(COST, by="model"))],
            [_formula("cost * 3600", "USD / hour", "dollar")],
            description="Estimated spend per hour at the current rate; models with no known price add nothing.",
        ),
        w=4,
        h=3,
    )
    return g


def feedback() -> Group:
    g = Group("Feedback")
    note = " Feedback carries only its name tag: the service, model and prompt variables do not apply."
    g.add(
        timeseries(
            "Feedback posts / s by name",
            [_query("posts", per_second("llmpulse.feedback", by="name", scope="{*}"))],
            [_formula("posts")],
            description="User feedback posted to the collector per second." + note,
            display="bars",
        ),
        w=6,
        h=3,
    )
    g.add(
        timeseries(
            "Mean feedback value by name",
            [_query("mean", metric("avg", "llmpulse.feedback.value", scope="{*}", by="name"))],
            [_formula("mean")],
            description="Mean of the feedback values posted (llmpulse.feedback.value distribution)." + note,
            y_min="auto",
        ),
        w=6,
        h=3,
    )
    return g


VERSION_BY = "prompt,prompt_version"


def prompt_versions() -> Group:
    g = Group("Prompt versions side by side")
    g.add(
        query_table(
            "Prompt versions over the time frame",
            [
                _query("calls", count(CALLS, by=VERSION_BY), "sum"),
                _query("errors", count(CALLS, "status:error", by=VERSION_BY), "sum"),
                _query("refusals", count(REFUSALS, by=VERSION_BY), "sum"),
                _query("passed", count(ASSERTIONS, "result:pass", by=VERSION_BY), "sum"),
                _query("results", count(ASSERTIONS, by=VERSION_BY), "sum"),
                _query("p95", metric("p95", DURATION, by=VERSION_BY), "percentile"),
                _query("ttft", metric("p95", TTFC, by=VERSION_BY), "percentile"),
                _query("cost", count(COST, by=VERSION_BY), "sum"),
            ],
            [
                {**_formula("calls", "calls"), "limit": {"count": 50, "order": "desc"}},
                _formula("100 * errors / calls", "error rate", PERCENT),
                _formula("100 * refusals / calls", "refusal rate", PERCENT),
                _formula("100 * passed / results", "assertion pass rate", PERCENT),
                _formula("p95", "p95 latency", "second"),
                _formula("ttft", "p95 time to first token", "second"),
                _formula("cost / calls", "cost per call", "dollar"),
            ],
            description="One row per prompt version with its numbers over the whole time frame.",
        ),
        w=12,
        h=4,
    )
    g.add(
        _ratio(
            "Refusal rate by prompt version (%)",
            count(REFUSALS, by=VERSION_BY),
            count(CALLS, by=VERSION_BY),
            "Share of refused calls per prompt version.",
        ),
        w=6,
        h=3,
    )
    g.add(
        _ratio(
            "Assertion pass rate by prompt version (%)",
            count(ASSERTIONS, "result:pass", by=VERSION_BY),
            count(ASSERTIONS, by=VERSION_BY),
            "Share of assertion results that passed per prompt version.",
        ),
        w=6,
        h=3,
    )
    g.add(
        timeseries(
            "p95 latency by prompt version",
            [_query("p95", metric("p95", DURATION, by=VERSION_BY))],
            [_formula("p95", "p95", "second")],
            description="95th percentile call duration per prompt version.",
        ),
        w=6,
        h=3,
    )
    g.add(
        timeseries(
            "Cost per call by prompt version",
            [_query("cost", count(COST, by=VERSION_BY)), _query("calls", count(CALLS, by=VERSION_BY))],
            [_formula("cost / calls", "USD per call", "dollar")],
            description="Estimated US dollars per call (unpriced calls count as calls with no cost).",
        ),
        w=6,
        h=3,
    )
    return g


def collector_health() -> Group:
    g = Group("Collector health")
    note = " The collector's own metrics (tagged with its DD_ENV/DD_SERVICE): the LLM variables do not apply."
    everything = "{*}"
    g.add(
        timeseries(
            "Spans accepted and rejected / s",
            [
                _query("accepted", per_second("llmpulse.collector.spans.accepted", by="protocol", scope=everything)),
                _query("rejected", per_second("llmpulse.collector.spans.rejected", by="reason", scope=everything)),
            ],
            [_formula("accepted", "accepted"), _formula("rejected", "rejected")],
            description="Spans acknowledged, and spans not stored by reason: invalid, wal_full, wal_error." + note,
        ),
        w=4,
        h=3,
    )
    g.add(
        timeseries(
            "Requests rejected / s",
            [
                _query(
                    "rejected",
                    per_second("llmpulse.collector.requests.rejected", by="protocol,reason", scope=everything),
                )
            ],
            [_formula("rejected")],
            description="Whole OTLP and feedback requests refused, by reason." + note,
            display="bars",
        ),
        w=4,
        h=3,
    )
    g.add(
        timeseries(
            "Storage errors / s",
            [_query("errors", per_second("llmpulse.collector.storage.errors", by="kind", scope=everything))],
            [_formula("errors")],
            description="Failed ClickHouse inserts (retried from the log) and log reads, by kind." + note,
            display="bars",
        ),
        w=4,
        h=3,
    )
    g.add(
        timeseries(
            "Write-ahead log size",
            [
                _query("used", metric("max", "llmpulse.collector.wal.bytes", scope=everything, by="host")),
                _query("cap", metric("max", "llmpulse.collector.wal.max_bytes", scope=everything, by="host")),
            ],
            [_formula("used", "used", "byte"), _formula("cap", "cap", "byte")],
            description="Bytes held by the write-ahead log, and its cap (at the cap ingest answers 503)." + note,
        ),
        w=4,
        h=3,
    )
    g.add(
        timeseries(
            "Storage lag (oldest unwritten entry)",
            [
                _query(
                    "age", metric("max", "llmpulse.collector.wal.oldest_unwritten_age", scope=everything, by="host")
                ),
                _query("pending", metric("max", "llmpulse.collector.wal.pending_entries", scope=everything, by="host")),
            ],
            [_formula("age", "age", "second"), _formula("pending", "pending entries")],
            description="Age of the oldest acknowledged request not yet in ClickHouse, and how many wait." + note,
        ),
        w=4,
        h=3,
    )
    g.add(
        timeseries(
            "Exporter errors and folded series / s",
            [
                _query("exporter", per_second("llmpulse.collector.exporter.errors", by="exporter", scope=everything)),
                _query("folded", per_second("llmpulse.collector.series_folded", by="family", scope=everything)),
            ],
            [_formula("exporter", "exporter errors"), _formula("folded", "folded samples")],
            description="Failed DogStatsD sends, and samples counted under __other__ (series cap)." + note,
            display="bars",
        ),
        w=4,
        h=3,
    )
    return g


def dashboard() -> Json:
    widgets: list[Json] = []
    y = 0
    for group in (
        summary(),
        traffic(),
        latency(),
        tokens_and_cost(),
        feedback(),
        prompt_versions(),
        collector_health(),
    ):
        widgets.append(group.widget(y))
        y += group.height + 1
    return {
        "title": "LLM overview",
        "description": (
            "LLM calls measured by llmpulse (DogStatsD from the collector): traffic, errors, refusals, assertion "
            "pass rates, latency, tokens, cost, feedback, prompt versions and the collector's health. "
            "Generated by dashboards/datadog/generate.py."
        ),
        "layout_type": "ordered",
        "reflow_type": "fixed",
        "notify_list": [],
        "template_variables": [
            {"name": name, "prefix": name, "available_values": [], "defaults": ["*"]} for name in TEMPLATE_VARIABLES
        ],
        "widgets": widgets,
    }


# --- monitors ------------------------------------------------------------------------------

LLM_GROUPS = "service,env,model"
MONITOR_TAGS = ["app:llmpulse", "managed-by:dashboards-datadog-generate"]


def _message(summary: str, runbook: str, recovery: str, *, groups: tuple[str, ...]) -> str:
    where = ", ".join(f"{g} {{{{{g}.name}}}}" for g in groups)
    return (
        f"{{{{#is_alert}}}}{summary}, for {where}: {{{{value}}}} is above the critical threshold {{{{threshold}}}}."
        f"{{{{/is_alert}}}}\n"
        f"{{{{#is_warning}}}}{summary}, for {where}: {{{{value}}}} is above the warning threshold "
        f"{{{{warn_threshold}}}}.{{{{/is_warning}}}}\n"
        f"{{{{#is_recovery}}}}{recovery}, for {where}.{{{{/is_recovery}}}}\n\n"
        f"Runbook: {RUNBOOKS}#{runbook}\n"
        "Dashboard: LLM overview (dashboards/datadog/llm-overview.json)\n"
    )


def _guarded_ratio(numerator: str, denominator: str, min_count: int) -> str:
    """``numerator / denominator`` over the window, 0 unless the denominator counted more than ``min_count``.

    Datadog's documented minimum-request guard: ``is_greater(b, N)`` is 1 above ``N``, else 0.
    """
    return f"({numerator} / {denominator}) * is_greater({denominator}, {min_count})"


def _options(critical: float, warning: float, **extra: Any) -> Json:
    options: Json = {
        "thresholds": {"critical": critical, "warning": warning},
        "notify_no_data": False,
        "require_full_window": False,
        "include_tags": True,
        "notify_audit": False,
        "renotify_interval": 60,
        "new_group_delay": 300,
        "evaluation_delay": 60,
    }
    options.update(extra)
    return options


def monitors() -> list[Json]:
    every = "{*}"
    calls = count(CALLS, by=LLM_GROUPS, scope=every)
    return [
        {
            "name": "[llmpulse] Refusal rate spike on {{service.name}} / {{model.name}} ({{env.name}})",
            "type": "query alert",
            "query": "sum(last_15m):"
            + _guarded_ratio(count(REFUSALS, by=LLM_GROUPS, scope=every), calls, 50)
            + " > 0.1",
            "message": _message(
                "Refusal rate over the last 15 minutes (at least 50 calls)",
                "refusal-rate-spike",
                "Refusal rate is back under the threshold",
                groups=("service", "env", "model"),
            ),
            "tags": [*MONITOR_TAGS, "signal:refusals"],
            "priority": 2,
            "options": _options(0.1, 0.05),
        },
        {
            "name": "[llmpulse] Error rate spike on {{service.name}} / {{model.name}} ({{env.name}})",
            "type": "query alert",
            "query": "sum(last_15m):"
            + _guarded_ratio(count(CALLS, "status:error", by=LLM_GROUPS, scope=every), calls, 50)
            + " > 0.05",
            "message": _message(
                "LLM call error rate over the last 15 minutes (at least 50 calls)",
                "error-rate-spike",
                "LLM call error rate is back under the threshold",
                groups=("service", "env", "model"),
            ),
            "tags": [*MONITOR_TAGS, "signal:errors"],
            "priority": 2,
            "options": _options(0.05, 0.02),
        },
        {
            "name": "[llmpulse] Assertion {{assertion.name}} failing on {{service.name}} / {{model.name}}",
            "type": "query alert",
            "query": "sum(last_15m):"
            + _guarded_ratio(
                count(ASSERTIONS, "result:fail", by=f"{LLM_GROUPS},assertion", scope=every),
                count(ASSERTIONS, by=f"{LLM_GROUPS},assertion", scope=every),
                50,
            )
            + " > 0.2",
            "message": _message(
                "Share of failed results of assertion {{assertion.name}} over the last 15 minutes "
                "(at least 50 results)",
                "assertion-failure-spike",
                "Assertion {{assertion.name}} passes again",
                groups=("service", "env", "model"),
            ),
            "tags": [*MONITOR_TAGS, "signal:assertions"],
            "priority": 3,
            "options": _options(0.2, 0.1),
        },
        {
            "name": "[llmpulse] p95 latency regression on {{service.name}} / {{model.name}} ({{env.name}})",
            "type": "query alert",
            "query": "pct_change(avg(last_30m),last_1d):"
            + metric("p95", DURATION, scope=every, by=LLM_GROUPS)
            + " > 50",
            "message": _message(
                "p95 LLM call latency over the last 30 minutes grew by this many percent against the same "
                "time yesterday",
                "latency-regression",
                "p95 latency is back within the threshold of yesterday's",
                groups=("service", "env", "model"),
            ),
            "tags": [*MONITOR_TAGS, "signal:latency"],
            "priority": 3,
            "options": _options(50, 25),
        },
        {
            "name": "[llmpulse] Collector rejecting spans ({{reason.name}}) on {{host.name}}",
            "type": "query alert",
            "query": "sum(last_10m):"
            + count("llmpulse.collector.spans.rejected", by="host,reason", scope=every)
            + " > 100",
            "message": _message(
                "Spans the collector did not store in the last 10 minutes (wal_full and wal_error: clients were "
                "told to retry and may drop them; invalid: an instrumentation sends broken spans)",
                "collector-dropping-data",
                "The collector stores every span again",
                groups=("host", "reason"),
            ),
            "tags": [*MONITOR_TAGS, "signal:collector"],
            "priority": 1,
            "options": _options(100, 0),
        },
        {
            "name": "[llmpulse] Collector storage falling behind on {{host.name}}",
            "type": "query alert",
            "query": "max(last_10m):"
            + metric("max", "llmpulse.collector.wal.oldest_unwritten_age", scope=every, by="host")
            + " > 300",
            "message": _message(
                "Seconds since the oldest acknowledged request waiting for ClickHouse (storage down or too slow; "
                "see llmpulse.collector.storage.errors)",
                "collector-storage-behind",
                "The collector's storage has caught up",
                groups=("host",),
            ),
            "tags": [*MONITOR_TAGS, "signal:collector"],
            "priority": 2,
            "options": _options(300, 60),
        },
        {
            "name": "[llmpulse] Collector write-ahead log nearly full on {{host.name}}",
            "type": "query alert",
            "query": "max(last_5m):"
            + metric("max", "llmpulse.collector.wal.bytes", scope=every, by="host")
            + " / "
            + metric("max", "llmpulse.collector.wal.max_bytes", scope=every, by="host")
            + " > 0.9",
            "message": _message(
                "Share of the write-ahead log's cap in use (at the cap the collector answers 503 and clients "
                "retry or drop spans)",
                "collector-wal-full",
                "The write-ahead log has room again",
                groups=("host",),
            ),
            "tags": [*MONITOR_TAGS, "signal:collector"],
            "priority": 1,
            "options": _options(0.9, 0.7),
        },
    ]


# --- validation and output -----------------------------------------------------------------


def problems(text: str, model: type) -> list[str]:
    """What ``datadog-api-client`` cannot read in ``text`` as ``model``: empty when it is all valid.

    The client marks a part it could not parse (a wrong enum value, an unknown widget type, a
    missing required field inside a ``oneOf``) with ``_unparsed`` instead of raising, and keeps
    unknown keys as extra attributes; both are reported, by JSON path. A wrong scalar type
    raises ``ApiTypeError``.
    """
    from datadog_api_client import ApiClient, Configuration

    parsed = ApiClient(Configuration()).deserialize(text, (model,), True)  # type: ignore[no-untyped-call]
    return list(_problems(parsed, "$"))


def _problems(node: Any, path: str) -> Iterator[str]:
    from datadog_api_client.model_utils import ModelComposed, ModelNormal, UnparsedObject

    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _problems(item, f"{path}[{i}]")
        return
    if isinstance(node, UnparsedObject):
        keys = ", ".join(sorted(node._data_store))
        yield f"{path}: matches no model it may be (keys: {keys})"
        return
    found = False
    if isinstance(node, ModelComposed):
        for instance in node._composed_instances:
            for problem in _problems(instance, path):
                found = True
                yield problem
    elif isinstance(node, ModelNormal):
        known = type(node).attribute_map
        for key, value in node._data_store.items():
            if key not in known:
                found = True
                yield f"{path}.{key}: not a field of {type(node).__name__}"
                continue
            for problem in _problems(value, f"{path}.{known[key]}"):
                found = True
                yield problem
    else:
        return
    if getattr(node, "_unparsed", False) and not found:
        yield f"{path}: not a valid {type(node).__name__}"  # the deepest unparsed part; its parents are marked too


def validate() -> list[str]:
    """Every problem ``datadog-api-client`` finds in the files as built (empty: all valid)."""
    from datadog_api_client.v1.model.dashboard import Dashboard
    from datadog_api_client.v1.model.monitor import Monitor

    found = [f"llm-overview.json {p}" for p in problems(render(dashboard), Dashboard)]
    for i, monitor in enumerate(monitors()):
        found.extend(f"monitors.json [{i}] {p}" for p in problems(json.dumps(monitor), Monitor))
    return found


FILES: dict[str, Callable[[], Any]] = {"llm-overview.json": dashboard, "monitors.json": monitors}


def render(build: Callable[[], Any]) -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs; write nothing")
    parser.add_argument("--validate", action="store_true", help="also deserialize with datadog-api-client")
    parser.add_argument("--out", type=Path, default=HERE, help="directory of the JSON files (default: this one)")
    args = parser.parse_args(argv)
    if args.validate:
        found = validate()
        if found:
            print("datadog-api-client could not parse:", *found, sep="\n  ", file=sys.stderr)
            return 1
    rendered = {name: render(build) for name, build in FILES.items()}
    return sync(rendered, args.out, check=args.check, script=Path(__file__).name)


if __name__ == "__main__":
    sys.exit(main())
