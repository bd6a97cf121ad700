"""The Grafana dashboards: committed JSON is the generator's output, valid against Grafana's own JSON
Schema (generated from npm ``@grafana/schema``), and sound: datasources, queries, ids, grid,
variables, filters, PromQL that ``promtool`` parses, and provisioning that matches the uids.

The drill-down's SQL runs on a real chDB in ``tests/collector/test_drilldown_sql.py``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from loaders import load

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
SCHEMAS = GRAFANA / "schema"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
FILES = ("llm-overview.json", "llm-drilldown.json")


generate = load("grafana_generate", GRAFANA / "generate.py")
sys.path.insert(0, str(ROOT / "dashboards"))
import metric_names  # noqa: E402


def board(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / name).read_text())
    return data


def panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, and those inside collapsed rows."""
    out: list[dict[str, Any]] = []
    for panel in data["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def queries(data: dict[str, Any]) -> list[str]:
    """Every query text: targets' expr/rawSql and query variables' queries."""
    out = [t.get("expr") or t.get("rawSql") or "" for p in panels(data) for t in p.get("targets", [])]
    for variable in data["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            out.append(query if isinstance(query, str) else query["rawSql"])
    return out


def variables(data: dict[str, Any]) -> list[str]:
    return [v["name"] for v in data["templating"]["list"]]


# --- generated, and valid against Grafana's schema --------------------------------------------


def test_committed_files_are_the_generators_output() -> None:
    for name, build in generate.DASHBOARDS.items():
        assert (GRAFANA / name).read_text() == generate.render(build), f"{name} is stale: run generate.py"
    assert generate.main(["--check"]) == 0


def test_check_mode_fails_on_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in FILES:
        shutil.copy(GRAFANA / name, tmp_path / name)
    assert generate.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / "llm-overview.json"
    stale.write_text(stale.read_text().replace("Refusal rate", "Refusal ratio", 1))
    assert generate.main(["--check", "--out", str(tmp_path)]) == 1
    assert "llm-overview.json" in capsys.readouterr().err
    assert "Refusal ratio" in stale.read_text()  # --check writes nothing
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert generate.main(["--check", "--out", str(tmp_path)]) == 0


def _schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return data


def _errors(schema: dict[str, Any], instance: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message[:300]}" for e in validator.iter_errors(instance)]


@pytest.mark.parametrize("name", FILES)
def test_valid_against_grafanas_dashboard_schema(name: str) -> None:
    schema = _schema("dashboard.json")
    jsonschema.Draft7Validator.check_schema(schema)
    assert _errors(schema, board(name)) == []


@pytest.mark.parametrize("name", FILES)
def test_panel_options_valid_against_the_panel_schemas(name: str) -> None:
    checked = 0
    for panel in panels(board(name)):
        kind = panel["type"]
        if kind == "row":
            continue
        assert kind in ("timeseries", "stat", "table"), kind
        assert _errors(_schema(f"{kind}-options.json"), panel["options"]) == [], panel["title"]
        if (SCHEMAS / f"{kind}-fieldconfig.json").exists():
            custom = panel["fieldConfig"]["defaults"]["custom"]
            assert _errors(_schema(f"{kind}-fieldconfig.json"), custom) == [], panel["title"]
        checked += 1
    assert checked > 5


def test_the_schema_really_rejects_broken_dashboards() -> None:
    schema = _schema("dashboard.json")
    data = board("llm-overview.json")
    data["panels"][1]["gridPos"].pop("w")
    data["templating"]["list"][1]["refresh"] = 7
    data["titel"] = "typo"
    errors = _errors(schema, data)
    assert any("titel" in e for e in errors)
    assert any(e.startswith("['panels', 1]") for e in errors)
    assert any(e.startswith("['templating', 'list', 1, 'refresh']") for e in errors)
    options = next(p for p in board("llm-overview.json")["panels"] if p["type"] == "timeseries")["options"]
    options["legend"]["placement"] = "top"
    assert _errors(_schema("timeseries-options.json"), options)


# --- structure -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [(FILES[0], "prometheus"), (FILES[1], "grafana-clickhouse-datasource")])
def test_every_panel_has_a_datasource_and_queries(name: str, kind: str) -> None:
    data = board(name)
    (ds_var,) = [v for v in data["templating"]["list"] if v["type"] == "datasource"]
    assert ds_var["name"] == "datasource"
    assert ds_var["query"] == kind
    for panel in panels(data):
        if panel["type"] == "row":
            assert "targets" not in panel
            continue
        assert panel["datasource"] == {"type": kind, "uid": "${datasource}"}, panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in targets:
            assert target["refId"], panel["title"]
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]
            if kind == "prometheus":
                assert target["expr"].strip(), panel["title"]
            else:
                assert target["rawSql"].strip(), panel["title"]
                assert target["editorType"] == "sql"
                assert target["format"] in (0, 1)  # time series, table
                assert target["queryType"] == ("timeseries" if target["format"] == 0 else "table")
                assert target["pluginVersion"] >= "4"  # the v4 query model: not migrated as a v3 query
        assert panel["title"], panel
        assert panel.get("description"), panel["title"]


@pytest.mark.parametrize("name", FILES)
def test_unique_ids_and_a_grid_without_overlaps(name: str) -> None:
    data = board(name)
    ids = [p["id"] for p in panels(data)]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    for panel in panels(data):
        pos = panel["gridPos"]
        x, y, w, h = pos["x"], pos["y"], pos["w"], pos["h"]
        assert all(isinstance(v, int) for v in (x, y, w, h)), panel["title"]
        assert min(x, y) >= 0, panel["title"]
        assert min(w, h) >= 1, panel["title"]
        assert x + w <= 24, f"{panel['title']} spills past column 24"
        if panel["type"] == "row":
            assert (x, w, h) == (0, 24, 1)
        for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
            assert cell not in taken, f"{panel['title']} overlaps {taken[cell]}"
            taken[cell] = panel["title"]
    # panels come in reading order, each after its row
    order = [(p["gridPos"]["y"], p["gridPos"]["x"]) for p in data["panels"]]
    assert order == sorted(order)


_REFERENCE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")


def _references(text: str) -> set[str]:
    names = {next(g for g in m.groups() if g) for m in _REFERENCE.finditer(text)}
    return {n for n in names if not n.startswith("__")}  # $__rate_interval, $__timeFilter, ...


@pytest.mark.parametrize("name", FILES)
def test_referenced_variables_exist_and_chain_in_order(name: str) -> None:
    data = board(name)
    defined = variables(data)
    texts = [
        *queries(data),
        *(p.get("title", "") for p in panels(data)),
        *(p.get("description", "") for p in panels(data)),
    ]
    used: set[str] = set()
    for text in texts:
        used |= _references(text)
    assert used <= set(defined), used - set(defined)
    assert set(defined) - {"datasource"} <= used  # and every variable is used
    for i, variable in enumerate(data["templating"]["list"]):
        if variable["type"] == "query":
            query = variable["query"] if isinstance(variable["query"], str) else variable["query"]["rawSql"]
            assert _references(query) <= set(defined[:i]), f"{variable['name']} uses a later variable"
            assert variable["datasource"]["uid"] == "${datasource}"
            assert variable["multi"]
            assert variable["includeAll"]
            assert variable["refresh"] == 2  # on time range change


def test_overview_variables() -> None:
    data = board("llm-overview.json")
    assert variables(data) == ["datasource", "service", "environment", "model", "prompt", "prompt_version"]
    for variable in data["templating"]["list"][1:]:
        assert variable["query"].startswith("label_values(llmpulse_llm_calls_total")
        assert variable["query"].endswith(f", {variable['name']})")
        assert variable["allValue"] == ".*"  # All also matches series without the label (no prompt)


LLM_MATCHERS = [
    'service=~"$service"',
    'environment=~"$environment"',
    'model=~"$model"',
    'prompt=~"$prompt"',
    'prompt_version=~"$prompt_version"',
]
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?")


def test_every_llm_query_filters_by_every_variable() -> None:
    """Feedback (labelled by name only) and the collector's own metrics are the only exceptions."""
    exempt = ("llmpulse_collector_", "llmpulse_feedback_")
    exprs = [t["expr"] for p in panels(board("llm-overview.json")) for t in p.get("targets", [])]
    llm_selectors = 0
    for expr in exprs:
        names = metric_names.promql_metric_names(expr)
        for match in _SELECTOR.finditer(expr):
            metric, matchers = match.group(1), match.group(2)
            if metric not in names or metric.startswith(exempt):
                continue
            llm_selectors += 1
            assert matchers, f"{metric} without the filters in {expr}"
            for matcher in LLM_MATCHERS:
                assert matcher in matchers, f"{metric} lacks {matcher} in {expr}"
    assert llm_selectors > 40


def test_overview_has_the_promised_panels() -> None:
    data = board("llm-overview.json")
    rows = [p["title"] for p in data["panels"] if p["type"] == "row"]
    assert rows == [
        "Summary (over the time range)",
        "Traffic and quality",
        "Latency",
        "Tokens and cost",
        "Feedback",
        "Prompt versions side by side",
        "Collector health",
    ]
    by_title = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels(data) if p["type"] != "row"}
    expect = {
        "Calls / s by model and status": ["llmpulse_llm_calls_total"],
        "Error rate by model": ['status="error"'],
        "Refusal rate by model": ["llmpulse_refusals_total", "llmpulse_llm_calls_total"],
        "Assertion pass rate by assertion": ['result="pass"', "by (assertion)"],
        "Latency p50 / p95 / p99": [
            f"histogram_quantile({q}, sum by (le) (rate(gen_ai_client_operation_duration_seconds_bucket"
            for q in ("0.5", "0.95", "0.99")
        ],
        "Time to first token p50 / p95 / p99": ["gen_ai_client_operation_time_to_first_chunk_seconds_bucket"],
        "Tokens / s by type": ["sum by (type) (rate(llmpulse_tokens_total"],
        "Cost / hour by model": ["llmpulse_cost_usd_total", "* 3600"],
        "Feedback posts / s by name": ["llmpulse_feedback_total"],
        "Mean feedback value by name (trailing hour)": ["llmpulse_feedback_value_sum", "llmpulse_feedback_value_count"],
        "Spans accepted and rejected / s": ["spans_accepted_total", "spans_rejected_total"],
        "Write-ahead log size": ["llmpulse_collector_wal_bytes"],
        "Storage lag (oldest unwritten entry)": ["llmpulse_collector_wal_oldest_unwritten_age_seconds"],
        "Storage errors / s": ["llmpulse_collector_storage_errors_total"],
        "Refusal rate by prompt version": ["by (prompt, prompt_version)"],
        "Assertion pass rate by prompt version": ["by (prompt, prompt_version)"],
        "p95 latency by prompt version": ["by (le, prompt, prompt_version)"],
        "Cost per call by prompt version": ["llmpulse_cost_usd_total", "by (prompt, prompt_version)"],
        "Prompt versions over the time range": ["[$__range]", "by (prompt, prompt_version)"],
    }
    for title, fragments in expect.items():
        assert title in by_title, title
        for fragment in fragments:
            assert fragment in by_title[title], (title, fragment)


def _promtool_ready(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced by what Grafana would send."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__range", "6h").replace("$__interval", "30s")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def test_promql_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    exprs = [t["expr"] for p in panels(board("llm-overview.json")) for t in p.get("targets", [])]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query{i}", "expr": _promtool_ready(e)} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(exprs)} rules found" in result.stdout


# --- metric names ------------------------------------------------------------------------------


def test_grafana_metric_names_exactly_as_queried() -> None:
    assert metric_names.grafana_metric_names() == {
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
        "gen_ai_client_token_usage_bucket",
        "llmpulse_llm_calls_total",
        "llmpulse_refusals_total",
        "llmpulse_assertion_results_total",
        "llmpulse_tokens_total",
        "llmpulse_cost_usd_total",
        "llmpulse_feedback_total",
        "llmpulse_feedback_value_sum",
        "llmpulse_feedback_value_count",
        "llmpulse_collector_spans_accepted_total",
        "llmpulse_collector_spans_rejected_total",
        "llmpulse_collector_requests_rejected_total",
        "llmpulse_collector_storage_errors_total",
        "llmpulse_collector_storage_insert_duration_seconds_bucket",
        "llmpulse_collector_exporter_errors_total",
        "llmpulse_collector_series_folded_total",
        "llmpulse_collector_wal_bytes",
        "llmpulse_collector_wal_max_bytes",
        "llmpulse_collector_wal_pending_entries",
        "llmpulse_collector_wal_oldest_unwritten_age_seconds",
    }


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.95, sum by (le, model) (rate(a_bucket{x=~"$x", y="}"}[$__rate_interval])))',
            {"a_bucket"},
        ),
        ("sum(rate(a_total[5m])) / on (job) group_left (instance) b offset 1h > bool 2e-3", {"a_total", "b"}),
        ("max_over_time(llm_1m[1h:5m]) * 3600", {"llm_1m"}),
        ('label_values(up{job=~"$job"}, instance)', {"up"}),
        ("label_values(instance)", set()),
        ("query_result(topk(5, c))", {"c"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names.promql_metric_names(expr) == names


# --- provisioning ------------------------------------------------------------------------------


def test_provisioned_datasources_match_the_dashboards() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources" / "llmpulse.yml").read_text())
    assert config["apiVersion"] == 1
    by_uid = {d["uid"]: d for d in config["datasources"]}
    prom = by_uid[generate.PROMETHEUS_UID]
    assert (prom["type"], prom["url"], prom["name"]) == (
        "prometheus",
        "http://prometheus:9090",
        generate.PROMETHEUS_NAME,
    )
    ch = by_uid[generate.CLICKHOUSE_UID]
    assert (ch["type"], ch["name"]) == ("grafana-clickhouse-datasource", generate.CLICKHOUSE_NAME)
    assert ch["jsonData"]["host"] == "clickhouse"
    assert (ch["jsonData"]["protocol"], ch["jsonData"]["port"]) in {("native", 9000), ("http", 8123)}
    assert ch["jsonData"]["defaultDatabase"] == "llmpulse"  # the drill-down's SQL names tables unqualified
    for name, datasource in ((FILES[0], prom), (FILES[1], ch)):
        (ds_var,) = [v for v in board(name)["templating"]["list"] if v["type"] == "datasource"]
        assert ds_var["current"]["value"] == datasource["uid"]
        assert ds_var["current"]["text"] == datasource["name"]
        assert ds_var["query"] == datasource["type"]


def test_provisioned_dashboard_provider() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "llmpulse.yml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    uids = {board(name)["uid"] for name in FILES}
    assert uids == {generate.OVERVIEW_UID, generate.DRILLDOWN_UID}
