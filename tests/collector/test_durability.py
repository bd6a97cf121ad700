"""The promise: every span that got a 200 is stored exactly once, even across SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from server_harness import free_port

from figures import record
from llmpulse._otlp import ProtobufEncoder
from llmpulse._span import KIND_CLIENT, SpanRecord

pytestmark = [pytest.mark.collector, pytest.mark.slow]

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _batch(n: int, rng: random.Random) -> tuple[str, bytes]:
    """One trace of ``n`` LLM spans: (its trace id, the OTLP protobuf body)."""
    now = time.time_ns()
    trace_id = rng.getrandbits(128) or 1
    spans = []
    for _ in range(n):
        span = SpanRecord(
            "chat gpt-4o-mini",
            trace_id,
            rng.getrandbits(64) or 1,
            0,
            KIND_CLIENT,
            now,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
                "llmpulse.refusal": False,
            },
        )
        span.end_ns = now + 1_000_000
        spans.append(span)
    return f"{trace_id:032x}", ProtobufEncoder({"service.name": "durability"}, "test", "1").encode(spans)


def _start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    with (data_dir.parent / "collector.log").open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmpulse._cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            env={**os.environ, "LLMPULSE_WAL_FSYNC": "true"},
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited: {(data_dir.parent / 'collector.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError("collector did not start")


def test_sigkill_during_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rng = random.Random(7)
    acked: list[str] = []
    per_batch = 50
    for _round in range(3):
        proc = _start(data_dir, port)
        stop = threading.Event()
        acked_now: list[str] = []

        def send(seed: int, stop: threading.Event = stop, acked_now: list[str] = acked_now) -> None:
            local = random.Random(seed)
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    trace_id, body = _batch(per_batch, local)
                    try:
                        r = client.post(
                            f"{url}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
                        )
                    except httpx.HTTPError:
                        return  # the collector died mid-request: not acknowledged
                    if r.status_code == 200:
                        acked_now.append(trace_id)

        senders = [threading.Thread(target=send, args=(rng.getrandbits(32),)) for _ in range(2)]
        for t in senders:
            t.start()
        time.sleep(rng.uniform(1.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        stop.set()
        for t in senders:
            t.join(30)
        acked.extend(acked_now)
    assert len(acked) > 10
    proc = _start(data_dir, port)
    try:

        def stored() -> float:
            groups = httpx.get(f"{url}/api/stats", params={"window": 3600, "group_by": "service"}).json()["groups"]
            return float(groups[0]["calls"]) if groups else 0.0

        # Everything acknowledged lands (plus, at most, batches whose answer the kill cut off).
        deadline = time.monotonic() + 90
        while stored() < len(acked) * per_batch and time.monotonic() < deadline:
            time.sleep(0.25)
        assert len(acked) * per_batch <= stored() <= (len(acked) + 6) * per_batch
        with httpx.Client(timeout=10) as client:
            for trace_id in acked:
                spans = client.get(f"{url}/api/traces/{trace_id}").json()["spans"]
                assert len(spans) == per_batch, trace_id  # every acknowledged span, exactly once
        record("crash_rounds_survived", 3)
        record("crash_spans_acknowledged", len(acked) * per_batch)
        record("crash_spans_stored", int(stored()))
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown, so the exit status is -SIGTERM
        assert proc.wait(60) in (0, -signal.SIGTERM)
    log_text = (tmp_path / "collector.log").read_text()
    assert "collector_stopped" in log_text
    assert "drained=True" in log_text


def test_sigterm_under_load_drains_everything_before_exit(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    per_batch = 50
    proc = _start(data_dir, port)
    acked: list[str] = []
    stop = threading.Event()

    def send(seed: int) -> None:
        local = random.Random(seed)
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                trace_id, body = _batch(per_batch, local)
                try:
                    r = client.post(
                        f"{url}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
                    )
                except httpx.HTTPError:
                    return  # the server closed: not acknowledged
                if r.status_code == 200:
                    acked.append(trace_id)

    senders = [threading.Thread(target=send, args=(seed,)) for seed in (11, 12)]
    for t in senders:
        t.start()
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)  # bounded: uvicorn's graceful timeout plus the writer's drain deadline
    stop.set()
    for t in senders:
        t.join(30)
    assert code in (0, -signal.SIGTERM)
    log_text = (tmp_path / "collector.log").read_text()
    assert "drained=True" in log_text  # the log was empty when it exited
    assert len(acked) > 5
    proc = _start(data_dir, port)
    try:
        # nothing was left for the next start to replay, and everything acknowledged is stored once
        assert "pending=0" in (tmp_path / "collector.log").read_text().rsplit("collector_started", 1)[1].split("\n")[0]
        groups = httpx.get(f"{url}/api/stats", params={"window": 3600, "group_by": "service"}).json()["groups"]
        # (a request answered while the client was already giving up may be stored without its 200)
        assert len(acked) * per_batch <= float(groups[0]["calls"]) <= (len(acked) + 2) * per_batch
        with httpx.Client(timeout=10) as client:
            for trace_id in acked:
                assert len(client.get(f"{url}/api/traces/{trace_id}").json()["spans"]) == per_batch
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
