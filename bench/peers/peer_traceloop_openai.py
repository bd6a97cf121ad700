"""Traceloop / OpenLLMetry through its ``openai`` instrumentation (no decorator).

``Traceloop.init()`` instruments the ``openai`` client when it is installed; the workload is
the real client call on the in-process mock transport, as for OpenLIT and llmpulse's
``instrument_openai()``. Configuration as in ``peer_traceloop.py``.
"""

from __future__ import annotations

import os
from typing import Any

from harness import Peer, openai_calls


def setup(endpoint: str) -> Peer:
    from importlib.metadata import version

    os.environ["TRACELOOP_TELEMETRY"] = "false"

    bare, call = openai_calls()  # before Traceloop wraps it
    from opentelemetry import trace
    from traceloop.sdk import Traceloop

    Traceloop.init(app_name="bench", api_endpoint=endpoint, telemetry_enabled=False)
    provider: Any = trace.get_tracer_provider()

    def flush() -> None:
        assert provider.force_flush(60_000)

    return Peer(
        version=f"traceloop-sdk {version('traceloop-sdk')} (openai {version('openai')})",
        how="Traceloop.init() auto-instrumenting openai.OpenAI().chat.completions.create",
        call=call,
        bare=bare,
        flush=flush,
        shutdown=provider.shutdown,
        paths=("/v1/traces",),
    )
