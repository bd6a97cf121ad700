"""Traceloop / OpenLLMetry (``traceloop-sdk``): ``@workflow`` around a ``@task``.

What its docs tell a user to do: ``Traceloop.init(...)`` then decorate their functions with
``@workflow`` / ``@task``; with content tracing on (the default) each decorated call records
its arguments and return value as ``traceloop.entity.input`` / ``.output`` JSON. The
decorators have no token or model API (tokens come from Traceloop's provider
instrumentations, which this workload does not call), so this row records content but not
tokens: lighter work than the others do. Defaults kept (batching on, its metrics pipeline
on); the exporter endpoint is the sink; ``telemetry_enabled=False`` so nothing leaves the
machine.
"""

from __future__ import annotations

import os
from typing import Any

from harness import MESSAGES, Peer, response


def setup(endpoint: str, nested: bool = True) -> Peer:
    """``nested``: ``@workflow`` around ``@task`` (two spans a call, both with the content);
    otherwise one ``@workflow`` span, like every other row's one span a call."""
    from importlib.metadata import version

    os.environ["TRACELOOP_TELEMETRY"] = "false"
    from opentelemetry import trace
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import task, workflow

    Traceloop.init(app_name="bench", api_endpoint=endpoint, telemetry_enabled=False)
    resp = response()

    def chat(messages: list[dict[str, str]]) -> Any:
        return resp

    @task(name="chat")
    def chat_task(messages: list[dict[str, str]]) -> Any:
        return chat(messages)

    @workflow(name="support_reply")
    def traced(messages: list[dict[str, str]]) -> Any:
        return chat_task(messages) if nested else chat(messages)

    provider: Any = trace.get_tracer_provider()

    def flush() -> None:
        assert provider.force_flush(60_000)

    return Peer(
        version=f"traceloop-sdk {version('traceloop-sdk')}",
        how=("Traceloop.init() + @workflow around @task" if nested else "Traceloop.init() + @workflow")
        + " (entity input/output JSON; no tokens)",
        call=lambda: traced(MESSAGES),
        bare=lambda: chat(MESSAGES),
        flush=flush,
        shutdown=provider.shutdown,
        paths=("/v1/traces",),
    )
