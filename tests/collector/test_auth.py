"""API keys: ``llmpulse keys``, 401 without a valid key once one exists, per-key rate limits, and
projects that cannot see or write each other's data through any endpoint."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from known_batch import calls, encode
from server_harness import running, wait_for

import llmpulse
from llmpulse_collector.auth import KeyStore, TokenBucket, parse_key
from llmpulse_collector.settings import Settings

pytestmark = pytest.mark.collector

PROTOBUF = {"content-type": "application/x-protobuf"}
KEY = re.compile(r"^lp_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmpulse._cli", "keys", *args], capture_output=True, text=True, timeout=60, check=False
    )


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_keys_command_prints_the_key_alone_and_stores_only_its_hash(tmp_path: Path) -> None:
    added = cli("add", "--project", "acme", "--data-dir", str(tmp_path))
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert KEY.match(key)
    assert added.stdout == key + "\n"  # alone on stdout: `KEY=$(llmpulse keys add ...)` works
    stored = (tmp_path / "keys.sqlite3").read_bytes()
    key_id, secret = parse_key(key)  # type: ignore[misc]
    assert secret.encode() not in stored
    assert (tmp_path / "keys.sqlite3").stat().st_mode & 0o077 == 0
    listed = cli("list", "--data-dir", str(tmp_path))
    assert listed.stdout.split()[:3] == [key_id, "acme", listed.stdout.split()[2]]
    assert "active" in listed.stdout
    assert secret not in listed.stdout + listed.stderr
    assert KeyStore(tmp_path).project_of(key) == "acme"
    assert KeyStore(tmp_path).project_of(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    revoked = cli("revoke", key_id, "--data-dir", str(tmp_path))
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in cli("list", "--data-dir", str(tmp_path)).stdout
    assert KeyStore(tmp_path).project_of(key) is None
    assert cli("revoke", key_id, "--data-dir", str(tmp_path)).returncode == 1
    bad = cli("add", "--project", "no spaces", "--data-dir", str(tmp_path))
    assert bad.returncode == 2
    assert "project must be" in bad.stderr


@pytest.fixture
def keyed(settings: Settings) -> Iterator[tuple[str, str, str, Settings]]:
    """A running collector with keys for projects alpha and beta."""
    keys = KeyStore(settings.data_dir)
    alpha, beta = keys.add("alpha"), keys.add("beta")
    with running(settings) as (url, _app):
        yield url, alpha, beta, settings


def test_without_a_valid_key_every_endpoint_but_healthz_is_401(keyed: tuple[str, str, str, Settings]) -> None:
    url, alpha, _, _ = keyed
    trace = uuid.uuid4().hex
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/traces", {"content": encode(calls(1)), "headers": PROTOBUF}),
        ("POST", "/v1/feedback", {"json": {"trace_id": trace, "name": "thumbs_up", "value": 1}}),
        ("GET", "/api/stats", {}),
        ("GET", "/api/traces", {}),
        ("GET", f"/api/traces/{trace}", {}),
        ("GET", "/metrics", {}),
        ("GET", "/readyz", {}),
        ("GET", "/docs", {}),
        ("GET", "/openapi.json", {}),
    ]
    for auth in ({}, bearer("lp_000000000000_" + "x" * 43), bearer("not-a-key"), {"authorization": alpha}):
        for method, path, kwargs in requests:
            headers = {**kwargs.get("headers", {}), **auth}
            r = httpx.request(method, url + path, **{**kwargs, "headers": headers})
            assert r.status_code == 401, (path, auth, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "API key" in r.json()["error"]
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/api/stats", headers=bearer(alpha)).status_code == 200


def test_projects_cannot_see_or_write_each_others_data(keyed: tuple[str, str, str, Settings]) -> None:
    url, alpha, beta, _ = keyed
    batch = calls(6)
    # alpha writes through the real SDK; the payload's own project-looking attributes change nothing
    llmpulse.init(service="support-bot", endpoint=url, api_key=alpha, export_interval=0.1)

    @llmpulse.llm(provider="openai", model="gpt-4o-mini")
    def ask() -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "choices": [{"message": {"role": "assistant", "content": "hi"}}]}

    with llmpulse.span("request"):
        ask()
        sdk_trace = llmpulse.current_trace_id()
    llmpulse.shutdown()
    r = httpx.post(f"{url}/v1/traces", content=encode(batch), headers={**PROTOBUF, **bearer(alpha)})
    assert r.status_code == 200
    first_trace = f"{0xA000:032x}"
    httpx.post(
        f"{url}/v1/feedback", json={"trace_id": first_trace, "name": "thumbs_up", "value": 1}, headers=bearer(beta)
    ).raise_for_status()

    def alpha_stats() -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = httpx.get(f"{url}/api/stats", headers=bearer(alpha)).json()["groups"]
        return groups if sum(g["calls"] for g in groups) == sum(c.weight for c in batch) + 1 else []

    wait_for(alpha_stats)
    assert httpx.get(f"{url}/api/stats", headers=bearer(beta)).json()["groups"] == []
    assert httpx.get(f"{url}/api/traces", headers=bearer(beta)).json()["traces"] == []
    assert len(httpx.get(f"{url}/api/traces", headers=bearer(alpha)).json()["traces"]) == 7
    for trace in (sdk_trace, first_trace):
        assert httpx.get(f"{url}/api/traces/{trace}", headers=bearer(beta)).status_code == 404
        assert httpx.get(f"{url}/api/traces/{trace}", headers=bearer(alpha)).status_code == 200
    # beta's feedback on alpha's trace id was stored as beta's: alpha's trace does not show it
    assert httpx.get(f"{url}/api/traces/{first_trace}", headers=bearer(alpha)).json()["feedback"] == []
    alpha_metrics = httpx.get(f"{url}/metrics", headers=bearer(alpha)).text
    beta_metrics = httpx.get(f"{url}/metrics", headers=bearer(beta)).text
    assert 'llmpulse_llm_calls_total{environment="prod"' in alpha_metrics
    assert "llmpulse_llm_calls_total{" not in beta_metrics
    assert 'llmpulse_feedback_total{name="thumbs_up"} 1.0' in beta_metrics
    assert "llmpulse_feedback_total{" not in alpha_metrics


def test_a_revoked_key_stops_working_without_a_restart(keyed: tuple[str, str, str, Settings]) -> None:
    url, alpha, _, settings = keyed
    assert httpx.get(f"{url}/api/traces", headers=bearer(alpha)).status_code == 200
    assert KeyStore(settings.data_dir).revoke(alpha)
    wait_for(lambda: httpx.get(f"{url}/api/traces", headers=bearer(alpha)).status_code == 401, timeout=15)


def test_rate_limit_per_key_answers_429_with_retry_after(settings: Settings) -> None:
    keys = KeyStore(settings.data_dir)
    alpha, beta = keys.add("alpha"), keys.add("beta")
    with running(settings.model_copy(update={"rate_limit_rps": 0.5, "rate_limit_burst": 3})) as (url, _app):
        codes = [httpx.get(f"{url}/api/traces", headers=bearer(alpha)).status_code for _ in range(5)]
        limited = httpx.get(f"{url}/api/traces", headers=bearer(alpha))
        other = httpx.get(f"{url}/api/traces", headers=bearer(beta))
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 2
    assert "rate limit" in limited.json()["error"]
    assert other.status_code == 200  # per key


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=100.0, burst=2)
    assert bucket.take("k") == 0.0
    assert bucket.take("k") == 0.0
    wait = bucket.take("k")
    assert 0 < wait <= 0.01
    time.sleep(wait + 0.005)
    assert bucket.take("k") == 0.0


def test_keys_never_reach_the_logs(keyed: tuple[str, str, str, Settings], capfd: pytest.CaptureFixture[str]) -> None:
    url, alpha, _, _ = keyed
    httpx.get(f"{url}/api/traces", headers=bearer(alpha))
    httpx.get(f"{url}/api/traces", headers=bearer(alpha[:-2] + "zz"))
    httpx.post(f"{url}/v1/traces", content=b"junk", headers={**PROTOBUF, **bearer(alpha)})
    out, err = capfd.readouterr()
    secret = alpha.split("_", 2)[2]  # lp_<id>_<secret>; the secret itself may hold "_"
    assert secret not in out + err
    assert secret[:-2] not in out + err
