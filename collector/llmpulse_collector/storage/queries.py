"""The read API behind ``/api/stats``, ``/api/traces`` and ``/api/traces/{id}``.

Every query is filtered by ``project`` (a tenant never sees another's rows). Values are
bound by the driver as ``{name:Type}`` parameters, never formatted into SQL; the only
identifiers that reach SQL text (group-by and filter columns) come from ``GROUP_KEYS``,
and anything else is refused with a ``ValueError`` naming it.

Counts are weighted by ``sample_weight`` (1/p of the SDK's sampling), so they estimate
what happened rather than what was kept; they are floats.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from llmpulse_collector.rows import ASSERTION_SCHEMA, SPAN_SCHEMA

from .clickhouse import Store
from .migrations import (
    ASSERTION_LADDERS,
    ASSERTION_SUMS,
    LADDERS,
    LLM_SUMS,
    QUANTILES,
    SPAN_DETAIL_COLUMNS,
    SPAN_DETAIL_VERSION,
    Rollup,
    llm_quantiles,
    packed_sums,
)

__all__ = ["FILTER_KEYS", "GROUP_KEYS", "RAW_MAX_WINDOW_S", "model_answers", "stats", "trace", "traces"]

GROUP_KEYS = ("service", "model", "provider", "prompt_version", "environment", "prompt_name", "operation")
"""The columns ``stats`` can group by (the rollups' dimensions)."""

FILTER_KEYS = ("service", "model", "provider", "prompt_version", "environment")
"""The columns ``stats`` can filter on (all carried by assertion rows too, so both counts filter alike)."""

RAW_MAX_WINDOW_S = 900
"""Windows up to this long read their partial edge minutes from raw spans (exact); wider ones are whole minutes."""

TRACE_SLACK_NS = 3600 * 10**9
"""How far past a search window's edges ``traces`` reads spans, so traces up to an hour long are whole."""

_TRACE_WINDOWS_S = (3600, 6 * 3600, 86400, 7 * 86400, None)
_MAX_LIMIT = 1000
_ASSERTION_COLUMNS = frozenset(name for name, _, _ in ASSERTION_SCHEMA)


def _keys(group_by: Sequence[str] | str) -> list[str]:
    if isinstance(group_by, str):
        group_by = [group_by]
    keys: list[str] = []
    for key in group_by:
        if key not in GROUP_KEYS:
            raise ValueError(f"group_by: {key!r} is not allowed; use any of {', '.join(GROUP_KEYS)}")
        if key not in keys:
            keys.append(key)
    return keys


def _filters(filters: Mapping[str, str] | None) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in (filters or {}).items():
        if key not in FILTER_KEYS:
            raise ValueError(f"filter {key!r} is not allowed; filter by any of {', '.join(FILTER_KEYS)}")
        if not isinstance(value, str):
            raise ValueError(f"filter {key!r}: expected a string, got {type(value).__name__}")
        checked[key] = value
    return checked


def _project(project: str) -> str:
    if not isinstance(project, str) or not project:
        raise ValueError(f"project must be a non-empty string, got {project!r}")
    return project


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _quantiles(values: Sequence[float] | None) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for label, value in zip(("p50", "p95", "p99"), values or (math.nan,) * 3, strict=True):
        # t-digest answers in Float32: round off the representation noise (µs resolution).
        out[label] = None if value is None or math.isnan(value) else round(float(value), 6)
    return out


def stats(
    store: Store,
    project: str,
    *,
    window_s: int,
    now_ns: int | None = None,
    filters: Mapping[str, str] | None = None,
    group_by: Sequence[str] = (),
    source: Literal["auto", "raw", "rollup"] = "auto",
) -> list[dict[str, Any]]:
    """LLM-call aggregates over the last ``window_s`` seconds, one dict per group, busiest first.

    ``group_by`` comes from ``GROUP_KEYS`` and the keys of ``filters`` from ``FILTER_KEYS``
    (else ``ValueError`` naming the bad value; filter values are bound, never formatted).
    Each group holds its keys and ``calls``, ``errors``, ``refusals``, ``error_rate``,
    ``refusal_rate``, ``latency_s`` and ``ttft_s`` (``{"p50", "p95", "p99"}`` seconds;
    ``ttft_s`` is None without streamed calls), ``input_tokens``, ``output_tokens``,
    ``cache_read_tokens``, ``reasoning_tokens``, ``cost_usd`` (None when no call was priced),
    ``priced_calls``, ``streams`` and ``assertions`` (``{name: {"pass", "fail", "error",
    "pass_rate"}}``), all weighted by ``sample_weight``.

    By default (``source="auto"``) the rollups carry the window in as few buckets as
    possible (hours, then ten minutes, then minutes; the narrow by-model rollups when the
    keys allow). A window up to ``RAW_MAX_WINDOW_S`` is exactly ``[now - window_s, now]``:
    its partial minutes at both edges are read from raw spans. A wider one is whole minutes,
    from the one holding ``now - window_s`` through the current one. ``"raw"`` reads only
    raw spans (the exact window), ``"rollup"`` only rollups (whole minutes). Quantiles are
    t-digest estimates either way.

    Assertion rows carry no ``operation``: grouped by it, a group's assertion results are
    those of the group's other keys (all operations together).

    >>> stats(store, "default", window_s=3600, group_by=["service", "model"])  # doctest: +SKIP
    [{'service': 'bot', 'model': 'gpt-4o-mini', 'calls': 120.0, 'refusal_rate': 0.025, ...}]
    """
    project = _project(project)
    window_s = _positive_int(window_s, "window_s")
    keys = _keys(group_by)
    where_filters = _filters(filters)
    if source not in ("auto", "raw", "rollup"):
        raise ValueError(f"source must be 'auto', 'raw' or 'rollup', got {source!r}")
    now = time.time_ns() if now_ns is None else int(now_ns)
    lo, hi = now - window_s * 10**9, now

    plan = _Plan(project, where_filters)
    minute_ns = 60 * 10**9
    if source == "rollup" or (source == "auto" and window_s > RAW_MAX_WINDOW_S):
        minutes = (lo // minute_ns * 60, hi // minute_ns * 60 + 60)
        raw: list[tuple[int, int]] = []
    elif source == "raw":
        minutes, raw = (0, 0), [(lo, hi + 1)]
    else:
        first, last = -(-lo // minute_ns), hi // minute_ns  # the first whole minute; the one holding now
        if first < last:
            minutes, raw = (first * 60, last * 60), [(lo, first * minute_ns), (last * minute_ns, hi + 1)]
        else:
            minutes, raw = (0, 0), [(lo, hi + 1)]
    raw = [(a, b) for a, b in raw if a < b]  # an edge on a minute boundary is empty
    select_keys = "".join(f"{key}, " for key in keys)
    group = f"GROUP BY {', '.join(keys)}" if keys else ""
    span_parts = plan.parts(_LLM_CALLS, keys, minutes, raw, head=select_keys, group=f"\n{group}")
    span_sql = (
        f"SELECT {select_keys}"
        + ", ".join(f"{_OUTER[name]}(m_{name}) AS m_{name}" for name in _MEASURES)
        + "\nFROM (\n"
        + "\nUNION ALL\n".join(span_parts)
        + f"\n)\n{group}\nORDER BY m_sums[1] DESC"  # calls
        + "".join(f", {key}" for key in keys)
    )
    assertion_keys = [key for key in keys if key in _ASSERTION_COLUMNS]
    select_akeys = "".join(f"{key}, " for key in assertion_keys)
    assertion_sql = (
        f"SELECT {select_akeys}m_name, "
        + ", ".join(f"sum(m_{name}) AS m_{name}" for name in ASSERTION_SUMS)
        + "\nFROM (\n"
        + "\nUNION ALL\n".join(
            plan.parts(
                _ASSERTIONS,
                assertion_keys,
                minutes,
                raw,
                head=f"{select_akeys}name AS m_name, ",
                group=f"\nGROUP BY {select_akeys}name",
            )
        )
        + f"\n)\nGROUP BY {select_akeys}m_name\nORDER BY m_name"
    )
    # Independent statements: run side by side (each one's fixed cost overlaps the other's).
    span_rows, assertion_rows = store.query_many([(sql, plan.params_of(sql)) for sql in (span_sql, assertion_sql)])
    groups: list[dict[str, Any]] = []
    by_assertion_key: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in span_rows:
        group_row = _group(row, keys)
        if group_row["calls"] <= 0:
            continue
        groups.append(group_row)
        by_assertion_key.setdefault(tuple(row[k] for k in assertion_keys), []).append(group_row)
    if not groups:
        return []

    for row in assertion_rows:
        passed, failed, errored = float(row["m_passes"]), float(row["m_fails"]), float(row["m_errors"])
        total = passed + failed + errored
        if total <= 0:
            continue
        result = {
            "pass": passed,
            "fail": failed,
            "error": errored,
            "pass_rate": passed / total,
        }
        for group_row in by_assertion_key.get(tuple(row[k] for k in assertion_keys), ()):
            group_row["assertions"][row["m_name"]] = dict(result)
    return groups


# The measures every part yields: the sums as one packed state (the rollups' ``sums`` column,
# migration 5: one column read instead of ten) and the t-digest states. The outer query merges
# them: the packed sums add element by element.
_MEASURES = ("sums", *llm_quantiles())
_OUTER = {
    "sums": "sumForEachMerge",
    **dict.fromkeys(llm_quantiles(), f"quantilesTDigestWeightedMerge({QUANTILES})"),
}
_RAW_PART = {"sums": packed_sums(list(LLM_SUMS.values())), **llm_quantiles("State")}


class _Plan:
    """The parts of one stats query: raw spans for time ranges in ns, rollups for ranges of whole minutes.

    Each part yields the same columns (keys, sums, t-digest states), so the outer query
    adds and merges them whatever table they came from. Raw spans are aggregated by key
    first; rollup rows go to the outer query as they are (merging their states twice costs
    more). ``params`` collects the bound values.
    """

    def __init__(self, project: str, filters: Mapping[str, str]) -> None:
        self.filters = filters
        self.params: dict[str, Any] = {"project": project}
        for key, value in filters.items():
            self.params[f"f_{key}"] = value

    def params_of(self, sql: str) -> dict[str, Any]:
        """The bound values ``sql`` refers to (a server may refuse parameters a statement lacks)."""
        return {name: value for name, value in self.params.items() if f"{{{name}:" in sql}

    def _bind(self, value: int) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return name

    def _ranges(self, column: str, ranges: Sequence[tuple[int, int]], convert: str) -> str:
        """``column`` in any of the half-open ``ranges`` (bound through ``convert``)."""
        conditions = [
            f"({column} >= {convert.format(self._bind(a))} AND {column} < {convert.format(self._bind(b))})"
            for a, b in ranges
        ]
        return "(" + " OR ".join(conditions) + ")"

    def _where(self, time_condition: str, keys_of_table: Collection[str] | None = None) -> str:
        filters = [k for k in self.filters if keys_of_table is None or k in keys_of_table]
        return f"project = {{project:String}} AND {time_condition}" + "".join(
            f" AND {key} = {{f_{key}:String}}" for key in filters
        )

    def parts(
        self,
        source: _Source,
        keys: Sequence[str],
        minutes: tuple[int, int],
        raw: Sequence[tuple[int, int]],
        *,
        head: str,
        group: str,
    ) -> list[str]:
        """SELECTs over ``raw`` ns ranges of ``source``'s rows (aggregated by ``group``) and over
        whole ``minutes`` (epoch seconds, half-open) of its rollups (rows passed through);
        ``head`` selects the keys."""
        filters = {k: v for k, v in self.filters.items() if source.columns is None or k in source.columns}
        parts = []
        if raw:
            where = self._where(source.condition + self._ranges(source.time_column, raw, _NS), source.columns)
            exprs = ", ".join(f"{expr} AS m_{name}" for name, expr in source.raw_measures.items())
            parts.append(f"SELECT {head}{exprs}\nFROM {source.table} AS s\nWHERE {where}{group}")
        if minutes[0] < minutes[1]:
            exprs = ", ".join(f"s.{name} AS m_{name}" for name in source.rollup_columns)
            for rollup, ranges in _pieces(minutes[0], minutes[1], _ladder(keys, filters, source.ladders)):
                where = self._where(self._ranges(rollup.time_column, ranges, _SECONDS), source.columns)
                parts.append(f"SELECT {head}{exprs}\nFROM {rollup.table} AS s\nWHERE {where}")
        return parts


@dataclass(frozen=True)
class _Source:
    """Where ``stats`` reads one kind of row: the raw table, its rollups, and how to aggregate each."""

    table: str
    time_column: str
    condition: str  # on raw rows, before the time ranges
    raw_measures: Mapping[str, str]  # measure -> aggregate over raw rows
    rollup_columns: tuple[str, ...]  # the rollups' columns holding the measures
    ladders: tuple[tuple[Rollup, ...], ...]
    columns: frozenset[str] | None  # the filter keys the rows carry (None: all)


_LLM_CALLS = _Source("spans", "start_time", "is_llm = 1 AND ", _RAW_PART, _MEASURES, LADDERS, None)
_ASSERTIONS = _Source(
    "assertions", "time", "", ASSERTION_SUMS, tuple(ASSERTION_SUMS), ASSERTION_LADDERS, _ASSERTION_COLUMNS
)


_NS = "fromUnixTimestamp64Nano({{{}:Int64}})"
_SECONDS = "toDateTime({{{}:Int64}}, 'UTC')"


def _ladder(
    keys: Sequence[str], filters: Mapping[str, str], ladders: Sequence[tuple[Rollup, ...]]
) -> tuple[Rollup, ...]:
    """The first of ``ladders`` whose every table has these group-by and filter keys."""
    needed = {*keys, *filters}
    for ladder in ladders:
        if all(needed <= set(rollup.keys) for rollup in ladder):
            return ladder
    raise AssertionError(f"no rollup has the keys {sorted(needed)}")  # GROUP_KEYS/FILTER_KEYS are ROLLUP_KEYS


def _pieces(first: int, end: int, ladder: Sequence[Rollup]) -> list[tuple[Rollup, list[tuple[int, int]]]]:
    """Cover the minutes ``[first, end)`` (epoch seconds) with the fewest buckets: ``ladder``'s
    coarsest table takes its whole buckets, the next ones what is left at the two ends."""
    pieces: dict[Rollup, list[tuple[int, int]]] = {}

    def cover(a: int, b: int, level: int) -> None:
        if a >= b:
            return
        rollup = ladder[level]
        if level == len(ladder) - 1:
            pieces.setdefault(rollup, []).append((a, b))
            return
        unit = rollup.unit_s
        whole_a, whole_b = -(-a // unit) * unit, b // unit * unit
        if whole_a >= whole_b:
            cover(a, b, level + 1)
            return
        pieces.setdefault(rollup, []).append((whole_a, whole_b))
        cover(a, whole_a, level + 1)
        cover(whole_b, b, level + 1)

    cover(first, end, 0)
    return list(pieces.items())


def _group(row: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {key: row[key] for key in keys}
    packed = row["m_sums"]  # shorter than LLM_SUMS only if every row predates a sum added later
    sums = {name: float(packed[i]) if i < len(packed) else 0.0 for i, name in enumerate(LLM_SUMS)}
    calls = sums["calls"]
    out["calls"] = calls
    out["errors"] = sums["errors"]
    out["refusals"] = sums["refusals"]
    out["error_rate"] = sums["errors"] / calls if calls else 0.0
    out["refusal_rate"] = sums["refusals"] / calls if calls else 0.0
    out["latency_s"] = _quantiles(row["m_latency"])
    out["ttft_s"] = _quantiles(row["m_ttft"]) if sums["streams"] > 0 else None
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"):
        out[name] = sums[name]
    out["cost_usd"] = sums["cost_usd"] if sums["priced_calls"] > 0 else None
    out["priced_calls"] = sums["priced_calls"]
    out["streams"] = sums["streams"]
    out["assertions"] = {}
    return out


def traces(
    store: Store,
    project: str,
    *,
    service: str | None = None,
    model: str | None = None,
    refusal: bool | None = None,
    failed_assertion: str | None = None,
    since_ns: int | None = None,
    limit: int = 50,
    before: tuple[int, str] | None = None,
    now_ns: int | None = None,
) -> list[dict[str, Any]]:
    """Traces newest first, one dict each, ``limit`` at most.

    Each holds ``trace_id``, ``start`` (ns), ``duration_s``, ``name`` and ``service`` (of
    the root span, else the earliest), ``spans`` (a count; also as ``span_count``),
    ``llm_calls``, ``models``, ``refusal`` (any span), ``error`` (any span),
    ``failed_assertions`` (names) and
    ``cost_usd`` (None when nothing was priced). Filters: a span of ``service``, an LLM
    call to ``model``, a refusal (``refusal=True``) or none (``False``), a failed
    ``failed_assertion``, a start at or after ``since_ns``. For the next page pass
    ``before=(start, trace_id)`` of the last trace.

    The search starts with the hour before the cursor (or now) and widens until the page is
    full, so a recent page reads little. Traces longer than ``TRACE_SLACK_NS`` may be cut
    at a window's edge.
    """
    project = _project(project)
    limit = _positive_int(limit, "limit")
    if limit > _MAX_LIMIT:
        raise ValueError(f"limit must be at most {_MAX_LIMIT}, got {limit}")
    for name, value in (("service", service), ("model", model), ("failed_assertion", failed_assertion)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if refusal is not None and not isinstance(refusal, bool):
        raise ValueError(f"refusal must be True, False or None, got {refusal!r}")
    if before is not None and not (
        isinstance(before, tuple) and len(before) == 2 and isinstance(before[0], int) and isinstance(before[1], str)
    ):
        raise ValueError(f"before must be (start_ns, trace_id) of the previous page's last trace, got {before!r}")
    floor = max(0, int(since_ns)) if since_ns is not None else 0
    anchor = before[0] if before is not None else (time.time_ns() if now_ns is None else int(now_ns))

    params: dict[str, Any] = {"project": project, "limit": limit}
    if service is not None:
        params["service"] = service
    if model is not None:
        params["model"] = model
    if failed_assertion is not None:
        params["failed"] = failed_assertion
    if before is not None:
        params["b_start"], params["b_trace"] = before
        params["scan_hi"] = before[0] + TRACE_SLACK_NS

    rows: list[dict[str, Any]] = []
    for window in _TRACE_WINDOWS_S:
        t_lo = floor if window is None else max(floor, anchor - window * 10**9)
        params["t_lo"] = t_lo
        params["scan_lo"] = max(0, t_lo - TRACE_SLACK_NS)
        rows = store.query(_traces_sql(service, model, refusal, failed_assertion, before is not None), params)
        if len(rows) >= limit or t_lo <= floor:
            break

    failed: dict[str, list[str]] = {}
    if rows:
        for row in store.query(
            "SELECT trace_id, arraySort(groupUniqArray(name)) AS names FROM assertions\n"
            "WHERE project = {project:String} AND trace_id IN {ids:Array(String)} AND label = 'fail'\n"
            "  AND time >= fromUnixTimestamp64Nano({scan_lo:Int64})\n"
            "GROUP BY trace_id",
            {"project": project, "ids": [r["trace_id"] for r in rows], "scan_lo": params["scan_lo"]},
        ):
            failed[row["trace_id"]] = list(row["names"])
    return [
        {
            "trace_id": r["trace_id"],
            "start": int(r["start_ns"]),
            "duration_s": max(0.0, float(r["duration_ns"]) / 1e9),
            "name": r["root_name"],
            "service": r["root_service"],
            "spans": int(r["span_count"]),
            "span_count": int(r["span_count"]),  # the same count, under its older name
            "llm_calls": int(r["llm_calls"]),
            "models": list(r["models"]),
            "refusal": bool(r["any_refusal"]),
            "error": bool(r["any_error"]),
            "failed_assertions": failed.get(r["trace_id"], []),
            "cost_usd": float(r["cost"]) if r["priced"] else None,
        }
        for r in rows
    ]


def _traces_sql(
    service: str | None, model: str | None, refusal: bool | None, failed_assertion: str | None, paged: bool
) -> str:
    scan = "project = {project:String} AND start_time >= fromUnixTimestamp64Nano({scan_lo:Int64})"
    if paged:
        scan += " AND start_time <= fromUnixTimestamp64Nano({scan_hi:Int64})"
    where = [scan]

    def having_span(condition: str) -> str:
        return f"trace_id IN (SELECT trace_id FROM spans WHERE {scan} AND {condition})"

    if service is not None:
        where.append(having_span("service = {service:String}"))
    if model is not None:
        where.append(having_span("is_llm = 1 AND model = {model:String}"))
    if refusal:
        where.append(having_span("refusal = 1"))
    if failed_assertion is not None:
        where.append(
            "trace_id IN (SELECT trace_id FROM assertions WHERE project = {project:String}"
            " AND time >= fromUnixTimestamp64Nano({scan_lo:Int64}) AND name = {failed:String} AND label = 'fail')"
        )
    having = ["t0 >= fromUnixTimestamp64Nano({t_lo:Int64})"]
    if refusal is False:
        having.append("max(refusal) = 0")
    if paged:
        having.append("(toUnixTimestamp64Nano(t0), trace_id) < ({b_start:Int64}, {b_trace:String})")
    return (
        "SELECT trace_id, min(start_time) AS t0, toUnixTimestamp64Nano(t0) AS start_ns,\n"
        "    toUnixTimestamp64Nano(max(end_time)) - start_ns AS duration_ns,\n"
        "    argMin(name, (parent_span_id != '', start_time)) AS root_name,\n"
        "    argMin(service, (parent_span_id != '', start_time)) AS root_service,\n"
        "    count() AS span_count, countIf(is_llm = 1) AS llm_calls,\n"
        "    arraySort(groupUniqArrayIf(model, is_llm = 1 AND model != '')) AS models,\n"
        "    max(refusal) AS any_refusal, max(status_code = 2) AS any_error,\n"
        "    sum(ifNull(cost_usd, 0)) AS cost, countIf(cost_usd IS NOT NULL) AS priced\n"
        f"FROM spans\nWHERE {' AND '.join(where)}\n"
        "GROUP BY trace_id\n"
        f"HAVING {' AND '.join(having)}\n"
        "ORDER BY t0 DESC, trace_id DESC\n"
        "LIMIT {limit:UInt32}"
    )


# Span columns returned by ``trace``: every column but the tenant, with timestamps as
# integers in their unit.
_TIME_UNITS = {
    "DateTime64(9, 'UTC')": ("toUnixTimestamp64Nano", "ns"),
    "DateTime64(3, 'UTC')": ("toUnixTimestamp64Milli", "ms"),
}
_DETAIL_COLUMNS = [(name, ctype) for name, ctype, _ in SPAN_SCHEMA if name != "project"]
_RENAMED = {"start_time": "start", "end_time": "end", "ingested_at": "ingested_at_ms"}
_BOOLEANS = frozenset({"is_llm", "stream", "refusal"})


def _detail_select() -> str:
    parts = []
    for name, ctype in _DETAIL_COLUMNS:
        if ctype in _TIME_UNITS:
            fn, unit = _TIME_UNITS[ctype]
            parts.append(f"{fn}({name}) AS {name}_{unit}")
        else:
            parts.append(name)
    return ", ".join(parts)


_DETAIL_SQL = (
    f"SELECT {_detail_select()}\nFROM spans\n"
    "WHERE project = {project:String} AND trace_id = {trace_id:String}\n"
    "ORDER BY start_time, span_id"
)


_ASSERTIONS_OF_TRACE_SQL = (
    "SELECT span_id, name, label, score, explanation, toUnixTimestamp64Nano(time) AS time_ns\n"
    "FROM assertions WHERE project = {project:String} AND trace_id = {trace_id:String}\n"
    "ORDER BY time, name"
)


# The same spans from the packed ``detail`` column and the three text columns: chDB pays per
# column read, and the statement above reads 44 of them.
_PACKED_SQL = (
    "SELECT detail, input, output, attributes\nFROM spans\n"
    "WHERE project = {project:String} AND trace_id = {trace_id:String}"
)


def _around(sql: str) -> str:
    """``sql`` reading only spans that start within ``[t_lo, t_hi]`` (ns)."""
    return sql.replace(
        "WHERE ",
        "WHERE start_time >= fromUnixTimestamp64Nano({t_lo:Int64})\n"
        "  AND start_time <= fromUnixTimestamp64Nano({t_hi:Int64})\n  AND ",
        1,
    )


_DETAIL_AROUND_SQL = _around(_DETAIL_SQL)
_PACKED_AROUND_SQL = _around(_PACKED_SQL)


def trace(store: Store, project: str, trace_id: str, *, around_ns: int | None = None) -> dict[str, Any] | None:
    """One trace with every span, its assertion results and feedback; None if ``project`` has no such trace.

    ``around_ns``, a time inside the trace (the ``start`` that ``traces`` lists), lets the
    store skip to it by time instead of searching every day for the id: only spans starting
    within ``TRACE_SLACK_NS`` of it are read (as the listing reads them).

    Returns ``{"trace_id", "start" (ns), "duration_s", "spans": [...], "feedback": [...]}``.
    Each span holds every column but ``project`` (``start``/``end`` in ns, ``ingested_at_ms``,
    ``refusal``/``stream``/``is_llm`` as booleans, ``attributes`` as a dict, ``input``/``output``
    as the stored JSON text) and ``assertions``: ``[{"name", "label", "score", "explanation", "time"}]``.
    """
    project = _project(project)
    if not isinstance(trace_id, str):
        raise ValueError(f"trace_id must be a string, got {type(trace_id).__name__}")
    params: dict[str, Any] = {"project": project, "trace_id": trace_id}
    packed_sql, detail_sql, detail_params = _PACKED_SQL, _DETAIL_SQL, params
    if around_ns is not None:
        around_ns = _positive_int(around_ns, "around_ns")
        packed_sql, detail_sql = _PACKED_AROUND_SQL, _DETAIL_AROUND_SQL
        detail_params = {
            **params,
            "t_lo": max(0, around_ns - TRACE_SLACK_NS),
            "t_hi": min(around_ns + TRACE_SLACK_NS, 2**63 - 1),
        }
    # The spans and their assertion results side by side: both find the trace by its bloom
    # filter, so neither needs the other's answer.
    rows, assertion_rows = store.query_many([(packed_sql, detail_params), (_ASSERTIONS_OF_TRACE_SQL, params)])
    if not rows:
        return None
    spans = _unpacked(rows, trace_id)
    if spans is None:  # a detail layout this version does not know: read the columns
        spans = [_span(row) for row in store.query(detail_sql, detail_params)]
        if not spans:  # dropped (retention) between the two reads
            return None
    by_id: dict[str, dict[str, Any]] = {}
    for span in spans:
        by_id.setdefault(span["span_id"], span)
    start = min(s["start"] for s in spans)
    end = max(s["end"] for s in spans)
    for row in assertion_rows:
        owner = by_id.get(row["span_id"])
        if owner is not None:
            owner["assertions"].append(
                {
                    "name": row["name"],
                    "label": row["label"],
                    "score": row["score"],
                    "explanation": row["explanation"],
                    "time": int(row["time_ns"]),
                }
            )
    response_ids = sorted({s["response_id"] for s in spans if s.get("response_id")})
    feedback = [
        {
            "name": row["name"],
            "value": float(row["value"]),
            "comment": row["comment"],
            "response_id": row["response_id"],
            "time_ms": int(row["time_ms"]),
        }
        for row in store.query(
            "SELECT name, value, comment, response_id, toUnixTimestamp64Milli(time) AS time_ms FROM feedback\n"
            "WHERE project = {project:String}\n"
            "  AND (trace_id = {trace_id:String}\n"
            "       OR (response_id != '' AND response_id IN {response_ids:Array(String)}))\n"
            "ORDER BY time, name",
            {**params, "response_ids": response_ids},
        )
    ]
    return {
        "trace_id": trace_id,
        "start": start,
        "duration_s": max(0.0, (end - start) / 1e9),
        "spans": spans,
        "feedback": feedback,
    }


def _span(row: Mapping[str, Any]) -> dict[str, Any]:
    span: dict[str, Any] = {}
    for name, ctype in _DETAIL_COLUMNS:
        if ctype in _TIME_UNITS:
            span[_RENAMED.get(name, name)] = int(row[f"{name}_{_TIME_UNITS[ctype][1]}"])
        elif name in _BOOLEANS:
            span[name] = bool(row[name])
        elif name == "attributes":
            span[name] = _json_object(row[name])
        elif name == "finish_reasons":
            span[name] = list(row[name])
        else:
            span[name] = row[name]
    span["assertions"] = []
    return span


def _packed_value(ctype: str) -> Callable[[Any], Any]:
    """How a ``detail`` array element of a column of type ``ctype`` becomes what ``_span`` returns.

    64-bit integers may arrive quoted (``output_format_json_quote_64bit_integers``) and
    non-finite floats as ``null``, whatever the inserting session's settings were."""
    if ctype in _TIME_UNITS or ctype.startswith(("UInt", "Int")):
        return int
    if ctype == "Float64":
        return lambda v: math.nan if v is None else float(v)
    if ctype == "Nullable(Float64)":
        return lambda v: None if v is None else float(v)
    if ctype.startswith("Array("):
        return list
    return str


_PACKED_INDEX = {name: i + 1 for i, name in enumerate(SPAN_DETAIL_COLUMNS)}
_UNPACK: list[tuple[str, str, Callable[[Any], Any]]] = [
    (
        _RENAMED.get(name, name),
        name,
        (lambda v: bool(int(v))) if name in _BOOLEANS else _packed_value(ctype),
    )
    for name, ctype in _DETAIL_COLUMNS
]


def _unpacked(rows: Sequence[Mapping[str, Any]], trace_id: str) -> list[dict[str, Any]] | None:
    """The spans of ``_PACKED_SQL`` rows as ``_span`` makes them, by start then span id;
    None if a row's ``detail`` is not a layout this version reads."""
    spans = []
    for row in rows:
        try:
            packed = orjson.loads(row["detail"])
        except orjson.JSONDecodeError:
            return None
        if not isinstance(packed, list) or len(packed) != len(_PACKED_INDEX) + 1 or packed[0] != SPAN_DETAIL_VERSION:
            return None
        span: dict[str, Any] = {}
        try:
            for key, name, convert in _UNPACK:
                index = _PACKED_INDEX.get(name)
                if index is not None:
                    span[key] = convert(packed[index])
                elif name == "trace_id":
                    span[key] = trace_id
                elif name == "attributes":
                    span[key] = _json_object(row[name])
                else:
                    span[key] = row[name]
        except (TypeError, ValueError):
            return None
        span["assertions"] = []
        spans.append(span)
    spans.sort(key=lambda s: (s["start"], s["span_id"]))
    return spans


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {"_unparsed": text}
    return value if isinstance(value, dict) else {"_value": value}


def model_answers(store: Store, *, since_ns: int, limit: int) -> list[tuple[tuple[str, str, str], str]]:
    """``((project, provider, request model), response model)``: what each request model of LLM
    calls started since ``since_ns`` was last answered as (at most ``limit``; for
    ``normalize.ModelNames.seed``). Every project's: the collector reads it for itself, never
    for an API caller. Bounded to 2 s of server time; raises ``StorageError``."""
    rows = store.query(
        "SELECT s.project AS project, s.provider AS provider, s.request_model AS request_model,\n"
        "       argMax(s.response_model, s.start_time) AS answer\n"
        "FROM spans AS s\n"
        "WHERE s.start_time >= fromUnixTimestamp64Nano({since:Int64}) AND s.is_llm = 1\n"
        "  AND s.request_model != '' AND s.response_model != ''\n"
        "GROUP BY project, provider, request_model\n"
        "LIMIT {limit:UInt32}\n"
        "SETTINGS max_execution_time = 2",
        {"since": max(0, since_ns), "limit": _positive_int(limit, "limit")},
    )
    return [((r["project"], r["provider"], r["request_model"]), r["answer"]) for r in rows]
