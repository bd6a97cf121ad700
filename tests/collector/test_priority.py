"""Ingest threads run at a lower CPU priority than the API's queries (Linux per-thread nice)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import known_batch
import pytest
from server_harness import free_port, running, wait_for
from structlog.testing import capture_logs

from llmpulse_collector.priority import SWITCH_INTERVAL_S, has_cap_sys_nice, lower_thread_priority, thread_nice
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


def test_store_checks_the_merge_priority(chdb_path: Any) -> None:
    for bad in (-1, 20, True):
        with pytest.raises(ValueError, match="merge_nice must be an integer from 0 to 19"):
            Store.connect(f"chdb://{chdb_path}", database="x", merge_nice=bad)


def _without_cap_sys_nice(argv: list[str]) -> list[str]:
    """``argv`` run without CAP_SYS_NICE (util-linux ``setpriv``: a root process keeps only the
    capabilities left in its bounding set across exec)."""
    return ["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice", *argv]


def test_the_capability_check_reads_the_process_capabilities() -> None:
    probe = [sys.executable, "-c", "from llmpulse_collector.priority import has_cap_sys_nice as h; print(h())"]
    assert subprocess.run(_without_cap_sys_nice(probe), capture_output=True, text=True, check=True).stdout == "False\n"
    # This process: the same answer as the kernel's effective set, read another way.
    effective = int(Path("/proc/self/status").read_text().split("CapEff:")[1].split()[0], 16)
    assert has_cap_sys_nice() == bool(effective & (1 << 23))


def _merge_threads(pid: int) -> list[tuple[int, int]]:
    """(nice, CPU ticks) of each of a process's ClickHouse merge threads (none until it merges)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            stat = (task / "stat").read_text()
            if stat[stat.index("(") + 1 : stat.rindex(")")] == "MergeMutate":
                fields = stat[stat.rindex(")") + 2 :].split()  # from the state, field 3
                found.append((int(fields[16]), int(fields[11]) + int(fields[12])))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("capability", ["as is", "dropped", "dropped, asked for"])
def test_collector_merges_at_the_merge_priority(tmp_path: Path, capability: str) -> None:
    """``llmpulse serve`` (defaults: merge nice 10) on a fresh store: a thread running a merge is
    at nice 10 when the collector holds CAP_SYS_NICE (ClickHouse sets it per merge and back to 0
    after); without it merges run at 0 and the collector says so (a warning when the setting was
    asked for, a note for the default)."""
    port = free_port()
    argv = [sys.executable, "-m", "llmpulse._cli", "serve", "--port", str(port), "--data-dir", str(tmp_path / "d")]
    if capability.startswith("dropped"):
        argv = _without_cap_sys_nice(argv)
    # Every request its own insert, so parts pile up and ClickHouse merges them.
    env = {**os.environ, "LLMPULSE_WRITER_LINGER_S": "0", "LLMPULSE_LOG_FORMAT": "json"}
    if capability.endswith("asked for"):
        env["LLMPULSE_MERGE_NICE"] = "10"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    has_cap = has_cap_sys_nice() and capability == "as is"
    seen: set[int] = set()
    merge_ticks = sent = 0
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: proc.poll() is None and _ready(url), timeout=60)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (10 in seen or (sent >= 60 and merge_ticks > 0)):
            body = known_batch.encode(known_batch.calls(5), trace_base=0xB000 + 16 * sent)
            response = httpx.post(f"{url}/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
            assert response.status_code == 200, response.text
            sent += 1
            until = time.monotonic() + 0.05
            while time.monotonic() < until:  # sample the merge threads while the insert lands
                threads = _merge_threads(proc.pid)
                seen.update(nice for nice, _ in threads)
                merge_ticks = max(merge_ticks, sum(ticks for _, ticks in threads))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert seen, f"no merge after {sent} requests"
    assert (10 in seen) == has_cap, f"merge threads' nice values seen: {seen} ({sent} requests)"
    said = [json.loads(line) for line in log_path.read_text().splitlines() if "engine_priority_unchanged" in line]
    assert [e["level"] for e in said] == ([] if has_cap else ["warning" if "asked" in capability else "info"])


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_engine_already_running_keeps_its_merge_priority(settings: Settings, chdb_path: Path) -> None:
    """The shared engine of this pytest process started with merges at nice 0 (the keeper's store):
    a collector asking for 10 on it is told it did not get it."""
    from llmpulse_collector.app import _check_engine_priorities

    with Store.connect(settings.storage_dsn, database=settings.database, merge_nice=10) as store:
        assert store.merge_nice == 0
        with capture_logs() as logs:
            _check_engine_priorities(settings.model_copy(update={"merge_nice": 10}), store)
            _check_engine_priorities(settings.model_copy(update={"merge_nice": 0, "ingest_nice": 0}), store)
    assert [(e["event"], e["asked"], e["running"]) for e in logs] == [("merge_priority_unchanged", 10, 0)]
