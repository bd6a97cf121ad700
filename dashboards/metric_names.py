"""Every metric name the committed dashboards and monitors query, exactly as written in their queries.

- :func:`grafana_metric_names`: the PromQL of every Prometheus target and Prometheus query
  variable of the Grafana dashboards (``gen_ai_client_operation_duration_seconds_bucket``,
  ``llmpulse_llm_calls_total``, ``llmpulse_feedback_value_sum``: suffixes kept as queried).
- :func:`datadog_metric_names`: the metric queries of the Datadog dashboard and monitors
  (``llmpulse.llm.calls``, ``gen_ai.client.operation.duration``).

Both read the committed JSON files, so a test comparing them with what the collector emits
checks what is actually deployed. Importable by bare name with ``dashboards/`` on
``sys.path`` (``import metric_names``), or run it to print both sets.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "DATADOG_FILES",
    "GRAFANA_FILES",
    "datadog_metric_names",
    "datadog_queries",
    "datadog_query_metric_names",
    "grafana_metric_names",
    "grafana_promql",
    "promql_metric_names",
]

HERE = Path(__file__).resolve().parent
GRAFANA_FILES = (HERE / "grafana" / "llm-overview.json", HERE / "grafana" / "llm-drilldown.json")
DATADOG_FILES = (HERE / "datadog" / "llm-overview.json", HERE / "datadog" / "monitors.json")

# --- PromQL ------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_NUMBER = re.compile(r"(?<![\w:.])(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(?![\w:])")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
    | {"inf", "nan", "Inf", "NaN", "atan2", "start", "end"}
)
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*)\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$", re.DOTALL)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects, as written (no suffix stripped).

    Grafana variables (``$service``, ``${x:regex}``, ``$__rate_interval``) and Grafana's
    variable-query wrappers (``label_values(metric{...}, label)``, ``query_result(expr)``)
    are understood. A ``{__name__="..."}`` selector is refused rather than guessed.
    """
    match = _LABEL_VALUES.match(expr)
    if match:
        args = match.group(1)
        depth = 0
        for i, char in enumerate(args):
            depth += char in "({["
            depth -= char in ")}]"
            if char == "," and depth == 0:
                return promql_metric_names(args[:i])
        return set()  # label_values(label): every metric, none named
    match = _QUERY_RESULT.match(expr)
    if match:
        return promql_metric_names(match.group(1))
    if "__name__" in expr:
        raise ValueError(f"selecting by __name__ is not supported here: {expr}")
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    while True:  # innermost first: matchers hold no braces once strings are gone
        stripped = _RANGE.sub(" ", _MATCHERS.sub(" ", text))
        if stripped == text:
            break
        text = stripped
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names: set[str] = set()
    for ident in _IDENTIFIER.finditer(text):
        rest = text[ident.end() :].lstrip()
        if rest.startswith("("):  # a function call
            continue
        if ident.group() in _KEYWORDS:
            continue
        names.add(ident.group())
    return names


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def grafana_promql(paths: Iterable[Path] = GRAFANA_FILES) -> Iterator[str]:
    """Every PromQL text of the dashboards: Prometheus targets' ``expr`` and Prometheus query variables."""
    for path in paths:
        board = _load(path)
        datasources = {
            v["name"]: v.get("query")
            for v in board.get("templating", {}).get("list", [])
            if v.get("type") == "datasource"
        }

        def is_prometheus(ref: Any, datasources: dict[str, Any] = datasources) -> bool:
            if not isinstance(ref, dict):
                return False
            if ref.get("type") == "prometheus":
                return True
            uid = str(ref.get("uid", ""))
            return uid.startswith("$") and datasources.get(uid.strip("${}")) == "prometheus"

        panels = list(board.get("panels", []))
        for panel in list(panels):
            panels.extend(panel.get("panels", []))  # collapsed rows hold their panels
        for panel in panels:
            for target in panel.get("targets", []):
                if is_prometheus(target.get("datasource", panel.get("datasource"))) and target.get("expr"):
                    yield target["expr"]
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query" and is_prometheus(variable.get("datasource")):
                query = variable.get("query")
                yield query if isinstance(query, str) else str(query.get("query", ""))


def grafana_metric_names(paths: Iterable[Path] = GRAFANA_FILES) -> set[str]:
    """Every metric name the Grafana dashboards' PromQL uses, exactly as written."""
    names: set[str] = set()
    for expr in grafana_promql(paths):
        names |= promql_metric_names(expr)
    return names


# --- Datadog -----------------------------------------------------------------------------------

# <space aggregator>:<metric>{<scope>}: avg/sum/min/max/count, or a percentile (p50, p99.9)
_DATADOG_GROUP_BY = re.compile(r"\bby\s*\{[^{}]*\}")
_DATADOG_METRIC = re.compile(r"(?<![\w.])(?:avg|sum|min|max|count|p\d+(?:\.\d+)?):([A-Za-z][A-Za-z0-9_.]*)\s*\{")


def datadog_query_metric_names(query: str) -> set[str]:
    """The metric names in a Datadog metric query (dashboard request or monitor), as written.

    Every ``{scope}`` must belong to a ``<aggregator>:<metric>`` selector, so a query this
    does not understand fails loudly instead of yielding fewer names.
    """
    names = [m.group(1) for m in _DATADOG_METRIC.finditer(query)]
    scopes = _DATADOG_GROUP_BY.sub(" ", query).count("{")
    if len(names) != scopes:
        raise ValueError(f"found {len(names)} metric selectors for {scopes} scopes in {query!r}")
    return set(names)


def datadog_queries(paths: Iterable[Path] = DATADOG_FILES) -> Iterator[str]:
    """Every metric query of the Datadog dashboard (requests) and monitors (``query``)."""
    for path in paths:
        data = _load(path)
        if isinstance(data, list):  # monitors
            for monitor in data:
                yield monitor["query"]
        else:
            yield from _dashboard_queries(data)


def _dashboard_queries(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _dashboard_queries(item)
    elif isinstance(node, dict):
        if node.get("data_source") == "metrics" and "query" in node:
            yield node["query"]
        elif isinstance(node.get("q"), str):
            yield node["q"]
        for key, value in node.items():
            if key not in ("query", "q"):
                yield from _dashboard_queries(value)


def datadog_metric_names(paths: Iterable[Path] = DATADOG_FILES) -> set[str]:
    """Every metric name the Datadog dashboard and monitors query, exactly as written."""
    names: set[str] = set()
    for query in datadog_queries(paths):
        names |= datadog_query_metric_names(query)
    return names


if __name__ == "__main__":
    print("grafana:", *sorted(grafana_metric_names()), sep="\n  ")
    print("datadog:", *sorted(datadog_metric_names()), sep="\n  ")
    sys.exit(0)
