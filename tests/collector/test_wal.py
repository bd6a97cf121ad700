"""The write-ahead log: an acknowledged entry is never lost, never planned twice, replayed as it was."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmpulse_collector import wal as wal_module
from llmpulse_collector.wal import Batch, Entry, WalClosed, WalError, WalFull, WalLocked, WriteAheadLog


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "wal.sqlite3"


@pytest.fixture
def wal(path: Path) -> Iterator[WriteAheadLog]:
    log = WriteAheadLog(path)
    yield log
    log.close()


def _drain(log: WriteAheadLog, **limits: int) -> list[Batch]:
    batches = []
    while (batch := log.next_batch(**limits)) is not None:
        batches.append(batch)
        log.complete(batch.id)
    return batches


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


# -- basics -------------------------------------------------------------------------------------


def test_round_trip(wal: WriteAheadLog) -> None:
    assert wal.next_batch() is None
    assert (wal.bytes_used, wal.pending_entries, wal.oldest_age_s()) == (0, 0, 0.0)
    before = time.time()
    ids = [wal.append("spans", b"one"), wal.append("feedback", b"two!"), wal.append("spans", b"")]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert (wal.bytes_used, wal.pending_entries) == (7, 3)
    assert wal.oldest_age_s() >= 0.0

    batch = wal.next_batch()
    assert batch is not None
    assert [(e.id, e.kind, e.payload) for e in batch.entries] == list(
        zip(ids, ["spans", "feedback", "spans"], [b"one", b"two!", b""], strict=True)
    )
    assert all(before <= e.created_at <= time.time() for e in batch.entries)
    log_uuid, batch_no = batch.token.rsplit(":", 1)
    assert int(batch_no) == batch.id
    assert len(log_uuid) >= 16
    # Until it is completed the same batch comes back, whatever the limits: a retry is a replay.
    assert wal.next_batch(max_entries=1) == batch

    wal.complete(batch.id)
    wal.complete(batch.id)  # idempotent
    assert wal.next_batch() is None
    assert (wal.bytes_used, wal.pending_entries, wal.oldest_age_s()) == (0, 0, 0.0)


def test_oldest_first_within_limits(wal: WriteAheadLog) -> None:
    ids = [wal.append("spans", bytes(100)) for _ in range(7)]
    big = wal.append("spans", bytes(5000))
    last = wal.append("spans", bytes(10))
    seen: list[list[int]] = []
    tokens = set()
    while (batch := wal.next_batch(max_entries=3, max_bytes=250)) is not None:
        seen.append([e.id for e in batch.entries])
        tokens.add(batch.token)
        wal.complete(batch.id)
    # At most 3 entries and 250 bytes, but an entry over max_bytes still goes, alone.
    assert seen == [ids[0:2], ids[2:4], ids[4:6], [ids[6]], [big], [last]]
    assert len(tokens) == len(seen)


def test_ids_and_batch_ids_are_never_reused(path: Path) -> None:
    with WriteAheadLog(path) as log:
        first = log.append("spans", b"a")
        batch = log.next_batch()
        assert batch is not None
        log.complete(batch.id)
    with WriteAheadLog(path) as log:
        assert log.append("spans", b"b") > first
        again = log.next_batch()
        assert again is not None
        assert again.id > batch.id
        assert again.token != batch.token


def test_sqlite_is_in_wal_mode_with_the_requested_sync(path: Path) -> None:
    for fsync, level in ((True, 2), (False, 1)):  # FULL, NORMAL
        with WriteAheadLog(path, fsync=fsync) as log:
            log.append("spans", b"x")
            assert log.next_batch() is not None  # the writer connection works too
            assert log._commit_db.execute("PRAGMA synchronous").fetchone()[0] == level
            assert log._db.execute("PRAGMA synchronous").fetchone()[0] == level
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_a_log_of_another_format_is_refused(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT INTO meta VALUES ('log_uuid', 'abc'), ('schema_version', '2')")
    finally:
        conn.close()
    with pytest.raises(WalError, match="schema 2, this llmpulse reads 1"):
        WriteAheadLog(path)
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("DELETE FROM meta WHERE key = 'schema_version'")  # an older, unversioned layout
    finally:
        conn.close()
    with pytest.raises(WalError, match="schema unknown"):
        WriteAheadLog(path)


# -- group commit ---------------------------------------------------------------------------------


def test_concurrent_appends_share_commits(path: Path) -> None:
    threads, per_thread = 50, 20
    start = threading.Barrier(threads)
    results: list[list[int]] = [[] for _ in range(threads)]

    def work(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            results[n].append(wal.append("spans", f"{n}:{i}".encode() + bytes(1000)))

    with WriteAheadLog(path) as wal:
        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        total = threads * per_thread
        assert wal.appends == total
        assert wal.commits <= total // 5, (wal.commits, total)  # typically a few dozen
        batches = _drain(wal, max_entries=10_000)
    entries = {e.id: e.payload for b in batches for e in b.entries}
    assert len(entries) == total
    for n, ids in enumerate(results):
        assert ids == sorted(ids)  # one thread's appends keep their order
        for i, entry_id in enumerate(ids):
            assert entries[entry_id].startswith(f"{n}:{i}".encode())  # each caller got its own entry's id


def test_writer_drains_while_appenders_append(path: Path) -> None:
    appended: list[int] = []
    drained: list[int] = []
    done = threading.Event()

    def append(n: int) -> None:
        for i in range(200):
            appended.append(log.append("spans", f"{n}:{i}".encode() * 50))

    def drain() -> None:
        while True:
            batch = log.next_batch(max_entries=37, max_bytes=20_000)
            if batch is None:
                if done.is_set():
                    return
                time.sleep(0.001)
                continue
            drained.extend(e.id for e in batch.entries)
            log.complete(batch.id)

    with WriteAheadLog(path, fsync=False) as log:
        writer = threading.Thread(target=drain)
        writer.start()
        appenders = [threading.Thread(target=append, args=(n,)) for n in range(8)]
        for t in appenders:
            t.start()
        for t in appenders:
            t.join()
        done.set()
        writer.join(30)
        assert not writer.is_alive()
        assert (log.pending_entries, log.bytes_used) == (0, 0)
    assert len(appended) == 1600
    assert drained == sorted(appended)  # each exactly once, oldest first


# -- limits, timeouts, errors -------------------------------------------------------------------


def test_byte_cap_raises_wal_full_until_complete_frees_space(path: Path) -> None:
    with WriteAheadLog(path, max_bytes=1000) as log:
        log.append("spans", bytes(600))
        with pytest.raises(WalFull, match="retry later"):
            log.append("spans", bytes(401))
        log.append("spans", bytes(400))  # exactly at the cap is fine
        assert log.bytes_used == 1000
        with pytest.raises(WalFull):
            log.append("spans", b"x")
        batch = log.next_batch(max_entries=1)
        assert batch is not None
        assert log.bytes_used == 1000  # planned is not finished
        log.complete(batch.id)
        assert log.bytes_used == 400
        log.append("spans", bytes(600))
    with WriteAheadLog(path, max_bytes=1000) as log:  # the count survives a restart
        assert (log.bytes_used, log.pending_entries) == (1000, 2)
        with pytest.raises(WalFull):
            log.append("spans", b"x")


def test_append_timeout_withdraws_a_queued_entry(path: Path) -> None:
    with WriteAheadLog(path) as log:
        log.append("spans", b"warm up")
        errors: list[BaseException] = []

        def taken() -> None:
            try:
                log.append("spans", b"taken", timeout=0.2)
            except TimeoutError as exc:
                errors.append(exc)

        with log._write_lock:  # the committer cannot write: appends wait
            slow = threading.Thread(target=taken)
            slow.start()
            _wait_for(lambda: log._reserved > 0 and not log._queue)  # the committer took it, waits for the lock
            with pytest.raises(TimeoutError, match="do not acknowledge"):
                log.append("spans", b"withdrawn", timeout=0.05)
            slow.join()
            assert len(errors) == 1
        # "taken" was already in the committer's hands: it lands. "withdrawn" never does.
        _wait_for(lambda: log.pending_entries == 2)
        payloads = [e.payload for b in _drain(log) for e in b.entries]
        assert payloads == [b"warm up", b"taken"]
        assert log.bytes_used == 0


def test_full_disk_is_wal_full(path: Path) -> None:
    with WriteAheadLog(path) as log:
        pages = log._commit_db.execute("PRAGMA page_count").fetchone()[0]
        log._commit_db.execute(f"PRAGMA max_page_count = {pages + 4}")  # the committer has not started yet
        with pytest.raises(WalFull, match="disk"):
            log.append("spans", bytes(100_000))
        assert (log.bytes_used, log.pending_entries) == (0, 0)


def test_append_after_close_raises(path: Path) -> None:
    log = WriteAheadLog(path)
    log.append("spans", b"x")
    log.close()
    log.close()  # twice is fine
    with pytest.raises(WalClosed):
        log.append("spans", b"y")
    with pytest.raises(WalClosed):
        log.next_batch()
    with pytest.raises(WalClosed):
        log.complete(1)
    unused = WriteAheadLog(path)  # no committer thread was ever started
    unused.close()
    with pytest.raises(WalClosed):
        unused.append("spans", b"z")


def test_close_commits_what_is_queued(path: Path) -> None:
    acked: list[int] = []
    refused = 0
    lock = threading.Lock()
    start = threading.Barrier(17)

    def work() -> None:
        nonlocal refused
        start.wait()
        for _ in range(100):
            try:
                entry_id = log.append("spans", bytes(2000))
            except WalClosed:
                with lock:
                    refused += 1
                return
            with lock:
                acked.append(entry_id)

    log = WriteAheadLog(path)
    workers = [threading.Thread(target=work) for _ in range(16)]
    for t in workers:
        t.start()
    start.wait()
    _wait_for(lambda: len(acked) > 50)
    log.close()
    for t in workers:
        t.join()
    with WriteAheadLog(path) as log:
        stored = [e.id for b in _drain(log, max_entries=10_000) for e in b.entries]
    assert set(acked) <= set(stored)
    assert refused > 0
    assert len(acked) < 1600


def test_a_second_open_is_refused(path: Path) -> None:
    with WriteAheadLog(path), pytest.raises(WalLocked, match="already open"):
        WriteAheadLog(path)
    WriteAheadLog(path).close()  # released on close


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_cannot_use_the_parents_log(wal: WriteAheadLog) -> None:
    wal.append("spans", b"before fork")
    with warnings.catch_warnings():  # 3.12+ warns about fork() with threads: this test means it
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover -- the child
        try:
            wal.append("spans", b"from the child")
        except WalClosed:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert wal.append("spans", b"after fork") > 0
    assert wal.pending_entries == 2


def test_oldest_age_follows_the_oldest_unfinished_entry(wal: WriteAheadLog) -> None:
    wal.append("spans", b"old")
    _wait_for(lambda: wal.oldest_age_s() > 0.05)
    wal.append("spans", b"new")
    batch = wal.next_batch(max_entries=1)
    assert batch is not None
    aged = wal.oldest_age_s()
    wal.complete(batch.id)
    assert wal.oldest_age_s() < aged
    batch = wal.next_batch()
    assert batch is not None
    wal.complete(batch.id)
    assert wal.oldest_age_s() == 0.0


def test_disk_space_comes_back_after_a_backlog(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal_module, "_VACUUM_MIN_FREE_BYTES", 1 << 20)
    monkeypatch.setattr(wal_module, "_VACUUM_STEP_BYTES", 1 << 30)

    def free_pages() -> int:
        conn = sqlite3.connect(path)
        try:
            return int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        finally:
            conn.close()

    with WriteAheadLog(path, fsync=False) as log:
        for _ in range(40):
            log.append("spans", os.urandom(100_000))
        _drain(log, max_entries=10)
        assert free_pages() < 100  # 4 MB were freed and given back, not kept on the freelist


# -- recovery -----------------------------------------------------------------------------------


def test_planned_batch_survives_reopen(path: Path) -> None:
    with WriteAheadLog(path) as log:
        ids = [log.append(k, f"payload {i}".encode()) for i, k in enumerate(["spans", "feedback"] * 3)]
        planned = log.next_batch(max_entries=4)
        assert planned is not None
    with WriteAheadLog(path) as log:
        assert (log.pending_entries, log.bytes_used) == (6, 6 * len(b"payload 0"))
        assert log.oldest_age_s() > 0.0
        replayed = log.next_batch(max_entries=1, max_bytes=1)
        assert replayed == planned  # same id, token, entries (ids, kinds, payloads, timestamps)
        log.complete(replayed.id)
        rest = log.next_batch()
        assert rest is not None
        assert [e.id for e in rest.entries] == ids[4:]  # never an entry of the earlier plan
        assert rest.token.split(":")[0] == planned.token.split(":")[0]  # the same log uuid
        assert rest.id > planned.id


def test_new_plan_after_reopen_excludes_entries_of_an_unfinished_plan(path: Path) -> None:
    with WriteAheadLog(path) as log:
        ids = [log.append("spans", b"x") for _ in range(3)]
        planned = log.next_batch(max_entries=2)
        assert planned is not None
    with WriteAheadLog(path) as log:
        later = log.append("spans", b"y")
        first = log.next_batch()
        assert first == planned
        log.complete(first.id)
        second = log.next_batch()
        assert second is not None
        assert [e.id for e in second.entries] == [ids[2], later]
        assert isinstance(second.entries[0], Entry)


# -- crashes: a real SIGKILL ----------------------------------------------------------------------

_CHILD_PRELUDE = r"""
import os, random, sys, threading, time
from llmpulse_collector.wal import WriteAheadLog

path, fsync, seed = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
wal = WriteAheadLog(path, fsync=fsync)
out = threading.Lock()

def say(line):
    data = (line + "\n").encode()
    with out:  # one line at a time, straight to the pipe: nothing buffered in this process
        while data:
            data = data[os.write(1, data):]

def append(n):
    rng = random.Random(seed * 100 + n)
    for seq in range(1_000_000):
        tag = f"{seed}-{n}-{seq}"
        entry_id = wal.append("spans", tag.encode() + b"|" + rng.randbytes(rng.randint(0, 3000)))
        say(f"A {entry_id} {tag}")  # printed only once append returned: acknowledged
"""

_APPENDERS = (
    _CHILD_PRELUDE
    + r"""
for n in range(4):
    threading.Thread(target=append, args=(n,), daemon=True).start()
threading.Event().wait()
"""
)

_APPENDERS_AND_WRITER = (
    _CHILD_PRELUDE
    + r"""
def write():
    rng = random.Random(seed)
    while True:
        batch = wal.next_batch(max_entries=rng.randint(1, 40), max_bytes=rng.randint(1, 60_000))
        if batch is None:
            time.sleep(0.001)
            continue
        time.sleep(rng.random() * 0.003)  # the insert into ClickHouse
        say(f"I {batch.id} {batch.token} {','.join(str(e.id) for e in batch.entries)}")  # inserted
        wal.complete(batch.id)

for n in range(3):
    threading.Thread(target=append, args=(n,), daemon=True).start()
threading.Thread(target=write, daemon=True).start()
threading.Event().wait()
"""
)


def _run_and_kill(script: str, path: Path, fsync: bool, seed: int) -> list[str]:
    """Run ``script`` until it has acknowledged some appends, SIGKILL it at a random moment, return its lines."""
    rng = random.Random(seed)
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(path), "1" if fsync else "0", str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=path.parent,  # import the package from where the tests found it, not from a checkout in cwd
    )
    output = bytearray()
    got_some = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            output.extend(chunk)
            if output.count(b"\n") >= 20:
                got_some.set()
        got_some.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert got_some.wait(30), "the child never acknowledged an append"
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.4))  # the random moment
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(30)
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        proc.stderr.close()
    assert "Traceback" not in stderr, stderr
    lines = bytes(output).decode().split("\n")
    return lines[:-1]  # the last one is cut off by the kill (or empty): not acknowledged


@pytest.mark.slow
@pytest.mark.parametrize("fsync", [True, False])
def test_sigkill_loses_no_acknowledged_append(path: Path, fsync: bool) -> None:
    acked: dict[int, str] = {}
    for seed in range(4):
        for line in _run_and_kill(_APPENDERS, path, fsync, seed):
            _, entry_id, tag = line.split(" ")
            assert int(entry_id) not in acked, "an id was handed out twice"
            acked[int(entry_id)] = tag
    assert len(acked) >= 80
    with WriteAheadLog(path) as log:
        entries = [e for b in _drain(log, max_entries=5000) for e in b.entries]
    stored = [e.id for e in entries]
    assert stored == sorted(set(stored))  # exactly once each, oldest first
    by_id = {e.id: e.payload for e in entries}
    for entry_id, tag in acked.items():
        assert by_id[entry_id].split(b"|")[0] == tag.encode()  # present, and the entry its caller was told


@pytest.mark.slow
def test_sigkill_while_planning_and_completing(path: Path) -> None:
    acked: set[int] = set()
    inserted: dict[str, tuple[int, ...]] = {}  # what ClickHouse saw, by dedup token

    def insert(token: str, ids: tuple[int, ...]) -> None:
        # A token is reused only for the very same rows; otherwise ClickHouse would drop data.
        assert inserted.setdefault(token, ids) == ids, f"batch {token} replayed with other entries"

    for seed in range(5):
        for line in _run_and_kill(_APPENDERS_AND_WRITER, path, True, seed):
            kind, *fields = line.split(" ")
            if kind == "A":
                acked.add(int(fields[0]))
            else:
                insert(fields[1], tuple(int(i) for i in fields[2].split(",")))
    with WriteAheadLog(path) as log:
        for batch in _drain(log, max_entries=5000):
            insert(batch.token, tuple(e.id for e in batch.entries))
    everything = [entry_id for ids in inserted.values() for entry_id in ids]
    assert len(everything) == len(set(everything)), "an entry was in two plans"
    assert acked <= set(everything), f"lost: {sorted(acked - set(everything))[:10]}"
    assert len(acked) >= 40
    assert len(inserted) >= 5
    assert len({token.split(":")[0] for token in inserted}) == 1
