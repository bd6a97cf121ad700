"""The Datadog dashboard and monitors: committed JSON is the generator's output and every part of it
parses with ``datadog-api-client``'s own models (``Dashboard``, ``Monitor``: nothing ``_unparsed``,
no unknown key), mirrors the Grafana overview, and each monitor has its runbook, thresholds and,
for the ratios, a minimum-traffic guard.

(Not ``test_datadog.py``: ``tests/collector/test_datadog.py`` exists, and test files without
``__init__.py`` need distinct names.)"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor
from loaders import load

ROOT = Path(__file__).resolve().parents[2]
DATADOG = ROOT / "dashboards" / "datadog"


generate = load("datadog_generate", DATADOG / "generate.py")
sys.path.insert(0, str(ROOT / "dashboards"))
import metric_names  # noqa: E402


def dashboard_text() -> str:
    return (DATADOG / "llm-overview.json").read_text()


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(dashboard_text())
    return data


def monitors() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((DATADOG / "monitors.json").read_text())
    return data


def widgets(node: Any) -> list[dict[str, Any]]:
    """Every widget, groups and their children, depth first."""
    out: list[dict[str, Any]] = []
    for widget in node["widgets"]:
        out.append(widget)
        if widget["definition"]["type"] == "group":
            out.extend(widgets(widget["definition"]))
    return out


# --- generated and parseable ---------------------------------------------------------------------


def test_committed_files_are_the_generators_output() -> None:
    for name, build in generate.FILES.items():
        assert (DATADOG / name).read_text() == generate.render(build), f"{name} is stale: run generate.py"
    assert generate.main(["--check", "--validate"]) == 0


def test_check_mode_fails_on_a_stale_file(tmp_path: Path) -> None:
    for name in generate.FILES:
        shutil.copy(DATADOG / name, tmp_path / name)
    assert generate.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "monitors.json").write_text("[]\n")
    assert generate.main(["--check", "--out", str(tmp_path)]) == 1
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "monitors.json").read_text() == (DATADOG / "monitors.json").read_text()


def test_dashboard_deserializes_with_the_api_clients_model() -> None:
    parsed = ApiClient(Configuration()).deserialize(dashboard_text(), (Dashboard,), True)
    assert isinstance(parsed, Dashboard)
    assert not getattr(parsed, "_unparsed", False)
    assert generate.problems(dashboard_text(), Dashboard) == []  # nowhere inside either, and no unknown key
    assert parsed.title == "LLM overview"
    assert parsed.layout_type.value == "ordered"


@pytest.mark.parametrize("index", range(len(monitors())))
def test_each_monitor_deserializes_with_the_api_clients_model(index: int) -> None:
    text = json.dumps(monitors()[index])
    parsed = ApiClient(Configuration()).deserialize(text, (Monitor,), True)
    assert isinstance(parsed, Monitor)
    assert not getattr(parsed, "_unparsed", False)
    assert generate.problems(text, Monitor) == []


def test_problems_are_found_where_they_are() -> None:
    """The check is real: a bad enum deep inside a group, an unknown key, a bad monitor type."""
    data = dashboard()
    inner = data["widgets"][1]["definition"]["widgets"][0]["definition"]
    inner["requests"][0]["display_type"] = "zigzag"
    data["widgets"][2]["definition"]["widgets"][0]["definition"]["titel"] = "typo"
    found = generate.problems(json.dumps(data), Dashboard)
    assert any(p.startswith("$.widgets[1].definition:") for p in found), found
    assert "$.widgets[2].definition.widgets[0].definition.titel: not a field of TimeseriesWidgetDefinition" in found
    monitor = {**monitors()[0], "type": "metric alertz"}
    assert generate.problems(json.dumps(monitor), Monitor) == ["$: not a valid Monitor"]


# --- the dashboard ---------------------------------------------------------------------------------


def test_template_variables_and_scopes() -> None:
    data = dashboard()
    names = [v["name"] for v in data["template_variables"]]
    assert names == ["service", "env", "model", "prompt", "prompt_version"]
    assert all(v["prefix"] == v["name"] and v["defaults"] == ["*"] for v in data["template_variables"])
    scope = "$service,$env,$model,$prompt,$prompt_version"
    exempt = ("llmpulse.collector.", "llmpulse.feedback")  # the collector's own; feedback has only a name
    llm = 0
    for query in metric_names.datadog_queries([DATADOG / "llm-overview.json"]):
        (name,) = metric_names.datadog_query_metric_names(query)
        if name.startswith(exempt):
            assert "{*}" in query, query
            continue
        llm += 1
        assert f"{{{scope}" in query, f"not filtered by every variable: {query}"
    assert llm > 40


def test_layout_fits_the_grid() -> None:
    data = dashboard()
    assert data["reflow_type"] == "fixed"

    def check(items: list[dict[str, Any]]) -> None:
        taken: set[tuple[int, int]] = set()
        for widget in items:
            layout = widget["layout"]
            x, y, w, h = layout["x"], layout["y"], layout["width"], layout["height"]
            assert min(x, y) >= 0
            assert min(w, h) >= 1
            assert x + w <= 12, widget["definition"].get("title")
            cells = {(cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)}
            assert not cells & taken, widget["definition"].get("title")
            taken |= cells

    check(data["widgets"])
    for group in data["widgets"]:
        assert group["definition"]["type"] == "group"
        check(group["definition"]["widgets"])


def test_mirrors_the_grafana_overview() -> None:
    grafana = json.loads((ROOT / "dashboards" / "grafana" / "llm-overview.json").read_text())
    rows = [p["title"].replace("time range", "time frame") for p in grafana["panels"] if p["type"] == "row"]
    assert [g["definition"]["title"] for g in dashboard()["widgets"]] == rows
    titles = {w["definition"].get("title", "") for w in widgets(dashboard())}
    for expected in (
        "Refusal rate by model (%)",
        "Assertion pass rate by assertion (%)",
        "Latency p50 / p95 / p99",
        "Time to first token p50 / p95 / p99",
        "Tokens / s by type",
        "Cost / hour by model",
        "Mean feedback value by name",
        "Prompt versions over the time frame",
        "Storage lag (oldest unwritten entry)",
    ):
        assert expected in titles, expected


def test_datadog_metric_names_exactly_as_queried() -> None:
    assert metric_names.datadog_metric_names() == {
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.client.token.usage",
        "llmpulse.llm.calls",
        "llmpulse.refusals",
        "llmpulse.assertion.results",
        "llmpulse.tokens",
        "llmpulse.cost.usd",
        "llmpulse.feedback",
        "llmpulse.feedback.value",
        "llmpulse.collector.spans.accepted",
        "llmpulse.collector.spans.rejected",
        "llmpulse.collector.requests.rejected",
        "llmpulse.collector.storage.errors",
        "llmpulse.collector.exporter.errors",
        "llmpulse.collector.series_folded",
        "llmpulse.collector.wal.bytes",
        "llmpulse.collector.wal.max_bytes",
        "llmpulse.collector.wal.pending_entries",
        "llmpulse.collector.wal.oldest_unwritten_age",
    }
    # the dashboard alone, and the monitors alone
    assert metric_names.datadog_metric_names([DATADOG / "monitors.json"]) < metric_names.datadog_metric_names()


def test_datadog_query_parsing_refuses_what_it_does_not_understand() -> None:
    query = "sum(last_5m):(sum:a.b{x:y} by {h}.as_count() / sum:c{*}.as_count()) * is_greater(sum:c{*}, 5) > 1"
    assert metric_names.datadog_query_metric_names(query) == {"a.b", "c"}
    assert metric_names.datadog_query_metric_names("p99.9:d.e{*} by {model}") == {"d.e"}
    with pytest.raises(ValueError, match="selectors"):
        metric_names.datadog_query_metric_names("top(avg:a{*}, 5) + weird.metric{*}")


# --- the monitors ----------------------------------------------------------------------------------

_COMPARISON = re.compile(r"\s(>=|>|<=|<)\s*(-?[\d.]+)\s*$")


def test_monitors_cover_the_signals() -> None:
    queries = {m["name"]: m["query"] for m in monitors()}
    text = "\n".join(queries.values())
    assert "sum:llmpulse.refusals{" in text
    assert "sum:llmpulse.llm.calls{status:error}" in text
    assert "sum:llmpulse.assertion.results{result:fail}" in text
    assert "p95:gen_ai.client.operation.duration{" in text
    assert sum("llmpulse.collector." in q for q in queries.values()) >= 3
    assert len(queries) == len(monitors())  # names are distinct


@pytest.mark.parametrize("index", range(len(monitors())))
def test_monitor_thresholds_runbook_and_guard(index: int) -> None:
    monitor = monitors()[index]
    assert monitor["type"] == "query alert"
    assert monitor["name"].startswith("[llmpulse] ")
    anchors = re.findall(r"docs/runbooks\.md#([a-z0-9-]+)", monitor["message"])
    assert len(anchors) == 1, monitor["message"]
    thresholds = monitor["options"]["thresholds"]
    comparison = _COMPARISON.search(monitor["query"])
    assert comparison is not None, monitor["query"]
    assert comparison.group(1) == ">"
    assert float(comparison.group(2)) == thresholds["critical"]  # the query's threshold is the critical one
    assert thresholds["warning"] < thresholds["critical"]
    assert monitor["options"]["notify_no_data"] is False
    for tag in re.findall(r"\{\{(\w+)\.name\}\}", monitor["name"] + monitor["message"]):
        assert re.search(rf"by \{{[^}}]*\b{tag}\b", monitor["query"]), f"{{{{{tag}.name}}}} is not a group"
    if "/" in monitor["query"] and ".as_count()" in monitor["query"]:
        # a ratio of counts: only alert on enough traffic (Datadog's is_greater guard on the denominator)
        guard = re.search(r"\* is_greater\((.+), (\d+)\) >", monitor["query"])
        assert guard is not None, monitor["query"]
        assert int(guard.group(2)) >= 20
        assert f"/ {guard.group(1)})" in monitor["query"]  # the guard counts the ratio's own denominator
        assert monitor["query"].startswith("sum(last_")  # counts summed over the window, then divided


def test_runbook_anchors() -> None:
    anchors = [re.search(r"docs/runbooks\.md#([a-z0-9-]+)", m["message"]).group(1) for m in monitors()]  # type: ignore[union-attr]
    assert anchors == [
        "refusal-rate-spike",
        "error-rate-spike",
        "assertion-failure-spike",
        "latency-regression",
        "collector-dropping-data",
        "collector-storage-behind",
        "collector-wal-full",
    ]
