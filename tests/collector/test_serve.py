"""`llmpulse serve --demo` (what `make run` starts): data in /api/stats within 30 s, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from server_harness import free_port

pytestmark = [pytest.mark.collector, pytest.mark.slow]


def test_serve_demo_shows_stats_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmpulse._cli",
                "serve",
                "--demo",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    try:
        deadline = time.monotonic() + 30
        groups: list[dict[str, object]] = []
        while time.monotonic() < deadline and not groups:
            time.sleep(0.5)
            assert proc.poll() is None, log_path.read_text()
            try:
                groups = httpx.get(f"{url}/api/stats", params={"group_by": "model"}, timeout=5).json()["groups"]
            except httpx.HTTPError:
                continue
        assert groups, "no stats within 30 s"
        assert {g["model"] for g in groups} <= {"gpt-4o-mini-2024-07-18", "claude-3-5-haiku-latest"}
        assert all(float(str(g["calls"])) > 0 for g in groups)
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert 'llmpulse_llm_calls_total{environment="demo"' in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    log = log_path.read_text()
    assert code in (0, -signal.SIGINT), log
    assert "/api/stats" in log  # the URLs are printed for the newcomer
    assert "collector_stopped" in log
    assert "drained=True" in log
    assert "dropped" not in log  # the demo was flushed while the server still listened


def test_behind_an_auth_proxy_it_listens_on_all_interfaces(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "LLMPULSE_BEHIND_AUTH_PROXY": "true"}
    command = [sys.executable, "-m", "llmpulse._cli", "serve", "--host", "0.0.0.0", "--port", str(port)]
    with (tmp_path / "serve.log").open("wb") as log_file:
        proc = subprocess.Popen(
            [*command, "--data-dir", str(tmp_path / "data")], stdout=log_file, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json() == {"status": "ok"}
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the collector did not come up within 30 s"
                time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
