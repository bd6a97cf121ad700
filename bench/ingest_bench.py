"""Collector ingest: CPU µs per span to decode an OTLP/HTTP trace request into rows.

Bodies come from real clients:

- ``llmpulse protobuf``: llmpulse's own ``ProtobufEncoder`` (what the SDK sends);
- ``llmpulse json``: llmpulse's ``JsonEncoder`` (OTLP/JSON);
- ``OTel protobuf``: the official exporter's encoding (``encode_spans(...).SerializeToString()``)
  of the same spans as OTel SDK ``ReadableSpan`` s.

Workloads: ``sdk-llm``, spans made by the SDK itself (``@llmpulse.llm`` with a prompt and two
assertions, content capture on: ~2 KB of input messages, ~0.5 KB of output, every span's
text, ids and token counts different); ``otel-genai``, a current-semconv GenAI span as an
OTel instrumentation writes it (no ``llmpulse.*`` attributes, so the collector prices it and
runs the refusal heuristic); ``small``, a non-LLM step with 8 short attributes.

Each figure is ``decode_traces`` on a whole request (parse + normalise into rows), with the
compiled scanner and row builder and, in alternating rounds, without them (``pure Python``,
what runs where the extension is not built; ``ratio`` = compiled / pure), CPU time
of this thread (``time.thread_time``), GC paused, median and best over ``--rounds``; the
``parse only`` rows time upb's ``FromString`` / ``orjson.loads`` alone, so the rest is
field extraction and normalisation. For scale, the JSON rows are followed by
``google.protobuf.json_format.Parse`` alone (what the JSON path avoids). CPU time still moves
with whatever else runs on the machine's cores: compare rows of one run, not runs.

Run: ``.venv/bin/python bench/ingest_bench.py [--batch 512] [--rounds 10]``
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sdk"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "collector"))

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import llmpulse
from llmpulse import check, testing
from llmpulse._cost import PriceBook
from llmpulse._otlp import ProtobufEncoder
from llmpulse._otlp_json import JsonEncoder
from llmpulse._refusal import RefusalDetector
from llmpulse._span import KIND_CLIENT, KIND_INTERNAL, AttrValue, SpanRecord
from llmpulse_collector import normalize
from llmpulse_collector.ingest import Limits, otlp
from llmpulse_collector.ingest.otlp import decode_traces

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encode_bench import RESOURCE, SCOPE, WORDS, _cpu_us_per_span, make_small_span

REFUSAL = "I'm sorry, but I can't help with that request."


def _text(rng: random.Random, n_chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def sdk_spans(n: int, seed: int) -> list[SpanRecord]:
    """``n`` LLM spans (plus their parent steps, dropped) made by the real SDK."""
    rng = random.Random(seed)
    prompt = llmpulse.Prompt("support-reply", "You are a friendly support agent. {question}")

    @llmpulse.llm(provider="openai", model="gpt-4o-mini", prompt=prompt)
    def reply(messages: list[dict[str, str]], answer: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{rng.getrandbits(96):024x}",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
            "usage": {
                "prompt_tokens": rng.randrange(200, 4000),
                "completion_tokens": rng.randrange(20, 800),
                "prompt_tokens_details": {"cached_tokens": rng.choice((0, 1024))},
            },
        }

    with testing.capture(
        "support-bot", deterministic=False, assertions=[check.starts_lowercase(), check.max_length(2000)]
    ) as exporter:
        for _ in range(n):
            messages = [
                {"role": "system", "content": _text(rng, 600)},
                {"role": "user", "content": _text(rng, 700)},
                {"role": "assistant", "content": _text(rng, 300)},
                {"role": "user", "content": _text(rng, 300)},
            ]
            answer = REFUSAL if rng.random() < 0.05 else _text(rng, 500)
            reply(messages=messages, answer=answer)
        return exporter.llm_spans()


def otel_genai_spans(n: int, seed: int) -> list[SpanRecord]:
    """What an OTel GenAI instrumentation records: current names, no llmpulse attributes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        start = 1_760_000_000_000_000_000 + i * 37_000_000
        out_msgs = [{"role": "assistant", "parts": [{"type": "text", "content": _text(rng, 500)}]}]
        attrs: dict[str, AttrValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 1024,
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(96):024x}",
            "gen_ai.usage.input_tokens": rng.randrange(200, 4000),
            "gen_ai.usage.output_tokens": rng.randrange(20, 800),
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.output.messages": orjson.dumps(out_msgs).decode(),
            "server.address": "api.openai.com",
            "server.port": 443,
        }
        s = SpanRecord("chat gpt-4o", rng.getrandbits(128), rng.getrandbits(64), 0, KIND_CLIENT, start, attrs)
        s.end_ns = start + rng.randrange(200_000_000, 4_000_000_000)
        out.append(s)
    return out


def small_spans(n: int, seed: int) -> list[SpanRecord]:
    rng = random.Random(seed)
    return [make_small_span(rng, i) for i in range(n)]


def otel_protobuf(records: list[SpanRecord]) -> bytes:
    """The official OTLP exporter's encoding of the same spans."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    kinds = {KIND_INTERNAL: SpanKind.INTERNAL, KIND_CLIENT: SpanKind.CLIENT}
    resource = Resource.create(RESOURCE)
    scope = InstrumentationScope(*SCOPE)
    flags = TraceFlags(TraceFlags.SAMPLED)
    spans = [
        ReadableSpan(
            name=r.name,
            context=SpanContext(r.trace_id, r.span_id, is_remote=False, trace_flags=flags),
            parent=SpanContext(r.trace_id, r.parent_id, is_remote=False, trace_flags=flags) if r.parent_id else None,
            resource=resource,
            attributes=r.attributes,
            events=[Event(e.name, e.attributes, e.time_ns) for e in r.events],
            kind=kinds[r.kind],
            status=Status([StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR][r.status]),
            start_time=r.start_ns,
            end_time=r.end_ns,
            instrumentation_scope=scope,
        )
        for r in records
    ]
    return encode_spans(spans).SerializeToString()  # type: ignore[no-any-return]


WORKLOADS: dict[str, tuple[str, Callable[[int, int], list[SpanRecord]]]] = {
    "sdk-llm": ("LLM spans made by the llmpulse SDK (prompt, 2 assertions, content on)", sdk_spans),
    "otel-genai": ("current-semconv GenAI spans from an OTel instrumentation (priced, heuristic)", otel_genai_spans),
    "small": ("small non-LLM spans", small_spans),
}


def run(workload: str, batch: int, rounds: int) -> None:
    title, factory = WORKLOADS[workload]
    records = factory(batch, 1)
    bodies = {
        "llmpulse protobuf": (ProtobufEncoder(RESOURCE, *SCOPE).encode(records), "application/x-protobuf"),
        "llmpulse json": (JsonEncoder(RESOURCE, *SCOPE).encode(records), "application/json"),
        "OTel protobuf": (otel_protobuf(records), "application/x-protobuf"),
    }
    limits = Limits()
    prices = PriceBook()
    refusals = RefusalDetector()

    def decode(body: bytes, ctype: str) -> Any:
        return decode_traces(
            body, content_type=ctype, content_encoding=None, project="bench", limits=limits, prices=prices,
            refusals=refusals,
        )  # fmt: skip

    first = records[0]
    shape = f"{len(first.attributes)} attributes"
    if first.events:
        shape += f" + {len(first.events)} events x {len(first.events[0].attributes)} attributes"
    print(f"\n{title}: {shape} a span; {batch} spans a request. CPU µs per span, {rounds} rounds:")
    print(
        f"  {'body':20} {'bytes/span':>10} {'decode_traces':>14} {'(best)':>7} {'pure Python':>12} {'ratio':>6}"
        f" {'parse only':>11} {'rest':>7}"
    )
    for name, (body, ctype) in bodies.items():
        result = decode(body, ctype)  # warm-up: price cache, imports
        if len(result.spans) != batch or result.rejected:
            raise SystemExit(f"{name}: {result.errors}")
        parse: Callable[[], object] = (
            (lambda b=body: orjson.loads(b))
            if ctype == "application/json"
            else (lambda b=body: ExportTraceServiceRequest.FromString(b))
        )
        full, pure = [], []
        for _ in range(rounds):  # alternating: the compiled path and the pure-Python reference
            full.append(_cpu_us_per_span(lambda b=body, c=ctype: decode(b, c), batch))
            with _pure_python():
                pure.append(_cpu_us_per_span(lambda b=body, c=ctype: decode(b, c), batch))
        only = [_cpu_us_per_span(parse, batch) for _ in range(rounds)]
        med, p_med, ref_med = statistics.median(full), statistics.median(only), statistics.median(pure)
        print(
            f"  {name:20} {len(body) // batch:10d} {med:14.2f} {min(full):7.2f} {ref_med:12.2f} {med / ref_med:6.2f}"
            f" {p_med:11.2f} {med - p_med:7.2f}"
        )
        if ctype == "application/json":
            # What this path avoids: protobuf's own JSON parser, before any field is read (hex
            # ids parse as base64 of the wrong length; only the time matters here).
            ref = _cpu_us_per_span(lambda b=body: json_format.Parse(b, ExportTraceServiceRequest()), batch)
            print(f"  {'  json_format.Parse':20} {'':10} {'':14} {'':7} {ref:11.2f}")


@contextlib.contextmanager
def _pure_python() -> Iterator[None]:
    """decode_traces without the compiled scanner and row builder (as LLMPULSE_PURE_PYTHON=1)."""
    saved = otlp._c_scan, normalize._c_span
    otlp._c_scan = normalize._c_span = None
    try:
        yield
    finally:
        otlp._c_scan, normalize._c_span = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=512, help="spans per request (OTel's default batch)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    args = ap.parse_args()
    for workload in WORKLOADS if args.workload == "all" else [args.workload]:
        run(workload, args.batch, args.rounds)


if __name__ == "__main__":
    main()
