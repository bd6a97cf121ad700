"""The ``llmpulse`` command."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ._version import __version__

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    """Send the demo support bot's traffic to a running collector until Ctrl-C or --duration."""
    import llmpulse

    from ._demo import DemoApp

    llmpulse.init(
        service=args.service, endpoint=args.endpoint, environment="demo", release=__version__, export_interval=0.5
    )
    app = DemoApp(rate=args.rate, adversarial_rate=args.adversarial_rate)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    app.start()
    print(f"demo app: {args.rate:g} conversations/s through the llmpulse SDK (Ctrl-C stops)", flush=True)
    stop.wait(args.duration)
    app.stop()
    llmpulse.shutdown(5.0)
    print(f"stopped after {app.conversations} conversations; SDK counters: {llmpulse.sdk_stats()}")
    return 0


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _storage_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage",
        default=None,
        help="clickhouse-connect DSN: chdb:///abs/path (default <data-dir>/clickhouse) or "
        "http(s)://user:pass@host:8123/db (LLMPULSE_STORAGE)",
    )
    p.add_argument("--data-dir", default=None, help="write-ahead log and embedded store (default ./.llmpulse)")
    p.add_argument("--database", default=None, help="ClickHouse database (default llmpulse)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmpulse", description="LLM observability: SDK tools and collector.")
    parser.add_argument("--version", action="version", version=f"llmpulse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demo support chatbot, sending real spans through the SDK")
    demo.add_argument(
        "--endpoint", default=None, help="collector base URL (default: LLMPULSE_ENDPOINT or http://127.0.0.1:4318)"
    )
    demo.add_argument("--rate", type=float, default=5.0, help="conversations per second (default 5)")
    demo.add_argument("--service", default="demo-support-bot", help="service.name of the demo app")
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    demo.add_argument(
        "--adversarial-rate",
        type=_share,
        default=0.04,
        help="share of questions the models refuse (default 0.04; e.g. 0.5 stages a refusal spike)",
    )
    serve = sub.add_parser("serve", help="run the collector (OTLP ingest, ClickHouse storage, query API)")
    _storage_flags(serve)
    serve.add_argument("--host", default=None, help="listen address (default 127.0.0.1; LLMPULSE_HOST)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default 4318; LLMPULSE_PORT)")
    serve.add_argument(
        "--demo",
        action="store_true",
        default=None,
        help="also run the demo support bot, sending real traffic through the SDK",
    )
    serve.add_argument("--workers", type=int, default=1, help="uvicorn workers (needs a ClickHouse server)")
    serve.add_argument("--log-format", choices=("console", "json"), default=None, help="log renderer")
    migrate = sub.add_parser("migrate", help="create or upgrade the ClickHouse schema, then exit")
    _storage_flags(migrate)
    keys = sub.add_parser("keys", help="manage the collector's API keys (stored hashed under the data dir)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    add = keys_sub.add_parser("add", help="create a key for a project and print it (only once, alone on stdout)")
    add.add_argument("--project", required=True, help="the project the key's data belongs to")
    listing = keys_sub.add_parser("list", help="list keys: id, project, created, revoked (never the secret)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id (or the whole key)")
    revoke.add_argument("key_id", help="the 12 hex characters after lp_ in the key, as `keys list` shows")
    for p in (add, listing, revoke):
        p.add_argument(
            "--data-dir", default=None, help="the collector's data directory (default .llmpulse; LLMPULSE_DATA_DIR)"
        )
    args = parser.parse_args(argv)
    if args.command in ("serve", "migrate", "keys"):
        try:
            server = importlib.import_module("llmpulse_collector.server")
        except ImportError as exc:
            print(
                f"llmpulse {args.command} needs the collector: pip install 'llmpulse[collector]' ({exc})",
                file=sys.stderr,
            )
            return 2
        if args.command == "keys":
            return int(server.keys_command(args.keys_command, vars(args)))
        overrides = {"storage": args.storage, "data_dir": args.data_dir, "database": args.database}
        if args.command == "migrate":
            return int(server.migrate_command(overrides))
        overrides.update(host=args.host, port=args.port, demo=args.demo, log_format=args.log_format)
        return int(server.serve(overrides, workers=args.workers))
    if args.command == "demo":
        if args.rate <= 0:
            parser.error("--rate must be positive")
        return _demo(args)
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":
    sys.exit(main())
