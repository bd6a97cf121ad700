"""Ingest threads run at a lower CPU priority than the API's queries (Linux per-thread nice)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import known_batch
import pytest
from server_harness import running, wait_for

from llmpulse_collector.priority import SWITCH_INTERVAL_S, lower_thread_priority, thread_nice
from llmpulse_collector.settings import Settings
from llmpulse_collector.storage import Store

pytestmark = [
    pytest.mark.collector,
    pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's"),
]


def _in_thread(fn: Callable[[], Any]) -> Any:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join(10)
    return out[0]


def test_lowering_applies_to_the_calling_thread_only() -> None:
    before = thread_nice()

    def lowered() -> tuple[int, int]:
        lower_thread_priority(10)
        return thread_nice(), threading.get_native_id()

    nice, _ = _in_thread(lowered)
    assert nice == max(before, 10)
    assert thread_nice() == before  # the caller's thread kept its priority


def test_lowering_never_raises_priority_and_checks_its_argument() -> None:
    def twice() -> int:
        lower_thread_priority(15)
        lower_thread_priority(10)  # asks for more priority than it has: left at 15
        return thread_nice()

    assert _in_thread(twice) == 15
    assert _in_thread(lambda: (lower_thread_priority(0), thread_nice())[1]) == thread_nice()
    for bad in (-1, 20):
        with pytest.raises(ValueError, match="nice must be from 0 to 19"):
            lower_thread_priority(bad)


@pytest.fixture
def switch_interval() -> Iterator[None]:
    """Restore the process's GIL switch interval (a collector with ingest priority shortens it)."""
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def test_collector_decodes_and_writes_on_lowered_threads(settings: Settings, switch_interval: None) -> None:
    cfg = settings.model_copy(update={"ingest_nice": 7})
    with running(cfg) as (url, app):
        collector = app.state.collector
        response = httpx.post(
            f"{url}/v1/traces",
            content=known_batch.encode(known_batch.calls(5)),
            headers={"content-type": "application/x-protobuf"},
        )
        assert response.status_code == 200, response.text
        wait_for(lambda: collector.writer.rows_written >= 1)
        decode_threads = list(collector.decode_pool._threads)
        assert decode_threads
        assert {thread_nice(t.native_id) for t in decode_threads} == {7}
        # Between inserts (ClickHouse resets a thread's nice when a query on it ends).
        writer_id = collector.writer._thread.native_id
        wait_for(lambda: thread_nice(writer_id) == 7)
        # The API's side is untouched: the event loop thread and the query readers.
        assert thread_nice() == 0
        # and a request thread waiting for the GIL gets it after 0.5 ms, not 5
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)


def test_switch_interval_is_left_alone_without_ingest_priority(settings: Settings, switch_interval: None) -> None:
    sys.setswitchinterval(0.005)  # CPython's default
    with running(settings) as (url, _app):
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert sys.getswitchinterval() == pytest.approx(0.005)


def test_store_checks_the_insert_priority(chdb_path: Any) -> None:
    for bad in (-1, 20, True):
        with pytest.raises(ValueError, match="insert_nice must be an integer from 0 to 19"):
            Store.connect(f"chdb://{chdb_path}", database="x", insert_nice=bad)
