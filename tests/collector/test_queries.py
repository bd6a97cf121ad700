"""The read API on real chDB: numbers computed by hand from known rows, both stats paths, trace
listing and pagination, trace detail, tenant isolation and injection attempts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import schema_at
from llmpulse_collector.rows import ASSERTION_COLUMNS, FEEDBACK_COLUMNS, SPAN_COLUMNS
from llmpulse_collector.storage import Store, queries
from llmpulse_collector.storage.migrations import MIGRATIONS, migrate

pytestmark = pytest.mark.collector

Rows = tuple[Callable[..., dict[str, Any]], Callable[..., dict[str, Any]]]

S = 10**9
MINUTE = 60 * S
# Half a minute past a minute boundary, so raw windows and whole-minute rollups see the same rows.
NOW = time.time_ns() // MINUTE * MINUTE + 30 * S


@dataclass
class Data:
    """What was inserted, for the expectations."""

    store: Store
    traces: list[dict[str, Any]] = field(default_factory=list)  # newest first: {"trace_id", "start", ...}
    by_name: dict[str, str] = field(default_factory=dict)  # label -> trace id


def _insert_dataset(store: Store, rows: Rows) -> Data:
    span, assertion = rows
    data = Data(store)
    spans: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    slot = 0

    def call(label: str, project: str = "acme", minutes_ago: float | None = None, **llm: Any) -> dict[str, Any]:
        """One trace: a root ``handle`` span and one LLM call inside it."""
        nonlocal slot
        slot += 1
        start = NOW - int((minutes_ago if minutes_ago is not None else slot) * MINUTE) - 1000 * slot
        trace_id = uuid.uuid4().hex
        root = span(
            project=project,
            trace_id=trace_id,
            name="handle",
            is_llm=0,
            operation="",
            provider="",
            model="",
            prompt_name="",
            prompt_version="",
            start_time=start,
            duration_s=llm.get("duration_s", 0.1) + 0.05,
        )
        child = span(
            project=project,
            trace_id=trace_id,
            parent_span_id=root["span_id"],
            start_time=start + 1000,
            attributes='{"gen_ai.request.temperature": 0.2}',
            input='[{"role": "user", "content": "hi"}]',
            output='[{"role": "assistant", "content": "hello"}]',
            **llm,
        )
        spans.extend([root, child])
        if project == "acme":
            data.traces.append({"trace_id": trace_id, "start": start, "child": child, "label": label})
            data.by_name[label] = trace_id
        return child

    # bot / gpt-4o-mini / prod: five unsampled calls with latencies 0.1 .. 0.5 s
    for i in range(5):
        child = call(
            f"prod-{i}",
            duration_s=0.1 * (i + 1),
            input_tokens=100,
            output_tokens=10,
            cache_read_tokens=20,
            cost_usd=None if i == 4 else 0.001,
            refusal=1 if i == 1 else 0,
            status_code=2 if i == 2 else 1,
        )
        checks.append(assertion(child, "starts_lowercase", "pass" if i < 3 else "fail"))
        if i == 0:
            checks.append(assertion(child, "is_json", "error", explanation="boom"))
    # bot / gpt-4o-mini / staging: three streamed calls kept at p = 1/4 (weight 4)
    for i in range(3):
        child = call(
            f"staging-{i}",
            environment="staging",
            duration_s=1.0,
            sample_weight=4.0,
            stream=1,
            ttft_s=0.2,
            input_tokens=100,
            output_tokens=10,
            cost_usd=0.002,
        )
        checks.append(assertion(child, "starts_lowercase", "pass"))
    # bot / claude / v2: two refusals
    for i in range(2):
        call(
            f"claude-{i}",
            provider="anthropic",
            model="claude-sonnet-4",
            prompt_version="v2",
            duration_s=2.0,
            refusal=1,
            refusal_source="provider",
        )
    # a non-LLM trace of another service: never in stats
    start = NOW - 30 * MINUTE
    spans.append(span(name="search", service="search", is_llm=0, model="", start_time=start, duration_s=0.3))
    data.traces.append({"trace_id": spans[-1]["trace_id"], "start": start, "child": None, "label": "search"})
    data.by_name["search"] = spans[-1]["trace_id"]
    # two days old: outside every stats window, found by trace listing's widening search
    call("old", minutes_ago=2 * 24 * 60, duration_s=0.1)
    # another tenant, same service and model
    for i in range(4):
        other = call(f"other-{i}", project="other", duration_s=9.0, input_tokens=1)
        checks.append(assertion(other, "starts_lowercase", "fail"))

    store.insert("spans", spans, SPAN_COLUMNS, dedup_token="dataset:spans")
    store.insert("assertions", checks, ASSERTION_COLUMNS, dedup_token="dataset:assertions")
    data.traces.sort(key=lambda t: (t["start"], t["trace_id"]), reverse=True)
    return data


@pytest.fixture(scope="module")
def data(chdb_path: Path, rows: Rows) -> Iterator[Data]:
    """One populated database shared by this module's read-only tests."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    store = Store.connect(f"chdb://{chdb_path}", database=database)
    try:
        migrate(store)
        yield _insert_dataset(store, rows)
    finally:
        store.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
        store.close()


def _by(groups: list[dict[str, Any]], **keys: str) -> dict[str, Any]:
    (match,) = [g for g in groups if all(g[k] == v for k, v in keys.items())]
    return match


# --- stats -------------------------------------------------------------------------------------


def test_stats_weighted_counts_rates_tokens_cost(data: Data) -> None:
    groups = queries.stats(data.store, "acme", window_s=3600, now_ns=NOW, group_by=["service", "model"])
    assert [(g["service"], g["model"]) for g in groups] == [("bot", "gpt-4o-mini"), ("bot", "claude-sonnet-4")]
    gpt = groups[0]
    # 5 calls of weight 1 + 3 calls of weight 4
    assert gpt["calls"] == 17.0
    assert gpt["errors"] == 1.0
    assert gpt["refusals"] == 1.0
    assert gpt["refusal_rate"] == pytest.approx(1 / 17)
    assert gpt["error_rate"] == pytest.approx(1 / 17)
    assert gpt["input_tokens"] == 100 * 5 + 100 * 12
    assert gpt["output_tokens"] == 10 * 17
    assert gpt["cache_read_tokens"] == 20 * 5
    assert gpt["cost_usd"] == pytest.approx(0.001 * 4 + 0.002 * 12)
    assert gpt["priced_calls"] == 16.0  # the unpriced call is not counted as free
    assert gpt["streams"] == 12.0
    assert gpt["ttft_s"] == {"p50": pytest.approx(0.2), "p95": pytest.approx(0.2), "p99": pytest.approx(0.2)}
    # weighted: 12 of 17 calls took 1 s, so the median is 1 s
    assert gpt["latency_s"]["p50"] == pytest.approx(1.0, abs=0.05)
    assert gpt["latency_s"]["p99"] == pytest.approx(1.0)
    claude = groups[1]
    assert claude["calls"] == 2.0
    assert claude["refusal_rate"] == 1.0
    assert claude["cost_usd"] is None  # nothing priced
    assert claude["ttft_s"] is None  # no streams
    assert claude["assertions"] == {}


def test_stats_assertion_pass_rates(data: Data) -> None:
    (gpt, _) = queries.stats(data.store, "acme", window_s=3600, now_ns=NOW, group_by=["model"])
    lower = gpt["assertions"]["starts_lowercase"]
    assert lower == {"pass": 3 + 12, "fail": 2, "error": 0, "pass_rate": pytest.approx(15 / 17)}
    assert gpt["assertions"]["is_json"] == {"pass": 0, "fail": 0, "error": 1, "pass_rate": 0.0}


def test_stats_p50_of_known_latencies(data: Data) -> None:
    groups = queries.stats(
        data.store, "acme", window_s=3600, now_ns=NOW, filters={"model": "gpt-4o-mini"}, group_by=["environment"]
    )
    prod = _by(groups, environment="prod")
    assert prod["calls"] == 5.0
    assert prod["latency_s"]["p50"] == pytest.approx(0.3, abs=0.01)  # of 0.1, 0.2, 0.3, 0.4, 0.5
    assert prod["latency_s"]["p99"] == pytest.approx(0.5, abs=0.01)
    assert prod["ttft_s"] is None
    staging = _by(groups, environment="staging")
    assert staging["calls"] == 12.0
    assert staging["assertions"]["starts_lowercase"]["pass_rate"] == 1.0


def test_stats_filters_and_grouping_keys(data: Data) -> None:
    (only,) = queries.stats(
        data.store,
        "acme",
        window_s=3600,
        now_ns=NOW,
        filters={"provider": "anthropic", "prompt_version": "v2"},
        group_by=["provider", "prompt_version", "prompt_name", "operation"],
    )
    assert (only["provider"], only["prompt_version"], only["prompt_name"], only["operation"]) == (
        "anthropic",
        "v2",
        "support",
        "chat",
    )
    assert only["calls"] == 2.0
    (total,) = queries.stats(data.store, "acme", window_s=3600, now_ns=NOW)
    assert total["calls"] == 19.0  # no grouping: one group, LLM calls only (the search span is not one)
    assert queries.stats(data.store, "acme", window_s=3600, now_ns=NOW, filters={"service": "search"}) == []
    # the window ends at now_ns and starts window_s before it
    assert queries.stats(data.store, "acme", window_s=60, now_ns=NOW - 20 * MINUTE) == []


def test_raw_and_rollup_paths_agree(data: Data) -> None:
    keys = ["service", "model", "environment", "prompt_version"]
    raw = queries.stats(data.store, "acme", window_s=3600, now_ns=NOW, group_by=keys)
    rollup = queries.stats(data.store, "acme", window_s=7200, now_ns=NOW, group_by=keys)  # > 1 h: rollups
    forced = queries.stats(data.store, "acme", window_s=3600, now_ns=NOW, group_by=keys, source="rollup")
    assert len(raw) == 3
    for other in (rollup, forced):
        assert [tuple(g[k] for k in keys) for g in other] == [tuple(g[k] for k in keys) for g in raw]
        for a, b in zip(raw, other, strict=True):
            for name in ("calls", "errors", "refusals", "input_tokens", "output_tokens", "priced_calls", "streams"):
                assert a[name] == b[name], name
            assert a["cost_usd"] == pytest.approx(b["cost_usd"])
            assert a["assertions"] == b["assertions"]
            for q in ("p50", "p95", "p99"):
                assert a["latency_s"][q] == pytest.approx(b["latency_s"][q], rel=0.05)
            assert (a["ttft_s"] is None) == (b["ttft_s"] is None)


def test_whole_minutes_come_from_the_rollups_partial_ones_from_raw_spans(store: Store, rows: Rows) -> None:
    span, _ = rows
    whole_minute = span(start_time=NOW - 5 * MINUTE, duration_s=0.2)
    this_minute = span(start_time=NOW - 10 * S, duration_s=0.4)  # NOW is 30 s into its minute
    store.insert("spans", [whole_minute, this_minute], SPAN_COLUMNS, dedup_token="two")
    store.command("TRUNCATE TABLE spans")  # the rollups keep their copies
    assert queries.stats(store, "acme", window_s=3600, now_ns=NOW, source="raw") == []
    for window_s in (600, queries.RAW_MAX_WINDOW_S):
        (group,) = queries.stats(store, "acme", window_s=window_s, now_ns=NOW, group_by=["model"])
        assert group["calls"] == 1.0  # the current minute is read from raw spans: gone
        assert group["latency_s"]["p50"] == pytest.approx(0.2)
    # wider windows, or rollups forced: whole minutes through the current one
    (group,) = queries.stats(store, "acme", window_s=queries.RAW_MAX_WINDOW_S + 60, now_ns=NOW)
    assert group["calls"] == 2.0
    (group,) = queries.stats(store, "acme", window_s=600, now_ns=NOW, source="rollup")
    assert group["calls"] == 2.0


def test_stats_is_per_project(data: Data) -> None:
    (other,) = queries.stats(data.store, "other", window_s=3600, now_ns=NOW, group_by=["service", "model"])
    assert other["calls"] == 4.0
    assert other["input_tokens"] == 4.0
    assert other["assertions"]["starts_lowercase"]["fail"] == 4.0
    assert queries.stats(data.store, "nobody", window_s=86400, now_ns=NOW) == []


@pytest.mark.parametrize(
    "bad",
    ["model; DROP TABLE spans", "model) FROM spans --", "project", "trace_id", "user_id", "MODEL"],
)
def test_group_by_outside_the_allow_list_is_refused(data: Data, bad: str) -> None:
    with pytest.raises(ValueError, match="group_by") as info:
        queries.stats(data.store, "acme", window_s=3600, group_by=["service", bad])
    assert repr(bad) in str(info.value)
    with pytest.raises(ValueError, match="filter") as info:
        queries.stats(data.store, "acme", window_s=3600, filters={bad: "x"})
    assert repr(bad) in str(info.value)


def test_injection_in_values_is_just_data(data: Data) -> None:
    before = data.store.query("SELECT count() AS n FROM spans")
    for value in ("x' OR 1=1 --", "gpt-4o-mini' OR '1'='1", "'; DROP TABLE spans; --", "\\' OR 1=1 #"):
        assert queries.stats(data.store, "acme", window_s=3600, now_ns=NOW, filters={"model": value}) == []
        assert queries.stats(data.store, value, window_s=3600, now_ns=NOW) == []
        assert queries.traces(data.store, "acme", service=value, now_ns=NOW) == []
        assert queries.traces(data.store, "acme", failed_assertion=value, now_ns=NOW) == []
        assert queries.traces(data.store, value, now_ns=NOW) == []
        assert queries.trace(data.store, "acme", value) is None
        assert queries.trace(data.store, value, data.by_name["prod-0"]) is None
    assert data.store.query("SELECT count() AS n FROM spans") == before


def test_argument_validation(data: Data) -> None:
    with pytest.raises(ValueError, match="window_s"):
        queries.stats(data.store, "acme", window_s=0)
    with pytest.raises(ValueError, match="project"):
        queries.stats(data.store, "", window_s=60)
    with pytest.raises(ValueError, match="filter 'model'"):
        queries.stats(data.store, "acme", window_s=60, filters={"model": 5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="limit"):
        queries.traces(data.store, "acme", limit=0)
    with pytest.raises(ValueError, match="before"):
        queries.traces(data.store, "acme", before=("123", "abc"))  # type: ignore[arg-type]


# --- trace listing -----------------------------------------------------------------------------


def test_traces_newest_first_one_row_per_trace(data: Data) -> None:
    listed = queries.traces(data.store, "acme", limit=100, now_ns=NOW)
    assert [t["trace_id"] for t in listed] == [t["trace_id"] for t in data.traces]
    assert [t["start"] for t in listed] == [t["start"] for t in data.traces]
    first = next(t for t in listed if t["trace_id"] == data.by_name["prod-1"])
    assert first["name"] == "handle"  # the root span's name
    assert first["service"] == "bot"
    assert first["span_count"] == 2
    assert first["llm_calls"] == 1
    assert first["models"] == ["gpt-4o-mini"]
    assert first["refusal"] is True
    assert first["error"] is False
    assert first["failed_assertions"] == []
    assert first["cost_usd"] == pytest.approx(0.001)
    assert first["duration_s"] == pytest.approx(0.25)  # the root span covers its child
    failed = next(t for t in listed if t["trace_id"] == data.by_name["prod-3"])
    assert failed["failed_assertions"] == ["starts_lowercase"]
    assert failed["cost_usd"] == pytest.approx(0.001)
    unpriced = next(t for t in listed if t["trace_id"] == data.by_name["prod-4"])
    assert unpriced["cost_usd"] is None
    assert next(t for t in listed if t["trace_id"] == data.by_name["prod-2"])["error"] is True
    assert listed[-1]["trace_id"] == data.by_name["old"]  # two days back: found by widening the search


def test_traces_filters(data: Data) -> None:
    def ids(**filters: Any) -> set[str]:
        return {t["trace_id"] for t in queries.traces(data.store, "acme", limit=100, now_ns=NOW, **filters)}

    refusals = {data.by_name[n] for n in ("prod-1", "claude-0", "claude-1")}
    assert ids(refusal=True) == refusals
    assert ids(refusal=False) == {t["trace_id"] for t in data.traces} - refusals
    assert ids(failed_assertion="starts_lowercase") == {data.by_name["prod-3"], data.by_name["prod-4"]}
    assert ids(failed_assertion="is_json") == set()  # an error is not a failure
    assert ids(model="claude-sonnet-4") == {data.by_name["claude-0"], data.by_name["claude-1"]}
    assert ids(service="search") == {data.by_name["search"]}
    assert ids(model="gpt-4o-mini", refusal=True) == {data.by_name["prod-1"]}
    since = data.traces[4]["start"]
    assert ids(since_ns=since) == {t["trace_id"] for t in data.traces[:5]}


def test_traces_pagination(data: Data) -> None:
    pages: list[list[dict[str, Any]]] = []
    before = None
    while True:
        page = queries.traces(data.store, "acme", limit=4, before=before, now_ns=NOW)
        pages.append(page)
        if len(page) < 4:
            break
        before = (page[-1]["start"], page[-1]["trace_id"])
    assert [len(p) for p in pages] == [4, 4, 4, 0]
    walked = [t["trace_id"] for p in pages for t in p]
    assert walked == [t["trace_id"] for t in data.traces]
    # a cursor inside the data: strictly older traces only
    cursor = data.traces[2]
    page = queries.traces(data.store, "acme", limit=2, before=(cursor["start"], cursor["trace_id"]), now_ns=NOW)
    assert [t["trace_id"] for t in page] == [t["trace_id"] for t in data.traces[3:5]]


def test_traces_are_per_project(data: Data) -> None:
    other = queries.traces(data.store, "other", limit=100, now_ns=NOW)
    assert len(other) == 4
    assert not {t["trace_id"] for t in other} & {t["trace_id"] for t in data.traces}
    assert queries.traces(data.store, "other", failed_assertion="starts_lowercase", now_ns=NOW) == other


# --- one trace ---------------------------------------------------------------------------------


def test_trace_detail(data: Data) -> None:
    info = next(t for t in data.traces if t["label"] == "prod-0")
    detail = queries.trace(data.store, "acme", info["trace_id"])
    assert detail is not None
    assert detail["trace_id"] == info["trace_id"]
    assert detail["start"] == info["start"]
    assert detail["duration_s"] == pytest.approx(0.15)
    root, child = detail["spans"]
    assert root["name"] == "handle"
    assert root["parent_span_id"] == ""
    assert root["assertions"] == []
    assert child["span_id"] == info["child"]["span_id"]
    assert child["parent_span_id"] == root["span_id"]
    assert child["start"] == info["child"]["start_time"]
    assert child["duration_s"] == pytest.approx(0.1)
    assert child["model"] == "gpt-4o-mini"
    assert (child["input_tokens"], child["output_tokens"]) == (100, 10)
    assert child["refusal"] is False
    assert child["is_llm"] is True
    assert child["attributes"] == {"gen_ai.request.temperature": 0.2}
    assert child["input"] == '[{"role": "user", "content": "hi"}]'
    assert child["output"] == '[{"role": "assistant", "content": "hello"}]'
    assert [(a["name"], a["label"]) for a in child["assertions"]] == [
        ("is_json", "error"),
        ("starts_lowercase", "pass"),
    ]
    assert child["assertions"][0]["explanation"] == "boom"
    assert child["assertions"][1]["score"] == 1.0
    assert detail["feedback"] == []


def test_trace_lookup_around_a_time_reads_the_same_trace(data: Data) -> None:
    info = next(t for t in data.traces if t["label"] == "prod-0")
    whole = queries.trace(data.store, "acme", info["trace_id"])
    assert whole is not None
    for around in (info["start"], info["start"] - 59 * MINUTE, info["start"] + 59 * MINUTE):
        assert queries.trace(data.store, "acme", info["trace_id"], around_ns=around) == whole
    # Outside the hour around it, the trace is not there (as in the listing's window).
    assert queries.trace(data.store, "acme", info["trace_id"], around_ns=info["start"] + 61 * MINUTE) is None
    assert queries.trace(data.store, "other", info["trace_id"], around_ns=info["start"]) is None
    for bad in (0, -5, True, 1.5):
        with pytest.raises(ValueError, match="around_ns must be a positive integer"):
            queries.trace(data.store, "acme", info["trace_id"], around_ns=bad)  # type: ignore[arg-type]


def test_trace_is_per_project_and_none_when_absent(data: Data) -> None:
    trace_id = data.by_name["prod-0"]
    assert queries.trace(data.store, "other", trace_id) is None
    assert queries.trace(data.store, "acme", "f" * 32) is None


def test_trace_detail_shows_assertion_results_stamped_long_after_the_call(store: Store, rows: Rows) -> None:
    # A check run by a batch job hours later (an LLM judge, a human label) still belongs to its span.
    span, assertion = rows
    call = span(start_time=NOW - 180 * MINUTE, duration_s=0.3)
    store.insert("spans", [call], SPAN_COLUMNS, dedup_token="late:spans")
    results = [
        assertion(call, "judge_helpful", "fail", time=NOW - 1000),
        assertion(call, "starts_lowercase", "pass"),
        assertion({**call, "project": "other"}, "judge_helpful", "pass", time=NOW),
    ]
    store.insert("assertions", results, ASSERTION_COLUMNS, dedup_token="late:assertions")
    detail = queries.trace(store, "acme", call["trace_id"])
    assert detail is not None
    (only,) = detail["spans"]
    assert [(a["name"], a["label"], a["time"]) for a in only["assertions"]] == [
        ("starts_lowercase", "pass", call["start_time"]),
        ("judge_helpful", "fail", NOW - 1000),
    ]


def test_trace_feedback_by_trace_or_response_id(store: Store, rows: Rows) -> None:
    span, _ = rows
    call = span(start_time=NOW - MINUTE, duration_s=0.3, response_id="chatcmpl-1")
    store.insert("spans", [call], SPAN_COLUMNS, dedup_token="fb:spans")
    now_ms = NOW // 1_000_000
    feedback = [
        {"project": "acme", "time": now_ms, "trace_id": call["trace_id"], "name": "thumbs_up", "value": 1.0},
        {"project": "acme", "time": now_ms + 1, "response_id": "chatcmpl-1", "name": "rating", "value": 4.0},
        {"project": "other", "time": now_ms, "trace_id": call["trace_id"], "name": "thumbs_up", "value": 0.0},
    ]
    store.insert("feedback", feedback, FEEDBACK_COLUMNS, dedup_token="fb:feedback")
    detail = queries.trace(store, "acme", call["trace_id"])
    assert detail is not None
    assert [(f["name"], f["value"], f["time_ms"]) for f in detail["feedback"]] == [
        ("thumbs_up", 1.0, now_ms),
        ("rating", 4.0, now_ms + 1),
    ]


# --- the packed detail column (migration 4) ---------------------------------------------------


def _from_columns(store: Store, trace_id: str) -> list[dict[str, Any]]:
    """The trace's spans read column by column (the statement the packed one replaces)."""
    rows = store.query(queries._DETAIL_SQL, {"project": "acme", "trace_id": trace_id})
    spans = [queries._span(row) for row in rows]
    assert spans, "nothing stored"
    return spans


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_FLOAT = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spans=st.lists(
        st.fixed_dictionaries(
            {
                "start_time": st.integers(0, 10 * MINUTE),
                "end_time": st.integers(0, 2**62),
                "duration_s": _FLOAT,
                "span_id": st.text("0123456789abcdef", min_size=16, max_size=16),
                "parent_span_id": _TEXT,
                "name": _TEXT,
                "kind": st.integers(0, 255),
                "status_message": _TEXT,
                "release": _TEXT,
                "input_tokens": st.integers(0, 2**64 - 1),
                "reasoning_tokens": st.integers(0, 2**64 - 1),
                "cost_usd": st.none() | _FLOAT,
                "ttft_s": st.none() | st.floats(allow_nan=False),
                "stream": st.integers(0, 1),
                "refusal": st.integers(0, 1),
                "finish_reasons": st.lists(_TEXT, max_size=3),
                "user_id": _TEXT,
                "input": _TEXT,
                "output": _TEXT,
                "attributes": st.sampled_from(["{}", '{"a": [1, "\\u2028"]}', "not json", "[1]"]),
                "ingested_at": st.integers(0, 2**62 // 10**6),
            }
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda values: values["span_id"],  # (start, span id) orders a trace's spans
    ),
    quoted=st.booleans(),
)
def test_packed_detail_reads_what_the_columns_hold(
    store: Store, rows: Rows, spans: list[dict[str, Any]], quoted: bool
) -> None:
    # Whatever the text (control characters, quotes, line separators), 64-bit counts, NaN and
    # infinities (JSON null either way), Nulls and arrays, and whatever the inserting session's
    # JSON settings: the lookup answers what the columns hold, in the same order.
    span, _ = rows
    trace_id = uuid.uuid4().hex
    stored = [span(trace_id=trace_id, **{**values, "start_time": NOW - values["start_time"]}) for values in spans]
    store.command(f"SET output_format_json_quote_64bit_integers = {int(quoted)}")
    try:
        store.insert("spans", stored, SPAN_COLUMNS, dedup_token=uuid.uuid4().hex)
    finally:
        store.command("SET output_format_json_quote_64bit_integers = 0")
    detail = queries.trace(store, "acme", trace_id)
    assert detail is not None
    expected = _from_columns(store, trace_id)
    assert len(detail["spans"]) == len(stored)
    # compared as the API sends them: NaN and infinities are null, -0.0 equals 0.0 (the packed
    # JSON writes it as -0, an integer)
    assert orjson.loads(orjson.dumps(detail["spans"])) == orjson.loads(orjson.dumps(expected))


def test_trace_reads_the_columns_when_the_detail_layout_is_unknown(store: Store, rows: Rows) -> None:
    # A store written by a newer collector (another layout) still answers, from the columns.
    span, _ = rows
    store.command("ALTER TABLE spans MODIFY COLUMN detail String MATERIALIZED '[99, \"later\"]'")
    call = span(start_time=NOW - MINUTE, duration_s=0.25, input_tokens=7, finish_reasons=["stop"])
    store.insert("spans", [call], SPAN_COLUMNS, dedup_token="later:spans")
    assert store.query("SELECT detail FROM spans") == [{"detail": '[99, "later"]'}]
    detail = queries.trace(store, "acme", call["trace_id"])
    assert detail is not None
    (only,) = detail["spans"]
    assert (only["span_id"], only["input_tokens"], only["finish_reasons"]) == (call["span_id"], 7, ["stop"])
    assert detail["spans"] == _from_columns(store, call["trace_id"])


def test_spans_stored_before_the_detail_column_are_read_alike(new_database: Callable[..., Store], rows: Rows) -> None:
    span, _ = rows
    store = new_database()
    schema_at(store, 3)  # as collectors before migration 4 left it
    old = [span(trace_id="a" * 32, start_time=NOW - i * MINUTE, duration_s=0.1, user_id=f"u{i}") for i in range(3)]
    store.insert("spans", old, SPAN_COLUMNS, dedup_token="old:spans")
    assert migrate(store) == [v for v, _ in MIGRATIONS if v >= 4]
    new = span(trace_id="a" * 32, start_time=NOW + 1000, duration_s=0.2, user_id="u-new")
    store.insert("spans", [new], SPAN_COLUMNS, dedup_token="new:spans")
    detail = queries.trace(store, "acme", "a" * 32)
    assert detail is not None
    assert [s["user_id"] for s in detail["spans"]] == ["u2", "u1", "u0", "u-new"]
    assert detail["spans"] == _from_columns(store, "a" * 32)
