"""``examples/chatbot``: the FastAPI app, instrumented with two lines, run for real.

The app runs under uvicorn in its own process, its real ``openai`` client pointed at the fake
OpenAI server of the test suite and its llmpulse SDK at a real collector (chDB) in this
process. Its calls, tokens, refusals and assertion outcomes must show in ``/api/stats``,
``/metrics`` and the stored trace; user ids only on the trace, never as metric labels.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_harness import free_port, wait_for

from fake_openai import FakeOpenAI

pytestmark = [pytest.mark.collector, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chatbot"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(reply="sure, the shop opens at nine.") as f:
        yield f


@pytest.fixture
def chatbot(collector: str, fake: FakeOpenAI, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LLMPULSE_", "OTEL_", "OPENAI_"))},
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "sk-test",
        "LLMPULSE_ENDPOINT": collector,
        "LLMPULSE_EXPORT_INTERVAL": "0.2",
        "APP_ENV": "test",
    }
    log = (tmp_path / "chatbot.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=EXAMPLE,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/docs", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "chatbot.log").read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # uvicorn stops; llmpulse's exit hook flushes
        proc.wait(30)
        log.close()


def test_chatbot_calls_show_in_stats_metrics_and_traces(collector: str, fake: FakeOpenAI, chatbot: str) -> None:
    trace_ids = []
    for i in range(3):
        r = httpx.post(f"{chatbot}/chat", json={"message": f"when do you open? {i}", "user_id": "user-42"}, timeout=30)
        r.raise_for_status()
        assert r.json()["reply"] == "sure, the shop opens at nine."
        trace_ids.append(r.json()["trace_id"])
    fake.reply = "We open at nine. As an AI I may be wrong."  # fails both assertions, not a refusal
    httpx.post(f"{chatbot}/chat", json={"message": "hours?", "session_id": "s-1"}, timeout=30).raise_for_status()
    fake.reply = None  # type: ignore[assignment]
    fake.refusal = "I can't help with that."
    httpx.post(f"{chatbot}/chat", json={"message": "something bad"}, timeout=30).raise_for_status()
    fake.refusal = None
    fake.reply = "sure thing"
    streamed = httpx.post(f"{chatbot}/chat/stream", json={"message": "stream it"}, timeout=30)
    assert streamed.text.strip() == "sure thing"

    def stats() -> dict[str, object] | None:
        groups = httpx.get(f"{collector}/api/stats", params={"group_by": "service,prompt_version"}).json()["groups"]
        return groups[0] if groups and groups[0]["calls"] == 6 else None

    group = wait_for(stats)
    assert group["service"] == "support-chatbot"
    assert group["refusals"] == 1
    assert group["streams"] == 1
    assert group["input_tokens"] > 0
    assert group["output_tokens"] > 0
    # "We open ..." and the refusal's "I can't ..." start uppercase
    assert group["assertions"]["casual_tone"]["fail"] == 2
    assert group["assertions"]["no_ai_disclaimer"]["fail"] == 1
    assert group["assertions"]["casual_tone"]["pass"] == 4

    samples = {}
    for family in text_string_to_metric_families(httpx.get(f"{collector}/metrics").text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    calls = {k: v for k, v in samples.items() if k[0] == "llmpulse_llm_calls_total" and ("status", "ok") in k[1]}
    ((labels, n),) = calls.items()
    assert n == 6
    assert dict(labels[1])["service"] == "support-chatbot"
    assert dict(labels[1])["prompt"] == "support-system"
    assert dict(labels[1])["environment"] == "test"
    refusals = [v for k, v in samples.items() if k[0] == "llmpulse_refusals_total"]
    assert refusals == [1.0]
    ttfc = [v for k, v in samples.items() if k[0] == "gen_ai_client_operation_time_to_first_chunk_seconds_count"]
    assert ttfc == [1.0]
    assert not any(name in ("user_id", "user", "session_id") for _, labels in samples for name, _ in labels)

    trace = httpx.get(f"{collector}/api/traces/{trace_ids[0]}").json()
    (llm_span,) = [s for s in trace["spans"] if s["is_llm"]]
    assert llm_span["user_id"] == "user-42"
    assert llm_span["attributes"]["llmpulse.feature"] == "chat"
    assert {a["name"]: a["label"] for a in llm_span["assertions"]} == {
        "casual_tone": "pass",
        "no_ai_disclaimer": "pass",
    }
    assert "opens at nine" in llm_span["output"]
