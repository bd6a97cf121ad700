"""Datadog LLM Observability through its ``openai`` integration (no decorator).

``LLMObs.enable()`` patches the ``openai`` client (integrations on by default); the workload
is the real client call on the in-process mock transport, as for OpenLIT and llmpulse's
``instrument_openai()``. Agent mode against the sink and HTTP-client integrations off, as in
``peer_ddtrace.py``.
"""

from __future__ import annotations

from harness import Peer, openai_calls
from peer_ddtrace import configure


def setup(endpoint: str) -> Peer:
    from importlib.metadata import version

    configure(endpoint)

    bare, call = openai_calls()  # before ddtrace patches it
    from ddtrace.llmobs import LLMObs
    from ddtrace.trace import tracer

    LLMObs.enable(ml_app="bench", agentless_enabled=False)

    def flush() -> None:
        LLMObs.flush()
        tracer.flush()

    def shutdown() -> None:
        flush()
        LLMObs.disable()
        tracer.shutdown()

    return Peer(
        version=f"ddtrace {version('ddtrace')} (openai {version('openai')})",
        how="LLMObs.enable() auto-instrumenting openai.OpenAI().chat.completions.create",
        call=call,
        bare=bare,
        flush=flush,
        shutdown=shutdown,
        paths=("/v0.4/traces", "/v0.5/traces", "/evp_proxy/v2/api/v2/llmobs"),
    )
