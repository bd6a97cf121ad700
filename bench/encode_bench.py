"""OTLP trace encoding: llmpulse's hand-written encoders vs OpenTelemetry's official path.

Prints CPU µs per span, side by side in one run, for

- ``ProtobufEncoder.encode`` (llmpulse, application/x-protobuf) with the compiled encoder
  (``_otlpenc.c``; the row is left out where it is not built), and its pure-Python reference
  ``ProtobufEncoder._encode_python`` (what runs without the extension),
- ``JsonEncoder.encode`` (llmpulse, application/json),
- ``encode_spans(spans).SerializeToString()`` on equivalent OTel SDK ``ReadableSpan`` s
  (what the official OTLP/HTTP exporter does per batch),

on three workloads: a realistic LLM span (25 attributes including a ~2 KB
``gen_ai.input.messages`` and a ~1 KB ``gen_ai.output.messages`` JSON string, two
``gen_ai.evaluation.result`` events of 4 attributes each), the same with some non-ASCII
words in the messages, and a small non-LLM span (8 short attributes).

Every span differs (ids, times, token counts, response id, message text), so the
encoders' per-key caches only hit where real traffic would hit them (model, provider,
operation, prompt name...). Spans are built outside the timed region; each timed call
gets a batch it has never seen, after one warm-up batch. Figures are CPU time of the
encoding thread (``time.thread_time``): the SDK's budget is CPU, and other processes on a
shared machine then distort the figures less (they still share caches and cores).

Run: ``.venv/bin/python bench/encode_bench.py [--batch 512] [--rounds 10] [--workload all]``
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sdk"))

import orjson

from llmpulse import _otlp
from llmpulse._otlp import ProtobufEncoder
from llmpulse._otlp_json import JsonEncoder
from llmpulse._span import (
    KIND_CLIENT,
    KIND_INTERNAL,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_UNSET,
    AttrValue,
    SpanEvent,
    SpanRecord,
)

RESOURCE: dict[str, AttrValue] = {
    "service.name": "support-bot",
    "service.version": "1.4.2",
    "deployment.environment.name": "production",
    "telemetry.sdk.name": "llmpulse",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.version": "0.1.0",
}
SCOPE = ("llmpulse", "0.1.0")
# A word list reads better as prose than as a 20-item literal.
WORDS = (  # noqa: SIM905
    "order refund shipping account password invoice delivery tracking cancel upgrade plan"
    " billing card address warranty return exchange discount coupon"
).split()
# Real model output is full of typographic quotes and dashes: one such character makes
# CPython store the whole string as UCS-2, and its UTF-8 encoder then runs ~25x slower
# than the memcpy it does for ASCII. The bench runs both kinds of content.
NON_ASCII = ["café", "naïve", "don’t", "—", "größe", "✓"]


def _text(rng: random.Random, n_chars: int, non_ascii: bool) -> str:
    out: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(NON_ASCII) if non_ascii and rng.random() < 0.05 else rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def _messages(rng: random.Random, n_bytes: int, roles: tuple[str, ...], non_ascii: bool) -> str:
    per = n_bytes // len(roles) - 60
    msgs = [{"role": r, "parts": [{"type": "text", "content": _text(rng, per, non_ascii)}]} for r in roles]
    return orjson.dumps(msgs).decode()


def make_span(rng: random.Random, i: int, non_ascii: bool = False) -> SpanRecord:
    """One realistic LLM span, the ``i``-th of a stream (37 ms apart)."""
    start = 1_760_000_000_000_000_000 + i * 37_000_000 + rng.randrange(1_000_000)
    dur = rng.randrange(200_000_000, 4_000_000_000)
    inp = rng.randrange(200, 4000)
    out = rng.randrange(20, 800)
    attrs: dict[str, AttrValue] = {
        "gen_ai.provider.name": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(96):024x}",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "gen_ai.usage.cache_read.input_tokens": rng.choice((0, 1024, 2048)),
        "gen_ai.usage.reasoning.output_tokens": 0,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.conversation.id": f"conv-{rng.getrandbits(48):012x}",
        "gen_ai.prompt.name": "support-reply",
        "llmpulse.prompt.version": "3f9a2c1e",
        "gen_ai.input.messages": _messages(rng, 2048, ("system", "user", "assistant", "user"), non_ascii),
        "gen_ai.output.messages": _messages(rng, 1024, ("assistant",), non_ascii),
        "llmpulse.cost_usd": (inp * 0.15 + out * 0.6) / 1e6,
        "llmpulse.ttft_s": rng.uniform(0.1, 1.5),
        "llmpulse.streaming": True,
        "llmpulse.chunk_count": out // 3,
        "llmpulse.refusal": False,
        "llmpulse.sample_weight": 1.0,
        "server.address": "api.openai.com",
        "server.port": 443,
    }
    tid = rng.getrandbits(128)
    sid = rng.getrandbits(64)
    s = SpanRecord("chat gpt-4o-mini", tid, sid, rng.getrandbits(64), KIND_CLIENT, start, attrs)
    s.end_ns = start + dur
    for j, (name, passed) in enumerate((("is_json", True), ("starts_lowercase", False))):
        s.add_event(
            SpanEvent(
                "gen_ai.evaluation.result",
                start + dur - 1000 + j,
                {
                    "gen_ai.evaluation.name": name,
                    "gen_ai.evaluation.score.value": 1.0 if passed else 0.0,
                    "gen_ai.evaluation.score.label": "pass" if passed else "fail",
                    "gen_ai.evaluation.explanation": "ok" if passed else "starts with 'H'",
                },
            )
        )
    s.status = STATUS_OK
    return s


def make_small_span(rng: random.Random, i: int, non_ascii: bool = False) -> SpanRecord:
    """A lean non-LLM step (``@observe``/``span()``): 8 short attributes, no events."""
    start = 1_760_000_000_000_000_000 + i * 37_000_000 + rng.randrange(1_000_000)
    attrs: dict[str, AttrValue] = {
        "llmpulse.span.kind": "retrieval",
        "code.function.name": "search_docs",
        "code.namespace": "shop.support",
        "llmpulse.prompt.version": "3f9a2c1e",
        "retrieval.documents.count": rng.randrange(1, 20),
        "retrieval.top_score": rng.random(),
        "retrieval.cache_hit": rng.random() < 0.5,
        "session.id": f"s-{rng.getrandbits(40):010x}",
    }
    s = SpanRecord(
        "search_docs", rng.getrandbits(128), rng.getrandbits(64), rng.getrandbits(64), KIND_INTERNAL, start, attrs
    )
    s.end_ns = start + rng.randrange(1_000_000, 50_000_000)
    return s


WORKLOADS: dict[str, tuple[str, Callable[[random.Random, int], SpanRecord]]] = {
    "llm": ("LLM call, ASCII-only content", make_span),
    "llm-unicode": (
        "LLM call, content with some non-ASCII words (UCS-2 strings)",
        partial(make_span, non_ascii=True),
    ),
    "small": ("small non-LLM span", make_small_span),
}


def to_otel(records: list[SpanRecord]) -> list[Any]:
    """The same spans as OTel SDK ReadableSpans (what the official exporter encodes)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    kinds = {KIND_INTERNAL: SpanKind.INTERNAL, KIND_CLIENT: SpanKind.CLIENT}
    statuses = {STATUS_UNSET: StatusCode.UNSET, STATUS_OK: StatusCode.OK, STATUS_ERROR: StatusCode.ERROR}

    resource = Resource.create(RESOURCE)
    scope = InstrumentationScope(*SCOPE)
    flags = TraceFlags(TraceFlags.SAMPLED)
    out = []
    for r in records:
        out.append(
            ReadableSpan(
                name=r.name,
                context=SpanContext(r.trace_id, r.span_id, is_remote=False, trace_flags=flags),
                parent=SpanContext(r.trace_id, r.parent_id, is_remote=False, trace_flags=flags),
                resource=resource,
                attributes=r.attributes,
                events=[Event(e.name, e.attributes, e.time_ns) for e in r.events],
                kind=kinds[r.kind],
                status=Status(statuses[r.status]),
                start_time=r.start_ns,
                end_time=r.end_ns,
                instrumentation_scope=scope,
            )
        )
    return out


def _otel_encode(encode_spans: Callable[[Any], Any], spans: list[Any]) -> bytes:
    return encode_spans(spans).SerializeToString()  # type: ignore[no-any-return]


def _cpu_us_per_span(fn: Callable[[], object], n_spans: int) -> float:
    """CPU time of one call (this thread only, so other processes on the machine do not
    count), GC paused as timeit does, in µs per span."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.thread_time_ns()
        fn()
        return (time.thread_time_ns() - t0) / 1000 / n_spans
    finally:
        gc.enable()


def run(workload: str, batch: int, rounds: int) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    title, factory = WORKLOADS[workload]
    pb = ProtobufEncoder(RESOURCE, *SCOPE)
    js = JsonEncoder(RESOURCE, *SCOPE)
    encoders: dict[str, Callable[[list[SpanRecord]], bytes]] = {}
    if _otlp._c_encode is not None:
        encoders["llmpulse protobuf, compiled"] = pb.encode
    encoders["llmpulse protobuf, Python"] = pb._encode_python
    encoders["llmpulse JsonEncoder"] = js.encode
    names = (*encoders, "OTel encode_spans+Serialize")
    times: dict[str, list[float]] = {n: [] for n in names}
    sizes: list[int] = []
    shape = ""
    for rnd in range(rounds + 1):
        # Each encoder gets its own copy of the batch (same content, fresh objects), so
        # none benefits from str hashes or UTF-8 buffers another one cached on the strings.
        copies = [[factory(random.Random(rnd * 100_003 + i), i) for i in range(batch)] for _ in names]
        calls: list[Callable[[], bytes]] = [partial(enc, c) for enc, c in zip(encoders.values(), copies, strict=False)]
        calls.append(partial(_otel_encode, encode_spans, to_otel(copies[-1])))
        if rnd == 0:  # warm-up: caches filled as in a long-running process
            sizes = [len(call()) for call in calls]
            if len({call() for call in calls[:-2]}) != 1:  # the protobuf encoders agree
                raise SystemExit("the compiled and the Python encoder wrote different bytes")
            first = copies[0][0]
            n_ev = len(first.events)
            shape = f"{len(first.attributes)} attributes"
            if n_ev:
                shape += f" + {n_ev} events x {len(first.events[0].attributes)} attributes"
            continue
        for name, call in zip(names, calls, strict=True):
            times[name].append(_cpu_us_per_span(call, batch))

    print(
        f"\n{title}: {shape} a span, ~{sizes[0] // batch} protobuf bytes a span;"
        f" {batch} spans a batch. CPU µs per span over {rounds} fresh batches:"
    )
    otel_med = statistics.median(times[names[-1]])
    otel_best = min(times[names[-1]])
    print(f"  {'encoder':30} {'median':>8} {'best':>8} {'OTel/this':>10} {'(best)':>7}")
    for name in names:
        med = statistics.median(times[name])
        best = min(times[name])
        print(f"  {name:30} {med:8.2f} {best:8.2f} {otel_med / med:9.1f}x {otel_best / best:6.1f}x")
    print(f"  request bytes: protobuf {sizes[0]}, json {sizes[-2]}, OTel protobuf {sizes[-1]}")
    if _otlp._c_encode is None:
        print("  (no compiled row: llmpulse._otlpenc is not built here, or LLMPULSE_PURE_PYTHON is set)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=512, help="spans per request (OTel's default)")
    ap.add_argument("--rounds", type=int, default=10, help="batches timed per encoder")
    ap.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    args = ap.parse_args()
    for workload in WORKLOADS if args.workload == "all" else [args.workload]:
        run(workload, args.batch, args.rounds)


if __name__ == "__main__":
    main()
