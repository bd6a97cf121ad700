"""Storage down, then slow, then back: ingest acknowledges into the write-ahead log up to its cap,
answers 503 + Retry-After past it, memory stays bounded (the backlog is on disk), and once storage
recovers the backlog drains until sent == stored.

ClickHouse cannot be taken down from inside this process (chDB is embedded), so a wrapper around
the collector's insert fails (``StorageUnavailable``) and then delays, as a real outage would look.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_harness import running, wait_for

from figures import record
from llmpulse._otlp import ProtobufEncoder
from llmpulse._span import KIND_CLIENT, SpanRecord
from llmpulse_collector import app as app_module
from llmpulse_collector.settings import Settings
from llmpulse_collector.storage import StorageUnavailable

pytestmark = [pytest.mark.collector, pytest.mark.slow]

OUTAGE_S = 5.0
SLOW_S = 3.0


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_outage_then_slowness_then_recovery(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    real_insert = app_module.Collector.insert

    def insert(self: Any, *args: Any) -> None:
        elapsed = time.monotonic() - started
        if elapsed < OUTAGE_S:
            raise StorageUnavailable("simulated outage")
        if elapsed < OUTAGE_S + SLOW_S:
            time.sleep(0.3)  # a slow server
        real_insert(self, *args)

    monkeypatch.setattr(app_module.Collector, "insert", insert)
    encoder = ProtobufEncoder({"service.name": "outage"}, "test", "1")
    pad = "y" * 10_000

    def body(batch: int) -> bytes:
        spans = []
        for i in range(50):
            s = SpanRecord(
                "chat m", batch, i + 1, 0, KIND_CLIENT, time.time_ns(), {"gen_ai.operation.name": "chat", "p": pad}
            )
            s.end_ns = s.start_ns + 1000
            spans.append(s)
        return encoder.encode(spans)  # ~0.5 MB

    cfg = settings.model_copy(update={"wal_max_bytes": 4 << 20, "retry_after_s": 1})
    rss_before = _rss()
    peak = rss_before
    refusals = 0
    sent = 0
    with running(cfg) as (url, _), httpx.Client(timeout=30) as client:
        stop = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not stop.wait(0.1):
                peak = max(peak, _rss())

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        batch = 0
        while time.monotonic() - started < OUTAGE_S + SLOW_S + 1.0:
            batch += 1
            payload = body(batch)
            while True:  # what an OTLP exporter does: retry the same batch after Retry-After
                r = client.post(f"{url}/v1/traces", content=payload, headers={"content-type": "application/x-protobuf"})
                if r.status_code == 200:
                    sent += 50
                    break
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"] == "1"
                refusals += 1
                time.sleep(float(r.headers["retry-after"]) / 4)  # impatient, to keep the test short
        assert refusals > 0, "the log never filled during the outage"

        def stored() -> float:
            groups = client.get(f"{url}/api/stats", params={"group_by": "service"}).json()["groups"]
            return float(groups[0]["calls"]) if groups else 0.0

        wait_for(lambda: stored() >= sent, timeout=60)
        stop.set()
        watcher.join(2)
        assert stored() == sent
    growth = peak - rss_before
    assert growth < 200 << 20, growth  # the backlog waited on disk, not in memory
    record("outage_seconds_survived", OUTAGE_S + SLOW_S, "s")
    record("outage_spans_sent_stored", sent)
    record("outage_503_answers", refusals)
