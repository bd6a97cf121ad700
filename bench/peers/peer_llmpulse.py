"""llmpulse ``@llmpulse.llm`` as in ``sdk_overhead.py``: two assertions, refusal check, cost.

Run in the repo's ``.venv``. Defaults kept (batching, content capture, redaction on), as
for every peer; ``sdk_overhead.py`` measures the same decorator with a larger queue.
"""

from __future__ import annotations

from typing import Any

from harness import MESSAGES, MODEL, Peer, response


def setup(endpoint: str) -> Peer:
    import llmpulse
    from llmpulse import check

    llmpulse.init(service="bench", endpoint=endpoint)
    resp = response()

    def chat(messages: list[dict[str, str]]) -> Any:
        return resp

    traced = llmpulse.llm(
        provider="openai", model=MODEL, assertions=[check.starts_lowercase(), check.max_length(4000)]
    )(chat)

    def flush() -> None:
        assert llmpulse.flush(60)

    return Peer(
        version=f"llmpulse {llmpulse.__version__}",
        how="@llmpulse.llm(provider, model, assertions=[2 checks]) (refusal check and cost built in)",
        call=lambda: traced(MESSAGES),
        bare=lambda: chat(MESSAGES),
        flush=flush,
        shutdown=lambda: llmpulse.shutdown(10),
        paths=("/v1/traces",),
    )
