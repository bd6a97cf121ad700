"""The collector benchmarks' traffic: OTLP/HTTP protobuf requests of LLM spans.

Issue #8's ingest workload: requests of 500 LLM spans, ~1 KB of message content a span
(input and output messages), every span with its own trace, ids, times, tokens and text,
encoded by the SDK's ``ProtobufEncoder`` (standard OTLP, what the SDK sends). Shared by
``ingest_e2e.py`` and ``query_scale.py`` so both drive the collector with the same spans.

    from workload import otlp_requests
    bodies = otlp_requests(20, spans=500, seed=1)   # 20 x 500 spans, ~700 KB each
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sdk"))

from encode_bench import RESOURCE, SCOPE, _messages
from llmpulse._otlp import ProtobufEncoder
from llmpulse._span import KIND_CLIENT, AttrValue, SpanRecord

__all__ = ["MODELS", "SERVICES", "llm_span", "otlp_requests"]

SERVICES = ("support-bot", "search", "summarizer")
MODELS = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("openai", "gpt-4o", "gpt-4o-2024-08-06"),
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    ("openai", "o3-mini", "o3-mini-2025-01-31"),
)


def llm_span(rng: random.Random, start_ns: int, content_bytes: int = 1024) -> SpanRecord:
    """One chat span as an instrumented app sends it: current GenAI names, llmpulse's
    prompt/refusal/cost attributes, ``content_bytes`` of messages (2/3 in, 1/3 out)."""
    provider, model, response_model = rng.choice(MODELS)
    inp = rng.randrange(200, 4000)
    out = rng.randrange(20, 800)
    attrs: dict[str, AttrValue] = {
        "gen_ai.provider.name": provider,
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.response.model": response_model,
        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(96):024x}",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.prompt.name": "support-reply",
        "llmpulse.prompt.version": rng.choice(("3f9a2c1e", "77b0d4aa")),
        "gen_ai.input.messages": _messages(rng, content_bytes * 2 // 3, ("system", "user"), False),
        "gen_ai.output.messages": _messages(rng, content_bytes // 3, ("assistant",), False),
        "llmpulse.cost.usd": (inp * 0.15 + out * 0.6) / 1e6,
        "llmpulse.refusal": rng.random() < 0.03,
        "llmpulse.sample_weight": 1.0,
    }
    tid, sid = rng.getrandbits(128) | 1, rng.getrandbits(64) | 1
    span = SpanRecord(f"chat {model}", tid, sid, 0, KIND_CLIENT, start_ns, attrs)
    span.end_ns = start_ns + rng.randrange(200_000_000, 4_000_000_000)
    return span


def otlp_requests(
    n: int, *, spans: int = 500, seed: int = 1, content_bytes: int = 1024, start_ns: int | None = None
) -> list[bytes]:
    """``n`` request bodies of ``spans`` spans each; spans start 1 ms apart from ``start_ns``
    (default: ``n * spans`` ms before now, so every span is inside the retention window)."""
    rng = random.Random(seed)
    t0 = start_ns if start_ns is not None else time.time_ns() - n * spans * 1_000_000
    bodies = []
    for r in range(n):
        encoder = ProtobufEncoder({**RESOURCE, "service.name": SERVICES[r % len(SERVICES)]}, *SCOPE)
        base = t0 + r * spans * 1_000_000
        bodies.append(encoder.encode([llm_span(rng, base + i * 1_000_000, content_bytes) for i in range(spans)]))
    return bodies


if __name__ == "__main__":
    bodies = otlp_requests(2)
    print(f"{len(bodies)} requests, {len(bodies[0]) / 500:.0f} bytes a span")
