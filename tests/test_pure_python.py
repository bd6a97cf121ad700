"""``LLMPULSE_PURE_PYTHON=1`` turns every compiled part off, in the SDK and the collector, as
the README promises; without it every part is on (`make test` builds them all). Read at
import, so each case runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Each compiled part, by an expression that is True when it is in use.
PARTS = {
    "SDK OTLP encoder": "_otlp._c_encode is not None",
    "SDK OTLP encoder module": "_otlp.compiled is not None",
    "SDK refusal head scan": "_refusal._compiled().find_head is not None",
    "SDK refusal scan of a reply": "_refusal._compiled().find_in_reply is not None",
    "SDK redaction prefilters": "_redact._might_mask is not None",
    "SDK Chat Completion reader": "_extract._read_chat is not None",
    "SDK check contexts": "_checks.make_context is not _checks._make_context",
    "SDK span events": "_llm._new_event is not _llm.SpanEvent",
    "collector OTLP scanner": "otlp._c_scan is not None",
    "collector span rows": "normalize._c_span is not None",
    "collector assertion rows": "normalize._c_assertion is not None",
    "collector Native log entries": "native._c_native is not None",
}
PROBE = (
    "from llmpulse import _checks, _extract, _llm, _otlp, _redact, _refusal; "
    "from llmpulse_collector import native, normalize; from llmpulse_collector.ingest import otlp; "
    f"print({', '.join(PARTS.values())})"
)


@pytest.mark.parametrize(("env", "on"), [({"LLMPULSE_PURE_PYTHON": "1"}, False), ({}, True)])
def test_llmpulse_pure_python_turns_every_compiled_part_off(env: dict[str, str], on: bool) -> None:
    base = {k: v for k, v in os.environ.items() if k != "LLMPULSE_PURE_PYTHON"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    assert dict(zip(PARTS, done.stdout.split(), strict=True)) == dict.fromkeys(PARTS, str(on))
