"""OpenLIT: ``openlit.init()`` auto-instruments the ``openai`` client.

What its docs tell a user to do: call ``openlit.init(otlp_endpoint=...)`` and use the
provider client as usual; the workload is therefore a real ``openai`` client call whose HTTP
goes to an in-process ``httpx.MockTransport`` (the uninstrumented call's cost is measured in
the same process and subtracted). Defaults kept (batching, content capture, metrics and
events on) except: the pricing table is a local file (the default fetches one from the
internet), and OpenLIT's generic HTTP-client instrumentations (httpx, requests, urllib,
urllib3, aiohttp) are off, so the row is its LLM instrumentation alone and the mock
transport's call is not traced twice. Traces, metrics and log events go to the sink.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from harness import MODEL, Peer, openai_calls

PRICES = {"promptPrice": 0.00015, "completionPrice": 0.0006, "cacheReadPrice": 0.000075}


def setup(endpoint: str) -> Peer:
    from importlib.metadata import version

    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint

    bare, call = openai_calls()  # before openlit wraps it
    pricing = os.path.join(tempfile.mkdtemp(), "pricing.json")
    with open(pricing, "w") as f:
        json.dump({"chat": {MODEL: PRICES, "gpt-4o-mini-2024-07-18": PRICES}}, f)

    import openlit
    from opentelemetry import _logs, metrics, trace

    openlit.init(
        service_name="bench",
        otlp_endpoint=endpoint,
        pricing_json=pricing,
        disabled_instrumentors=["httpx", "requests", "urllib", "urllib3", "aiohttp-client"],
    )
    provider: Any = trace.get_tracer_provider()
    others: list[Any] = [_logs.get_logger_provider(), metrics.get_meter_provider()]

    def flush() -> None:  # its per-call log events and metrics too, so each round pays its own
        assert provider.force_flush(60_000)
        for p in others:
            if hasattr(p, "force_flush"):
                p.force_flush(60_000)

    def shutdown() -> None:
        provider.shutdown()
        for p in others:
            if hasattr(p, "shutdown"):
                p.shutdown()

    return Peer(
        version=f"openlit {version('openlit')} (openai {version('openai')})",
        how="openlit.init() auto-instrumenting openai.OpenAI().chat.completions.create",
        call=call,
        bare=bare,
        flush=flush,
        shutdown=shutdown,
        paths=("/v1/traces",),
        extra_paths=("/v1/logs", "/v1/metrics"),
    )
