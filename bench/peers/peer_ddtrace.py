"""Datadog LLM Observability (``ddtrace``): ``@llm`` + ``LLMObs.annotate``.

What its docs tell a user to do for their own LLM function: ``LLMObs.enable(ml_app=...)``,
decorate it with ``ddtrace.llmobs.decorators.llm(model_name=..., model_provider=...)`` and
record input, output and token metrics with ``LLMObs.annotate(...)``. Agent mode
(``agentless_enabled=False``) against the sink acting as the local Datadog agent
(``DD_TRACE_AGENT_URL``). ddtrace reads ``GET /info``; in this mode (``APM_AGENT``, the
default with an agent since ddtrace 4) each LLM Observability span event rides on its APM
trace (``meta_struct``) to ``/v0.4/traces`` (msgpack), and only events whose trace would be
dropped go to ``/evp_proxy/v2/api/v2/llmobs``. Other defaults kept (integrations on,
telemetry to the agent) except, as for OpenLIT, the generic HTTP-client integrations
(httpx, requests, urllib3, aiohttp): ``LLMObs.enable()`` patches them by default, which would
trace the mock transport's call (in the uninstrumented call too) and the baseline's OTLP
exports.
"""

from __future__ import annotations

import os
from typing import Any

from harness import MESSAGES, MODEL, REPLY, USAGE, Peer, response

HTTP_CLIENTS = ("HTTPX", "REQUESTS", "URLLIB3", "AIOHTTP")


def configure(endpoint: str) -> None:
    """Environment ddtrace reads at import: the sink as agent, HTTP-client integrations off."""
    os.environ["DD_TRACE_AGENT_URL"] = endpoint
    os.environ.setdefault("DD_SERVICE", "bench")
    for name in HTTP_CLIENTS:
        os.environ[f"DD_TRACE_{name}_ENABLED"] = "false"


def setup(endpoint: str) -> Peer:
    from importlib.metadata import version

    configure(endpoint)
    from ddtrace.llmobs import LLMObs
    from ddtrace.llmobs.decorators import llm
    from ddtrace.trace import tracer

    LLMObs.enable(ml_app="bench", agentless_enabled=False)
    resp = response()
    metrics = {k: USAGE[k] for k in ("input_tokens", "output_tokens", "total_tokens")}
    output = [{"role": "assistant", "content": REPLY}]

    def chat(messages: list[dict[str, str]]) -> Any:
        return resp

    @llm(model_name=MODEL, model_provider="openai", name="chat")
    def traced(messages: list[dict[str, str]]) -> Any:
        r = chat(messages)
        LLMObs.annotate(input_data=messages, output_data=output, metrics=metrics)
        return r

    def flush() -> None:
        LLMObs.flush()
        tracer.flush()

    def shutdown() -> None:
        flush()
        LLMObs.disable()
        tracer.shutdown()

    return Peer(
        version=f"ddtrace {version('ddtrace')}",
        how="LLMObs.enable() + @llm(model_name, model_provider) + LLMObs.annotate(input, output, metrics)",
        call=lambda: traced(MESSAGES),
        bare=lambda: chat(MESSAGES),
        flush=flush,
        shutdown=shutdown,
        paths=("/v0.4/traces", "/v0.5/traces", "/evp_proxy/v2/api/v2/llmobs"),
    )
