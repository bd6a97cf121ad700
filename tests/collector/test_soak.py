"""Soak: a steady load for a bounded time (60 s; ``SOAK_SECONDS`` for longer runs) against a
collector process. Its memory stays flat, its open file descriptors stay bounded (no per-request leak),
and every span sent and acknowledged is stored."""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest
from server_harness import free_port
from test_durability import PROTOBUF, _batch, _start

from figures import record

pytestmark = [pytest.mark.collector, pytest.mark.slow]

SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
PER_BATCH = 100
INTERVAL = 0.05  # a batch every 50 ms: ~2,000 spans/s


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    """Open descriptors, less chDB's per-thread ``/proc/<pid>/task/<tid>/{stat,schedstat,io}``
    files: three for every thread of its pools, which grow with load and shrink when idle."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if not target.startswith(f"/proc/{pid}/task/"):
            count += 1
    return count


def test_steady_load_keeps_memory_and_descriptors_flat_and_stores_everything(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(tmp_path / "data", port)
    sent = acked = 0
    samples: list[tuple[float, int, int]] = []  # (elapsed s, rss, fds)
    stop = threading.Event()
    try:

        def sample() -> None:
            started = time.monotonic()
            while not stop.wait(1.0):
                samples.append((time.monotonic() - started, _rss_bytes(proc.pid), _fds(proc.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rng = random.Random(3)
        deadline = time.monotonic() + SECONDS
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                tick = time.monotonic()
                _, body = _batch(PER_BATCH, rng)
                sent += PER_BATCH
                r = client.post(f"{url}/v1/traces", content=body, headers=PROTOBUF)
                if r.status_code == 200:
                    acked += PER_BATCH
                time.sleep(max(0.0, INTERVAL - (time.monotonic() - tick)))
        stop.set()
        sampler.join(5)

        def stored() -> float:
            groups = httpx.get(f"{url}/api/stats", params={"window": 7200, "group_by": "service"}).json()["groups"]
            return float(groups[0]["calls"]) if groups else 0.0

        wait_until = time.monotonic() + 60
        while stored() < acked and time.monotonic() < wait_until:
            time.sleep(0.5)
        assert acked == sent  # no 503s at this load
        assert stored() == sent
        # After the warm-up (the first quarter: caches, pools, chDB's own buffers) memory and
        # descriptors bounded: the last quarter's peak RSS is within 25% (+32 MiB) of the second quarter's.
        quarter = SECONDS / 4
        early = [s for s in samples if quarter <= s[0] < 2 * quarter]
        late = [s for s in samples if s[0] >= 3 * quarter]
        assert early, samples
        assert late, samples
        early_rss, late_rss = max(s[1] for s in early), max(s[1] for s in late)
        assert late_rss <= early_rss * 1.25 + (32 << 20), (early_rss, late_rss)
        # Descriptors come and go (request sockets; chDB's open data parts, many for a moment while a
        # merge reads its sources): bounded, not flat. The typical count may not grow and spikes stay
        # bounded; a per-request leak (~2,400 requests here) would blow past both.
        early_fds, late_fds = [s[2] for s in early], [s[2] for s in late]
        assert statistics.median(late_fds) <= 2 * statistics.median(early_fds) + 32, samples
        assert max(late_fds) <= 4 * max(early_fds) + 256, samples
        record("soak_seconds", SECONDS, "s")
        record("soak_spans_sent", sent)
        record("soak_spans_stored", int(stored()))
        record("soak_peak_rss_mib", round(max(s[1] for s in samples) / (1 << 20), 1), "MiB")
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
