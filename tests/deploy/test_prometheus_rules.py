"""The Prometheus rules, their unit tests and the runbooks, checked with the real tools.

- ``promtool check rules`` and ``promtool check config`` on the deploy files, ``amtool
  check-config`` on the Alertmanager config, ``promtool test rules`` on every
  ``deploy/prometheus/tests/*.yml`` (failing with promtool's own output);
- every alert has ``for:``, a ``severity``, a summary, a description and a ``runbook_url``
  whose anchor is a heading of ``docs/runbooks.md`` (as are the Datadog monitors' links);
- every alert has at least one firing and one non-firing ``alert_rule_test``, and every
  recording rule is exercised by a ``promql_expr_test`` or by a tested alert.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
MONITORS = ROOT / "dashboards" / "datadog" / "monitors.json"

SEVERITIES = {"critical", "warning"}
RUNBOOK_URL = re.compile(r"^docs/runbooks\.md#([a-z0-9_-]+)$")
RECORD_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z0-9_]+$")  # level:metric:operations
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `make test` installs Debian's prometheus and prometheus-alertmanager"
    return path


def run(*args: str, cwd: Path = ROOT) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}"


@cache
def rules() -> list[dict[str, Any]]:
    """Every rule of every rule file, with its group's name under ``_group``."""
    out: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend({**rule, "_group": group["name"]} for rule in group["rules"])
    return out


def alerts() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def recordings() -> list[dict[str, Any]]:
    return [r for r in rules() if "record" in r]


@cache
def unit_tests() -> list[dict[str, Any]]:
    """Every test case of every promtool test file."""
    out: list[dict[str, Any]] = []
    for path in TEST_FILES:
        out.extend(yaml.safe_load(path.read_text())["tests"])
    return out


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text (code blocks skipped)."""
    anchors: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match and not fenced:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchor, n = slug, 0
            while anchor in anchors:  # repeated headings get -1, -2, ...
                n += 1
                anchor = f"{slug}-{n}"
            anchors.add(anchor)
    return anchors


def test_the_files_exist() -> None:
    assert [p.name for p in RULE_FILES] == ["llmpulse-alerts.yml", "llmpulse-recording.yml"]
    assert TEST_FILES, "no promtool unit tests under deploy/prometheus/tests"
    assert alerts()
    assert recordings()


def test_promtool_check_rules() -> None:
    run(tool("promtool"), "check", "rules", *map(str, RULE_FILES))


def test_promtool_check_config_loads_the_rules() -> None:
    run(tool("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml"))


def test_amtool_check_config() -> None:
    run(tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    run(tool("promtool"), "test", "rules", str(path.relative_to(PROMETHEUS)), cwd=PROMETHEUS)


def test_unit_tests_load_the_real_rule_files() -> None:
    for path in TEST_FILES:
        loaded = {(path.parent / f).resolve() for f in yaml.safe_load(path.read_text())["rule_files"]}
        assert loaded <= {p.resolve() for p in RULE_FILES}, path
        assert loaded, path


def test_rule_names_are_unique_and_follow_the_conventions() -> None:
    names = [r["alert"] for r in alerts()]
    assert len(names) == len(set(names)), names
    records = [r["record"] for r in recordings()]
    assert len(records) == len(set(records)), records
    bad = [name for name in records if not RECORD_NAME.match(name)]
    assert not bad, f"recording rules not named level:metric:operations: {bad}"


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_has_for_severity_annotations_and_a_runbook(alert: dict[str, Any]) -> None:
    assert "for" in alert, "every alert states how long its condition must hold"
    labels = alert.get("labels") or {}
    assert labels.get("severity") in SEVERITIES
    assert labels.get("component") in {"llm", "collector"}
    annotations = alert.get("annotations") or {}
    for key in ("summary", "description", "runbook_url"):
        assert str(annotations.get(key, "")).strip(), f"{alert['alert']} has no {key}"
    match = RUNBOOK_URL.match(annotations["runbook_url"])
    assert match, annotations["runbook_url"]
    assert match.group(1) in github_anchors(RUNBOOKS.read_text()), f"no section #{match.group(1)} in docs/runbooks.md"


def test_every_runbook_link_in_the_repository_resolves() -> None:
    anchors = github_anchors(RUNBOOKS.read_text())
    links: set[str] = set()
    for path in [*RULE_FILES, MONITORS]:
        if path.exists():
            links |= set(re.findall(r"docs/runbooks\.md#([a-z0-9_-]+)", path.read_text()))
    assert links
    assert not links - anchors, f"links to missing sections of docs/runbooks.md: {sorted(links - anchors)}"


def test_every_alert_has_a_firing_and_a_non_firing_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in unit_tests():
        for check in case.get("alert_rule_test") or []:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - firing == set(), f"alerts never tested firing: {sorted(names - firing)}"
    assert names - quiet == set(), f"alerts never tested quiet: {sorted(names - quiet)}"
    assert (firing | quiet) <= names, f"tests of alerts that do not exist: {sorted((firing | quiet) - names)}"


def test_every_recording_rule_is_exercised() -> None:
    """Read by a promql_expr_test, or (transitively) by an alert that has a firing test."""
    reads = {r["record"]: set(IDENTIFIER.findall(str(r["expr"]))) for r in recordings()}
    seen: set[str] = set()
    for case in unit_tests():
        for check in case.get("promql_expr_test") or []:
            seen |= set(IDENTIFIER.findall(str(check["expr"])))
        for check in case.get("alert_rule_test") or []:
            if check.get("exp_alerts"):
                alert = next(a for a in alerts() if a["alert"] == check["alertname"])
                seen |= set(IDENTIFIER.findall(str(alert["expr"])))
    while True:  # what a tested rule reads is tested too
        more = {name for rule, names in reads.items() if rule in seen for name in names} - seen
        if not more:
            break
        seen |= more
    untested = sorted(set(reads) - seen)
    assert not untested, f"recording rules no test reads: {untested}"
