"""The aggregator under the metric exporters: bucket edges, weights, the series cap, labels."""

from __future__ import annotations

import threading

import pytest

from conftest import assertion_row, span_row
from llmpulse_collector.export.aggregate import OTHER, Aggregator, Histogram, Sample


def llm(**values: object) -> dict[str, object]:
    row = span_row(
        start_time=1_700_000_000_000_000_000,
        duration_s=0.5,
        status_code=0,
        ttft_s=None,
        refusal=0,
        refusal_source="",
        refusal_category="",
    )
    row.update(input_tokens=0, output_tokens=0, cache_read_tokens=0, reasoning_tokens=0, cost_usd=None)
    row.update(values)
    return row


def test_histogram_bounds_are_inclusive_upper_edges() -> None:
    h = Histogram((1.0, 2.0))
    for v in (0.5, 1.0, 1.0000001, 2.0, 3.0):
        h.observe(v, 2.0)
    assert h.counts == [4.0, 4.0, 2.0]
    assert h.cumulative() == [(1.0, 4.0), (2.0, 8.0), (float("inf"), 10.0)]
    assert h.count == 10.0
    assert h.sum == pytest.approx(2 * (0.5 + 1.0 + 1.0000001 + 2.0 + 3.0))


def test_weights_scale_every_count() -> None:
    agg = Aggregator()
    agg.record_spans(
        "p",
        [
            llm(sample_weight=10.0, input_tokens=7, output_tokens=3, cost_usd=0.5, ttft_s=0.2),
            llm(status_code=2, refusal=1, refusal_source="provider", refusal_category="content_filter"),
        ],
    )
    ((dims, s),) = agg.snapshot("p").llm.items()
    assert dims == ("bot", "prod", "openai", "gpt-4o-mini", "chat", "support", "v1")
    assert (s.calls_ok, s.calls_error) == (10.0, 1.0)
    assert s.tokens == [70.0, 30.0, 0.0, 0.0]
    assert s.cost_usd == 5.0
    assert s.duration.count == 11.0
    assert s.ttfc.count == 10.0
    assert s.tokens_input.count == 10.0  # the failed call reported no usage
    assert agg.snapshot("p").refusals == {(dims, "provider", "content_filter"): 1.0}


def test_assertions_take_the_labels_of_their_span_including_operation() -> None:
    agg = Aggregator()
    span = llm(operation="text_completion", sample_weight=4.0)
    a = assertion_row(span, "is_json", "fail", sample_weight=4.0)
    a["model"] = "something-else"  # the span's labels win: both series line up
    orphan = assertion_row(llm(span_id="ffffffffffffffff"), "is_json", "pass")
    agg.record_spans("p", [span], [a, orphan])
    got = agg.snapshot("p").assertions
    assert got[(("bot", "prod", "openai", "gpt-4o-mini", "text_completion", "support", "v1"), "is_json")] == [0, 4, 0]
    assert got[(("bot", "prod", "openai", "gpt-4o-mini", "", "support", "v1"), "is_json")] == [1, 0, 0]


def test_non_llm_spans_are_not_counted() -> None:
    agg = Aggregator()
    agg.record_spans("p", [llm(is_llm=0)])
    assert agg.snapshot("p").llm == {}


def test_cap_counts_the_other_set_and_keeps_totals() -> None:
    agg = Aggregator(series_cap=3)
    agg.record_spans("p", [llm(model=f"m{i}") for i in range(10)])
    snap = agg.snapshot("p")
    assert len(snap.llm) == 3
    assert [d[3] for d in snap.llm] == ["m0", "m1", OTHER]
    assert all(v == OTHER for v in next(d for d in snap.llm if d[3] == OTHER))
    assert sum(s.calls_ok for s in snap.llm.values()) == 10
    assert snap.folded["llm"] == 8
    agg.record_spans("p", [llm(model="m1")])  # a known set still counts as itself
    assert agg.snapshot("p").llm[next(d for d in snap.llm if d[3] == "m1")].calls_ok == 2
    with pytest.raises(ValueError, match="series_cap must be at least 2"):
        Aggregator(series_cap=1)


def test_feedback_and_samples_for_exporters() -> None:
    got: list[Sample] = []
    agg = Aggregator(on_samples=got.extend)
    agg.record_feedback("p", [{"name": "thumbs_up", "value": 1.0}, {"name": "thumbs_up", "value": 0.0}])
    agg.record_spans("p", [llm(sample_weight=2.0, ttft_s=0.1, input_tokens=5, output_tokens=1)])
    assert agg.snapshot("p").feedback == {"thumbs_up": [2.0, 1.0]}
    assert [(s.metric, s.value, s.weight) for s in got] == [
        ("feedback_value", 1.0, 1.0),
        ("feedback_value", 0.0, 1.0),
        ("duration", 0.5, 2.0),
        ("ttfc", 0.1, 2.0),
        ("tokens_input", 5.0, 2.0),
        ("tokens_output", 1.0, 2.0),
    ]


def test_concurrent_recording_loses_nothing() -> None:
    agg = Aggregator()
    rows = [llm(sample_weight=1.0) for _ in range(200)]

    def work() -> None:
        for _ in range(50):
            agg.record_spans("p", rows)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ((_, s),) = agg.snapshot("p").llm.items()
    assert s.calls_ok == 4 * 50 * 200
    assert s.duration.count == 4 * 50 * 200
