"""Versioned, idempotent schema migrations, recorded in ``schema_migrations``.

Each migration is a list of ``CREATE ... IF NOT EXISTS`` (or ``ADD COLUMN IF NOT EXISTS``)
statements built from the row schemas in ``rows.py`` (columns are never retyped here).
``migrate(store)`` applies the versions ``schema_migrations`` lacks, in order, and records
each one; running it twice, or from two threads or processes at once, is safe: the DDL is
idempotent and the version row is inserted with a fixed deduplication token, so it is
stored once.

Tables (single server or chDB):

- ``spans``: MergeTree, one partition per day, ordered by ``(project, service, start_time)``
  for per-project/service time-range scans, a bloom filter on ``trace_id`` for trace lookups,
  TTL ``retention_days`` (whole parts dropped), insert deduplication window.
- ``assertions``, ``feedback``: the same, ordered by ``(project, time)``.
- ``llm_1m``, ``assertions_1m``: per-minute rollups (AggregatingMergeTree) fed by
  materialized views; their targets also deduplicate, so a replayed insert is counted once.
- Version 3, coarser rollups fed by views on the per-minute ones (so an insert is aggregated
  once from spans, then from its few rollup rows): ``llm_1h`` and ``assertions_1h`` (all
  keys), ``llm_1h_by_model`` (``MODEL_KEYS``), and ``llm_1h_by_service_model``,
  ``llm_10m_by_service_model``, ``llm_1m_by_service_model``. Reading a t-digest state costs
  its centroids, and a minute of one key is barely compressed: a day by model merges 24
  hourly states a model instead of 1,440 per-minute ones for every key. They keep 16 rows a
  granule (not 8,192), so a short time range deserialises few states. ``LADDERS`` says
  which a query reads. An existing store is backfilled from the per-minute rollups when the
  migration runs, right after the views exist; that is exact when nothing inserts meanwhile
  (the collector migrates before its writer starts), so on a shared server run ``llmpulse
  migrate`` before starting new collectors.
- Version 4, ``spans.detail``: a ``MATERIALIZED`` column packing every span column but
  ``project``, ``trace_id`` and the three large text ones into one JSON array (version tag
  first, ``SPAN_DETAIL_COLUMNS`` after), computed by ClickHouse at insert (the collector sends
  nothing more). A trace lookup reads it and the text columns: 6 columns instead of 44, where
  chDB pays ~0.45 ms a column read. Parts written before it compute it on read from their
  columns (as fast as before); merges write it. A later layout gets a new version number and
  readers fall back to the columns for one they do not know.
- Version 5, ``sums`` on every LLM rollup: the ten weighted sums (``LLM_SUMS``, in that order)
  as one ``sumForEach`` state, a ``DEFAULT`` ClickHouse computes from the sum columns
  whenever a row is written (the views are unchanged and still write those, so a collector
  of an older version reading them keeps working). ``stats`` reads this one column instead
  of ten: chDB pays ~0.45 ms for every column a query reads, ~10 ms of the last hour's
  statement. ``MATERIALIZE COLUMN`` writes it into the parts already stored (until then, and
  in parts a mutation has not reached yet, it is computed on read from the ten columns).

Cluster mode (``Store.connect(..., cluster="name")``): every statement runs ``ON CLUSTER``,
the storage tables become ``<name>_local`` Replicated* tables (``{shard}``/``{replica}``
macros) and ``<name>`` is a ``Distributed`` table over them, so reads and inserts use the
same names in both modes. Spans, assertions and feedback are sharded by ``trace_id``, so a
trace lives on one shard.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from llmpulse_collector.rows import ASSERTION_SCHEMA, FEEDBACK_SCHEMA, SPAN_SCHEMA

from .clickhouse import Store, check_identifier

__all__ = [
    "ASSERTION_LADDERS",
    "ASSERTION_SUMS",
    "LADDERS",
    "LLM_SUMS",
    "LLM_SUMS_STATE",
    "MIGRATIONS",
    "MODEL_KEYS",
    "SPAN_DETAIL_COLUMNS",
    "SPAN_DETAIL_VERSION",
    "Migration",
    "Rollup",
    "applied_versions",
    "assertion_rollup_keys",
    "llm_quantiles",
    "migrate",
    "migrate_dsn",
    "packed_sums",
    "schema_statements",
    "span_detail_expression",
]

DEDUP_WINDOW = 10_000
"""Insert blocks remembered per table for deduplication (``non_replicated_deduplication_window``)."""

ROLLUP_KEYS = (
    "service",
    "environment",
    "provider",
    "model",
    "operation",
    "prompt_name",
    "prompt_version",
)
"""Dimensions of ``llm_1m`` after ``(project, minute)``; ``assertions_1m`` keeps those the assertion rows carry."""

MODEL_KEYS = ("provider", "model")
"""Dimensions of the ``*_by_model`` rollups (``*_by_service_model`` add ``service``): the
breakdowns dashboards ask for most, kept narrow because a query merges one t-digest state
per key and bucket."""


@dataclass(frozen=True)
class Rollup:
    """A rollup table: its time column, bucket length, dimensions, and the table it rolls up."""

    table: str
    time_column: str
    unit_s: int
    keys: tuple[str, ...]
    source: str  # "spans"/"assertions" for the per-minute rollups, else the per-minute rollup it merges


def _assertion_keys() -> tuple[str, ...]:
    """``ROLLUP_KEYS`` that assertion rows carry, and the assertion's name."""
    names = {name for name, _, _ in ASSERTION_SCHEMA}
    return (*(k for k in ROLLUP_KEYS if k in names), "name")


LLM_1M = Rollup("llm_1m", "minute", 60, ROLLUP_KEYS, "spans")
ASSERTIONS_1M = Rollup("assertions_1m", "minute", 60, _assertion_keys(), "assertions")
_LEVELS = (("1h", "hour", 3600), ("10m", "ten_minutes", 600), ("1m", "minute", 60))


_BY_SERVICE_MODEL = tuple(
    Rollup(f"llm_{level}_by_service_model", column, unit, ("service", *MODEL_KEYS), "llm_1m")
    for level, column, unit in _LEVELS
)

LADDERS: tuple[tuple[Rollup, ...], ...] = (
    (Rollup("llm_1h_by_model", "hour", 3600, MODEL_KEYS, "llm_1m"), *_BY_SERVICE_MODEL[1:]),
    _BY_SERVICE_MODEL,
    (Rollup("llm_1h", "hour", 3600, ROLLUP_KEYS, "llm_1m"), LLM_1M),
)
"""The rollups of LLM calls a stats query reads, coarsest first, the narrowest ladder first: a
query takes the first ladder whose tables all have its group-by and filter keys. Every table
costs each insert a part, so only the hours (where most of a long window's states are) get a
table by model alone; ten-minute and minute buckets come by service and model."""

ASSERTION_LADDERS: tuple[tuple[Rollup, ...], ...] = (
    (Rollup("assertions_1h", "hour", 3600, _assertion_keys(), "assertions_1m"), ASSERTIONS_1M),
)
"""The same for assertion results (sums only: cheap to read at any width)."""

SPAN_DETAIL_VERSION = 1
"""The first element of ``spans.detail``: which layout the rest of the array has."""

SPAN_DETAIL_COLUMNS: tuple[str, ...] = tuple(
    name for name, _, _ in SPAN_SCHEMA if name not in ("project", "trace_id", "input", "output", "attributes")
)
"""The span columns packed into ``spans.detail`` (layout ``SPAN_DETAIL_VERSION``), in order;
times as integers (ns, or ms for ``ingested_at``). The lookup already reads ``trace_id``, and
the text columns are large enough to keep their own compression."""

_TIME_AS_INT = {"DateTime64(9, 'UTC')": "toUnixTimestamp64Nano", "DateTime64(3, 'UTC')": "toUnixTimestamp64Milli"}


def span_detail_expression() -> str:
    """The ClickHouse expression ``spans.detail`` is materialized from (a JSON array)."""
    types = {name: ctype for name, ctype, _ in SPAN_SCHEMA}
    values = [str(SPAN_DETAIL_VERSION)]
    for name in SPAN_DETAIL_COLUMNS:
        fn = _TIME_AS_INT.get(types[name])
        values.append(f"{fn}(`{name}`)" if fn else f"`{name}`")
    return f"toJSONString(tuple({', '.join(values)}))"


QUANTILES = "0.5, 0.95, 0.99"
QUANTILE_STATE = f"AggregateFunction(quantilesTDigestWeighted({QUANTILES}), Float64, UInt32)"

# Aggregates over spans (or assertions) aliased ``s``: the rollup views and the raw queries
# share these texts, so both paths count the same way. Columns are qualified because the
# views' output names (``cost_usd``, ``input_tokens``) would otherwise shadow them.
_WEIGHT = "toUInt32(greatest(1, round(s.sample_weight)))"  # t-digest weights are integers
_STREAMED = "s.stream = 1 AND s.ttft_s IS NOT NULL"

LLM_SUMS: dict[str, str] = {
    "calls": "sum(s.sample_weight)",
    "errors": "sumIf(s.sample_weight, s.status_code = 2)",
    "refusals": "sumIf(s.sample_weight, s.refusal = 1)",
    "input_tokens": "sum(s.input_tokens * s.sample_weight)",
    "output_tokens": "sum(s.output_tokens * s.sample_weight)",
    "cache_read_tokens": "sum(s.cache_read_tokens * s.sample_weight)",
    "reasoning_tokens": "sum(s.reasoning_tokens * s.sample_weight)",
    "cost_usd": "sum(ifNull(s.cost_usd, 0) * s.sample_weight)",
    "priced_calls": "sumIf(s.sample_weight, s.cost_usd IS NOT NULL)",
    "streams": f"sumIf(s.sample_weight, {_STREAMED})",
}
"""``llm_1m``'s weighted sums (``SimpleAggregateFunction(sum, Float64)`` columns). Append only,
in this order: the rollups' packed ``sums`` column (version 5) holds them in it."""

LLM_SUMS_STATE = "AggregateFunction(sumForEach, Array(Float64))"
"""The type of the rollups' packed ``sums`` column: element ``i`` sums ``LLM_SUMS``'s ``i``-th."""


def packed_sums(values: Sequence[str]) -> str:
    """A ``LLM_SUMS_STATE`` of one row holding ``values`` (expressions, in ``LLM_SUMS`` order).

    Merged states of different lengths add element by element, the shorter ones as zeros,
    so a sum appended to ``LLM_SUMS`` later reads as 0 in rows stored before it.
    """
    return f"initializeAggregation('sumForEachState', [{', '.join(f'toFloat64({v})' for v in values)}])"


ASSERTION_SUMS: dict[str, str] = {
    "passes": "sumIf(s.sample_weight, s.label = 'pass')",
    "fails": "sumIf(s.sample_weight, s.label = 'fail')",
    "errors": "sumIf(s.sample_weight, s.label = 'error')",
}
"""``assertions_1m``'s weighted outcome counts."""


def llm_quantiles(combinator: str = "") -> dict[str, str]:
    """``llm_1m``'s t-digest quantiles of latency and (streams only) TTFT; ``combinator="State"`` for the rollup."""
    return {
        "latency": f"quantilesTDigestWeighted{combinator}({QUANTILES})(s.duration_s, {_WEIGHT})",
        "ttft": f"quantilesTDigestWeighted{combinator}If({QUANTILES})(ifNull(s.ttft_s, 0), {_WEIGHT}, {_STREAMED})",
    }


# Compression beyond ClickHouse's LZ4 default where the data is large or regular.
_CODECS = {
    "start_time": "CODEC(Delta, ZSTD(1))",
    "end_time": "CODEC(Delta, ZSTD(1))",
    "time": "CODEC(Delta, ZSTD(1))",
    "ingested_at": "CODEC(Delta, ZSTD(1))",
    "input": "CODEC(ZSTD(3))",
    "output": "CODEC(ZSTD(3))",
    "attributes": "CODEC(ZSTD(3))",
    "explanation": "CODEC(ZSTD(3))",
    "comment": "CODEC(ZSTD(3))",
}

_migrate_locks: dict[tuple[str, str], threading.Lock] = {}
_migrate_locks_guard = threading.Lock()


@dataclass(frozen=True)
class Migration:
    """One schema version: its number, a short name and its statements."""

    version: int
    name: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class _Ctx:
    database: str
    retention_days: int
    cluster: str | None

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER `{self.cluster}`" if self.cluster else ""

    def local(self, table: str) -> str:
        """The name of the table that stores data (``<table>_local`` behind a Distributed one)."""
        return f"{table}_local" if self.cluster else table

    def qualified(self, table: str) -> str:
        return f"`{self.database}`.`{table}`"

    def engine(self, kind: str, table: str) -> str:
        if self.cluster:
            path = f"/clickhouse/tables/{{shard}}/{self.database}/{table}"
            return f"Replicated{kind}('{path}', '{{replica}}')"
        return f"{kind}"

    def dedup_setting(self) -> str:
        # Replicated tables deduplicate inserts by default (replicated_deduplication_window);
        # plain MergeTree only with this setting, rollup targets included.
        if self.cluster:
            return f"replicated_deduplication_window = {DEDUP_WINDOW}"
        return f"non_replicated_deduplication_window = {DEDUP_WINDOW}"


def _columns_ddl(schema: Sequence[tuple[str, str, Any]]) -> str:
    parts = (f"`{name}` {ctype} {_CODECS.get(name, '')}".rstrip() for name, ctype, _ in schema)
    return ",\n    ".join(parts)


def _data_table(
    ctx: _Ctx,
    table: str,
    schema: Sequence[tuple[str, str, Any]],
    *,
    time_column: str,
    order_by: str,
    indexes: Sequence[str] = (),
    shard_key: str = "rand()",
) -> list[str]:
    local = ctx.local(table)
    body = _columns_ddl(schema)
    for index in indexes:
        body += f",\n    {index}"
    statements = [
        f"CREATE TABLE IF NOT EXISTS {ctx.qualified(local)}{ctx.on_cluster}\n(\n    {body}\n)\n"
        f"ENGINE = {ctx.engine('MergeTree', local)}\n"
        f"PARTITION BY toDate({time_column})\n"
        f"ORDER BY ({order_by})\n"
        f"TTL toDateTime({time_column}) + INTERVAL {ctx.retention_days} DAY\n"
        f"SETTINGS {ctx.dedup_setting()}, ttl_only_drop_parts = 1"
    ]
    statements.extend(_distributed(ctx, table, shard_key))
    return statements


def _distributed(ctx: _Ctx, table: str, shard_key: str) -> list[str]:
    if not ctx.cluster:
        return []
    return [
        f"CREATE TABLE IF NOT EXISTS {ctx.qualified(table)}{ctx.on_cluster} AS {ctx.qualified(ctx.local(table))}\n"
        f"ENGINE = Distributed('{ctx.cluster}', '{ctx.database}', '{ctx.local(table)}', {shard_key})"
    ]


def _rollup(
    ctx: _Ctx,
    table: str,
    source: str,
    columns: str,
    keys: Sequence[str],
    select: str,
    *,
    time_column: str = "minute",
    granularity: int | None = None,
) -> list[str]:
    """An AggregatingMergeTree rollup of ``source`` by ``time_column`` and the view that feeds it."""
    local = ctx.local(table)
    order = ", ".join(("project", time_column, *keys))
    view_select = select.replace("{source}", ctx.qualified(ctx.local(source)))
    settings = f"{ctx.dedup_setting()}, ttl_only_drop_parts = 1"
    if granularity is not None:
        settings += f", index_granularity = {granularity}"
    statements = [
        f"CREATE TABLE IF NOT EXISTS {ctx.qualified(local)}{ctx.on_cluster}\n(\n    {columns}\n)\n"
        f"ENGINE = {ctx.engine('AggregatingMergeTree', local)}\n"
        f"PARTITION BY toDate({time_column})\n"
        f"ORDER BY ({order})\n"
        f"TTL {time_column} + INTERVAL {ctx.retention_days} DAY\n"
        f"SETTINGS {settings}",
        # The view reads the local source table: on a cluster each shard rolls up its own inserts.
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ctx.qualified(table + '_mv')}{ctx.on_cluster}\n"
        f"TO {ctx.qualified(local)}\nAS {view_select}",
    ]
    statements.extend(_distributed(ctx, table, "rand()"))
    return statements


def _llm_columns(time_column: str, keys: Sequence[str]) -> str:
    """The columns of an LLM-call rollup: project, the bucket's start, ``keys``, sums and t-digest states."""
    span_types = {name: ctype for name, ctype, _ in SPAN_SCHEMA}
    key_columns = "".join(f"`{k}` {span_types[k]},\n    " for k in keys)
    return (
        f"`project` {span_types['project']},\n    `{time_column}` DateTime('UTC'),\n    {key_columns}"
        + ",\n    ".join(f"`{name}` SimpleAggregateFunction(sum, Float64)" for name in LLM_SUMS)
        + "".join(f",\n    `{name}` {QUANTILE_STATE}" for name in llm_quantiles())
    )


def _llm_1m(ctx: _Ctx) -> list[str]:
    columns = _llm_columns("minute", ROLLUP_KEYS)
    keys = ", ".join(ROLLUP_KEYS)
    measures = {**LLM_SUMS, **llm_quantiles("State")}
    select = (
        f"SELECT project, toStartOfMinute(toDateTime(s.start_time, 'UTC')) AS minute, {keys},\n    "
        + ",\n    ".join(f"{expr} AS {name}" for name, expr in measures.items())
        + "\nFROM {source} AS s\nWHERE s.is_llm = 1\n"
        + f"GROUP BY project, minute, {keys}"
    )
    return _rollup(ctx, "llm_1m", "spans", columns, ROLLUP_KEYS, select)


_BUCKET = {60: "s.minute", 600: "toStartOfTenMinutes(s.minute)", 3600: "toStartOfHour(s.minute)"}


def _coarse(ctx: _Ctx, rollup: Rollup) -> list[str]:
    """``rollup``: a per-minute rollup merged into longer buckets or fewer keys, its view on that
    rollup, and a backfill.

    Sums stay sums and t-digest states are merged (``-MergeState``), so a row is exactly its
    minutes merged. Each table keeps 16 rows a granule (ClickHouse's default is 8,192): a
    short time range then deserialises few t-digest states. The ``INSERT ... SELECT`` copies
    what the source held before the view existed (nothing on a new store); its fixed token
    makes a rerun of an interrupted migration store it once.
    """
    keys = "".join(f", {key}" for key in rollup.keys)
    with_quantiles = rollup.source == LLM_1M.table
    sums = LLM_SUMS if with_quantiles else ASSERTION_SUMS
    measures = [f"sum(s.{name}) AS {name}" for name in sums]
    if with_quantiles:
        measures += [f"quantilesTDigestWeightedMergeState({QUANTILES})(s.{name}) AS {name}" for name in llm_quantiles()]
    select = (
        f"SELECT project, {_BUCKET[rollup.unit_s]} AS {rollup.time_column}{keys},\n    "
        + ",\n    ".join(measures)
        + f"\nFROM {{source}} AS s\nGROUP BY project, {rollup.time_column}{keys}"
    )
    if with_quantiles:
        columns = _llm_columns(rollup.time_column, rollup.keys)
    else:
        columns = _assertion_columns(rollup.time_column, rollup.keys)
    statements = _rollup(
        ctx, rollup.table, rollup.source, columns, rollup.keys, select, time_column=rollup.time_column, granularity=16
    )
    # On a cluster through the Distributed tables: every shard's minutes, spread over the shards
    # (reads merge the shards' rollups anyway).
    backfill = select.replace("{source}", ctx.qualified(rollup.source))
    statements.append(
        f"INSERT INTO {ctx.qualified(rollup.table)}\n{backfill}\n"
        f"SETTINGS insert_deduplicate = 1, insert_deduplication_token = 'llmpulse-backfill-{rollup.table}'"
    )
    return statements


def assertion_rollup_keys() -> tuple[str, ...]:
    """The rollup dimensions assertion rows carry (``ROLLUP_KEYS`` that ``rows.ASSERTION_SCHEMA`` has)."""
    return ASSERTIONS_1M.keys[:-1]


def _assertion_columns(time_column: str, keys: Sequence[str]) -> str:
    """The columns of an assertion rollup: project, the bucket's start, ``keys`` and outcome sums."""
    types = {name: ctype for name, ctype, _ in ASSERTION_SCHEMA}
    key_columns = ",\n    ".join(f"`{k}` {types[k]}" for k in keys)
    return (
        f"`project` {types['project']},\n    `{time_column}` DateTime('UTC'),\n    {key_columns},\n    "
        + ",\n    ".join(f"`{name}` SimpleAggregateFunction(sum, Float64)" for name in ASSERTION_SUMS)
    )


def _assertions_1m(ctx: _Ctx) -> list[str]:
    dims = ASSERTIONS_1M.keys
    columns = _assertion_columns("minute", dims)
    keys = ", ".join(dims)
    select = (
        f"SELECT project, toStartOfMinute(toDateTime(s.time, 'UTC')) AS minute, {keys},\n    "
        + ",\n    ".join(f"{expr} AS {name}" for name, expr in ASSERTION_SUMS.items())
        + "\nFROM {source} AS s\n"
        + f"GROUP BY project, minute, {keys}"
    )
    return _rollup(ctx, "assertions_1m", "assertions", columns, dims, select)


def _bootstrap(ctx: _Ctx) -> list[str]:
    """``schema_migrations`` itself (not a versioned migration)."""
    if ctx.cluster:
        # One copy on every node of the cluster: no {shard} in the path, so every replica of
        # every shard shares it (hence the replica name includes the shard).
        path = f"/clickhouse/tables/{ctx.database}/schema_migrations"
        engine = f"ReplicatedReplacingMergeTree('{path}', '{{shard}}-{{replica}}')"
        dedup = f"replicated_deduplication_window = {DEDUP_WINDOW}"
    else:
        engine = "ReplacingMergeTree"
        dedup = f"non_replicated_deduplication_window = {DEDUP_WINDOW}"
    return [
        f"CREATE TABLE IF NOT EXISTS {ctx.qualified('schema_migrations')}{ctx.on_cluster}\n"
        "(\n    `version` UInt32,\n    `name` String,\n    `applied_at` DateTime('UTC')\n)\n"
        f"ENGINE = {engine}\nORDER BY version\nSETTINGS {dedup}"
    ]


def _migrations(ctx: _Ctx) -> list[Migration]:
    spans = _data_table(
        ctx,
        "spans",
        SPAN_SCHEMA,
        time_column="start_time",
        order_by="project, service, start_time",
        indexes=("INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1",),
        shard_key="cityHash64(trace_id)",
    )
    assertions = _data_table(
        ctx,
        "assertions",
        ASSERTION_SCHEMA,
        time_column="time",
        order_by="project, time",
        indexes=("INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1",),
        shard_key="cityHash64(trace_id)",
    )
    feedback = _data_table(
        ctx,
        "feedback",
        FEEDBACK_SCHEMA,
        time_column="time",
        order_by="project, time",
        indexes=(
            "INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1",
            "INDEX idx_response_id response_id TYPE bloom_filter(0.01) GRANULARITY 1",
        ),
        shard_key="cityHash64(trace_id)",
    )
    return [
        Migration(1, "spans, assertions and feedback tables", (*spans, *assertions, *feedback)),
        Migration(2, "per-minute rollups llm_1m and assertions_1m", (*_llm_1m(ctx), *_assertions_1m(ctx))),
        Migration(
            3,
            "coarser rollups: llm_1h, assertions_1h, llm_1h_by_model, llm_{1h,10m,1m}_by_service_model",
            tuple(statement for rollup in _COARSE for statement in _coarse(ctx, rollup)),
        ),
        Migration(4, "spans.detail: a span's columns packed for trace lookups", tuple(_span_detail(ctx))),
        Migration(5, "sums: the LLM rollups' ten sums packed in one column", tuple(_packed_sums(ctx))),
    ]


_LLM_ROLLUPS = tuple(dict.fromkeys(r.table for ladder in LADDERS for r in ladder))  # every LLM rollup


def _packed_sums(ctx: _Ctx) -> list[str]:
    """``ALTER TABLE ... ADD COLUMN sums`` on every LLM rollup (on a cluster: its storing table
    and the Distributed one) and ``MATERIALIZE COLUMN`` for the parts already stored."""
    column = f"`sums` {LLM_SUMS_STATE} DEFAULT {packed_sums([f'`{name}`' for name in LLM_SUMS])}"
    after = f"AFTER `{list(LLM_SUMS)[-1]}`"
    statements = []
    for table in _LLM_ROLLUPS:
        names = [ctx.local(table), table] if ctx.cluster else [table]
        statements += [
            f"ALTER TABLE {ctx.qualified(name)}{ctx.on_cluster}\nADD COLUMN IF NOT EXISTS {column} {after}"
            for name in names
        ]
        statements.append(f"ALTER TABLE {ctx.qualified(ctx.local(table))}{ctx.on_cluster}\nMATERIALIZE COLUMN `sums`")
    return statements


def _span_detail(ctx: _Ctx) -> list[str]:
    """``ALTER TABLE ... ADD COLUMN detail``, on the storing table and (cluster) its Distributed
    one: a Distributed table computes a MATERIALIZED column and sends it to the shard (it
    stores nothing, so it gets no codec)."""
    column = f"`detail` String MATERIALIZED {span_detail_expression()}"
    statements = [
        f"ALTER TABLE {ctx.qualified(ctx.local('spans'))}{ctx.on_cluster}\n"
        f"ADD COLUMN IF NOT EXISTS {column} CODEC(ZSTD(1)) AFTER `attributes`"
    ]
    if ctx.cluster:
        statements.append(
            f"ALTER TABLE {ctx.qualified('spans')}{ctx.on_cluster}\n"
            f"ADD COLUMN IF NOT EXISTS {column} AFTER `attributes`"
        )
    return statements


_COARSE = tuple(
    dict.fromkeys(r for ladder in (*LADDERS, *ASSERTION_LADDERS) for r in ladder if r.source.endswith("_1m"))
)


def schema_statements(database: str, *, retention_days: int = 30, cluster: str | None = None) -> list[Migration]:
    """Every migration's DDL for these options (no connection needed: for review and tests)."""
    check_identifier(database, "database")
    return [
        Migration(0, "schema_migrations", tuple(_bootstrap(_Ctx(database, retention_days, cluster)))),
        *_migrations(_Ctx(database, retention_days, cluster)),
    ]


MIGRATIONS: tuple[tuple[int, str], ...] = tuple((m.version, m.name) for m in _migrations(_Ctx("llmpulse", 30, None)))
"""(version, name) of every migration, in order."""


def applied_versions(store: Store) -> list[int]:
    """The versions recorded in ``schema_migrations``, ascending (empty before the first migrate)."""
    rows = store.query("SELECT DISTINCT version FROM schema_migrations ORDER BY version")
    return [int(r["version"]) for r in rows]


def migrate(store: Store) -> list[int]:
    """Apply the migrations ``store`` lacks, in order; return the versions applied (``[]``: up to date).

    Idempotent and safe to run concurrently: within a process the runs are serialised;
    across processes every statement is ``IF NOT EXISTS`` and a version is recorded with a
    fixed deduplication token, so it is stored once. Raises ``StorageError``.
    """
    ctx = _Ctx(store.database, store.retention_days, store.cluster)
    with _lock_for(store):
        # An up-to-date store gets no DDL at all: on a cluster even a no-op ``CREATE ... IF NOT
        # EXISTS ON CLUSTER`` waits for every node, so a collector (re)starting while one is
        # down would wait up to ``distributed_ddl_task_timeout``.
        if not store.query(
            "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = 'schema_migrations'",
            {"db": store.database},
        )[0]["n"]:
            for statement in _bootstrap(ctx):
                store.command(statement)
        done = set(applied_versions(store))
        applied: list[int] = []
        for migration in _migrations(ctx):
            if migration.version in done:
                continue
            for statement in migration.statements:
                store.command(statement)
            store.insert(
                "schema_migrations",
                [{"version": migration.version, "name": migration.name, "applied_at": _now()}],
                ("version", "name", "applied_at"),
                dedup_token=f"llmpulse-migration-{migration.version}",
            )
            applied.append(migration.version)
        return applied


def migrate_dsn(
    dsn: str, *, database: str = "llmpulse", retention_days: int = 30, cluster: str | None = None
) -> list[int]:
    """Connect, migrate and close: what ``llmpulse migrate`` runs. Returns the versions applied."""
    with Store.connect(dsn, database=database, retention_days=retention_days, cluster=cluster) as store:
        return migrate(store)


def _lock_for(store: Store) -> threading.Lock:
    key = (store.embedded_path or store.dsn, store.database)
    with _migrate_locks_guard:
        return _migrate_locks.setdefault(key, threading.Lock())


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)
