"""Build llmpulse's Grafana dashboards with ``grafana-foundation-sdk`` and write them as JSON.

- ``llm-overview.json`` ("LLM overview", Prometheus): traffic, errors, refusals, assertion
  pass rates, latency and time-to-first-token quantiles, tokens, cost, feedback, prompt
  versions side by side and the collector's own health, on the metrics the collector exposes
  on ``GET /metrics`` (the README's metrics table).
- ``llm-drilldown.json`` ("LLM drill-down", the ``grafana-clickhouse-datasource`` plugin):
  SQL over the collector's ClickHouse tables (``spans``, ``assertions``, ``feedback``) for
  the individual calls behind the numbers: slowest calls, latest refusals and failed
  assertions with their prompt and reply, token and cost outliers, one trace by id.

Both use the datasource uids provisioned by ``deploy/grafana/provisioning/datasources/llmpulse.yml``
(through a ``datasource`` variable, so another instance can be picked). The JSON files are
committed; ``python dashboards/grafana/generate.py`` rewrites them and ``--check`` exits 1
when they differ from what this script builds (``tests/dashboards/test_grafana.py`` runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from committed import sync  # noqa: E402  (dashboards/committed.py, shared by both generators)

PROMETHEUS_TYPE = "prometheus"
PROMETHEUS_UID = "llmpulse-prometheus"
PROMETHEUS_NAME = "llmpulse Prometheus"
CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
CLICKHOUSE_UID = "llmpulse-clickhouse"
CLICKHOUSE_NAME = "llmpulse ClickHouse"
CLICKHOUSE_PLUGIN_VERSION = "4.0.0"
"""The plugin's v4 query model (``editorType``/``rawSql``); without it v4+ would migrate each query as a v3 one."""

OVERVIEW_UID = "llmpulse-overview"
DRILLDOWN_UID = "llmpulse-drilldown"
TAGS = ["llmpulse", "llm"]

GRID_WIDTH = 24
TEXT_CHARS = 2000
"""Characters of the prompt (input) and reply (output) shown in list panels; the trace panel shows all."""

PanelBuilder = timeseries.Panel | stat.Panel | table.Panel

# --- layout ----------------------------------------------------------------------------------


class Layout:
    """Places panels on Grafana's 24-column grid: left to right, a new line when a panel does not fit.

    Every position is set explicitly (the SDK's own auto-layout lets a panel overflow the
    grid instead of wrapping it), and ids are handed out in order.
    """

    def __init__(self, board: dash.Dashboard) -> None:
        self.board = board
        self._x = 0
        self._y = 0
        self._line_height = 0
        self._next_id = 1

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _newline(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0

    def row(self, title: str) -> None:
        self._newline()
        grid = model.GridPos(h=1, w=GRID_WIDTH, x=0, y=self._y)
        self.board.with_row(dash.Row(title).id(self._id()).grid_pos(grid))
        self._y += 1

    def add(self, panel: PanelBuilder, *, w: int, h: int) -> None:
        if not 0 < w <= GRID_WIDTH:
            raise ValueError(f"panel width {w} is not within 1..{GRID_WIDTH}")
        if self._x + w > GRID_WIDTH:
            self._newline()
        panel.id(self._id()).grid_pos(model.GridPos(h=h, w=w, x=self._x, y=self._y))
        self.board.with_panel(panel)
        self._x += w
        self._line_height = max(self._line_height, h)


# --- shared pieces ---------------------------------------------------------------------------


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def _legend() -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs([])
    )


def _tooltip() -> common_builders.VizTooltipOptions:
    return common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)


def _override(name: str, **properties: Any) -> tuple[str, list[model.DynamicConfigValue]]:
    """A by-name field override; keyword ``custom_width`` sets property ``custom.width``."""
    return name, [model.DynamicConfigValue(id_val=key.replace("_", "."), value=v) for key, v in properties.items()]


def _datasource_variable(plugin: str, uid: str, name: str, label: str) -> dash.DatasourceVariable:
    return (
        dash.DatasourceVariable("datasource")
        .label(label)
        .type(plugin)
        .current(model.VariableOption(selected=True, text=name, value=uid))
    )


def _links() -> list[cogbuilder.Builder[model.DashboardLink]]:
    """Links to the other llmpulse dashboards, carrying the time range and the variables."""
    return [
        dash.DashboardLink("llmpulse")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags(["llmpulse"])
        .as_dropdown(False)
        .include_vars(True)
        .keep_time(True)
        .target_blank(False)
        .icon("external link")
        .tooltip("")
        .url("")
    ]


def _build(board: dash.Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data, without the interval-only fields the SDK sets on every variable."""
    data: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for variable in data.get("templating", {}).get("list", []):
        if variable.get("type") != "interval":
            for key in ("auto", "auto_count", "auto_min"):
                variable.pop(key, None)
    return data


# --- LLM overview (Prometheus) ---------------------------------------------------------------

PROM = model.DataSourceRef(type_val=PROMETHEUS_TYPE, uid="${datasource}")

LLM_VARIABLES: tuple[tuple[str, str, str], ...] = (
    # (variable, Prometheus label, display label): a chain, each filtered by those before it
    ("service", "service", "Service"),
    ("environment", "environment", "Environment"),
    ("model", "model", "Model"),
    ("prompt", "prompt", "Prompt"),
    ("prompt_version", "prompt_version", "Prompt version"),
)
LLM_MATCHERS = ", ".join(f'{label}=~"${var}"' for var, label, _ in LLM_VARIABLES)
"""Every LLM-metric selector carries these: the dashboard's variables (``.*`` when All)."""

CALLS = "llmpulse_llm_calls_total"
REFUSALS = "llmpulse_refusals_total"
ASSERTIONS = "llmpulse_assertion_results_total"
TOKENS = "llmpulse_tokens_total"
COST = "llmpulse_cost_usd_total"
DURATION = "gen_ai_client_operation_duration_seconds"
TTFC = "gen_ai_client_operation_time_to_first_chunk_seconds"
TOKEN_USAGE = "gen_ai_client_token_usage"
RATE = "$__rate_interval"
RANGE = "$__range"


def _sel(*extra: str) -> str:
    return "{" + ", ".join((LLM_MATCHERS, *extra)) + "}"


def _sum(expr: str, by: str = "") -> str:
    return f"sum by ({by}) ({expr})" if by else f"sum({expr})"


def _rate(metric: str, *extra: str, by: str = "", window: str = RATE) -> str:
    """Per-second rate of an LLM counter under the dashboard's filters, summed by ``by``."""
    return _sum(f"rate({metric}{_sel(*extra)}[{window}])", by)


def _quantile(q: float, histogram: str, by: str = "", window: str = RATE) -> str:
    le = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, {_sum(f'rate({histogram}_bucket{_sel()}[{window}])', le)})"


def error_rate(by: str = "", window: str = RATE) -> str:
    errors = _rate(CALLS, 'status="error"', by=by, window=window)
    return f"{errors} / {_rate(CALLS, by=by, window=window)}"


def refusal_rate(by: str = "", window: str = RATE) -> str:
    return f"{_rate(REFUSALS, by=by, window=window)} / {_rate(CALLS, by=by, window=window)}"


def pass_rate(by: str = "", window: str = RATE) -> str:
    passed = _rate(ASSERTIONS, 'result="pass"', by=by, window=window)
    return f"{passed} / {_rate(ASSERTIONS, by=by, window=window)}"


def cost_per_call(by: str = "", window: str = RATE) -> str:
    return f"{_rate(COST, by=by, window=window)} / {_rate(CALLS, by=by, window=window)}"


def _prom(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant().format(PromQueryFormat.TABLE)
    return query


def _series(
    title: str,
    description: str,
    unit: str,
    targets: list[tuple[str, str]],
    *,
    datasource: model.DataSourceRef = PROM,
    soft_max: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .unit(unit)
        .min(0)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(_legend())
        .tooltip(_tooltip())
    )
    if soft_max is not None:
        panel = panel.axis_soft_max(soft_max)
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(_prom(expr, legend, chr(ord("A") + i)))
    return panel


def _stat(title: str, description: str, unit: str, expr: str, thresholds: dash.ThresholdsConfig) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROM)
        .unit(unit)
        .decimals(3 if unit == "currencyUSD" else 2)
        .thresholds(thresholds)
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(_prom(expr, instant=True))
    )


GOOD_LOW = _thresholds((None, "green"), (0.02, "orange"), (0.05, "red"))
GOOD_HIGH = _thresholds((None, "red"), (0.9, "orange"), (0.97, "green"))
NEUTRAL = _thresholds((None, "text"))


def overview() -> dict[str, Any]:
    board = (
        dash.Dashboard("LLM overview")
        .uid(OVERVIEW_UID)
        .description(
            "LLM calls measured by llmpulse (Prometheus, from the collector's /metrics): traffic, errors, refusals, "
            "assertion pass rates, latency, tokens, cost, feedback, prompt versions and the collector's health."
        )
        .tags(TAGS)
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .links(_links())
        .with_variable(_datasource_variable(PROMETHEUS_TYPE, PROMETHEUS_UID, PROMETHEUS_NAME, "Prometheus"))
    )
    for i, (var, label, display) in enumerate(LLM_VARIABLES):
        before = ", ".join(f'{lab}=~"${v}"' for v, lab, _ in LLM_VARIABLES[:i])
        board = board.with_variable(
            dash.QueryVariable(var)
            .label(display)
            .datasource(PROM)
            .query(f"label_values({CALLS}{{{before}}}, {label})" if before else f"label_values({CALLS}, {label})")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
    grid = Layout(board)

    grid.row("Summary (over the time range)")
    per_range = "Over the whole time range, for the selected services, environments, models and prompt versions."
    grid.add(_stat("Calls / s", per_range, "reqps", _rate(CALLS, window=RANGE), NEUTRAL), w=4, h=4)
    grid.add(_stat("Error rate", per_range, "percentunit", error_rate(window=RANGE), GOOD_LOW), w=4, h=4)
    refusals = _thresholds((None, "green"), (0.05, "orange"), (0.1, "red"))
    grid.add(_stat("Refusal rate", per_range, "percentunit", refusal_rate(window=RANGE), refusals), w=4, h=4)
    grid.add(
        _stat("Assertion pass rate", per_range + " All assertions.", "percentunit", pass_rate(window=RANGE), GOOD_HIGH),
        w=4,
        h=4,
    )
    grid.add(_stat("p95 latency", per_range, "s", _quantile(0.95, DURATION, window=RANGE), NEUTRAL), w=4, h=4)
    grid.add(
        _stat("Cost / hour", per_range + " Estimated; unpriced models add nothing.", "currencyUSD",
              f"{_rate(COST, window=RANGE)} * 3600", NEUTRAL),
        w=4,
        h=4,
    )  # fmt: skip

    grid.row("Traffic and quality")
    grid.add(
        _series(
            "Calls / s by model and status",
            "LLM calls per second (sample-weighted), by model and outcome (ok, error).",
            "reqps",
            [(_rate(CALLS, by="model, status"), "{{model}} {{status}}")],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Error rate by model",
            "Share of calls that ended in an error.",
            "percentunit",
            [(error_rate(by="model"), "{{model}}")],
            soft_max=0.05,
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Refusal rate by model",
            "Share of calls the model refused (provider signal or the English phrase heuristic).",
            "percentunit",
            [(refusal_rate(by="model"), "{{model}}")],
            soft_max=0.05,
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Refusals / s by source and category",
            "Refused calls per second: source is provider (the API said so) or heuristic (the reply's wording).",
            "reqps",
            [(_rate(REFUSALS, by="source, category"), "{{source}} {{category}}")],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Assertion pass rate by assertion",
            "Share of assertion results that passed, per assertion (fail and error count as not passed).",
            "percentunit",
            [(pass_rate(by="assertion"), "{{assertion}}")],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Assertion failures / s by assertion",
            "Assertion results per second that failed (the reply broke the rule) or errored (the check itself raised).",
            "reqps",
            [(_rate(ASSERTIONS, 'result!="pass"', by="assertion, result"), "{{assertion}} {{result}}")],
        ),
        w=8,
        h=8,
    )

    grid.row("Latency")
    quantiles = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
    grid.add(
        _series(
            "Latency p50 / p95 / p99",
            "Duration of each LLM call (gen_ai.client.operation.duration), quantiles estimated from its buckets.",
            "s",
            [(_quantile(q, DURATION), name) for q, name in quantiles],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Time to first token p50 / p95 / p99",
            "Time to the first chunk of streamed calls (gen_ai.client.operation.time_to_first_chunk).",
            "s",
            [(_quantile(q, TTFC), name) for q, name in quantiles],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "p95 latency by model",
            "95th percentile call duration per model.",
            "s",
            [(_quantile(0.95, DURATION, by="model"), "{{model}}")],
        ),
        w=8,
        h=8,
    )

    grid.row("Tokens and cost")
    grid.add(
        _series(
            "Tokens / s by type",
            "Tokens per second: input, output, and the cache_read and reasoning parts of them.",
            "short",
            [(_rate(TOKENS, by="type"), "{{type}}")],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Tokens per call p50 / p95",
            "Input and output tokens per call (gen_ai.client.token.usage), quantiles from its buckets.",
            "short",
            [
                (_quantile(q, TOKEN_USAGE, by="gen_ai_token_type"), f"{name} {{{{gen_ai_token_type}}}}")
                for q, name in quantiles[:2]
            ],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Cost / hour by model",
            "Estimated spend in US dollars per hour at the current rate; models with no known price add nothing.",
            "currencyUSD",
            [(f"{_rate(COST, by='model')} * 3600", "{{model}}")],
        ),
        w=8,
        h=8,
    )

    grid.row("Feedback")
    feedback_note = " Feedback carries only its name: the service, model and prompt filters do not apply."
    grid.add(
        _series(
            "Feedback posts / s by name",
            "User feedback posted to the collector per second." + feedback_note,
            "reqps",
            [("sum by (name) (rate(llmpulse_feedback_total[$__rate_interval]))", "{{name}}")],
        ),
        w=12,
        h=8,
    )
    grid.add(
        _series(
            "Mean feedback value by name (trailing hour)",
            "Mean of the feedback values posted in the hour before each point (sum / count)." + feedback_note,
            "short",
            [
                (
                    "sum by (name) (increase(llmpulse_feedback_value_sum[1h])) / "
                    "sum by (name) (increase(llmpulse_feedback_value_count[1h]))",
                    "{{name}}",
                )
            ],
        ),
        w=12,
        h=8,
    )

    grid.row("Prompt versions side by side")
    by_version = "prompt, prompt_version"
    version_legend = "{{prompt}} {{prompt_version}}"
    grid.add(_versions_table(), w=24, h=8)
    grid.add(
        _series(
            "Refusal rate by prompt version",
            "Share of refused calls per prompt version.",
            "percentunit",
            [(refusal_rate(by=by_version), version_legend)],
            soft_max=0.05,
        ),
        w=12,
        h=8,
    )
    grid.add(
        _series(
            "Assertion pass rate by prompt version",
            "Share of assertion results that passed per prompt version (all assertions).",
            "percentunit",
            [(pass_rate(by=by_version), version_legend)],
        ),
        w=12,
        h=8,
    )
    grid.add(
        _series(
            "p95 latency by prompt version",
            "95th percentile call duration per prompt version.",
            "s",
            [(_quantile(0.95, DURATION, by=by_version), version_legend)],
        ),
        w=12,
        h=8,
    )
    grid.add(
        _series(
            "Cost per call by prompt version",
            "Estimated US dollars per call (unpriced calls count as calls with no cost).",
            "currencyUSD",
            [(cost_per_call(by=by_version), version_legend)],
        ),
        w=12,
        h=8,
    )

    grid.row("Collector health")
    collector_note = " The collector's own metrics: the LLM filters do not apply."
    grid.add(
        _series(
            "Spans accepted and rejected / s",
            "Spans acknowledged (durable in the write-ahead log) and spans not stored, by reason: invalid, or "
            "wal_full / wal_error (the client was told to retry)." + collector_note,
            "short",
            [
                ("sum by (protocol) (rate(llmpulse_collector_spans_accepted_total[$__rate_interval]))",
                 "accepted {{protocol}}"),
                ("sum by (reason) (rate(llmpulse_collector_spans_rejected_total[$__rate_interval]))",
                 "rejected {{reason}}"),
            ],
        ),
        w=8,
        h=8,
    )  # fmt: skip
    grid.add(
        _series(
            "Requests rejected / s",
            "Whole OTLP and feedback requests refused, by reason." + collector_note,
            "reqps",
            [
                (
                    "sum by (protocol, reason) (rate(llmpulse_collector_requests_rejected_total[$__rate_interval]))",
                    "{{protocol}} {{reason}}",
                )
            ],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Storage errors / s",
            "Failed ClickHouse inserts (unavailable, error; retried from the log) and log reads (wal_read)."
            + collector_note,
            "short",
            [("sum by (kind) (rate(llmpulse_collector_storage_errors_total[$__rate_interval]))", "{{kind}}")],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Write-ahead log size",
            "Bytes held by the write-ahead log, and its cap (at the cap ingest answers 503)." + collector_note,
            "bytes",
            [
                ("max by (instance) (llmpulse_collector_wal_bytes)", "used {{instance}}"),
                ("max by (instance) (llmpulse_collector_wal_max_bytes)", "cap {{instance}}"),
            ],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Storage lag (oldest unwritten entry)",
            "Age of the oldest acknowledged request not yet in ClickHouse: how far storage is behind." + collector_note,
            "s",
            [("max by (instance) (llmpulse_collector_wal_oldest_unwritten_age_seconds)", "{{instance}}")],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Pending log entries",
            "Acknowledged requests waiting in the write-ahead log for ClickHouse." + collector_note,
            "short",
            [("max by (instance) (llmpulse_collector_wal_pending_entries)", "{{instance}}")],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Storage insert p95",
            "95th percentile time to insert one write-ahead-log batch into ClickHouse." + collector_note,
            "s",
            [
                (
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(llmpulse_collector_storage_insert_duration_seconds_bucket[$__rate_interval])))",
                    "p95",
                )
            ],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Exporter errors / s",
            "Failed metric sends (an unreachable DogStatsD agent), by exporter." + collector_note,
            "short",
            [("sum by (exporter) (rate(llmpulse_collector_exporter_errors_total[$__rate_interval]))", "{{exporter}}")],
        ),
        w=8,
        h=8,
    )
    grid.add(
        _series(
            "Series folded / s",
            "Samples counted under __other__ because their metric family hit the series cap "
            "(LLMPULSE_METRICS_SERIES_CAP): a label with too many values." + collector_note,
            "short",
            [("sum by (family) (rate(llmpulse_collector_series_folded_total[$__rate_interval]))", "{{family}}")],
        ),
        w=8,
        h=8,
    )
    return _build(board)


VERSION_COLUMNS: tuple[tuple[str, str, Callable[[], str], str], ...] = (
    # (ref, column, expression over the time range, unit)
    ("A", "calls", lambda: _sum(f"increase({CALLS}{_sel()}[{RANGE}])", "prompt, prompt_version"), "short"),
    ("B", "error rate", lambda: error_rate("prompt, prompt_version", RANGE), "percentunit"),
    ("C", "refusal rate", lambda: refusal_rate("prompt, prompt_version", RANGE), "percentunit"),
    ("D", "assertion pass rate", lambda: pass_rate("prompt, prompt_version", RANGE), "percentunit"),
    ("E", "p95 latency", lambda: _quantile(0.95, DURATION, "prompt, prompt_version", RANGE), "s"),
    ("F", "p95 time to first token", lambda: _quantile(0.95, TTFC, "prompt, prompt_version", RANGE), "s"),
    ("G", "cost per call", lambda: cost_per_call("prompt, prompt_version", RANGE), "currencyUSD"),
)


def _versions_table() -> table.Panel:
    panel = (
        table.Panel()
        .title("Prompt versions over the time range")
        .description(
            "One row per prompt version with its numbers over the whole time range, to compare versions side by side."
        )
        .datasource(PROM)
        .show_header(True)
        .align(common.FieldTextAlignment.AUTO)
        .cell_options(common.TableAutoCellOptions())
        .inspect(False)
        .sort_by([common_builders.TableSortByFieldState().display_name("calls").desc(True)])
    )
    for ref, _, expr, _ in VERSION_COLUMNS:
        panel = panel.with_target(_prom(expr(), ref=ref, instant=True))
    panel = panel.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    panel = panel.with_transformation(
        model.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {"Time": True},
                "renameByName": {f"Value #{ref}": column for ref, column, _, _ in VERSION_COLUMNS},
                "indexByName": {
                    "prompt": 0,
                    "prompt_version": 1,
                    **{f"Value #{ref}": i + 2 for i, (ref, _, _, _) in enumerate(VERSION_COLUMNS)},
                },
            },
        )
    )
    for _, column, _, unit in VERSION_COLUMNS:
        name, properties = _override(column, unit=unit, decimals=0 if column == "calls" else 3)
        panel = panel.override_by_name(name, properties)
    return panel


# --- LLM drill-down (ClickHouse) -------------------------------------------------------------

CLICKHOUSE = model.DataSourceRef(type_val=CLICKHOUSE_TYPE, uid="${datasource}")

FORMAT_TIME_SERIES = 0
FORMAT_TABLE = 1
"""The plugin's ``format`` values (grafana-plugin-sdk-go ``sqlutil.FormatQueryOption``)."""


class ClickHouseQuery(cogvariants.Dataquery):
    """A raw-SQL query of the ClickHouse plugin (its ``CHSqlQuery`` model); the SDK has no builder for it."""

    def __init__(self, raw_sql: str, ref_id: str = "A", *, time_series: bool = False) -> None:
        self.raw_sql = raw_sql
        self.ref_id = ref_id
        self.time_series = time_series

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": CLICKHOUSE,
            "editorType": "sql",
            "format": FORMAT_TIME_SERIES if self.time_series else FORMAT_TABLE,
            "pluginVersion": CLICKHOUSE_PLUGIN_VERSION,
            "queryType": "timeseries" if self.time_series else "table",
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class ClickHouse(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, raw_sql: str, ref_id: str = "A", *, time_series: bool = False) -> None:
        self._internal = ClickHouseQuery(raw_sql, ref_id, time_series=time_series)

    def build(self) -> cogvariants.Dataquery:
        return self._internal


SQL_VARIABLES: tuple[tuple[str, str, str], ...] = (
    # (variable, column of spans/assertions, display label): a chain, each filtered by those before it
    ("project", "project", "Project"),
    ("service", "service", "Service"),
    ("environment", "environment", "Environment"),
    ("model", "model", "Model"),
    ("prompt", "prompt_name", "Prompt"),
    ("prompt_version", "prompt_version", "Prompt version"),
)


def sql_filters(
    alias: str = "", variables: tuple[tuple[str, str, str], ...] = SQL_VARIABLES, indent: str = "  "
) -> str:
    """``AND``-joined conditions on the dashboard variables, each ``1=1`` while its variable is All."""
    prefix = f"{alias}." if alias else ""
    return f"\n{indent}AND ".join(
        f"$__conditionalAll({prefix}{column} IN (${{{var}:singlequote}}), ${var})" for var, column, _ in variables
    )


TRACE_ID = "lower(trimBoth(${trace_id:singlequote}))"


def _text(column: str, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return f"substring({prefix}{column}, 1, {TEXT_CHARS})"


ACTIVITY_SQL = f"""SELECT
  $__timeInterval(start_time) AS time,
  sum(sample_weight) AS calls,
  sumIf(sample_weight, status_code = 2) AS errors,
  sumIf(sample_weight, refusal = 1) AS refusals
FROM spans
WHERE $__timeFilter(start_time) AND is_llm = 1
  AND {sql_filters()}
GROUP BY time
ORDER BY time"""

SLOWEST_SQL = f"""SELECT
  start_time AS time,
  duration_s,
  ttft_s,
  service,
  environment,
  model,
  prompt_name,
  prompt_version,
  input_tokens,
  output_tokens,
  cost_usd,
  error_type,
  {_text("input")} AS input_messages,
  {_text("output")} AS output_messages,
  trace_id
FROM spans
WHERE $__timeFilter(start_time) AND is_llm = 1
  AND {sql_filters()}
ORDER BY duration_s DESC
LIMIT 50"""

REFUSALS_SQL = f"""SELECT
  start_time AS time,
  service,
  environment,
  model,
  prompt_name,
  prompt_version,
  refusal_source,
  refusal_category,
  {_text("input")} AS input_messages,
  {_text("output")} AS output_messages,
  trace_id
FROM spans
WHERE $__timeFilter(start_time) AND is_llm = 1 AND refusal = 1
  AND {sql_filters()}
ORDER BY start_time DESC
LIMIT 100"""

FAILED_ASSERTIONS_SQL = f"""WITH failed AS (
  SELECT time, trace_id, span_id, service, environment, model, prompt_name, prompt_version,
    name, label, score, explanation
  FROM assertions
  WHERE $__timeFilter(time) AND label != 'pass'
    AND {sql_filters(indent="    ")}
  ORDER BY time DESC
  LIMIT 100
)
SELECT
  f.time AS failed_at,
  f.name AS assertion,
  f.label AS result,
  f.score AS score,
  f.explanation AS explanation,
  f.service AS service,
  f.model AS model,
  f.prompt_name AS prompt_name,
  f.prompt_version AS prompt_version,
  {_text("input", "s")} AS input_messages,
  {_text("output", "s")} AS output_messages,
  f.trace_id AS trace_id
FROM failed AS f
LEFT JOIN (
  SELECT trace_id, span_id, input, output
  FROM spans
  WHERE trace_id IN (SELECT trace_id FROM failed)
) AS s ON s.trace_id = f.trace_id AND s.span_id = f.span_id
ORDER BY failed_at DESC"""


def _outliers_sql(measure: str, per_model: str, extra: str, columns: str) -> str:
    """Calls with the largest ``measure``, with how many times their model's average over the range it is."""
    return f"""SELECT
  s.start_time AS time,
  s.service AS service,
  s.model AS model,
  s.prompt_name AS prompt_name,
  s.prompt_version AS prompt_version,
  {columns},
  round({measure} / nullIf(m.average, 0), 1) AS times_model_average,
  {_text("input", "s")} AS input_messages,
  {_text("output", "s")} AS output_messages,
  s.trace_id AS trace_id
FROM spans AS s
INNER JOIN (
  SELECT model, avg({per_model}) AS average
  FROM spans
  WHERE $__timeFilter(start_time) AND is_llm = 1{extra}
    AND {sql_filters(indent="    ")}
  GROUP BY model
) AS m ON m.model = s.model
WHERE $__timeFilter(s.start_time) AND s.is_llm = 1{extra.replace(" cost_usd", " s.cost_usd")}
  AND {sql_filters("s")}
ORDER BY {measure} DESC
LIMIT 50"""


TOKEN_OUTLIERS_SQL = _outliers_sql(
    "(s.input_tokens + s.output_tokens)",
    "input_tokens + output_tokens",
    "",
    "s.input_tokens AS input_tokens,\n  s.output_tokens AS output_tokens,\n"
    "  s.input_tokens + s.output_tokens AS total_tokens",
)
COST_OUTLIERS_SQL = _outliers_sql(
    "s.cost_usd",
    "cost_usd",
    " AND cost_usd IS NOT NULL",
    "s.cost_usd AS cost_usd,\n  s.input_tokens AS input_tokens,\n  s.output_tokens AS output_tokens",
)

TRACE_SPANS_SQL = f"""SELECT
  start_time AS time,
  span_id,
  parent_span_id,
  name,
  service,
  model,
  duration_s,
  ttft_s,
  status_code,
  error_type,
  status_message,
  refusal,
  input_tokens,
  output_tokens,
  cost_usd,
  input AS input_messages,
  output AS output_messages,
  attributes
FROM spans
WHERE trace_id = {TRACE_ID}
ORDER BY start_time"""

TRACE_ASSERTIONS_SQL = f"""SELECT
  time AS evaluated_at,
  span_id,
  name AS assertion,
  label AS result,
  score,
  explanation
FROM assertions
WHERE trace_id = {TRACE_ID}
ORDER BY evaluated_at"""

TRACE_FEEDBACK_SQL = f"""SELECT
  time AS posted_at,
  name,
  value,
  comment,
  response_id
FROM feedback
WHERE trace_id = {TRACE_ID}
ORDER BY posted_at"""


def _variable_sql(position: int) -> str:
    _, column, _ = SQL_VARIABLES[position]
    before = SQL_VARIABLES[:position]
    where = "$__timeFilter(start_time) AND is_llm = 1"
    if before:
        where += "\n  AND " + sql_filters(variables=before)
    return f"SELECT DISTINCT {column}\nFROM spans\nWHERE {where}\nORDER BY {column}"


def _sql_table(title: str, description: str, sql: str) -> table.Panel:
    trace_link = {
        "title": "Open this trace",
        "url": f"/d/{DRILLDOWN_UID}?var-trace_id=${{__value.raw}}&${{__url_time_range}}",
    }
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(CLICKHOUSE)
        .show_header(True)
        .filterable(True)
        .align(common.FieldTextAlignment.AUTO)
        .cell_options(common.TableAutoCellOptions())
        .inspect(False)
        .with_target(ClickHouse(sql))
    )
    overrides = [
        _override("trace_id", links=[trace_link]),
        _override("input_messages", custom_inspect=True, custom_width=320),
        _override("output_messages", custom_inspect=True, custom_width=320),
        _override("explanation", custom_inspect=True),
        _override("attributes", custom_inspect=True),
        _override("duration_s", unit="s"),
        _override("ttft_s", unit="s"),
        _override("cost_usd", unit="currencyUSD", decimals=5),
    ]
    for name, properties in overrides:
        if name in sql:
            panel = panel.override_by_name(name, properties)
    return panel


def drilldown() -> dict[str, Any]:
    board = (
        dash.Dashboard("LLM drill-down")
        .uid(DRILLDOWN_UID)
        .description(
            "The individual LLM calls behind the numbers, from the collector's ClickHouse tables: slowest calls, "
            "refusals and failed assertions with their prompt and reply, token and cost outliers, one trace by id."
        )
        .tags(TAGS)
        .editable()
        .time("now-1h", "now")
        .timezone("browser")
        .links(_links())
        .with_variable(_datasource_variable(CLICKHOUSE_TYPE, CLICKHOUSE_UID, CLICKHOUSE_NAME, "ClickHouse"))
    )
    for i, (var, _, display) in enumerate(SQL_VARIABLES):
        board = board.with_variable(
            dash.QueryVariable(var)
            .label(display)
            .datasource(CLICKHOUSE)
            .query({"editorType": "sql", "rawSql": _variable_sql(i)})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
    board = board.with_variable(
        dash.TextBoxVariable("trace_id")
        .label("Trace id")
        .description("32 hex characters; click a trace_id in any table to fill it in.")
        .default_value("")
    )
    grid = Layout(board)

    grid.row("Calls in the selection")
    grid.add(
        _series(
            "LLM calls, errors and refusals",
            "Sample-weighted counts per interval, straight from the spans table.",
            "short",
            [],
            datasource=CLICKHOUSE,
        ).with_target(ClickHouse(ACTIVITY_SQL, time_series=True)),
        w=24,
        h=6,
    )
    grid.row("Slowest calls")
    grid.add(
        _sql_table(
            "Slowest calls",
            "The 50 longest LLM calls in the time range, with the start of their prompt and reply.",
            SLOWEST_SQL,
        ),
        w=24,
        h=10,
    )
    grid.row("Refusals")
    grid.add(
        _sql_table(
            "Latest refusals",
            "The 100 most recent refused calls: how the refusal was detected, the prompt and the reply.",
            REFUSALS_SQL,
        ),
        w=24,
        h=10,
    )
    grid.row("Failed assertions")
    grid.add(
        _sql_table(
            "Latest failed assertions",
            "The 100 most recent assertion results that were not a pass (fail, or error: the check raised), "
            "with the call's prompt and reply.",
            FAILED_ASSERTIONS_SQL,
        ),
        w=24,
        h=10,
    )
    grid.row("Token and cost outliers")
    grid.add(
        _sql_table(
            "Most tokens",
            "The 50 calls with the most tokens, and how many times their model's average in the range that is.",
            TOKEN_OUTLIERS_SQL,
        ),
        w=12,
        h=10,
    )
    grid.add(
        _sql_table(
            "Most expensive",
            "The 50 priced calls that cost the most, and how many times their model's average in the range that is.",
            COST_OUTLIERS_SQL,
        ),
        w=12,
        h=10,
    )
    grid.row("Trace ${trace_id}")
    grid.add(
        _sql_table(
            "Spans of the trace",
            "Every span of the trace in the trace_id variable (any time), in start order, with full content.",
            TRACE_SPANS_SQL,
        ),
        w=24,
        h=10,
    )
    grid.add(
        _sql_table("Assertions of the trace", "Assertion results recorded for the trace.", TRACE_ASSERTIONS_SQL),
        w=12,
        h=7,
    )
    grid.add(
        _sql_table("Feedback on the trace", "Feedback posted for the trace.", TRACE_FEEDBACK_SQL),
        w=12,
        h=7,
    )
    return _build(board)


# --- output ----------------------------------------------------------------------------------

DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "llm-overview.json": overview,
    "llm-drilldown.json": drilldown,
}


def render(build: Callable[[], dict[str, Any]]) -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs; write nothing")
    parser.add_argument("--out", type=Path, default=HERE, help="directory of the JSON files (default: this one)")
    args = parser.parse_args(argv)
    rendered = {name: render(build) for name, build in DASHBOARDS.items()}
    return sync(rendered, args.out, check=args.check, script=Path(__file__).name)


if __name__ == "__main__":
    sys.exit(main())
