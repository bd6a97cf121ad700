"""Every metric name a dashboard, monitor or alert rule uses is one the running collector really emits.

The collector runs the demo's traffic (plus feedback, a rejected request and a rejected span) and
is scraped; a DogStatsD peer records what it sends. Each name in the Grafana dashboards and the
Prometheus rules must be in the scrape (recording-rule names must be recorded by the rules), each
name in the Datadog dashboard and monitors must have arrived at the peer. A renamed metric breaks
this test.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from dogstatsd_peer import DogStatsdPeer
from prometheus_client.parser import text_string_to_metric_families
from server_harness import running, wait_for

import llmpulse
from llmpulse._demo import DemoApp
from llmpulse_collector.export.health import COUNTERS
from llmpulse_collector.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "dashboards"))

import metric_names  # noqa: E402

pytestmark = [pytest.mark.collector, pytest.mark.slow]

RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


def exposed_names(text: str) -> set[str]:
    """Every sample name the exposition can hold, from its families and types (also those with no sample yet)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
        names.update(s.name for s in family.samples)
    return names


def rule_names() -> tuple[set[str], set[str]]:
    """(metric names the rules read, names the recording rules define)."""
    used: set[str] = set()
    recorded: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                used |= metric_names.promql_metric_names(str(rule["expr"]))
                if "record" in rule:
                    recorded.add(rule["record"])
    return used, recorded


def test_every_dashboard_monitor_and_rule_metric_is_emitted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert RULE_FILES, "no Prometheus rule files under deploy/prometheus/rules"
    peer = DogStatsdPeer()
    monkeypatch.setenv("DD_AGENT_HOST", "127.0.0.1")
    monkeypatch.setenv("DD_DOGSTATSD_PORT", str(peer.port))
    try:
        with running(settings.model_copy(update={"datadog_flush_interval": 0.3})) as (url, _app):
            llmpulse.init(service="demo-support-bot", endpoint=url, environment="demo", export_interval=0.2)
            demo = DemoApp(rate=40, seed=1, speed=20.0, adversarial_rate=0.3)
            demo.start()
            time.sleep(4)
            demo.stop()
            llmpulse.flush()
            httpx.post(f"{url}/v1/feedback", json={"trace_id": uuid.uuid4().hex, "name": "thumbs_up", "value": 1})
            httpx.post(f"{url}/v1/traces", content=b"x", headers={"content-type": "text/plain"})  # a rejected request
            text = wait_for(lambda: (t := httpx.get(f"{url}/metrics").text) and "llmpulse_refusals_total{" in t and t)
            peer.wait(lambda: any(m.name == "llmpulse.refusals" for m in peer.snapshot()))
            llmpulse.shutdown()
        sent = {m.name for m in peer.snapshot()}
    finally:
        peer.close()
    exposed = exposed_names(text)

    missing = sorted(metric_names.grafana_metric_names() - exposed)
    assert not missing, f"Grafana dashboards use metrics the collector does not expose: {missing}"
    used, recorded = rule_names()
    missing = sorted(n for n in used - recorded if n not in exposed)
    assert not missing, f"Prometheus rules read metrics that are neither exposed nor recorded: {missing}"
    # Datadog: what the peer received, plus the collector's own counters, which are sent once non-zero
    sendable = sent | {"llmpulse.collector." + name.replace("_", ".") for name in COUNTERS}
    sendable.add("llmpulse.collector.series_folded")
    missing = sorted(metric_names.datadog_metric_names() - sendable)
    assert not missing, f"Datadog dashboard/monitors use metrics the collector does not send: {missing}"
    # and the LLM metrics they use were really sent by this traffic, not just possible
    llm = {n for n in metric_names.datadog_metric_names() if not n.startswith("llmpulse.collector.")}
    assert llm <= sent, sorted(llm - sent)
