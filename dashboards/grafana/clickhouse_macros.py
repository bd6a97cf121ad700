"""Expand a ClickHouse-plugin query the way Grafana and ``grafana-clickhouse-datasource`` do, into plain SQL.

For tests: the drill-down dashboard's SQL is run on a real (embedded) ClickHouse after this
expansion. It follows the plugin (v4): the frontend first replaces
``$__conditionalAll(condition, $var)`` with ``1=1`` when ``$var`` is All (or empty), then
Grafana substitutes the template variables (``${var:singlequote}`` quotes and escapes each
value; a bare ``$var`` of several values becomes ``'a','b'``), then the backend expands the
time macros: ``$__timeFilter(col)`` is ``col >= toDateTime(<from>) AND col <= toDateTime(<to>)``,
``$__timeInterval(col)`` is ``toStartOfInterval(toDateTime(col), INTERVAL <n> second)``, and so on.

Only what the dashboards use, plus the neighbouring time macros; anything else left with a
``$`` is an error, so a typo in a dashboard fails its test instead of reaching ClickHouse.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

__all__ = ["ALL", "KNOWN_MACROS", "interpolate", "macro_calls"]

ALL: None = None
"""The value of a variable set to All (Grafana's ``$__all``)."""

Value = str | Sequence[str] | None

KNOWN_MACROS = frozenset(
    {
        "$__conditionalAll",
        "$__timeFilter",
        "$__timeFilter_ms",
        "$__timeFrom",
        "$__timeTo",
        "$__fromTime",
        "$__toTime",
        "$__fromTime_ms",
        "$__toTime_ms",
        "$__timeInterval",
        "$__timeInterval_ms",
        "$__interval_s",
        "$__dateFilter",
    }
)
"""The plugin's macros this module expands (all of them are documented by the plugin)."""

_MACRO = re.compile(r"\$__[A-Za-z_]+")
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def macro_calls(sql: str) -> list[tuple[str, list[str]]]:
    """Every ``$__macro`` in ``sql`` with its arguments (``[]`` for one without parentheses), in order."""
    out: list[tuple[str, list[str]]] = []
    for match in _MACRO.finditer(sql):
        end = match.end()
        if end < len(sql) and sql[end] == "(":
            args, _ = _arguments(sql, end)
            out.append((match.group(), args))
        else:
            out.append((match.group(), []))
    return out


def _arguments(sql: str, open_paren: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose ``(`` is at ``open_paren``, and the index after ``)``."""
    depth = 0
    quote = ""
    args: list[str] = []
    start = open_paren + 1
    i = open_paren
    while i < len(sql):
        char = sql[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i].strip())
                return args, i + 1
        elif char == "," and depth == 1:
            args.append(sql[start:i].strip())
            start = i + 1
        i += 1
    raise ValueError(f"unbalanced parentheses after position {open_paren} in {sql!r}")


_TIME_CALLS = {
    "$__timeFilter": "{0} >= toDateTime({t0}) AND {0} <= toDateTime({t1})",
    "$__timeFilter_ms": "{0} >= fromUnixTimestamp64Milli({ms0}) AND {0} <= fromUnixTimestamp64Milli({ms1})",
    "$__dateFilter": "{0} >= toDate('{d0}') AND {0} <= toDate('{d1}')",
    "$__timeFrom": "{0} >= toDateTime({t0})",
    "$__timeTo": "{0} <= toDateTime({t1})",
    "$__timeInterval": "toStartOfInterval(toDateTime({0}), INTERVAL {interval_s} second)",
    "$__timeInterval_ms": "toStartOfInterval(toDateTime64({0}, 3), INTERVAL {interval_ms} millisecond)",
}
"""Macros with one column argument -> their expansion (as in the plugin's ``pkg/macros/macros.go``)."""

_TIME_CONSTANTS = {
    "$__fromTime": "toDateTime({t0})",
    "$__toTime": "toDateTime({t1})",
    "$__fromTime_ms": "fromUnixTimestamp64Milli({ms0})",
    "$__toTime_ms": "fromUnixTimestamp64Milli({ms1})",
    "$__interval_s": "{interval_s}",
}


def _expand(name: str, template: str, args: list[str], *, ctx: Mapping[str, object]) -> str:
    if len(args) != 1:
        raise ValueError(f"{name} takes 1 argument, got {args}")
    return template.format(args[0], **ctx)


def _replace_calls(sql: str, name: str, expand: Callable[[list[str]], str]) -> str:
    """Replace every ``name(...)`` call with ``expand(args)``."""
    while True:
        index = sql.find(name + "(")
        if index < 0:
            return sql
        args, end = _arguments(sql, index + len(name))
        sql = sql[:index] + expand(args) + sql[end:]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _format(name: str, value: Value, fmt: str | None) -> str:
    if value is ALL:
        raise ValueError(f"${name} is All outside $__conditionalAll: Grafana would expand it to every option")
    values = [value] if isinstance(value, str) else list(value)
    if fmt == "singlequote":
        return ",".join(_quote(v) for v in values)
    if fmt is None:
        # the plugin's own formatter: several values become a quoted list, one stays as it is
        return values[0] if len(values) == 1 else ",".join(_quote(v) for v in values)
    raise ValueError(f"variable format {fmt!r} of ${name} is not handled here")


def interpolate(
    sql: str,
    variables: Mapping[str, Value],
    *,
    start: datetime,
    end: datetime,
    interval_s: int = 60,
) -> str:
    """``sql`` as the plugin would send it to ClickHouse for this time range and these variable values.

    ``variables`` maps each variable name to a value, a list of values, or :data:`ALL`.
    Raises ``ValueError`` for an unknown variable or macro, or one used in a way the plugin
    would not expand.
    """

    def conditional_all(args: list[str]) -> str:
        if len(args) != 2:
            raise ValueError(f"$__conditionalAll takes 2 arguments, got {args}")
        match = _VARIABLE.fullmatch(args[1])
        if match is None:
            raise ValueError(f"$__conditionalAll's second argument must be a variable, got {args[1]!r}")
        name = match.group(1) or match.group(3)
        if name not in variables:
            raise ValueError(f"unknown variable ${name}")
        value = variables[name]
        empty = value is ALL or value == "" or (not isinstance(value, str) and len(value) == 0)
        return "1=1" if empty else args[0]

    sql = _replace_calls(sql, "$__conditionalAll", conditional_all)

    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name.startswith("__"):
            return match.group()  # a macro, expanded below
        if name not in variables:
            raise ValueError(f"unknown variable ${name}")
        return _format(name, variables[name], match.group(2))

    sql = _VARIABLE.sub(variable, sql)

    ctx = {
        "t0": int(start.timestamp()),
        "t1": int(end.timestamp()),
        "ms0": int(start.timestamp() * 1000),
        "ms1": int(end.timestamp() * 1000),
        "d0": start.strftime("%Y-%m-%d"),
        "d1": end.strftime("%Y-%m-%d"),
        "interval_s": max(interval_s, 1),
        "interval_ms": max(interval_s * 1000, 1),
    }
    for name, template in _TIME_CALLS.items():
        sql = _replace_calls(sql, name, functools.partial(_expand, name, template, ctx=ctx))
    sql = _MACRO.sub(lambda m: _TIME_CONSTANTS.get(m.group(), m.group()).format(**ctx), sql)
    if "$" in sql:
        raise ValueError(f"unexpanded $ left in: {sql}")
    return sql
