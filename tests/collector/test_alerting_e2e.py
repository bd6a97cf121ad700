"""End to end: a refusal spike in the demo's traffic reaches a webhook as a firing alert.

The real collector (uvicorn, chDB) receives the demo support bot's calls through the real SDK,
with most questions adversarial (a refusal spike); a real Prometheus scrapes it every second and
evaluates the project's real rule files; a real Alertmanager, configured from the project's
``deploy/alertmanager/alertmanager.yml``, notifies a webhook served by this test, which must
receive ``LLMRefusalRateHigh`` firing for the demo's service.

The rule files are copied with every ``for:`` duration, range window and group interval divided
by :data:`SCALE` (a minute becomes a second); the expressions, thresholds and traffic guards are
the real ones. The Alertmanager copy differs in its timings and receiver URL only.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from server_harness import free_port, running

import llmpulse
from llmpulse._demo import DemoApp
from llmpulse_collector.settings import Settings

pytestmark = [pytest.mark.collector, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

SCALE = 60  # a minute of the real rules is a second here
ALERT = "LLMRefusalRateHigh"
ALERT_TIMEOUT_S = 90.0  # typically ~15 s: the 10 s window fills, `for:` (10 s), resend and group_wait (1 s each)

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_RANGE = re.compile(r"\[(\w+)\]")


def seconds(duration: str) -> float:
    """A Prometheus duration (``10m``, ``1h30m``, ``0s``) in seconds."""
    parts = _DURATION.findall(duration)
    assert parts, duration
    assert "".join(n + unit for n, unit in parts) == duration, duration
    return sum(int(n) * _UNITS[unit] for n, unit in parts)


def scaled(duration: str) -> str:
    """``duration`` divided by :data:`SCALE`, in whole seconds (at least 1 s unless it is 0)."""
    value = seconds(duration)
    return "0s" if value == 0 else f"{max(1, round(value / SCALE))}s"


def fast_rules(text: str) -> str:
    """A rule file with every ``for:``, range window and group ``interval`` divided by SCALE."""
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        if "interval" in group:
            group["interval"] = scaled(group["interval"])
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = scaled(rule["for"])
            rule["expr"] = _RANGE.sub(lambda m: f"[{scaled(m.group(1))}]", rule["expr"])
    return str(yaml.safe_dump(doc, sort_keys=False))


def fast_alertmanager(text: str, webhook: str) -> str:
    """The Alertmanager config with second-long grouping timers and every receiver sending to ``webhook``."""
    doc = yaml.safe_load(text)
    routes = [doc["route"]]
    while routes:
        route = routes.pop()
        route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
        routes.extend(route.get("routes") or [])
    doc["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": webhook, "send_resolved": False}]} for r in doc["receivers"]
    ]
    return str(yaml.safe_dump(doc, sort_keys=False))


class Webhook:
    """An Alertmanager webhook receiver on 127.0.0.1: every notification body, in arrival order."""

    def __init__(self) -> None:
        self.notifications: queue.Queue[dict[str, Any]] = queue.Queue()
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.put(json.loads(body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-webhook", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a subprocess, output to ``tmp_path/<name>.log``; every one is stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def wait_until(what: str, check: Callable[[], Any], timeout: float, diagnose: Callable[[], str] = str) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{diagnose()}")
        time.sleep(0.2)


def ready(url: str) -> bool:
    return httpx.get(f"{url}/-/ready", timeout=5).status_code == 200


@pytest.fixture
def settings(chdb_path: Path, tmp_path: Path) -> Settings:
    return Settings(
        storage=f"chdb://{chdb_path}",
        database=f"t_{uuid.uuid4().hex[:12]}",
        data_dir=tmp_path / "data",
        port=free_port(),
        wal_fsync=False,
    )


def test_refusal_spike_reaches_the_webhook(
    settings: Settings,
    tmp_path: Path,
    webhook: Webhook,
    processes: Callable[..., subprocess.Popen[bytes]],
) -> None:
    prometheus_bin = shutil.which("prometheus")
    alertmanager_bin = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert prometheus_bin, "prometheus is missing: `make test` installs Debian's prometheus package"
    assert alertmanager_bin, "alertmanager is missing: `make test` installs Debian's prometheus-alertmanager"
    assert [p.name for p in RULE_FILES] == ["llmpulse-alerts.yml", "llmpulse-recording.yml"]

    # Alertmanager, from the project's config
    am_port = free_port()
    am_url = f"http://127.0.0.1:{am_port}"
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(fast_alertmanager(ALERTMANAGER_CONFIG.read_text(), webhook.url))
    processes(
        "alertmanager",
        alertmanager_bin,
        f"--config.file={am_config}",
        f"--storage.path={tmp_path / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    )

    # the project's rules, with minutes turned into seconds
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for path in RULE_FILES:
        (rules_dir / path.name).write_text(fast_rules(path.read_text()))
        real = [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
        fast = [r for g in yaml.safe_load((rules_dir / path.name).read_text())["groups"] for r in g["rules"]]
        for a, b in zip(real, fast, strict=True):  # only durations changed
            assert _RANGE.sub("[]", a["expr"]) == _RANGE.sub("[]", b["expr"])
            assert {k: v for k, v in a.items() if k not in ("expr", "for")} == {
                k: v for k, v in b.items() if k not in ("expr", "for")
            }

    service = f"e2e-bot-{uuid.uuid4().hex[:6]}"
    with running(settings) as (collector_url, _app):
        prom_port = free_port()
        prom_url = f"http://127.0.0.1:{prom_port}"
        prom_config = tmp_path / "prometheus.yml"
        prom_config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules_dir / "*.yml")],
                    "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                    "scrape_configs": [
                        {
                            "job_name": "llmpulse-collector",
                            "static_configs": [{"targets": [collector_url.removeprefix("http://")]}],
                        }
                    ],
                }
            )
        )
        processes(
            "prometheus",
            prometheus_bin,
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
        )

        def diagnose() -> str:
            parts = []
            for name, url in (("alerts", f"{prom_url}/api/v1/alerts"), ("targets", f"{prom_url}/api/v1/targets")):
                try:
                    parts.append(f"prometheus {name}: {httpx.get(url, timeout=5).text[:3000]}")
                except httpx.HTTPError as exc:
                    parts.append(f"prometheus {name}: {exc!r}")
            for log in ("prometheus", "alertmanager"):
                path = tmp_path / f"{log}.log"
                parts.append(f"{log} log: {path.read_text()[-3000:] if path.exists() else '(none)'}")
            return "\n".join(parts)

        wait_until("alertmanager ready", lambda: ready(am_url), 30, diagnose)
        wait_until("prometheus ready", lambda: ready(prom_url), 30, diagnose)

        # 40 conversations a second, none adversarial at first: Prometheus sees the service's calls, no refusal
        llmpulse.init(service=service, endpoint=collector_url, environment="e2e", export_interval=0.2)
        demo = DemoApp(rate=40, seed=7, speed=20.0, adversarial_rate=0.0)
        demo.start()
        try:
            received: list[dict[str, Any]] = []

            def firing_alert() -> dict[str, Any] | None:
                while not webhook.notifications.empty():
                    received.append(webhook.notifications.get_nowait())
                for notification in received:
                    for alert in notification["alerts"]:
                        labels = alert["labels"]
                        if (
                            alert["status"] == "firing"
                            and labels["alertname"] == ALERT
                            and labels.get("service") == service
                        ):
                            return {"notification": notification, "alert": alert}
                return None

            calls = urllib.parse.quote(f'service_env_model:llmpulse_llm_calls:increase10m{{service="{service}"}} > 0')
            wait_until(
                "the demo's calls recorded by Prometheus",
                lambda: httpx.get(f"{prom_url}/api/v1/query?query={calls}", timeout=10).json()["data"]["result"],
                60,
                diagnose,
            )
            assert firing_alert() is None  # no refusal, no alert
            # the spike: 60% of the questions are adversarial from now on (the models refuse them)
            demo.adversarial_rate = 0.6
            found = wait_until(f"{ALERT} for {service} at the webhook", firing_alert, ALERT_TIMEOUT_S, diagnose)

            # the real expressions evaluated without errors against real data
            groups = httpx.get(f"{prom_url}/api/v1/rules", timeout=10).raise_for_status().json()["data"]["groups"]
            broken = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] == "err"]
            assert not broken, broken
            query = urllib.parse.quote(f'service_env_model:llmpulse_refusal_ratio:rate10m{{service="{service}"}}')
            ratios = httpx.get(f"{prom_url}/api/v1/query?query={query}", timeout=10).json()["data"]["result"]
        finally:
            demo.stop()
            llmpulse.shutdown()

    alert = found["alert"]
    labels = alert["labels"]
    assert labels["severity"] == "critical"
    assert labels["component"] == "llm"
    assert labels["environment"] == "e2e"
    assert labels["model"] in {"gpt-4o-mini-2024-07-18", "claude-3-5-haiku-latest"}
    assert alert["annotations"]["runbook_url"] == "docs/runbooks.md#llmrefusalratehigh"
    assert service in alert["annotations"]["summary"]
    # grouped by the project's route: alert name and service
    assert found["notification"]["groupLabels"] == {"alertname": ALERT, "service": service}
    assert found["notification"]["status"] == "firing"
    # the recorded ratio Prometheus alerted on is well above the 5% threshold for both demo models
    # ("gpt-4o-mini" alone, the request model, labels the simulated rate-limit errors, which have no reply)
    ratio = {r["metric"]["model"]: float(r["value"][1]) for r in ratios}
    for model in ("gpt-4o-mini-2024-07-18", "claude-3-5-haiku-latest"):
        assert ratio.get(model, 0) > 0.05, ratio
