"""``llmpulse serve`` and ``llmpulse migrate``: run the collector under uvicorn."""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any

import structlog
import uvicorn

from .logs import configure_logging
from .settings import LOOPBACK_HOSTS, Settings

__all__ = ["keys_command", "migrate_command", "serve"]

log = structlog.get_logger("llmpulse.collector")


def _keys_exist(settings: Settings) -> bool:
    from .auth import KeyStore

    return KeyStore(settings.data_dir).any_keys()


def serve(overrides: dict[str, Any], workers: int = 1) -> int:
    """Start the collector; returns the process exit code."""
    from .app import create_app

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        print(f"llmpulse serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    if workers > 1 and settings.embedded:
        print(
            "llmpulse serve: --workers > 1 needs a ClickHouse server (--storage http://...): the embedded "
            "store can be opened by one process only. Scale out with more collectors behind a load balancer.",
            file=sys.stderr,
        )
        return 2
    if settings.host not in LOOPBACK_HOSTS and not _keys_exist(settings) and not settings.behind_auth_proxy:
        print(
            f"llmpulse serve: refusing to listen on {settings.host} without API keys: anyone who can reach it "
            "could read and write your traces. Listen on 127.0.0.1 (the default), or set "
            "LLMPULSE_BEHIND_AUTH_PROXY=true if a proxy in front of the collector authenticates every request.",
            file=sys.stderr,
        )
        return 2
    app = create_app(settings)
    base = f"http://{settings.host}:{settings.port}"
    print(
        f"llmpulse collector on {base}\n"
        f"  OTLP/HTTP  {base}/v1/traces    feedback {base}/v1/feedback\n"
        f"  stats      {base}/api/stats    traces   {base}/api/traces\n"
        f"  metrics    {base}/metrics      API docs {base}/docs\n"
        f"  health     {base}/healthz      ready    {base}/readyz\n"
        f"  storage    {settings.storage_dsn if settings.embedded else 'ClickHouse server'}"
        f"{'   demo traffic on' if settings.demo else ''}\n"
        "Ctrl-C stops it (drains the write-ahead log first).",
        flush=True,
    )
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False, timeout_graceful_shutdown=10
    )
    server = _Server(config)
    try:
        server.run()
    except Exception as exc:  # startup failures (storage locked, port taken) get a plain message
        print(f"llmpulse serve: {exc}", file=sys.stderr)
        return 1
    return 0 if server.started else 1


class _Server(uvicorn.Server):
    """uvicorn's Server, except that on Ctrl-C / SIGTERM the demo app (which sends to this
    very server) is stopped and flushed first, while the server still accepts its spans."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        demo = getattr(getattr(self.config.app, "state", None), "demo", None)
        if demo is not None:
            from .app import stop_demo

            await asyncio.to_thread(stop_demo, demo)
        await super().shutdown(sockets)


def migrate_command(overrides: dict[str, Any]) -> int:
    from .storage import StorageError, Store
    from .storage.migrations import migrate

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        print(f"llmpulse migrate: {exc}", file=sys.stderr)
        return 2
    try:
        store = Store.connect(
            settings.storage_dsn,
            database=settings.database,
            retention_days=settings.retention_days,
            cluster=settings.cluster,
        )
        try:
            applied = migrate(store)
        finally:
            store.close()
    except StorageError as exc:
        print(f"llmpulse migrate: {exc}", file=sys.stderr)
        return 1
    print(f"applied migrations: {applied}" if applied else "schema is up to date")
    return 0


def keys_command(action: str, args: dict[str, Any]) -> int:
    """``llmpulse keys add|list|revoke``: prints a new key alone on stdout; never prints secrets otherwise."""
    from datetime import UTC, datetime

    from .auth import KeyStore

    try:
        settings = Settings(**({"data_dir": args["data_dir"]} if args.get("data_dir") else {}))
    except ValueError as exc:
        print(f"llmpulse keys: {exc}", file=sys.stderr)
        return 2
    store = KeyStore(settings.data_dir)
    if action == "add":
        try:
            key = store.add(args["project"])
        except ValueError as exc:
            print(f"llmpulse keys add: {exc}", file=sys.stderr)
            return 2
        print(key)
        print(
            f"llmpulse keys: created a key for project {args['project']!r} under {store.path}; it is shown only "
            "once. From now on the collector requires Authorization: Bearer <key> (restart not needed).",
            file=sys.stderr,
        )
        return 0
    if action == "list":
        for info in store.list():
            created = datetime.fromtimestamp(info.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            revoked = (
                datetime.fromtimestamp(info.revoked_at, UTC).strftime("revoked %Y-%m-%dT%H:%M:%SZ")
                if info.revoked_at
                else "active"
            )
            print(f"{info.id}  {info.project}  {created}  {revoked}")
        return 0
    if store.revoke(args["key_id"]):
        print(f"revoked {args['key_id'][:15]}", file=sys.stderr)
        return 0
    print(f"llmpulse keys revoke: no active key {args['key_id'][:15]!r} in {store.path}", file=sys.stderr)
    return 1
