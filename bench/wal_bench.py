"""Write-ahead log throughput: group commit vs a naive commit per append, fsync on and off.

Workload: ``--threads`` request threads (default 8) append payloads of random bytes as fast
as they can for ``--seconds`` per configuration: 50 KB (a request of a few dozen spans with
content) and 1 KB (a feedback event or one small span), where per-commit costs dominate.

- ``group``: :class:`llmpulse_collector.wal.WriteAheadLog`: the appends queue, one
  committer thread writes everything queued in one transaction with one fsync.
- ``naive``: the same SQLite file, schema and pragmas, but every append is its own
  transaction (``BEGIN IMMEDIATE; INSERT; COMMIT``), serialised by a lock: the best a
  commit-per-append log can do (per-thread connections would add SQLite's busy sleeps).
- ``drained``: ``group`` with a writer thread draining the log at the same time
  (``next_batch`` of up to 1000 entries / 16 MB, then ``complete``), as in the collector.

All run in the same process, one after the other, on a fresh file each, in the directory
given by ``--dir`` (default ``./.llmpulse/``, where the collector keeps its log: /tmp is
often a tmpfs, where fsync costs nothing). Only ``drained`` drains the log during the run.

Prints the directory's raw fsync latency (what a commit per append pays each time), then
appends/s, payload MB/s, commits, mean group size and append latency (p50/p99) per
configuration, and the group/naive throughput ratio for fsync on and off.

Run: ``.venv/bin/python bench/wal_bench.py [--seconds 3] [--threads 8] [--sizes 50000,1000] [--dir PATH]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "collector"))

from llmpulse_collector import wal as wal_module
from llmpulse_collector.wal import WriteAheadLog


class NaiveLog:
    """The baseline: one transaction, one fsync, per append."""

    def __init__(self, path: Path, fsync: bool) -> None:
        WriteAheadLog(path, fsync=fsync).close()  # the same schema and file settings
        self._conn = wal_module._connect(path, fsync)  # the same pragmas
        self._lock = threading.Lock()
        self.commits = 0

    def append(self, kind: str, payload: bytes) -> int:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            cur = self._conn.execute(
                "INSERT INTO entries (kind, size, created_at, payload) VALUES (?, ?, ?, ?)",
                (kind, len(payload), time.time(), payload),
            )
            self._conn.execute("COMMIT")
            self.commits += 1
            return int(cur.lastrowid or 0)

    def close(self) -> None:
        self._conn.close()


@dataclass
class Result:
    mode: str
    fsync: bool
    appends: int
    seconds: float
    commits: int
    latencies: list[float]
    size: int
    drained: int

    @property
    def rate(self) -> float:
        return self.appends / self.seconds

    @property
    def mb_s(self) -> float:
        return self.appends * self.size / self.seconds / 1e6


def run(mode: str, fsync: bool, directory: Path, threads: int, size: int, seconds: float) -> Result:
    path = directory / f"{mode}-{'fsync' if fsync else 'nofsync'}.sqlite3"
    log: WriteAheadLog | NaiveLog
    if mode == "naive":
        log = NaiveLog(path, fsync)
        append: Callable[[str, bytes], int] = log.append
    else:
        log = WriteAheadLog(path, max_bytes=1 << 50, fsync=fsync)
        append = log.append
    payloads = [os.urandom(size) for _ in range(threads)]
    start = threading.Barrier(threads + 1)
    stop = threading.Event()
    drained = 0

    def drain(wal: WriteAheadLog) -> None:
        nonlocal drained
        while not stop.is_set():
            batch = wal.next_batch()
            if batch is None:
                stop.wait(0.01)
                continue
            wal.complete(batch.id)
            drained += len(batch.entries)

    latencies: list[list[float]] = [[] for _ in range(threads)]

    def work(n: int) -> None:
        payload, mine = payloads[n], latencies[n]
        start.wait()
        while not stop.is_set():
            began = time.perf_counter()
            append("spans", payload)
            mine.append(time.perf_counter() - began)

    workers = [threading.Thread(target=work, args=(n,), name=f"bench-{n}") for n in range(threads)]
    if isinstance(log, WriteAheadLog) and mode == "drained":
        workers.append(threading.Thread(target=drain, args=(log,), name="bench-writer"))
    for t in workers:
        t.start()
    start.wait()
    began = time.perf_counter()
    stop.wait(seconds)
    stop.set()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - began
    commits = log.commits
    log.close()
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    flat = [x for per_thread in latencies for x in per_thread]
    return Result(mode, fsync, len(flat), elapsed, commits, flat, size, drained)


def fsync_latency_ms(directory: Path, rounds: int = 200) -> float:
    """Median time of a 4 KB write plus fsync in ``directory``."""
    probe = directory / "fsync-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        times = []
        for _ in range(rounds):
            began = time.perf_counter()
            os.write(fd, bytes(4096))
            os.fsync(fd)
            times.append(time.perf_counter() - began)
    finally:
        os.close(fd)
        probe.unlink()
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per configuration")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--sizes", default="50000,1000", help="payload bytes, comma-separated")
    parser.add_argument("--dir", type=Path, default=Path(".llmpulse"), help="where the log files go")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[tuple[int, str, bool], Result] = {}
    with tempfile.TemporaryDirectory(prefix="wal-bench-", dir=args.dir) as tmp:
        print(f"{args.threads} threads, {args.seconds:g} s per row, in {tmp}")
        print(f"raw fsync of a 4 KB write there: {fsync_latency_ms(Path(tmp)):.3f} ms (median)")
        print(
            f"{'payload':>8}  {'mode':<9}{'fsync':<6}{'appends/s':>11}{'MB/s':>9}{'commits':>9}{'per commit':>12}"
            f"{'p50 ms':>9}{'p99 ms':>9}{'drained':>9}"
        )
        for size in sizes:
            for fsync in (True, False):
                for mode in ("group", "naive", "drained"):
                    r = run(mode, fsync, Path(tmp), args.threads, size, args.seconds)
                    results[(size, mode, fsync)] = r
                    q = statistics.quantiles(r.latencies, n=100)
                    print(
                        f"{size / 1000:>6g}KB  {mode:<9}{'on' if fsync else 'off':<6}{r.rate:>11,.0f}{r.mb_s:>9.1f}"
                        f"{r.commits:>9,}{r.appends / max(r.commits, 1):>12.1f}{q[49] * 1e3:>9.2f}{q[98] * 1e3:>9.2f}"
                        f"{r.drained if mode == 'drained' else '':>9}"
                    )
    print()
    for size in sizes:
        for fsync in (True, False):
            group, naive = results[(size, "group", fsync)], results[(size, "naive", fsync)]
            print(
                f"{size / 1000:g} KB, fsync {'on' if fsync else 'off'}: group commit / commit per append = "
                f"{group.rate / naive.rate:.2f}x throughput, {naive.commits / max(group.commits, 1):.1f}x fewer commits"
            )


if __name__ == "__main__":
    main()
