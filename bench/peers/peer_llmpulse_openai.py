"""llmpulse ``instrument_openai()`` on a real ``openai`` client (same fake transport as OpenLIT).

Run in the repo's ``.venv``; defaults kept. The uninstrumented client call's cost is
measured in the same process and subtracted.
"""

from __future__ import annotations

from harness import Peer, openai_calls


def setup(endpoint: str) -> Peer:
    from importlib.metadata import version

    import llmpulse

    bare, call = openai_calls()  # before llmpulse wraps it
    llmpulse.init(service="bench", endpoint=endpoint)
    llmpulse.instrument_openai()

    def flush() -> None:
        assert llmpulse.flush(60)

    return Peer(
        version=f"llmpulse {llmpulse.__version__} (openai {version('openai')})",
        how="llmpulse.instrument_openai() on openai.OpenAI().chat.completions.create",
        call=call,
        bare=bare,
        flush=flush,
        shutdown=lambda: llmpulse.shutdown(10),
        paths=("/v1/traces",),
    )
