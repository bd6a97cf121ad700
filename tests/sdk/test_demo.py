"""The demo app: real SDK traffic, as `llmpulse demo` sends it to a collector."""

from __future__ import annotations

import os
import subprocess
import sys

from otlp_receiver import Receiver, attributes


def test_demo_command_sends_realistic_traffic(receiver: Receiver) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmpulse._cli",
            "demo",
            "--endpoint",
            receiver.endpoint,
            "--duration",
            "4",
            "--rate",
            "40",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
        check=True,
    )
    assert "stopped after" in out.stdout
    spans = receiver.spans()
    llm = [attributes(s) for s in spans if s.kind == 3]
    assert len(llm) > 20
    assert {a["gen_ai.provider.name"] for a in llm} == {"openai", "anthropic"}
    assert len({a["llmpulse.prompt.version"] for a in llm}) == 2
    assert any(a.get("gen_ai.request.stream") for a in llm)
    assert all("llmpulse.refusal" in a or "error.type" in a for a in llm)
    names = {s.name for s in spans}
    assert {"support.handle_message", "retrieve_help_articles"} <= names
    assert receiver.feedback  # some conversations send a thumbs up/down
