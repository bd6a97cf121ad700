"""ClickHouse storage on real chDB: connection rules, migrations, DDL, idempotent inserts, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from llmpulse_collector.rows import ASSERTION_COLUMNS, ASSERTION_SCHEMA, FEEDBACK_SCHEMA, SPAN_COLUMNS, SPAN_SCHEMA
from llmpulse_collector.storage import StorageError, StorageUnavailable, Store, migrations, queries
from llmpulse_collector.storage.clickhouse import _wrap
from llmpulse_collector.storage.migrations import applied_versions, migrate, migrate_dsn, schema_statements
from llmpulse_collector.writer import Native, decode_entry, encode_entry

pytestmark = pytest.mark.collector

Rows = tuple[Callable[..., dict[str, Any]], Callable[..., dict[str, Any]]]

TABLES = {
    "schema_migrations",
    "spans",
    "assertions",
    "feedback",
    "llm_1m",
    "llm_1m_mv",
    "llm_1h",
    "llm_1h_mv",
    "assertions_1h",
    "assertions_1h_mv",
    "llm_1h_by_model",
    "llm_1h_by_model_mv",
    *(f"llm_{level}_by_service_model{mv}" for level in ("1h", "10m", "1m") for mv in ("", "_mv")),
    "assertions_1m",
    "assertions_1m_mv",
}


def _now_ns() -> int:
    # sub-microsecond digits on purpose: a datetime round trip would lose them
    return time.time_ns() // 1000 * 1000 + 789


def _tables(store: Store) -> set[str]:
    return {r["name"] for r in store.query("SELECT name FROM system.tables WHERE database = currentDatabase()")}


def _scalar(store: Store, sql: str) -> Any:
    (row,) = store.query(sql)
    return next(iter(row.values()))


# --- migrations ------------------------------------------------------------------------------


def test_migrations_create_everything_and_are_idempotent(new_database: Callable[..., Store]) -> None:
    store = new_database()
    assert migrate(store) == [1, 2, 3, 4, 5]
    assert _tables(store) == TABLES
    assert migrate(store) == []
    assert applied_versions(store) == [1, 2, 3, 4, 5]
    assert _scalar(store, "SELECT count() FROM schema_migrations FINAL") == 5
    names = store.query("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in names] == list(migrations.MIGRATIONS)


def test_reopening_an_up_to_date_store_runs_no_ddl(
    chdb_path: Path, new_database: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a cluster every DDL statement, even a no-op one, waits for every node: a collector
    # restarting while one is down must not need them when the schema is current.
    database = new_database().database
    first = new_database(database=database)
    assert migrate(first) == [1, 2, 3, 4, 5]
    commands: list[str] = []
    client_class = type(first._writer)  # chDB's client class (a server's is another)
    real = client_class.command

    def spy(self: Any, cmd: str, *args: Any, **kwargs: Any) -> Any:
        if cmd.split(None, 1)[0].upper() in ("CREATE", "ALTER", "DROP", "INSERT", "RENAME"):
            commands.append(cmd)
        return real(self, cmd, *args, **kwargs)

    monkeypatch.setattr(client_class, "command", spy)  # a spy: every statement still runs
    again = new_database(database=database)
    assert migrate(again) == []
    assert commands == []
    fresh = new_database()  # a new database does get its DDL
    assert migrate(fresh) == [1, 2, 3, 4, 5]
    assert any(c.startswith("CREATE DATABASE") for c in commands)
    assert any("schema_migrations" in c for c in commands)


def test_concurrent_migrations_apply_each_version_once(
    new_database: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = new_database()
    second = new_database(database=first.database)  # a second collector on the same database
    # Two processes do not share the in-process lock: take it away to race the DDL for real.
    monkeypatch.setattr(migrations, "_lock_for", lambda store: threading.Lock())
    barrier = threading.Barrier(2)
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def run(name: str, store: Store) -> None:
        try:
            barrier.wait(10)
            results[name] = migrate(store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", first), ("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert set(results["a"]) | set(results["b"]) == {1, 2, 3, 4, 5}
    assert _tables(first) == TABLES
    # every version recorded once, even when both runs applied it (fixed dedup token)
    assert _scalar(first, "SELECT count() FROM schema_migrations") == 5
    assert migrate(first) == []


def test_concurrent_migrations_in_one_process_are_serialised(new_database: Callable[..., Store]) -> None:
    first = new_database()
    second = new_database(database=first.database)
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda s=s: results.append(migrate(s))) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [[], [1, 2, 3, 4, 5]]


def test_migrate_dsn(chdb_path: Path, new_database: Callable[..., Store]) -> None:
    database = f"t_{uuid.uuid4().hex[:12]}"
    new_database(database=database)  # dropped after the test
    assert migrate_dsn(f"chdb://{chdb_path}", database=database, retention_days=5) == [
        v for v, _ in migrations.MIGRATIONS
    ]
    assert migrate_dsn(f"chdb://{chdb_path}", database=database) == []


def test_tables_have_the_row_contract_types(store: Store) -> None:
    for table, schema in (("spans", SPAN_SCHEMA), ("assertions", ASSERTION_SCHEMA), ("feedback", FEEDBACK_SCHEMA)):
        columns = store.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String}"
            " AND default_kind != 'MATERIALIZED' ORDER BY position",
            {"t": table},
        )
        assert [(c["name"], c["type"]) for c in columns] == [(n, t) for n, t, _ in schema], table
    computed = store.query(
        "SELECT table, name, type, default_kind FROM system.columns WHERE database = currentDatabase()"
        " AND default_kind != '' ORDER BY table"
    )
    # never inserted by the collector: spans.detail, and the LLM rollups' packed sums (their views write the rest)
    llm_rollups = sorted({r.table for ladder in migrations.LADDERS for r in ladder})
    assert computed == [
        *(
            {"table": t, "name": "sums", "type": migrations.LLM_SUMS_STATE, "default_kind": "DEFAULT"}
            for t in llm_rollups
        ),
        {"table": "spans", "name": "detail", "type": "String", "default_kind": "MATERIALIZED"},
    ]


def test_retention_ttl_partitioning_and_dedup_settings(new_database: Callable[..., Store]) -> None:
    store = new_database(retention_days=7)
    migrate(store)

    def create(table: str) -> str:
        return str(_scalar(store, f"SHOW CREATE TABLE {table}"))

    spans = create("spans")
    assert "TTL toDateTime(start_time) + toIntervalDay(7)" in spans
    assert "PARTITION BY toDate(start_time)" in spans
    assert "ORDER BY (project, service, start_time)" in spans
    assert "INDEX idx_trace_id trace_id TYPE bloom_filter" in spans
    for table in ("assertions", "feedback"):
        ddl = create(table)
        assert "TTL toDateTime(time) + toIntervalDay(7)" in ddl
        assert "ORDER BY (project, time)" in ddl
    for table in ("spans", "assertions", "feedback", "llm_1m", "assertions_1m"):
        assert "non_replicated_deduplication_window = 10000" in create(table), table
    rollup = create("llm_1m")
    assert "ENGINE = AggregatingMergeTree" in rollup
    assert "TTL minute + toIntervalDay(7)" in rollup
    assert "AggregateFunction(quantilesTDigestWeighted(0.5, 0.95, 0.99), Float64, UInt32)" in rollup
    assert "SimpleAggregateFunction(sum, Float64)" in rollup


def test_cluster_ddl_text() -> None:
    statements = [s for m in schema_statements("obs", retention_days=14, cluster="main") for s in m.statements]
    # DDL runs on every node; a backfill INSERT goes once, through the Distributed tables
    assert all("ON CLUSTER `main`" in s or s.startswith("INSERT INTO `obs`.") for s in statements)
    text = "\n".join(statements)
    assert "CREATE TABLE IF NOT EXISTS `obs`.`spans_local` ON CLUSTER `main`" in text
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/obs/spans_local', '{replica}')" in text
    assert "ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/obs/llm_1m_local', '{replica}')" in text
    assert (
        "CREATE TABLE IF NOT EXISTS `obs`.`spans` ON CLUSTER `main` AS `obs`.`spans_local`\n"
        "ENGINE = Distributed('main', 'obs', 'spans_local', cityHash64(trace_id))"
    ) in text
    for table in ("assertions", "feedback", "llm_1m", "assertions_1m", "llm_1h", "llm_1h_by_model", "assertions_1h"):
        assert f"ENGINE = Distributed('main', 'obs', '{table}_local'" in text
    # each shard rolls up its own inserts
    assert "TO `obs`.`llm_1m_local`" in text
    assert "TO `obs`.`llm_1h_by_model_local`\nAS SELECT project, toStartOfHour(s.minute) AS hour" in text
    assert "FROM `obs`.`llm_1m_local` AS s" in text  # the coarse rollups are fed by each shard's minutes
    assert "FROM `obs`.`spans_local` AS s" in text
    assert "TTL toDateTime(start_time) + INTERVAL 14 DAY" in text
    assert "non_replicated_deduplication_window" not in text  # replicated tables deduplicate by themselves
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/obs/schema_migrations', '{shard}-{replica}')" in text
    # the packed detail column: stored on the shards, computed by the Distributed table at insert
    detail = "ADD COLUMN IF NOT EXISTS `detail` String MATERIALIZED toJSONString(tuple(1, "
    assert f"ALTER TABLE `obs`.`spans_local` ON CLUSTER `main`\n{detail}" in text
    assert f"ALTER TABLE `obs`.`spans` ON CLUSTER `main`\n{detail}" in text
    # the packed sums: a DEFAULT on both tables of every LLM rollup, materialized where stored
    sums = f"ADD COLUMN IF NOT EXISTS `sums` {migrations.LLM_SUMS_STATE} DEFAULT initializeAggregation("
    for table in {r.table for ladder in migrations.LADDERS for r in ladder}:
        assert f"ALTER TABLE `obs`.`{table}_local` ON CLUSTER `main`\n{sums}" in text
        assert f"ALTER TABLE `obs`.`{table}` ON CLUSTER `main`\n{sums}" in text
        assert f"ALTER TABLE `obs`.`{table}_local` ON CLUSTER `main`\nMATERIALIZE COLUMN `sums`" in text
    assert text.count("MATERIALIZE COLUMN") == 6

    single = "\n".join(s for m in schema_statements("obs") for s in m.statements)
    for word in ("ON CLUSTER", "Replicated", "Distributed", "_local"):
        assert word not in single
    for name, ctype, _ in SPAN_SCHEMA:  # columns come from rows.py, not retyped
        assert f"`{name}` {ctype}" in single
    assert single.count("ADD COLUMN IF NOT EXISTS `detail`") == 1
    assert single.count("ADD COLUMN IF NOT EXISTS `sums`") == single.count("MATERIALIZE COLUMN `sums`") == 6
    with pytest.raises(ValueError, match="database"):
        schema_statements("obs; DROP TABLE x")


# --- connection --------------------------------------------------------------------------------


def test_connect_validates_its_arguments(chdb_path: Path) -> None:
    with pytest.raises(ValueError, match="database"):
        Store.connect(f"chdb://{chdb_path}", database="x`; DROP DATABASE keeper; --")
    with pytest.raises(ValueError, match="retention_days"):
        Store.connect(f"chdb://{chdb_path}", database="x", retention_days=0)
    with pytest.raises(StorageError, match="cluster mode needs a ClickHouse server"):
        Store.connect(f"chdb://{chdb_path}", database="x", cluster="main")
    with pytest.raises(StorageError, match="unsupported storage DSN"):
        Store.connect("postgres://localhost/x")
    with pytest.raises(StorageError, match="absolute path"):
        Store.connect("chdb://relative/path")
    for readers in (0, 65, True, 2.0):
        with pytest.raises(ValueError, match="readers must be an integer from 1 to 64"):
            Store.connect(f"chdb://{chdb_path}", database="x", readers=readers)  # type: ignore[arg-type]


def test_second_embedded_path_in_one_process_is_refused(store: Store, chdb_path: Path, tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        Store.connect(f"chdb://{tmp_path / 'other'}")
    assert str(info.value) == f"chDB is already open at {chdb_path} in this process; one embedded store per process"
    assert store.ping()  # the open store is unaffected


_CHILD = """
import sys
from llmpulse_collector.storage import Store, StorageError, clickhouse

path = sys.argv[1]
try:
    Store.connect("chdb://" + path, database="child")
except StorageError as exc:
    print("precheck:", exc)
# Skip the flock pre-check once: chDB itself fails, and its generic error is explained.
real = clickhouse._status_locked_elsewhere
calls = []
clickhouse._status_locked_elsewhere = lambda p: bool(calls.append(p)) or (len(calls) > 1 and real(p))
try:
    Store.connect("chdb://" + path, database="child")
except StorageError as exc:
    print("after-chdb:", exc)
"""


def test_path_locked_by_another_process_is_explained(store: Store, chdb_path: Path) -> None:
    # This process holds chdb_path; a second process must get a plain answer.
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(chdb_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    expected = f"the embedded store {chdb_path} is in use by another process (is another collector running?)"
    lines = child.stdout.splitlines()
    assert f"precheck: {expected}" in lines, child.stdout + child.stderr
    assert f"after-chdb: {expected}" in lines, child.stdout + child.stderr
    assert store.ping()


def test_closed_store(new_database: Callable[..., Store]) -> None:
    store = new_database()
    other = new_database(database=store.database)
    other.close()
    other.close()  # idempotent
    assert not other.ping()
    with pytest.raises(StorageError, match="closed"):
        other.query("SELECT 1")
    with pytest.raises(StorageError, match="closed"):
        other.query_many([("SELECT 1", None), ("SELECT 2", None)])
    assert store.ping()  # closing one store leaves the engine to the others


def test_unreachable_server_is_unavailable() -> None:
    with pytest.raises(StorageUnavailable):
        Store.connect("http://127.0.0.1:9/", database="x")


def test_error_classification() -> None:
    assert isinstance(_wrap(OperationalError("connection reset"), "insert"), StorageUnavailable)
    assert isinstance(_wrap(DatabaseError("Code: 241. MEMORY_LIMIT_EXCEEDED", code=241), "insert"), StorageUnavailable)
    assert isinstance(_wrap(DatabaseError("Code: 252. TOO_MANY_PARTS", code=252), "insert"), StorageUnavailable)
    assert isinstance(_wrap(ConnectionRefusedError(), "insert"), StorageUnavailable)
    for bug in (
        ProgrammingError("bad query"),
        DatabaseError("Code: 60. UNKNOWN_TABLE", code=60),
        DatabaseError("Code: 62. SYNTAX_ERROR", code=62),
        TypeError("bad value"),
    ):
        wrapped = _wrap(bug, "insert")
        assert type(wrapped) is StorageError, bug


def test_engine_errors_are_storage_errors(store: Store) -> None:
    with pytest.raises(StorageError) as info:
        store.query("SELECT * FROM no_such_table")
    assert type(info.value) is StorageError
    assert "no_such_table" in str(info.value)
    with pytest.raises(StorageError) as info:
        store.insert("no_such_table", [{"a": 1}], ["a"], dedup_token="t")
    assert type(info.value) is StorageError


# --- inserts -----------------------------------------------------------------------------------


def test_nanosecond_timestamps_round_trip_exactly(store: Store, rows: Rows) -> None:
    span, _ = rows
    start = _now_ns()
    row = span(start_time=start, end_time=start + 1_234_567_891, ingested_at=start // 1_000_000 + 7)
    store.insert("spans", [row], SPAN_COLUMNS, dedup_token="ts")
    (back,) = store.query(
        "SELECT toUnixTimestamp64Nano(start_time) AS s, toUnixTimestamp64Nano(end_time) AS e,"
        " toUnixTimestamp64Milli(ingested_at) AS i FROM spans"
    )
    assert back == {"s": start, "e": start + 1_234_567_891, "i": start // 1_000_000 + 7}
    detail = queries.trace(store, "acme", row["trace_id"])
    assert detail is not None
    assert detail["spans"][0]["start"] == start
    assert detail["spans"][0]["end"] == start + 1_234_567_891


def test_low_cardinality_columns_are_sent_as_plain_strings_and_stored_as_declared(store: Store, rows: Rows) -> None:
    """Inserts send LowCardinality columns as their inner type (the server builds the
    dictionaries); the table keeps its declared types and the values round-trip."""
    sent = store._column_types("spans", SPAN_COLUMNS)
    assert sent is not None
    assert not [t.name for t in sent if "LowCardinality" in t.name]
    assert sum("LowCardinality" in t for _, t, _ in SPAN_SCHEMA) >= 10
    span, _ = rows
    now = _now_ns()
    values = [
        span(start_time=now, service=f"svc-{i % 3}", model=f"m-{i}", finish_reasons=["stop", f"r{i}"]) for i in range(5)
    ]
    store.insert_columns(
        "spans", SPAN_COLUMNS, [[v.get(c) for v in values] for c in SPAN_COLUMNS], dedup_token="lowcard"
    )
    back = store.query(
        "SELECT service, model, finish_reasons, toTypeName(model) AS t, toTypeName(finish_reasons) AS ft"
        " FROM spans ORDER BY model"
    )
    assert [(r["service"], r["model"], r["finish_reasons"]) for r in back] == [
        (f"svc-{i % 3}", f"m-{i}", ["stop", f"r{i}"]) for i in range(5)
    ]
    assert {(r["t"], r["ft"]) for r in back} == {("LowCardinality(String)", "Array(LowCardinality(String))")}


def test_missing_keys_and_nulls_take_row_defaults(store: Store) -> None:
    start = _now_ns()
    sparse = {"project": "acme", "start_time": start, "trace_id": "a" * 32, "span_id": "b" * 16, "input_tokens": None}
    store.insert("spans", [sparse], SPAN_COLUMNS, dedup_token="sparse")
    (back,) = store.query(
        "SELECT sample_weight, attributes, cost_usd, ttft_s, finish_reasons, input_tokens, service FROM spans"
    )
    assert back == {
        "sample_weight": 1.0,
        "attributes": "{}",
        "cost_usd": None,
        "ttft_s": None,
        "finish_reasons": [],
        "input_tokens": 0,
        "service": "",
    }


def test_insert_validates_its_arguments(store: Store, rows: Rows) -> None:
    span, _ = rows
    with pytest.raises(ValueError, match="dedup_token"):
        store.insert("spans", [span(start_time=_now_ns())], SPAN_COLUMNS, dedup_token="")
    with pytest.raises(ValueError, match="table"):
        store.insert("spans; DROP TABLE spans", [span(start_time=_now_ns())], SPAN_COLUMNS, dedup_token="x")
    store.insert("spans", [], SPAN_COLUMNS, dedup_token="empty")  # nothing to do
    assert _scalar(store, "SELECT count() FROM spans") == 0


def test_same_token_is_stored_once_in_tables_and_rollups(store: Store, rows: Rows) -> None:
    span, assertion = rows
    start = _now_ns()
    spans = [span(start_time=start - i * 1_000_000_000, duration_s=0.5, sample_weight=4.0) for i in range(50)]
    checks = [assertion(s, "starts_lowercase", "pass") for s in spans]
    for _ in range(3):  # the writer's retries and a replay after a crash reuse the batch token
        store.insert("spans", spans, SPAN_COLUMNS, dedup_token="batch-1:spans")
        store.insert("assertions", checks, ASSERTION_COLUMNS, dedup_token="batch-1:assertions")
    assert _scalar(store, "SELECT count() FROM spans") == 50
    assert _scalar(store, "SELECT count() FROM assertions") == 50
    assert _scalar(store, "SELECT sum(calls) FROM llm_1m") == 200.0
    assert _scalar(store, "SELECT sum(passes) FROM assertions_1m") == 200.0
    # a different batch with equal rows is new data, not a replay
    store.insert("spans", spans[:10], SPAN_COLUMNS, dedup_token="batch-2:spans")
    assert _scalar(store, "SELECT count() FROM spans") == 60
    assert _scalar(store, "SELECT sum(calls) FROM llm_1m") == 240.0


def test_inserts_and_queries_from_several_threads(store: Store, rows: Rows) -> None:
    span, _ = rows
    start = _now_ns()
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for batch in range(10):
                batch_rows = [span(start_time=start - (batch * 100 + i) * 1000, duration_s=0.1) for i in range(100)]
                store.insert("spans", batch_rows, SPAN_COLUMNS, dedup_token=f"w{worker}-{batch}")
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            while not stop.is_set():
                queries.stats(store, "acme", window_s=3600, now_ns=start, group_by=["service"])
                queries.traces(store, "acme", limit=5, now_ns=start)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(120)
    stop.set()
    for t in readers:
        t.join(60)
    assert not errors
    (group,) = queries.stats(store, "acme", window_s=3600, now_ns=start, group_by=["service"])
    assert group["calls"] == 2000.0


@pytest.mark.parametrize("readers", [1, 2])
def test_query_many_answers_in_order_and_survives_errors(new_database: Callable[..., Store], readers: int) -> None:
    store = new_database(readers=readers)
    statements: list[tuple[str, dict[str, Any] | None]] = [
        ("SELECT 1 AS a", None),
        ("SELECT {x:UInt8} AS a", {"x": 2}),
        ("SELECT number AS a FROM numbers(3)", None),
    ]
    assert store.query_many(statements) == [[{"a": 1}], [{"a": 2}], [{"a": 0}, {"a": 1}, {"a": 2}]]
    # An error in any statement is raised (as a StorageError) once the others have finished ...
    for bad in ([("SELECT no_such_column", None), ("SELECT 1", None)], [("SELECT 1", None), ("SELECT nope", None)]):
        with pytest.raises(StorageError, match=r"no_such_column|nope"):
            store.query_many(bad)
    # ... and every reader went back to the pool: more statements at once than readers still run.
    assert store.query_many([(f"SELECT {i} AS a", None) for i in range(readers + 3)]) == [
        [{"a": i}] for i in range(readers + 3)
    ]


def test_many_threads_share_a_few_readers(new_database: Callable[..., Store]) -> None:
    # Eight request threads, two readers: every caller gets its own answers, none waits forever.
    store = new_database(readers=2)
    errors: list[BaseException] = []
    wrong: list[tuple[int, int, Any]] = []

    def work(worker: int) -> None:
        try:
            for i in range(25):
                a, b = store.query_many(
                    [
                        ("SELECT {w:UInt32} * 1000 + {i:UInt32} AS v", {"w": worker, "i": i}),
                        ("SELECT sum(number) AS v FROM numbers({n:UInt32})", {"n": worker + i}),
                    ]
                )
                if a != [{"v": worker * 1000 + i}] or b != [{"v": sum(range(worker + i))}]:
                    wrong.append((worker, i, (a, b)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert not errors
    assert not wrong


# --- a real server, when one is configured -----------------------------------------------------

SERVER_URL = os.environ.get("LLMPULSE_TEST_CLICKHOUSE_URL")


@pytest.fixture
def server_store() -> Iterator[Store]:
    if not SERVER_URL:
        pytest.skip("LLMPULSE_TEST_CLICKHOUSE_URL is not set (a ClickHouse server or cluster to test against)")
    cluster = os.environ.get("LLMPULSE_TEST_CLICKHOUSE_CLUSTER") or None
    store = Store.connect(SERVER_URL, database=f"t_{uuid.uuid4().hex[:12]}", cluster=cluster)
    try:
        yield store
    finally:
        on_cluster = f" ON CLUSTER `{cluster}`" if cluster else ""
        store.command(f"DROP DATABASE IF EXISTS `{store.database}`{on_cluster} SYNC")
        store.close()


def test_same_sql_on_a_server(server_store: Store, rows: Rows) -> None:
    span, assertion = rows
    assert migrate(server_store) == [v for v, _ in migrations.MIGRATIONS]
    assert migrate(server_store) == []
    start = _now_ns() - 120 * 10**9
    spans = [span(start_time=start - i * 10**9, duration_s=0.1 * (i + 1)) for i in range(20)]
    for _ in range(2):
        server_store.insert("spans", spans, SPAN_COLUMNS, dedup_token="server-1:spans")
        server_store.insert(
            "assertions", [assertion(s, "is_json", "pass") for s in spans], ASSERTION_COLUMNS, dedup_token="server-1:a"
        )
    raw = queries.stats(server_store, "acme", window_s=3600, group_by=["model"])
    rollup = queries.stats(server_store, "acme", window_s=7200, group_by=["model"])
    assert raw[0]["calls"] == rollup[0]["calls"] == 20.0
    assert raw[0]["assertions"]["is_json"]["pass"] == 20.0
    listed = queries.traces(server_store, "acme", limit=5)
    assert len(listed) == 5
    detail = queries.trace(server_store, "acme", listed[0]["trace_id"])
    assert detail is not None
    assert detail["spans"][0]["start"] == listed[0]["start"]
    # Native blocks, as the collector's writer sends them (raw_insert over HTTP), stored once per token.
    defaults = {c: d for c, _, d in SPAN_SCHEMA}
    more = [{**defaults, **span(start_time=start - i * 10**9, duration_s=0.1)} for i in range(5)]
    part = decode_entry(encode_entry({"spans": more}))["spans"]
    assert isinstance(part, Native)
    for _ in range(2):
        server_store.insert_native("spans", part.names, part.data, rows=part.count, dedup_token="server-1:native")
    after = queries.stats(server_store, "acme", window_s=3600, group_by=["model"])
    assert after[0]["calls"] == 25.0


# --- the read API's shapes (numbers are checked by hand in test_queries.py) --------------------


def test_trace_listing_and_detail_shapes(store: Store, rows: Rows) -> None:
    span, assertion = rows
    start = _now_ns()
    root = span(start_time=start, duration_s=0.5, name="handle", is_llm=0, model="")
    child = span(
        start_time=start + 1000,
        duration_s=0.25,
        trace_id=root["trace_id"],
        parent_span_id=root["span_id"],
        refusal=1,
        cost_usd=0.01,
        attributes='{"k": 1}',
    )
    store.insert("spans", [child, root], SPAN_COLUMNS, dedup_token="shape:spans")
    store.insert("assertions", [assertion(child, "is_json", "fail")], ASSERTION_COLUMNS, dedup_token="shape:a")
    (listed,) = queries.traces(store, "acme", now_ns=start + 10**9)
    assert {k: listed[k] for k in ("trace_id", "start", "name", "spans", "llm_calls", "models", "refusal")} == {
        "trace_id": root["trace_id"],
        "start": start,
        "name": "handle",
        "spans": 2,
        "llm_calls": 1,
        "models": ["gpt-4o-mini"],
        "refusal": True,
    }
    assert listed["failed_assertions"] == ["is_json"]
    assert listed["cost_usd"] == pytest.approx(0.01)
    assert listed["duration_s"] == pytest.approx(0.5)
    detail = queries.trace(store, "acme", root["trace_id"])
    assert detail is not None
    assert [s["span_id"] for s in detail["spans"]] == [root["span_id"], child["span_id"]]  # by start
    renamed = {"start_time": "start", "end_time": "end", "ingested_at": "ingested_at_ms"}
    expected_keys = {renamed.get(n, n) for n, _, _ in SPAN_SCHEMA if n != "project"} | {"assertions"}
    assert set(detail["spans"][1]) == expected_keys
    llm = detail["spans"][1]
    assert (llm["trace_id"], llm["parent_span_id"], llm["refusal"]) == (root["trace_id"], root["span_id"], True)
    assert llm["attributes"] == {"k": 1}
    assert [(a["name"], a["label"]) for a in llm["assertions"]] == [("is_json", "fail")]
    assert queries.trace(store, "other", root["trace_id"]) is None


def test_stats_filter_keys_are_an_allow_list(store: Store) -> None:
    for key in queries.FILTER_KEYS:
        assert queries.stats(store, "acme", window_s=60, filters={key: "x' OR 1=1 --"}) == []
    for bad in ("prompt_name", "operation", "project", "1=1) OR (1"):
        with pytest.raises(ValueError, match="filter") as info:
            queries.stats(store, "acme", window_s=60, filters={bad: "x"})
        assert repr(bad) in str(info.value)
