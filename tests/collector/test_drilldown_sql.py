"""The Grafana drill-down dashboard's SQL on a real (embedded) ClickHouse.

Every query of ``dashboards/grafana/llm-drilldown.json`` (panels and variables) is expanded
the way Grafana and the ClickHouse plugin would (``clickhouse_macros.interpolate``) and run
on a migrated chDB database holding a few known calls; each must run, and return the rows
it is meant to find, in the right order, under the dashboard's filters."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from llmpulse_collector.rows import ASSERTION_COLUMNS, FEEDBACK_COLUMNS, SPAN_COLUMNS
from llmpulse_collector.storage import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dashboards" / "grafana"))

import clickhouse_macros
from clickhouse_macros import ALL, interpolate

pytestmark = pytest.mark.collector

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "grafana" / "llm-drilldown.json"
Rows = tuple[Callable[..., dict[str, Any]], Callable[..., dict[str, Any]]]

S = 10**9
NOW = datetime.now(timezone.utc).replace(microsecond=0)
NOW_NS = int(NOW.timestamp()) * S
START = NOW - timedelta(hours=1)
END = NOW + timedelta(minutes=1)
EVERYTHING: dict[str, Any] = {
    "project": ALL,
    "service": ALL,
    "environment": ALL,
    "model": ALL,
    "prompt": ALL,
    "prompt_version": ALL,
    "trace_id": "",
}


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panel_sql() -> dict[str, str]:
    """Panel title -> rawSql of its one query."""
    out: dict[str, str] = {}
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            assert panel["title"] not in out, f"two queries in {panel['title']!r}"
            out[panel["title"]] = target["rawSql"]
    return out


def variable_sql() -> dict[str, str]:
    return {
        v["name"]: v["query"]["rawSql"] for v in _dashboard()["templating"]["list"] if isinstance(v.get("query"), dict)
    }


def run(store: Store, sql: str, **variables: Any) -> list[dict[str, Any]]:
    values = {**EVERYTHING, **variables}
    return store.query(interpolate(sql, values, start=START, end=END, interval_s=60))


def ago(minutes: float) -> int:
    return NOW_NS - int(minutes * 60 * S)


class Data:
    """Known calls of project ``acme`` (and one of project ``other``), by role."""

    def __init__(self, store: Store, rows: Rows) -> None:
        span, assertion = rows
        self.store = store
        self.slow = span(start_time=ago(10), duration_s=42.0, input='[{"role":"user","content":"slow?"}]')
        self.refused = span(
            start_time=ago(5),
            duration_s=0.4,
            refusal=1,
            refusal_source="provider",
            refusal_category="content_filter",
            input='[{"role":"user","content":"how do I pick a lock"}]',
            output='[{"role":"assistant","content":"I can\'t help with that."}]',
        )
        self.failed = span(
            start_time=ago(8),
            duration_s=0.7,
            model="claude-sonnet-4",
            provider="anthropic",
            prompt_version="v2",
            input='[{"role":"user","content":"reply in lowercase"}]',
            output='[{"role":"assistant","content":"Sure! Here it is."}]',
        )
        self.heavy = span(start_time=ago(20), duration_s=1.0, input_tokens=90_000, output_tokens=2_000, cost_usd=0.01)
        self.expensive = span(
            start_time=ago(30), duration_s=1.0, input_tokens=1_000, output_tokens=500, cost_usd=2.5, model="o3"
        )
        plain = [
            span(start_time=ago(12 + i), duration_s=0.2, input_tokens=100, output_tokens=10, cost_usd=0.001)
            for i in range(5)
        ]
        # the root of the failed call's trace (not an LLM span: never in the LLM lists)
        self.root = span(
            trace_id=self.failed["trace_id"],
            start_time=ago(8) - 1000,
            duration_s=0.9,
            name="handle",
            is_llm=0,
            model="",
            operation="",
            provider="",
        )
        self.failed["parent_span_id"] = self.root["span_id"]
        self.old = span(start_time=ago(3 * 60), duration_s=99.0)  # before the time range
        self.elsewhere = span(project="other", service="billing", start_time=ago(2), duration_s=60.0, refusal=1)
        spans = [self.slow, self.refused, self.failed, self.heavy, self.expensive, *plain, self.root, self.old]
        spans.append(self.elsewhere)
        self.assertion_fail = assertion(self.failed, "starts_lowercase", "fail", explanation="starts with 'S'")
        checks = [
            self.assertion_fail,
            assertion(self.failed, "not_contains", "pass"),
            *(assertion(s, "starts_lowercase", "pass") for s in plain),
        ]
        feedback = [
            {
                "project": "acme",
                "time": NOW_NS // 10**6 - 60_000,
                "trace_id": self.failed["trace_id"],
                "name": "thumbs",
                "value": -1.0,
                "comment": "ignored my instruction",
            }
        ]
        store.insert("spans", spans, SPAN_COLUMNS, dedup_token="drilldown:spans")
        store.insert("assertions", checks, ASSERTION_COLUMNS, dedup_token="drilldown:assertions")
        store.insert("feedback", feedback, FEEDBACK_COLUMNS, dedup_token="drilldown:feedback")


@pytest.fixture
def data(store: Store, rows: Rows) -> Data:
    return Data(store, rows)


def test_every_query_is_found() -> None:
    assert set(panel_sql()) == {
        "LLM calls, errors and refusals",
        "Slowest calls",
        "Latest refusals",
        "Latest failed assertions",
        "Most tokens",
        "Most expensive",
        "Spans of the trace",
        "Assertions of the trace",
        "Feedback on the trace",
    }
    assert list(variable_sql()) == ["project", "service", "environment", "model", "prompt", "prompt_version"]


@pytest.mark.parametrize("title", sorted(panel_sql()))
def test_each_panel_runs_on_an_empty_database(store: Store, title: str) -> None:
    sql = panel_sql()[title]
    assert run(store, sql) == []
    # and with one value in every filter, and a trace id
    one = dict.fromkeys(EVERYTHING, "x")
    assert run(store, sql, **{**one, "trace_id": uuid.uuid4().hex}) == []


def test_slowest_calls(data: Data) -> None:
    rows = run(data.store, panel_sql()["Slowest calls"])
    assert [r["trace_id"] for r in rows[:2]] == [data.elsewhere["trace_id"], data.slow["trace_id"]]
    assert data.old["trace_id"] not in {r["trace_id"] for r in rows}  # outside the time range
    assert len(rows) == 11  # every LLM call in the range, of both projects; never the root (not an LLM span)
    assert 0.9 not in {r["duration_s"] for r in rows}
    durations = [r["duration_s"] for r in rows]
    assert durations == sorted(durations, reverse=True)
    slow = rows[1]
    assert slow["input_messages"] == data.slow["input"]
    assert slow["time"].replace(tzinfo=timezone.utc).timestamp() == data.slow["start_time"] / S  # UTC, naive
    # the project filter keeps the other tenant out
    only_acme = run(data.store, panel_sql()["Slowest calls"], project=["acme"])
    assert only_acme[0]["trace_id"] == data.slow["trace_id"]
    assert data.elsewhere["trace_id"] not in {r["trace_id"] for r in only_acme}


def test_latest_refusals_with_prompt_and_reply(data: Data) -> None:
    rows = run(data.store, panel_sql()["Latest refusals"], project="acme")
    assert [r["trace_id"] for r in rows] == [data.refused["trace_id"]]
    (row,) = rows
    assert row["refusal_source"] == "provider"
    assert row["refusal_category"] == "content_filter"
    assert "pick a lock" in row["input_messages"]
    assert "can't help" in row["output_messages"]
    both = run(data.store, panel_sql()["Latest refusals"])
    assert [r["trace_id"] for r in both] == [data.elsewhere["trace_id"], data.refused["trace_id"]]  # newest first


def test_latest_failed_assertions_joined_to_their_call(data: Data) -> None:
    rows = run(data.store, panel_sql()["Latest failed assertions"])
    assert len(rows) == 1
    (row,) = rows
    assert (row["assertion"], row["result"], row["explanation"]) == ("starts_lowercase", "fail", "starts with 'S'")
    assert row["trace_id"] == data.failed["trace_id"]
    assert row["model"] == "claude-sonnet-4"
    assert "reply in lowercase" in row["input_messages"]
    assert "Sure! Here it is." in row["output_messages"]
    # filters apply to the assertion rows' own dimensions
    sql = panel_sql()["Latest failed assertions"]
    assert run(data.store, sql, model=["gpt-4o-mini"]) == []
    assert len(run(data.store, sql, model=["claude-sonnet-4"], prompt_version="v2", prompt="support")) == 1


def test_token_and_cost_outliers(data: Data) -> None:
    tokens = run(data.store, panel_sql()["Most tokens"])
    assert tokens[0]["trace_id"] == data.heavy["trace_id"]
    assert tokens[0]["total_tokens"] == 92_000
    assert tokens[0]["times_model_average"] > 5
    totals = [r["total_tokens"] for r in tokens]
    assert totals == sorted(totals, reverse=True)
    cost = run(data.store, panel_sql()["Most expensive"])
    assert cost[0]["trace_id"] == data.expensive["trace_id"]
    assert cost[0]["cost_usd"] == pytest.approx(2.5)
    assert cost[0]["times_model_average"] == pytest.approx(1.0)  # the only o3 call
    assert all(r["cost_usd"] is not None for r in cost)  # unpriced calls are not "cheap"
    assert {r["model"] for r in run(data.store, panel_sql()["Most expensive"], model="o3")} == {"o3"}


def test_trace_lookup(data: Data) -> None:
    trace_id = data.failed["trace_id"]
    spans = run(data.store, panel_sql()["Spans of the trace"], trace_id=trace_id)
    assert [s["span_id"] for s in spans] == [data.root["span_id"], data.failed["span_id"]]  # in start order
    assert spans[1]["parent_span_id"] == data.root["span_id"]
    assert spans[1]["output_messages"] == data.failed["output"]  # whole, not truncated
    # an id pasted in capitals or with spaces still finds it
    assert len(run(data.store, panel_sql()["Spans of the trace"], trace_id=f" {trace_id.upper()} ")) == 2
    checks = run(data.store, panel_sql()["Assertions of the trace"], trace_id=trace_id)
    assert sorted((c["assertion"], c["result"]) for c in checks) == [
        ("not_contains", "pass"),
        ("starts_lowercase", "fail"),
    ]
    (feedback,) = run(data.store, panel_sql()["Feedback on the trace"], trace_id=trace_id)
    assert (feedback["name"], feedback["value"], feedback["comment"]) == ("thumbs", -1.0, "ignored my instruction")
    # an empty or quoted id finds nothing and breaks nothing
    assert run(data.store, panel_sql()["Spans of the trace"], trace_id="") == []
    assert run(data.store, panel_sql()["Spans of the trace"], trace_id="x' OR 1=1 --") == []


def test_activity_series(data: Data) -> None:
    rows = run(data.store, panel_sql()["LLM calls, errors and refusals"], project="acme")
    assert sum(r["calls"] for r in rows) == 10  # the LLM calls of acme in the range
    assert sum(r["refusals"] for r in rows) == 1
    times = [r["time"] for r in rows]
    assert times == sorted(times)


def test_variables_chain(data: Data) -> None:
    queries = variable_sql()
    assert [r["project"] for r in run(data.store, queries["project"])] == ["acme", "other"]
    assert [r["service"] for r in run(data.store, queries["service"], project=["acme"])] == ["bot"]
    assert [r["service"] for r in run(data.store, queries["service"])] == ["billing", "bot"]
    models = [r["model"] for r in run(data.store, queries["model"], project="acme", service="bot", environment="prod")]
    assert models == ["claude-sonnet-4", "gpt-4o-mini", "o3"]
    assert [r["prompt_name"] for r in run(data.store, queries["prompt"])] == ["support"]
    versions = run(data.store, queries["prompt_version"], model=["claude-sonnet-4"])
    assert [r["prompt_version"] for r in versions] == ["v2"]


def test_macros_are_the_plugins() -> None:
    for sql in [*panel_sql().values(), *variable_sql().values()]:
        for name, _ in clickhouse_macros.macro_calls(sql):
            assert name in clickhouse_macros.KNOWN_MACROS, name
