"""The rollup ladder behind ``stats``: hourly, ten-minute and per-minute rollups (total, by model,
all keys) give what the raw spans give, are filled once per insert (replays included), an
existing store is backfilled when migration 3 runs, and migration 5 packs the sums of rows
stored before it and after."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import schema_at
from llmpulse_collector.rows import ASSERTION_COLUMNS, SPAN_COLUMNS
from llmpulse_collector.storage import Store, queries
from llmpulse_collector.storage.migrations import (
    ASSERTION_LADDERS,
    LADDERS,
    LLM_SUMS,
    MIGRATIONS,
    migrate,
    packed_sums,
)
from llmpulse_collector.storage.queries import _group, _ladder, _pieces

pytestmark = pytest.mark.collector

Rows = tuple[Callable[..., dict[str, Any]], Callable[..., dict[str, Any]]]
S = 10**9
MINUTE = 60 * S
HOUR = 60 * MINUTE
NOW = time.time_ns() // MINUTE * MINUTE + 17_123_456_789  # 17.12 s into a minute
COARSE = sorted({r.table for ladder in (*LADDERS, *ASSERTION_LADDERS) for r in ladder})
SUMS = ("calls", "errors", "refusals", "input_tokens", "output_tokens", "priced_calls", "streams")


# --- which buckets --------------------------------------------------------------------------------


@given(
    first=st.integers(0, 20_000).map(lambda m: m * 60),
    length=st.integers(1, 5_000).map(lambda m: m * 60),
    ladder=st.sampled_from([*LADDERS, *ASSERTION_LADDERS]),
)
def test_pieces_cover_the_minutes_exactly_with_aligned_buckets(first: int, length: int, ladder: Any) -> None:
    end = first + length
    covered: list[tuple[int, int]] = []
    for rollup, ranges in _pieces(first, end, ladder):
        assert rollup in ladder
        for a, b in ranges:
            assert a < b
            assert a % rollup.unit_s == 0
            assert b % rollup.unit_s == 0
            covered.append((a, b))
    covered.sort()
    assert covered[0][0] == first
    assert covered[-1][1] == end
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(covered))  # no gap, no overlap
    # the finer tables only take what the coarser ones cannot: less than a coarse bucket at each end
    for level, rollup in enumerate(ladder[1:], start=1):
        coarser = ladder[level - 1].unit_s
        taken = sum(b - a for r, ranges in _pieces(first, end, ladder) if r == rollup for a, b in ranges)
        assert taken < 2 * coarser


def test_the_narrowest_ladder_with_the_keys_is_read() -> None:
    by_model, by_service_model, full = LADDERS
    assert _ladder([], {}, LADDERS) == by_model
    assert _ladder(["model"], {}, LADDERS) == by_model
    assert _ladder(["provider"], {"model": "m"}, LADDERS) == by_model
    assert _ladder(["service"], {"model": "m"}, LADDERS) == by_service_model
    assert _ladder([], {"environment": "prod"}, LADDERS) == full
    assert _ladder(["prompt_version"], {}, LADDERS) == full
    assert [r.table for r in by_model] == ["llm_1h_by_model", "llm_10m_by_service_model", "llm_1m_by_service_model"]
    (all_keys,) = ASSERTION_LADDERS
    assert _ladder(["prompt_name"], {}, ASSERTION_LADDERS) == all_keys
    for key in queries.GROUP_KEYS:  # every allowed key has a ladder
        assert key in _ladder([key], {}, LADDERS)[0].keys


# --- same answers as the raw spans -------------------------------------------------------------


@pytest.fixture(scope="module")
def traffic(chdb_path: Path) -> Iterator[Store]:
    """30 hours of random LLM calls (ms timestamps) and their assertion results, in one database."""
    from conftest import assertion_row, span_row

    rng = random.Random(7)
    spans: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for _ in range(3000):
        start = NOW - rng.randrange(30 * 3600 * 1000) * 1_000_000
        provider, model = rng.choice([("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude")])
        stream = int(rng.random() < 0.4)
        duration = round(rng.uniform(0.05, 3.0), 3)
        span = span_row(
            start_time=start,
            duration_s=duration,
            service=rng.choice(["bot", "search"]),
            environment=rng.choice(["prod", "staging"]),
            provider=provider,
            model=model,
            prompt_version=rng.choice(["v1", "v2"]),
            operation=rng.choice(["chat", "chat", "embeddings"]),
            sample_weight=rng.choice([1.0, 1.0, 4.0]),
            refusal=int(rng.random() < 0.05),
            status_code=2 if rng.random() < 0.03 else 1,
            stream=stream,
            ttft_s=duration / 5 if stream else None,
            input_tokens=rng.randrange(10, 3000),
            output_tokens=rng.randrange(1, 500),
            cost_usd=None if rng.random() < 0.2 else rng.random() / 100,
        )
        spans.append(span)
        for name in ("is_json", "polite"):
            checks.append(assertion_row(span, name, rng.choice(["pass", "pass", "fail", "error"])))
    # non-LLM spans are never counted
    spans.append(span_row(start_time=NOW - 5 * MINUTE, is_llm=0, model="", duration_s=1.0))
    database = f"t_{uuid.uuid4().hex[:12]}"
    store = Store.connect(f"chdb://{chdb_path}", database=database)
    try:
        migrate(store)
        for i in range(0, len(spans), 700):  # several inserts: several rollup rows per bucket
            store.insert("spans", spans[i : i + 700], SPAN_COLUMNS, dedup_token=f"s{i}")
            store.insert("assertions", checks[2 * i : 2 * i + 1400], ASSERTION_COLUMNS, dedup_token=f"a{i}")
        yield store
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
        store.close()


def _same(got: list[dict[str, Any]], want: list[dict[str, Any]], keys: list[str]) -> None:
    assert [tuple(g[k] for k in keys) for g in got] == [tuple(g[k] for k in keys) for g in want]
    for a, b in zip(got, want, strict=True):
        for name in SUMS:
            assert a[name] == pytest.approx(b[name], rel=1e-9), name
        assert (a["cost_usd"] is None) == (b["cost_usd"] is None)
        if a["cost_usd"] is not None:
            assert a["cost_usd"] == pytest.approx(b["cost_usd"], rel=1e-9)
        assert a["assertions"].keys() == b["assertions"].keys()
        for name, outcome in a["assertions"].items():
            assert outcome == pytest.approx(b["assertions"][name], rel=1e-9)
        for q in ("p50", "p95", "p99"):  # t-digest estimates: merged states vs one pass over the rows
            assert a["latency_s"][q] == pytest.approx(b["latency_s"][q], rel=0.1, abs=0.05)
        assert (a["ttft_s"] is None) == (b["ttft_s"] is None)


_KEYS = st.lists(st.sampled_from(queries.GROUP_KEYS), max_size=2, unique=True)
_FILTERS = st.dictionaries(
    st.sampled_from(["service", "model", "environment"]),
    st.sampled_from(["bot", "gpt-4o", "prod", "nope"]),
    max_size=1,
)


@settings(max_examples=25, deadline=None)
@given(
    window_s=st.integers(60, queries.RAW_MAX_WINDOW_S),
    back_ms=st.integers(0, 6 * 3600 * 1000),
    keys=_KEYS,
    filters=_FILTERS,
)
def test_short_windows_are_exactly_the_raw_window(
    traffic: Store, window_s: int, back_ms: int, keys: list[str], filters: dict[str, str]
) -> None:
    now = NOW - back_ms * 1_000_000 + 123_457  # not on a millisecond: edges fall between spans
    auto = queries.stats(traffic, "acme", window_s=window_s, now_ns=now, group_by=keys, filters=filters)
    raw = queries.stats(traffic, "acme", window_s=window_s, now_ns=now, group_by=keys, filters=filters, source="raw")
    _same(auto, raw, keys)


@settings(max_examples=25, deadline=None)
@given(
    minutes=st.integers(queries.RAW_MAX_WINDOW_S // 60 + 1, 30 * 60),
    back_ms=st.integers(0, 3 * 3600 * 1000),
    keys=_KEYS,
    filters=_FILTERS,
)
def test_wide_windows_are_their_whole_minutes_of_raw_spans(
    traffic: Store, minutes: int, back_ms: int, keys: list[str], filters: dict[str, str]
) -> None:
    now = NOW - back_ms * 1_000_000 + 123_457
    auto = queries.stats(traffic, "acme", window_s=minutes * 60, now_ns=now, group_by=keys, filters=filters)
    # whole minutes, from the one holding now - window through the one holding now: the raw
    # window ending 1 ns before the next minute (spans are on whole ms, so the 1 ns before
    # the first minute holds none)
    end = now // MINUTE * MINUTE + MINUTE - 1
    first = (now - minutes * MINUTE) // MINUTE * MINUTE
    raw = queries.stats(
        traffic, "acme", window_s=(end + 1 - first) // S, now_ns=end, group_by=keys, filters=filters, source="raw"
    )
    _same(auto, raw, keys)


# --- filled once, backfilled on upgrade ------------------------------------------------------


def _sums(store: Store) -> dict[str, float]:
    out = {}
    for table in COARSE:
        measure = "passes + fails + errors" if table.startswith("assertions") else "calls"
        out[table] = float(next(iter(store.query(f"SELECT sum({measure}) AS n FROM {table}")[0].values())))
    return out


def test_replayed_inserts_are_counted_once_in_every_rollup(store: Store, rows: Rows) -> None:
    span, assertion = rows
    spans = [span(start_time=NOW - i * 7 * MINUTE, duration_s=0.5, sample_weight=2.0) for i in range(40)]
    checks = [assertion(s, "is_json", "pass") for s in spans]
    for _ in range(3):  # the writer's retries and a replay after a crash reuse the batch token
        store.insert("spans", spans, SPAN_COLUMNS, dedup_token="batch-1:spans")
        store.insert("assertions", checks, ASSERTION_COLUMNS, dedup_token="batch-1:assertions")
    assert _sums(store) == dict.fromkeys(COARSE, 80.0)


def test_migration_3_backfills_an_existing_store(new_database: Callable[..., Store], rows: Rows) -> None:
    span, assertion = rows
    store = new_database()
    # a store at version 2, as earlier collectors left it, holding data
    schema_at(store, 2)
    old = [span(start_time=NOW - i * 13 * MINUTE, duration_s=0.1 * (i % 7 + 1)) for i in range(60)]
    store.insert("spans", old, SPAN_COLUMNS, dedup_token="old:spans")
    store.insert("assertions", [assertion(s, "is_json", "fail") for s in old], ASSERTION_COLUMNS, dedup_token="o:a")
    before = queries.stats(store, "acme", window_s=86400, now_ns=NOW, group_by=["model"], source="raw")

    assert migrate(store) == [v for v, _ in MIGRATIONS if v >= 3]
    assert _sums(store) == dict.fromkeys(COARSE, 60.0)
    assert migrate(store) == []  # and not twice
    assert _sums(store) == dict.fromkeys(COARSE, 60.0)
    # new inserts reach every rollup once, on top of the backfill
    new = [span(start_time=NOW - i * MINUTE) for i in range(5)]
    store.insert("spans", new, SPAN_COLUMNS, dedup_token="new:spans")
    store.insert("assertions", [assertion(s, "is_json", "pass") for s in new], ASSERTION_COLUMNS, dedup_token="n:a")
    assert _sums(store) == dict.fromkeys(COARSE, 65.0)
    after = queries.stats(store, "acme", window_s=86400, now_ns=NOW, group_by=["model"])
    assert after[0]["calls"] == before[0]["calls"] + 5
    assert after[0]["assertions"]["is_json"]["fail"] == before[0]["assertions"]["is_json"]["fail"]


# --- the packed sums (migration 5) -----------------------------------------------------------

LLM_ROLLUPS = sorted({r.table for ladder in LADDERS for r in ladder})


def _unpacked_rows(store: Store, table: str) -> list[tuple[list[float], list[float]]]:
    """Each row's ten sum columns and its packed ``sums``, as stored (no merge across rows)."""
    names = ", ".join(f"toFloat64({name})" for name in LLM_SUMS)
    got = store.query(f"SELECT [{names}] AS columns, finalizeAggregation(sums) AS packed FROM {table}")
    return [(r["columns"], r["packed"]) for r in got]


def test_migration_5_packs_the_sums_of_stored_and_new_rows(new_database: Callable[..., Store], rows: Rows) -> None:
    span, _ = rows
    store = new_database()
    # a store at version 4, as earlier collectors left it, holding data
    schema_at(store, 4)
    rng = random.Random(5)
    old = [
        span(
            start_time=NOW - i * 7 * MINUTE,
            duration_s=0.1 * (i % 7 + 1),
            sample_weight=rng.choice([1.0, 4.0]),
            status_code=rng.choice([1, 1, 2]),
            refusal=rng.choice([0, 0, 1]),
            input_tokens=rng.randrange(1, 5000),
            output_tokens=rng.randrange(1, 900),
            cost_usd=rng.choice([None, rng.random()]),
        )
        for i in range(60)
    ]
    store.insert("spans", old, SPAN_COLUMNS, dedup_token="old:spans")
    assert migrate(store) == [5]
    # every old rollup row's packed sums are its ten columns, in LLM_SUMS order (read from the
    # parts, whether the mutation has rewritten them yet or the DEFAULT computes them on read)
    for table in LLM_ROLLUPS:
        stored = _unpacked_rows(store, table)
        assert stored, table
        assert all(packed == columns for columns, packed in stored), table
    # the mutation writes the column into the parts already stored
    deadline = time.monotonic() + 60
    while store.query("SELECT count() AS n FROM system.mutations WHERE database = currentDatabase() AND NOT is_done")[
        0
    ]["n"]:
        assert time.monotonic() < deadline, "MATERIALIZE COLUMN did not finish"
        time.sleep(0.05)
    unwritten = store.query(
        "SELECT DISTINCT table FROM system.parts_columns WHERE database = currentDatabase() AND active"
        " AND table IN {t:Array(String)} AND column = 'calls' AND (table, name) NOT IN"
        " (SELECT table, name FROM system.parts_columns WHERE database = currentDatabase() AND column = 'sums')",
        {"t": LLM_ROLLUPS},
    )
    assert unwritten == []
    # rows the views write from now on get them too, and stats read them over old and new
    new = [span(start_time=NOW - i * 3 * MINUTE, duration_s=0.3, status_code=2) for i in range(9)]
    store.insert("spans", new, SPAN_COLUMNS, dedup_token="new:spans")
    for table in LLM_ROLLUPS:
        assert all(packed == columns for columns, packed in _unpacked_rows(store, table)), table
    for keys in ([], ["model"], ["service", "model"], ["service", "environment"]):
        wide = queries.stats(store, "acme", window_s=86400, now_ns=NOW, group_by=keys)
        end = NOW // MINUTE * MINUTE + MINUTE - 1
        first = (NOW - 86400 * S) // MINUTE * MINUTE
        raw = queries.stats(store, "acme", window_s=(end + 1 - first) // S, now_ns=end, group_by=keys, source="raw")
        _same(wide, raw, keys)
        assert sum(g["calls"] for g in wide) == sum(s["sample_weight"] for s in old) + 9


def test_packed_sums_add_up_across_lengths(store: Store) -> None:
    """A sum appended to LLM_SUMS later: rows stored before it merge as zeros there, and stats
    read a row shorter than LLM_SUMS as zeros."""
    (row,) = store.query(
        f"SELECT finalizeAggregation(sumForEachMergeState(x)) AS merged FROM (SELECT {packed_sums(['1', '2'])} AS x"
        f" UNION ALL SELECT {packed_sums(['3', '4', '5'])})"
    )
    assert row["merged"] == [4.0, 6.0, 5.0]
    group = _group({"m_sums": [8.0, 2.0], "m_latency": [0.1, 0.2, 0.3], "m_ttft": [0.0, 0.0, 0.0]}, [])
    assert (group["calls"], group["errors"], group["error_rate"], group["refusals"], group["streams"]) == (
        8.0,
        2.0,
        0.25,
        0.0,
        0.0,
    )
    assert group["ttft_s"] is None
