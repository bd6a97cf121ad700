"""SDK cost per decorated model call, side by side with a bare OpenTelemetry SDK span.

Workload (issue #2): an ``@llmpulse.llm`` call returning an OpenAI-shaped response, content
capture on (a ~2 KB system prompt plus a short user message in, a ~1 KB reply out), two
assertions, refusal check and cost. Baseline: an OTel SDK span with the same GenAI
attributes and content, exported by the official ``opentelemetry-exporter-otlp-proto-http``
exporter through a ``BatchSpanProcessor``. Both export to the same local sink running in
another process, and both run in this process, alternating rounds, so machine noise hits
them alike.

- call path: wall time per call in the app's loop (the background exporter competes for
  the GIL, as in a real app).
- all-in CPU: this process's CPU time (all threads) per call, through flush: the call
  path plus background encoding and sending.

Each ratio is the median of per-round ratios (the two sides run back to back in a round).

Usage: python bench/sdk_overhead.py [--calls N] [--rounds R] [--json PATH] [--check]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from report import Row, add_arguments, finish

ROOT = Path(__file__).resolve().parent
SYSTEM_PROMPT = (
    "You are the support assistant for Acme Store. Keep a casual, friendly tone: start in lowercase, "
    "keep answers short, never use corporate phrases, never promise refunds you cannot authorise. "
) * 11  # ~2 KB
USER_MESSAGE = "hey, where is my order 12345? it was due yesterday"
REPLY = (
    "hey! sorry about the wait. your order left our warehouse on monday and is with the courier now; "
    "the tracking page says it should arrive tomorrow before noon. "
) * 7  # ~1 KB


def start_sink() -> tuple[subprocess.Popen[bytes], str]:
    portfile = Path(tempfile.mkdtemp()) / "port"
    proc = subprocess.Popen([sys.executable, str(ROOT / "sink.py"), str(portfile)])
    deadline = time.monotonic() + 10
    while not portfile.exists() or not portfile.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError("sink did not start")
        time.sleep(0.02)
    return proc, f"http://127.0.0.1:{portfile.read_text()}"


def response() -> Any:
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": REPLY, "refusal": None},
                }
            ],
            "usage": {
                "prompt_tokens": 560,
                "completion_tokens": 240,
                "total_tokens": 800,
                "prompt_tokens_details": {"cached_tokens": 512},
            },
        }
    )


def make_llmpulse(endpoint: str) -> tuple[Callable[[], Any], Callable[[], None], Callable[[], None]]:
    import llmpulse
    from llmpulse import check

    resp = response()
    llmpulse.init(service="bench", endpoint=endpoint, max_queue_size=100_000, export_interval=0.2)

    @llmpulse.llm(provider="openai", model="gpt-4o-mini", assertions=[check.starts_lowercase(), check.max_length(4000)])
    def call(messages: list[dict[str, str]]) -> Any:
        return resp

    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": USER_MESSAGE}]

    def flush() -> None:
        assert llmpulse.flush(60)

    return (lambda: call(messages)), flush, lambda: llmpulse.shutdown(10)


def make_otel(endpoint: str) -> tuple[Callable[[], Any], Callable[[], None], Callable[[], None]]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import SpanKind

    resp = response()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint + "/v1/traces"), max_queue_size=100_000, schedule_delay_millis=200
        )
    )
    tracer = provider.get_tracer("bench")
    input_messages = json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": SYSTEM_PROMPT}]},
            {"role": "user", "parts": [{"type": "text", "content": USER_MESSAGE}]},
        ]
    )

    def call() -> Any:
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.provider.name", "openai")
            span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            span.set_attribute("gen_ai.input.messages", input_messages)
            r = resp
            span.set_attribute("gen_ai.response.model", r.model)
            span.set_attribute("gen_ai.response.id", r.id)
            span.set_attribute("gen_ai.usage.input_tokens", r.usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", r.usage.completion_tokens)
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", r.usage.prompt_tokens_details.cached_tokens)
            span.set_attribute("gen_ai.response.finish_reasons", [r.choices[0].finish_reason])
            span.set_attribute(
                "gen_ai.output.messages",
                json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": r.choices[0].message.content}],
                            "finish_reason": "stop",
                        }
                    ]
                ),
            )
            return r

    def flush() -> None:
        assert provider.force_flush(60_000)

    return call, flush, provider.shutdown


def measure(call: Callable[[], Any], flush: Callable[[], None], n: int) -> tuple[float, float]:
    """(call-path µs per call, all-in CPU µs per call).

    A round starts after a full garbage collection: both sides share this process, and the
    containers one side's queued spans leave in the older generations would otherwise make the
    other side's round pay for the next full collection (one every ~25k promoted objects here,
    ~60 ms), whichever round crosses the threshold. A round pays for what its own calls trigger.
    """
    flush()
    gc.collect()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    t1 = time.perf_counter()
    flush()
    cpu1 = time.process_time()
    return (t1 - t0) / n * 1e6, (cpu1 - cpu0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    add_arguments(parser)
    args = parser.parse_args()
    sink, endpoint = start_sink()
    try:
        ours = make_llmpulse(endpoint)
        base = make_otel(endpoint)
        for fn, fl, _ in (ours, base):  # warm up: imports, price cache, connections
            measure(fn, fl, 500)
        results: dict[str, list[tuple[float, float]]] = {"llmpulse": [], "otel": []}
        for _ in range(args.rounds):
            results["llmpulse"].append(measure(ours[0], ours[1], args.calls))
            results["otel"].append(measure(base[0], base[1], args.calls))
        ours[2]()
        base[2]()
    finally:
        sink.terminate()
        sink.wait()
    # Ratios per round (both sides ran back to back), then their median: a noisy stretch
    # of the machine hits both sides of a round alike.
    path_ratio = statistics.median(o[0] / b[0] for o, b in zip(results["llmpulse"], results["otel"], strict=True))
    cpu_ratio = statistics.median(o[1] / b[1] for o, b in zip(results["llmpulse"], results["otel"], strict=True))
    med = {k: (statistics.median(p for p, _ in v), statistics.median(c for _, c in v)) for k, v in results.items()}
    print(
        f"calls per round: {args.calls}, rounds: {args.rounds} (medians), python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cpus"
    )
    print(f"{'':28}{'llmpulse':>12}{'bare OTel':>12}{'ratio':>8}{'target':>8}")
    print(f"{'call path, µs/call':28}{med['llmpulse'][0]:12.2f}{med['otel'][0]:12.2f}{path_ratio:8.3f}{'≤0.20':>8}")
    print(f"{'all-in CPU, µs/call':28}{med['llmpulse'][1]:12.2f}{med['otel'][1]:12.2f}{cpu_ratio:8.3f}{'≤0.15':>8}")
    baseline = "bare OTel SDK span, BatchSpanProcessor + OTLP/HTTP exporter"
    command = "python bench/sdk_overhead.py"
    rows = [
        Row("SDK call path per decorated call (wall)", med["llmpulse"][0], "µs", baseline, med["otel"][0],
            path_ratio, "≤ 0.2×", path_ratio <= 0.2, command),
        Row("SDK all-in CPU per decorated call", med["llmpulse"][1], "µs", baseline, med["otel"][1],
            cpu_ratio, "≤ 0.15×", cpu_ratio <= 0.15, command),
    ]  # fmt: skip
    sys.exit(finish(rows, args))


if __name__ == "__main__":
    main()
