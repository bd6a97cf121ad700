"""ClickHouse storage for the collector: one ``Store`` on embedded chDB or a ClickHouse server.

The same SQL runs on both; only the DSN differs::

    store = Store.connect("chdb:///var/lib/llmpulse/clickhouse")  # embedded, in this process
    store = Store.connect("https://user:pass@ch.example.com:8443")  # a server or a cluster
    migrations.migrate(store)
    store.insert("spans", rows, SPAN_COLUMNS, dedup_token="batch-42:spans")
    queries.stats(store, "default", window_s=3600, filters={}, group_by=["service", "model"])

Modules: ``clickhouse`` (connection, inserts, error mapping), ``migrations`` (versioned
schema), ``queries`` (the read API behind ``/api/stats`` and ``/api/traces``).

Exceptions::

    StorageError            a bug or a permanent problem: bad SQL, wrong types, a store in use
    └── StorageUnavailable  transient: network, server overloaded, timeouts; retry the same call

A ``StorageUnavailable`` insert is safe to retry with the same ``dedup_token``: ClickHouse
stores the batch once.
"""

from __future__ import annotations

__all__ = ["StorageError", "StorageUnavailable", "Store", "migrations", "queries"]


class StorageError(Exception):
    """Storage failed in a way retrying will not fix by itself (a bug, a bad DSN, a locked store)."""


class StorageUnavailable(StorageError):
    """Storage is unreachable or overloaded right now; retrying the same call later can succeed."""


# The exceptions above must exist before the submodules that raise them are imported.
from . import migrations, queries  # noqa: E402
from .clickhouse import Store  # noqa: E402
