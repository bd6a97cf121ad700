"""The collector's command line: migrate, and the refusals of `serve` that protect users."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.collector


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmpulse._cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_migrate_twice_is_harmless(tmp_path: Path) -> None:
    first = run("migrate", "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "applied migrations: [1, 2, 3, 4, 5]" in first.stdout
    second = run("migrate", "--data-dir", str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert "schema is up to date" in second.stdout


def test_serve_refuses_unsafe_setups(tmp_path: Path) -> None:
    workers = run("serve", "--workers", "2", "--data-dir", str(tmp_path))
    assert workers.returncode == 2
    assert "--workers > 1 needs a ClickHouse server" in workers.stderr
    public = run("serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path))
    assert public.returncode == 2
    assert "without API keys" in public.stderr
    bad = run("serve", "--storage", "mysql://x", "--data-dir", str(tmp_path))
    assert bad.returncode == 2
    assert "clickhouse-connect DSN" in bad.stderr
