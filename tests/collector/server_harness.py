"""Run the real collector app under uvicorn on 127.0.0.1, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from llmpulse_collector.app import create_app
from llmpulse_collector.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(settings: Settings) -> Iterator[tuple[str, Any]]:
    """Yield (base URL, app) while the collector serves; shut it down (lifespan included) after."""
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-collector", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("collector failed to start")
        if time.monotonic() > deadline:
            raise TimeoutError("collector did not start within 60 s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(60)


def wait_for(fn: Any, timeout: float = 30.0) -> Any:
    """Poll ``fn`` until it returns a truthy value (the writer drains asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value {value!r}")
        time.sleep(0.1)
