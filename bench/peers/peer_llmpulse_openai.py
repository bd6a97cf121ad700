"""llmpulse ``instrument_openai()`` on a real ``openai`` client (same fake transport as OpenLIT).

Run in the repo's ``.venv``; defaults kept. The uninstrumented client call's cost is
measured in the same process and subtracted.
"""

from __future__ import annotations

from typing import Any

from harness import MESSAGES, MODEL, Peer, fake_openai_client


def setup(endpoint: str) -> Peer:
    from importlib.metadata import version

    from openai.resources.chat.completions import Completions

    import llmpulse

    original = Completions.create  # before llmpulse wraps it
    client = fake_openai_client()
    llmpulse.init(service="bench", endpoint=endpoint)
    llmpulse.instrument_openai()

    def flush() -> None:
        assert llmpulse.flush(60)

    def bare() -> Any:
        return original(client.chat.completions, model=MODEL, messages=MESSAGES)

    def call() -> Any:
        return client.chat.completions.create(model=MODEL, messages=MESSAGES)

    return Peer(
        version=f"llmpulse {llmpulse.__version__} (openai {version('openai')})",
        how="llmpulse.instrument_openai() on openai.OpenAI().chat.completions.create",
        call=call,
        bare=bare,
        flush=flush,
        shutdown=lambda: llmpulse.shutdown(10),
        paths=("/v1/traces",),
    )
