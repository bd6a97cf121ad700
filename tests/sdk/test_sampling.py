"""Sampling keeps every interesting span and weights the rest so counts stay exact."""

from __future__ import annotations

import contextlib
from typing import Any

import llmpulse
from llmpulse import check, testing
from llmpulse._client import IdGenerator


def test_sampled_counts_are_unbiased_and_interesting_spans_always_kept() -> None:
    n = 4000

    @llmpulse.llm(provider="openai", model="gpt-4o-mini", assertions=[check.max_length(20)])
    def call(i: int) -> Any:
        if i % 100 == 0:
            raise TimeoutError("slow")
        if i % 50 == 1:
            return "I'm sorry, but I can't help with that."
        if i % 40 == 2:
            return "x" * 50  # fails max_length
        return "fine"

    errors = refusals = fails = 0
    with testing.capture(sample_rate=0.25, id_generator=IdGenerator(), max_queue_size=n) as spans:
        for i in range(n):
            with contextlib.suppress(TimeoutError):
                call(i)
        kept = spans.spans
    for span in kept:
        attrs = span.attributes
        weight = attrs["llmpulse.sample_weight"]
        if "error.type" in attrs:
            errors += 1
            assert weight == 1.0
        elif attrs["llmpulse.refusal"]:
            refusals += 1
            assert weight == 1.0
        elif testing.evaluations(span)["max_length"] == "fail":
            fails += 1
            assert weight == 1.0
        else:
            assert weight == 4.0
    assert errors == len([i for i in range(n) if i % 100 == 0])
    assert refusals == len([i for i in range(n) if i % 100 != 0 and i % 50 == 1])
    assert fails == len([i for i in range(n) if i % 100 != 0 and i % 50 != 1 and i % 40 == 2])
    estimated = sum(float(s.attributes["llmpulse.sample_weight"]) for s in kept)
    # ~3,800 plain calls sampled at 25%: std of the estimate ≈ 4·sqrt(3800·0.25·0.75) ≈ 107.
    assert abs(estimated - n) < 550
    assert len(kept) < n * 0.45
    assert llmpulse.sdk_stats()["spans_sampled_out"] == n - len(kept)


def test_sampling_is_per_trace_so_kept_traces_stay_whole() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call() -> str:
        return "fine"

    @llmpulse.observe(name="request")
    def request() -> None:
        call()
        call()

    with testing.capture(sample_rate=0.5, id_generator=IdGenerator()) as spans:
        for _ in range(400):
            request()
        kept = spans.spans
    by_trace: dict[int, list[str]] = {}
    for s in kept:
        by_trace.setdefault(s.trace_id, []).append(s.name)
    assert 100 < len(by_trace) < 300
    for names in by_trace.values():
        assert sorted(names) == ["chat gpt-4o-mini", "chat gpt-4o-mini", "request"]


def test_full_rate_sets_no_weight() -> None:
    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def call() -> str:
        return "fine"

    with testing.capture() as spans:
        call()
    assert "llmpulse.sample_weight" not in spans.spans[0].attributes
