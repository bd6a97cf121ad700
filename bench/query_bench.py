"""Storage benchmark on embedded chDB: insert throughput and the read API's query times.

    .venv/bin/python bench/query_bench.py --spans 300000

Fills a fresh chDB directory with a day of synthetic traffic (a root span and one to three
LLM calls per trace, two assertion results per call, 1 in 4 calls sampled at p = 1/4),
then times each query (median of several runs). The interesting ratios: rollup vs raw
for a 24 h window, and the first page of traces vs a filtered or deep page.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from llmpulse_collector.rows import ASSERTION_COLUMNS, SPAN_COLUMNS
from llmpulse_collector.storage import Store, queries
from llmpulse_collector.storage.migrations import migrate

S = 10**9
SERVICES = ("support-bot", "search", "summarizer")
MODELS = (("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4"), ("openai", "o3-mini"))


def _traffic(n_spans: int, now: int, rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    spans: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    while len(spans) < n_spans:
        trace_id = f"{rng.getrandbits(128):032x}"
        start = now - rng.randrange(86400 * S)
        service = rng.choice(SERVICES)
        env = "prod" if rng.random() < 0.8 else "staging"
        root_id = f"{rng.getrandbits(64):016x}"
        calls = rng.randint(1, 3)
        t = start + 1_000_000
        for _ in range(calls):
            provider, model = rng.choice(MODELS)
            duration = rng.lognormvariate(-0.5, 0.6)
            weight = 4.0 if rng.random() < 0.25 else 1.0
            refusal = int(rng.random() < 0.03)
            stream = int(rng.random() < 0.5)
            span = {
                "project": "bench",
                "start_time": t,
                "end_time": t + int(duration * S),
                "duration_s": duration,
                "trace_id": trace_id,
                "span_id": f"{rng.getrandbits(64):016x}",
                "parent_span_id": root_id,
                "name": f"chat {model}",
                "kind": 3,
                "status_code": 2 if rng.random() < 0.01 else 1,
                "service": service,
                "environment": env,
                "is_llm": 1,
                "operation": "chat",
                "provider": provider,
                "request_model": model,
                "response_model": model,
                "model": model,
                "prompt_name": "answer",
                "prompt_version": rng.choice(("a1b2c3", "d4e5f6")),
                "input_tokens": rng.randint(200, 4000),
                "output_tokens": rng.randint(10, 800),
                "cost_usd": rng.random() / 100 if model != "o3-mini" else None,
                "ttft_s": duration / 4 if stream else None,
                "stream": stream,
                "finish_reasons": ["stop"],
                "refusal": refusal,
                "sample_weight": weight,
                "input": '[{"role": "user", "content": "' + "x" * rng.randint(100, 600) + '"}]',
                "output": '[{"role": "assistant", "content": "' + "y" * rng.randint(50, 400) + '"}]',
                "attributes": '{"gen_ai.request.temperature": 0.2}',
                "ingested_at": (t + int(duration * S)) // 10**6,
            }
            spans.append(span)
            for name in ("starts_lowercase", "is_json"):
                label = "pass" if rng.random() < 0.9 else "fail"
                checks.append(
                    {
                        **{k: span[k] for k in ("project", "trace_id", "span_id", "service", "environment")},
                        **{k: span[k] for k in ("provider", "model", "prompt_name", "prompt_version")},
                        "time": span["end_time"],
                        "name": name,
                        "label": label,
                        "score": 1.0 if label == "pass" else 0.0,
                        "sample_weight": weight,
                    }
                )
            t += int(duration * S)
        spans.append(
            {
                "project": "bench",
                "start_time": start,
                "end_time": t + 1_000_000,
                "duration_s": (t + 1_000_000 - start) / S,
                "trace_id": trace_id,
                "span_id": root_id,
                "name": "handle_request",
                "service": service,
                "environment": env,
                "sample_weight": 1.0,
            }
        )
    return spans, checks


def _time(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    fn()  # warm up (and fill caches) once
    times = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(1)
    now = time.time_ns()
    spans, checks = _traffic(args.spans, now, rng)
    with tempfile.TemporaryDirectory() as tmp, Store.connect(f"chdb://{tmp}/ch", database="bench") as store:
        migrate(store)
        started = time.perf_counter()
        for i in range(0, len(spans), args.batch):
            store.insert("spans", spans[i : i + args.batch], SPAN_COLUMNS, dedup_token=f"s{i}")
        span_s = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(0, len(checks), args.batch * 2):
            store.insert("assertions", checks[i : i + args.batch * 2], ASSERTION_COLUMNS, dedup_token=f"a{i}")
        check_s = time.perf_counter() - started
        print(f"spans:      {len(spans):>9,} rows  {len(spans) / span_s:>9,.0f} rows/s (rollup view included)")
        print(f"assertions: {len(checks):>9,} rows  {len(checks) / check_s:>9,.0f} rows/s")
        store.command("OPTIMIZE TABLE llm_1m FINAL")  # as background merges would, eventually

        keys = ["service", "model"]
        listed = queries.traces(store, "bench", limit=50)
        deep_cursor = None
        for _ in range(5):
            page = queries.traces(store, "bench", limit=50, before=deep_cursor)
            deep_cursor = (page[-1]["start"], page[-1]["trace_id"])
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("stats 1 h raw", lambda: queries.stats(store, "bench", window_s=3600, group_by=keys)),
            ("stats 1 h rollup", lambda: queries.stats(store, "bench", window_s=3600, group_by=keys, source="rollup")),
            ("stats 24 h raw", lambda: queries.stats(store, "bench", window_s=86400, group_by=keys, source="raw")),
            ("stats 24 h rollup", lambda: queries.stats(store, "bench", window_s=86400, group_by=keys)),
            ("traces first page", lambda: queries.traces(store, "bench", limit=50)),
            ("traces page 6", lambda: queries.traces(store, "bench", limit=50, before=deep_cursor)),
            ("traces refusal=True", lambda: queries.traces(store, "bench", refusal=True)),
            ("traces failed_assertion", lambda: queries.traces(store, "bench", failed_assertion="is_json")),
            ("traces model=o3-mini", lambda: queries.traces(store, "bench", model="o3-mini")),
            ("trace detail", lambda: queries.trace(store, "bench", listed[0]["trace_id"])),
            ("trace detail (absent)", lambda: queries.trace(store, "bench", uuid.uuid4().hex)),
        ]
        print(f"\n{'query':<26}{'median ms':>10}  rows")
        for name, fn in cases:
            ms, result = _time(fn, args.runs)
            size = len(result["spans"]) if isinstance(result, dict) else (0 if result is None else len(result))
            print(f"{name:<26}{ms:>10.1f}  {size}")


if __name__ == "__main__":
    main()
