"""The collector's settings: one frozen pydantic ``BaseSettings``, built in ``create_app``.

Every field reads ``LLMPULSE_<NAME>`` from the environment (``LLMPULSE_PORT=4318``);
command-line flags of ``llmpulse serve`` override them. Nothing is read at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Settings(BaseSettings):
    """Collector configuration (each field also from ``LLMPULSE_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="LLMPULSE_", frozen=True, extra="ignore")

    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=4318, ge=0, le=65535, description="port to listen on (4318 is OTLP/HTTP's)")
    data_dir: Path = Field(default=Path(".llmpulse"), description="WAL and embedded ClickHouse live here")
    storage: str | None = Field(
        default=None,
        description="clickhouse-connect DSN: chdb:///abs/path (default: <data_dir>/clickhouse) "
        "or http(s)://user:pass@host:8123/db",
    )
    database: str = Field(default="llmpulse", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    cluster: str | None = Field(default=None, description="ClickHouse cluster name: ON CLUSTER DDL, replicated tables")
    retention_days: int = Field(default=30, ge=1, le=3650)
    wal_max_bytes: int = Field(default=1 << 30, ge=1 << 20, description="past this the collector answers 503")
    wal_fsync: bool = True
    max_body_bytes: int = Field(default=16 << 20, ge=1024)
    max_decompressed_bytes: int = Field(default=64 << 20, ge=1024)
    max_spans_per_request: int = Field(default=50_000, ge=1)
    max_attribute_chars: int = Field(default=65_536, ge=64)
    max_content_chars: int = Field(default=32_768, ge=64)
    writer_batch_entries: int = Field(default=1000, ge=1)
    writer_batch_bytes: int = Field(default=16 << 20, ge=1024)
    writer_linger_s: float = Field(
        default=0.25, ge=0, le=10, description="under load, let a batch grow this long at most (0: insert at once)"
    )
    writer_quiet_s: float = Field(
        default=0.1, gt=0, le=10, description="stop growing a batch once no request has come for this long"
    )
    ingest_nice: int = Field(
        default=0,
        ge=0,
        le=19,
        description="nice value of the ingest threads (decode, writer, embedded inserts), e.g. 10: under CPU "
        "contention API queries go first (and the GIL switch interval drops to 0.5 ms so a request waits less "
        "for it). Only where the collector has a cgroup of its own (a container, a systemd unit): there nice "
        "orders its own threads only, elsewhere every other process beats ingest",
    )
    merge_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="nice value of the embedded store's background merges (0: the same as the API's): queries and "
        "inserts go first and merges take the CPU they leave. ClickHouse sets it only with CAP_SYS_NICE (without "
        "it the collector says so in its log and merges run at nice 0); a ClickHouse server takes "
        "os_threads_nice_value_merge_mutate in its own configuration instead",
    )
    query_readers: int = Field(
        default=4, ge=1, le=64, description="ClickHouse queries the API may run at once (one client each)"
    )
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After sent with 503/429")
    log_format: Literal["json", "console"] = "console"
    demo: bool = Field(default=False, description="run the built-in demo app against this collector")
    demo_rate: float = Field(default=5.0, gt=0)
    project: str = Field(default="default", description="the project rows are stamped with when no API keys exist")
    rate_limit_rps: float = Field(
        default=200.0, ge=0, description="requests a second per API key (0: no limit); past it, 429 + Retry-After"
    )
    rate_limit_burst: float = Field(default=400.0, ge=1, description="requests an API key may send at once")
    behind_auth_proxy: bool = Field(
        default=False,
        description="a proxy in front authenticates every request: allow a non-loopback --host without API keys",
    )
    metrics_series_cap: int = Field(
        default=2000,
        ge=2,
        description="per metric family, distinct label sets kept on /metrics and DogStatsD; "
        "the rest are counted under __other__",
    )
    datadog_prefix: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9_.]*$",
        description="namespace before every DogStatsD metric name (acme -> acme.llmpulse.llm.calls); "
        "DogStatsD itself is on when DD_AGENT_HOST or DD_DOGSTATSD_URL is set",
    )
    datadog_tags: str = Field(
        default="", description="extra constant DogStatsD tags, comma-separated: team:ml,region:eu"
    )
    datadog_flush_interval: float = Field(default=10.0, gt=0, description="seconds between DogStatsD flushes")
    datadog_max_samples: int = Field(
        default=1000, ge=1, description="distribution values sent per metric and tag set per flush; past it, sampled"
    )

    @model_validator(mode="after")
    def _paths(self) -> Settings:
        if self.storage is not None and not self.storage.startswith(("chdb://", "http://", "https://")):
            raise ValueError(
                f"storage must be a clickhouse-connect DSN: chdb:///abs/path or http(s)://host:8123/db, "
                f"got {self.storage!r}"
            )
        return self

    @property
    def storage_dsn(self) -> str:
        if self.storage:
            return self.storage
        return "chdb://" + str((self.data_dir / "clickhouse").resolve())

    @property
    def embedded(self) -> bool:
        return self.storage_dsn.startswith("chdb://")

    @property
    def wal_path(self) -> Path:
        return self.data_dir / "wal.sqlite3"
