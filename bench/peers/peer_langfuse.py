"""Langfuse (v3+ SDK, OpenTelemetry-based): ``@observe(as_type="generation")``.

What its docs tell a user to do for an LLM call: decorate the function with
``@observe(as_type="generation")`` (input and output captured from the arguments and the
return value by default) and set model and token usage with
``langfuse.update_current_generation(...)``. Defaults kept (gzip, flush_at 512, flush
interval 5 s); base URL is the sink, keys are dummies. Spans go to
``{base_url}/api/public/otel/v1/traces``.
"""

from __future__ import annotations

from typing import Any

from harness import MESSAGES, MODEL, USAGE, Peer, response

PATH = "/api/public/otel/v1/traces"


def setup(endpoint: str) -> Peer:
    from importlib.metadata import version

    from langfuse import Langfuse, observe

    langfuse = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", base_url=endpoint)
    resp = response()
    usage = {"input": USAGE["input_tokens"], "output": USAGE["output_tokens"], "total": USAGE["total_tokens"]}

    def chat(messages: list[dict[str, str]]) -> Any:
        return resp

    @observe(name="chat", as_type="generation")
    def traced(messages: list[dict[str, str]]) -> Any:
        r = chat(messages)
        langfuse.update_current_generation(model=MODEL, usage_details=usage)
        return r

    return Peer(
        version=f"langfuse {version('langfuse')}",
        how='@observe(as_type="generation") + update_current_generation(model, usage_details)',
        call=lambda: traced(MESSAGES),
        bare=lambda: chat(MESSAGES),
        flush=langfuse.flush,
        shutdown=langfuse.shutdown,
        paths=(PATH,),
    )
