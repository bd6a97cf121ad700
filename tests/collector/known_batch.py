"""A known batch of LLM spans for the metrics tests, and what each metric must read after it.

The spans are described by :class:`Call` (3 models, 2 prompt versions, sample weights 1 and
10, errors, provider and heuristic refusals, assertion outcomes, streams with a time to
first chunk, durations on and between the semconv bucket bounds), encoded by the SDK's own
OTLP encoder and posted to the collector's real ``/v1/traces``. The expected values are
computed here from the descriptions with plain loops, independently of the collector's
aggregation code.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from llmpulse._otlp import ProtobufEncoder
from llmpulse._span import KIND_CLIENT, STATUS_ERROR, SpanEvent, SpanRecord

SERVICE = "support-bot"
ENVIRONMENT = "prod"
MODELS = (("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4"), ("openai", "o3-mini"))
VERSIONS = ("v1", "v2")
DURATIONS = (0.01, 0.02, 0.05, 0.64, 1.0, 1.28, 3.5, 0.3, 100.0)  # bounds, between bounds, past the last
LABELS = ("service", "environment", "provider", "model", "operation", "prompt", "prompt_version")


@dataclass
class Call:
    provider: str
    model: str
    version: str
    weight: float
    duration: float
    input_tokens: int
    output_tokens: int
    cost: float
    error: bool = False
    refusal: str = ""  # "", provider, heuristic
    category: str = ""
    ttft: float | None = None
    cache_read: int = 0
    assertions: list[tuple[str, str]] = field(default_factory=list)

    @property
    def dims(self) -> tuple[str, ...]:
        return (SERVICE, ENVIRONMENT, self.provider, self.model, "chat", "support-reply", self.version)


def calls(n: int = 60) -> list[Call]:
    out = []
    for i in range(n):
        provider, model = MODELS[i % 3]
        error = i % 7 == 3
        refusal = "provider" if i % 9 == 4 else "heuristic" if i % 11 == 5 else ""
        sampled = not (error or refusal) and i % 4 == 0
        labels = ["pass", "fail", "error"]
        out.append(
            Call(
                provider=provider,
                model=model,
                version=VERSIONS[(i // 3) % 2],
                weight=10.0 if sampled else 1.0,
                duration=DURATIONS[i % len(DURATIONS)],
                input_tokens=0 if error else 100 + i,
                output_tokens=0 if error else 5 + 2 * i,
                cost=0.0 if error else round(0.0001 * (i + 1), 6),
                error=error,
                refusal=refusal,
                category="content_filter" if refusal == "provider" else "",
                ttft=round(0.05 * (i % 5 + 1), 3) if i % 2 == 0 and not error else None,
                cache_read=50 if i % 5 == 0 and not error else 0,
                assertions=[] if error else [("casual_tone", labels[i % 3]), ("no_apology", labels[(i // 2) % 2])],
            )
        )
    return out


def encode(batch: list[Call], trace_base: int = 0xA000) -> bytes:
    """The batch as the SDK's exporter sends it (OTLP protobuf)."""
    now = time.time_ns() - 60_000_000_000
    records = []
    for i, c in enumerate(batch):
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": c.provider,
            "gen_ai.request.model": c.model,
            "gen_ai.prompt.name": "support-reply",
            "llmpulse.prompt.version": c.version,
            "llmpulse.sample_weight": c.weight,
            "llmpulse.refusal": bool(c.refusal),
            "user.id": f"user-{i}",  # never a label
            "session.id": f"session-{i}",
        }
        if not c.error:
            attrs["gen_ai.response.model"] = c.model
            attrs["gen_ai.usage.input_tokens"] = c.input_tokens
            attrs["gen_ai.usage.output_tokens"] = c.output_tokens
            attrs["gen_ai.usage.cache_read.input_tokens"] = c.cache_read
            attrs["llmpulse.cost.usd"] = c.cost
        if c.refusal:
            attrs["llmpulse.refusal.source"] = c.refusal
            if c.category:
                attrs["llmpulse.refusal.category"] = c.category
        if c.ttft is not None:
            attrs["gen_ai.request.stream"] = True
            attrs["gen_ai.response.time_to_first_chunk"] = c.ttft
        start = now + i * 1_000_000
        rec = SpanRecord(f"chat {c.model}", trace_base + i, 0x100 + i, 0, KIND_CLIENT, start, attrs)
        rec.end_ns = start + round(c.duration * 1e9)
        if c.error:
            rec.status = STATUS_ERROR
            rec.status_message = "RateLimitError: 429"
            attrs["error.type"] = "RateLimitError"
        for name, label in c.assertions:
            rec.add_event(
                SpanEvent(
                    "gen_ai.evaluation.result",
                    rec.end_ns,
                    {"gen_ai.evaluation.name": name, "gen_ai.evaluation.score.label": label},
                )
            )
        records.append(rec)
    resource = {"service.name": SERVICE, "deployment.environment.name": ENVIRONMENT}
    return ProtobufEncoder(resource, "llmpulse", "0.1.0").encode(records)


# -- expected values ------------------------------------------------------------------------------

Key = tuple[str, tuple[tuple[str, str], ...]]


def key(metric: str, /, **labels: str) -> Key:
    return metric, tuple(sorted(labels.items()))


def _labels(c: Call) -> dict[str, str]:
    return dict(zip(LABELS, c.dims, strict=True))


def expected_prometheus(batch: list[Call]) -> dict[Key, float]:
    """Every sample value /metrics must show for the batch (label sets that occur)."""
    want: dict[Key, float] = defaultdict(float)
    for c in batch:
        lab = _labels(c)
        w = c.weight
        want[key("llmpulse_llm_calls_total", **lab, status="error" if c.error else "ok")] += w
        want[key("llmpulse_llm_calls_total", **lab, status="ok" if c.error else "error")] += 0.0
        for kind, n in (("input", c.input_tokens), ("output", c.output_tokens), ("cache_read", c.cache_read)):
            want[key("llmpulse_tokens_total", **lab, type=kind)] += n * w
        want[key("llmpulse_cost_usd_total", **lab)] += c.cost * w
        if c.refusal:
            want[key("llmpulse_refusals_total", **lab, source=c.refusal, category=c.category)] += w
        for name, label in c.assertions:
            for result in ("pass", "fail", "error"):
                want[key("llmpulse_assertion_results_total", **lab, assertion=name, result=result)] += (
                    w if result == label else 0.0
                )
        _histogram(want, "gen_ai_client_operation_duration_seconds", lab, c.duration, w, DURATION_BOUNDS)
        if c.ttft is not None:
            _histogram(want, "gen_ai_client_operation_time_to_first_chunk_seconds", lab, c.ttft, w, DURATION_BOUNDS)
        if not c.error:
            for kind, n in (("input", c.input_tokens), ("output", c.output_tokens)):
                _histogram(want, "gen_ai_client_token_usage", {**lab, "gen_ai_token_type": kind}, n, w, TOKEN_BOUNDS)
    return dict(want)


# Written out from the OTel GenAI semantic conventions, not imported from the collector.
DURATION_BOUNDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BOUNDS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


def _histogram(
    want: dict[Key, float], name: str, lab: dict[str, str], value: float, w: float, bounds: tuple[float, ...]
) -> None:
    for bound in bounds:
        want[key(f"{name}_bucket", **lab, le=_le(bound))] += w if value <= bound else 0.0
    want[key(f"{name}_bucket", **lab, le="+Inf")] += w
    want[key(f"{name}_count", **lab)] += w
    want[key(f"{name}_sum", **lab)] += value * w


def _le(bound: float) -> str:
    return repr(float(bound))
