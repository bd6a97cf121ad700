"""Collector test fixtures: one embedded ClickHouse (chDB) per pytest process, one database per test.

chDB hosts a single data path per process, so every collector test shares ``chdb_path``
(session-scoped) and isolates itself with its own database instead. A keeper store holds
the engine open for the whole session: reopening it costs about a second.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_harness import free_port, running

from llmpulse_collector.settings import Settings
from llmpulse_collector.storage import Store
from llmpulse_collector.storage.migrations import migrate, schema_statements


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The one chDB data directory of this pytest process (kept open for the session)."""
    path = tmp_path_factory.mktemp("chdb") / "clickhouse"
    keeper = Store.connect(f"chdb://{path}", database="keeper")
    yield path
    keeper.close()


@pytest.fixture
def new_database(chdb_path: Path) -> Iterator[Callable[..., Store]]:
    """Open stores on fresh databases (``t_<uuid>``); each is dropped and closed after the test."""
    opened: list[Store] = []

    def open_store(*, retention_days: int = 30, database: str | None = None, readers: int = 4) -> Store:
        store = Store.connect(
            f"chdb://{chdb_path}",
            database=database or f"t_{uuid.uuid4().hex[:12]}",
            retention_days=retention_days,
            readers=readers,
        )
        opened.append(store)
        return store

    yield open_store
    for database in {s.database for s in opened}:
        with Store.connect(f"chdb://{chdb_path}", database=database) as dropper:
            dropper.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    for store in opened:
        store.close()


def schema_at(store: Store, version: int) -> None:
    """Give ``store`` the schema as a collector of ``version`` left it (migrations up to it run
    and recorded), so a test can store data and then migrate the rest."""
    for migration in schema_statements(store.database)[: version + 1]:  # [0] is schema_migrations
        for statement in migration.statements:
            store.command(statement)
    store.insert(
        "schema_migrations",
        [{"version": v, "name": "old", "applied_at": 0} for v in range(1, version + 1)],
        ("version", "name", "applied_at"),
        dedup_token="old",
    )


@pytest.fixture
def store(new_database: Callable[..., Store]) -> Store:
    """A migrated store on a database of its own."""
    s = new_database()
    migrate(s)
    return s


@pytest.fixture
def settings(chdb_path: Path, tmp_path: Path) -> Settings:
    """Collector settings on a database of its own in the shared chDB, a free port, no fsync."""
    return Settings(
        storage=f"chdb://{chdb_path}",
        database=f"t_{uuid.uuid4().hex[:12]}",
        data_dir=tmp_path / "data",
        port=free_port(),
        wal_fsync=False,
    )


@pytest.fixture
def collector(settings: Settings) -> Iterator[str]:
    """The base URL of a real collector (uvicorn on 127.0.0.1) running with ``settings``."""
    with running(settings) as (url, _app):
        yield url


def span_row(**values: Any) -> dict[str, Any]:
    """A spans row: an LLM call of service ``bot`` unless ``values`` say otherwise (missing keys use defaults)."""
    row: dict[str, Any] = {
        "project": "acme",
        "trace_id": uuid.uuid4().hex,
        "span_id": uuid.uuid4().hex[:16],
        "name": "chat gpt-4o-mini",
        "service": "bot",
        "environment": "prod",
        "is_llm": 1,
        "operation": "chat",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "prompt_name": "support",
        "prompt_version": "v1",
        "sample_weight": 1.0,
    }
    row.update(values)
    if "end_time" not in row and "start_time" in row:
        row["end_time"] = row["start_time"] + int(row.get("duration_s", 0.0) * 1e9)
    return row


def assertion_row(span: dict[str, Any], name: str, label: str, **values: Any) -> dict[str, Any]:
    """An assertions row for ``span`` (dimensions and weight copied from it)."""
    row: dict[str, Any] = {
        key: span[key]
        for key in ("project", "trace_id", "span_id", "service", "environment", "provider", "model", "prompt_name")
        if key in span
    }
    row.update(
        prompt_version=span.get("prompt_version", ""),
        time=span["start_time"],
        name=name,
        label=label,
        score=1.0 if label == "pass" else 0.0,
        sample_weight=span.get("sample_weight", 1.0),
    )
    row.update(values)
    return row


@pytest.fixture(scope="session")
def rows() -> tuple[Callable[..., dict[str, Any]], Callable[..., dict[str, Any]]]:
    """``(span_row, assertion_row)`` row builders."""
    return span_row, assertion_row
