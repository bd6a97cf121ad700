"""Collector ingest end to end (issue #8): OTLP/HTTP in, every span queryable, against chDB's own insert rate.

Workload: ``workload.otlp_requests`` bodies (500 LLM spans a request, ~1 KB of content a
span), built before any clock starts, posted by two concurrent sender threads over
keep-alive HTTP connections to the real collector (``llmpulse serve``, a separate process,
fresh data dir, embedded chDB, the write-ahead log's fsync on, the default).

- **End to end**: from the first request sent to the moment ``GET /api/stats`` counts every
  span (polled every 50 ms). Rate = spans / that time. The collector's CPU seconds (user +
  system, from ``/proc``) over the same interval give CPU per 1k spans; peak RSS is its VmHWM.
- **Baseline**: a separate process (chDB allows one data path per process) on a fresh path
  applies the collector's migrations (so the ``spans`` table has the same materialized views
  feeding the per-minute rollups: that is what storing a span costs) and inserts the *same
  rows* the collector stores, decoded with ``decode_traces`` from the same bodies and laid
  out as columns before its clock starts, through clickhouse-connect (``client.insert``,
  ``column_oriented=True``) in batches of ``--baseline-batch`` rows. Rate = rows / insert time.

Rounds alternate (end to end, baseline, end to end, ...) so both see the same machine; the
figures are medians over rounds, and the ratio is the median of per-round ratios. The
machine is shared: compare within one run. Each round also prints the collector's CPU split
by OS thread: the interpreter's threads (decode, log, writer, HTTP) against chDB's own
(insert pipeline, merges). ``--profile FILE`` runs py-spy on the first round's collector
while it ingests (collapsed stacks); ``--collector-source DIR`` runs the collector from
another checkout (``git archive <rev> collector sdk | tar -x -C DIR``) for before/after figures.

A round posts 200 requests (100k spans, ~7 s): with fewer, the drain of the last batch after
the last acknowledgement weighs on the end-to-end figure more than the rate does (60 requests,
30k spans, ~2 s a round, was the default until the compiled decoder; see the README).

Run: ``.venv/bin/python bench/ingest_e2e.py [--requests 200] [--rounds 3] [--json PATH] [--check]``
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import pickle
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from report import Row, add_arguments, finish
from workload import otlp_requests

ROOT = Path(__file__).resolve().parent.parent

TARGET = 0.5
PROJECT = "default"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds by OS thread name: Python's threads keep the process's name, chDB names its own."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _stored(port: int) -> int:
    status, body = _get(port, "/api/stats?window=86400")
    if status != 200:
        return -1
    calls: float = sum(g["calls"] for g in orjson.loads(body)["groups"])
    return round(calls)


def _send(port: int, bodies: list[bytes], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/x-protobuf"}
    for body in bodies:
        while True:
            conn.request("POST", "/v1/traces", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status == 200:
                break
            if resp.status in (429, 503):
                time.sleep(float(resp.getheader("Retry-After") or 1))
                continue
            errors.append(f"HTTP {resp.status}: {data[:200]!r}")
            return
    conn.close()


@contextlib.contextmanager
def running_collector(
    data_dir: Path, *, env: dict[str, str] | None = None, startup_s: float = 120
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``llmpulse serve`` on ``data_dir`` and a free port, ready; ``(port, process)``. Stopped with
    SIGINT (the collector drains its log) on the way out; its log is ``data_dir/collector.log``."""
    port = _free_port()
    cmd = [str(ROOT / ".venv/bin/llmpulse"), "serve", "--data-dir", str(data_dir), "--port", str(port)]
    log_path = data_dir / "collector.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*cmd, "--log-format", "json"], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + startup_s
            while True:
                try:
                    if _get(port, "/readyz")[0] == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"collector did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.05)
            yield port, proc
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def end_to_end(bodies: list[bytes], spans: int, profile: str | None, source: Path | None) -> dict[str, float]:
    """One round against a fresh collector process; its rate, CPU and peak RSS."""
    data_dir = Path(tempfile.mkdtemp(prefix="llmpulse-e2e-"))
    env = dict(os.environ)
    if source is not None:  # another checkout's collector and SDK, for before/after comparisons
        env["PYTHONPATH"] = f"{source / 'collector'}{os.pathsep}{source / 'sdk'}"
    try:
        with running_collector(data_dir, env=env) as (port, proc):
            pid = proc.pid
            spy = None
            if profile:  # from the first request to the last span stored, idle threads left out
                spy_cmd = [str(ROOT / ".venv/bin/py-spy"), "record", "-f", "raw", "-o", profile, "-p", str(pid)]
                spy = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)  # py-spy attaches
            errors: list[str] = []
            halves = [bodies[0::2], bodies[1::2]]
            senders = [threading.Thread(target=_send, args=(port, h, errors)) for h in halves]
            cpu0 = _cpu_s(pid)
            threads0 = _thread_cpu(pid)
            t0 = time.perf_counter()
            for s in senders:
                s.start()
            for s in senders:
                s.join()
            acked = time.perf_counter() - t0
            if errors:
                raise SystemExit(f"sender failed: {errors[0]}")
            while (n := _stored(port)) < spans:
                if time.perf_counter() - t0 > 600:
                    raise SystemExit(f"only {n} of {spans} spans stored after 600 s")
                time.sleep(0.05)
            elapsed = time.perf_counter() - t0
            cpu = _cpu_s(pid) - cpu0
            threads = _thread_cpu(pid)
            by_thread = {k: v - threads0.get(k, 0.0) for k, v in threads.items()}
            rss = _peak_rss_mib(pid)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            if n != spans:
                raise SystemExit(f"stored {n} spans, sent {spans}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    python = sum(v for k, v in by_thread.items() if k == "llmpulse")  # the interpreter's threads
    top = sorted(((v, k) for k, v in by_thread.items() if k != "llmpulse" and v > 0), reverse=True)[:4]
    print(
        f"    CPU ms per 1k spans: Python threads {python * 1e6 / spans:.0f}, chDB threads "
        f"{(cpu - python) * 1e6 / spans:.0f} ({', '.join(f'{k} {v * 1e6 / spans:.0f}' for v, k in top)})"
    )
    return {
        "rate": spans / elapsed,
        "acked_rate": spans / acked,
        "cpu_ms_per_1k": cpu * 1e6 / spans,
        "python_ms_per_1k": python * 1e6 / spans,
        "rss": rss,
    }


def run_worker(argv: list[str], stdin: str | None = None) -> dict[str, float]:
    """Run a benchmark's worker mode in a child process (chDB opens one data path per process);
    the JSON object it prints last."""
    out = subprocess.run([sys.executable, *argv], input=stdin, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"baseline worker failed:\n{out.stderr[-3000:]}")
    result: dict[str, float] = orjson.loads(out.stdout.strip().splitlines()[-1])
    return result


def baseline(bodies_file: Path, batch: int) -> dict[str, float]:
    """One baseline round, in a child process (one chDB path per process)."""
    return run_worker([__file__, "--baseline-worker", str(bodies_file), "--baseline-batch", str(batch)])


def baseline_worker(bodies_file: Path, batch: int) -> None:
    import clickhouse_connect

    from llmpulse._cost import PriceBook
    from llmpulse._refusal import RefusalDetector
    from llmpulse_collector.ingest import Limits
    from llmpulse_collector.ingest.otlp import decode_traces
    from llmpulse_collector.rows import SPAN_COLUMNS
    from llmpulse_collector.storage import Store
    from llmpulse_collector.storage.clickhouse import TABLE_SCHEMAS, _columns
    from llmpulse_collector.storage.migrations import migrate

    bodies: list[bytes] = pickle.loads(bodies_file.read_bytes())
    limits, prices, refusals = Limits(), PriceBook(), RefusalDetector()
    rows: list[dict[str, Any]] = []
    for body in bodies:
        result = decode_traces(
            body, content_type="application/x-protobuf", content_encoding=None, project=PROJECT,
            limits=limits, prices=prices, refusals=refusals,
        )  # fmt: skip
        rows.extend(result.spans)
    batches = [_columns("spans", rows[i : i + batch], SPAN_COLUMNS) for i in range(0, len(rows), batch)]
    from clickhouse_connect.datatypes.registry import get_from_name

    types = [get_from_name(t) for _, t, _ in TABLE_SCHEMAS["spans"]]
    path = Path(tempfile.mkdtemp(prefix="llmpulse-base-"))
    try:
        store = Store.connect(f"chdb://{path}/ch", database="llmpulse")
        migrate(store)
        client = clickhouse_connect.get_client(dsn=f"chdb://{path}/ch", database="llmpulse")
        t0 = time.perf_counter()
        for data in batches:
            client.insert("spans", data, column_names=list(SPAN_COLUMNS), column_types=types, column_oriented=True)
        elapsed = time.perf_counter() - t0
        stored = client.command("SELECT count() FROM spans")
        if stored != len(rows):
            raise SystemExit(f"baseline stored {stored} of {len(rows)} rows")
        client.close()
        store.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)
    print(orjson.dumps({"rate": len(rows) / elapsed}).decode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests of 500 spans a round (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--baseline-batch", type=int, default=10_000, help="rows per baseline insert")
    parser.add_argument(
        "--profile", metavar="TXT", help="py-spy record the first round's collector while it ingests (collapsed stacks)"
    )
    parser.add_argument(
        "--collector-source", type=Path, metavar="DIR", help="run the collector from another checkout (git worktree)"
    )
    parser.add_argument("--baseline-worker", type=Path, help=argparse.SUPPRESS)
    add_arguments(parser)
    args = parser.parse_args()
    if args.baseline_worker:
        baseline_worker(args.baseline_worker, args.baseline_batch)
        return 0

    bodies = otlp_requests(args.requests, spans=500, seed=8)
    spans = args.requests * 500
    print(f"{args.requests} requests x 500 spans ({sum(map(len, bodies)) / spans:.0f} bytes a span), 2 senders")
    e2e: list[dict[str, float]] = []
    base: list[dict[str, float]] = []
    with tempfile.NamedTemporaryFile(prefix="llmpulse-bodies-", suffix=".pickle") as f:
        f.write(pickle.dumps(bodies))
        f.flush()
        for r in range(args.rounds):
            e2e.append(end_to_end(bodies, spans, args.profile if r == 0 else None, args.collector_source))
            base.append(baseline(Path(f.name), args.baseline_batch))
            ratio = e2e[-1]["rate"] / base[-1]["rate"]
            print(
                f"  round {r + 1}: end to end {e2e[-1]['rate']:8,.0f} spans/s (acked {e2e[-1]['acked_rate']:,.0f}/s,"
                f" {e2e[-1]['cpu_ms_per_1k']:.0f} ms CPU/1k, {e2e[-1]['rss']:.0f} MiB)"
                f"   baseline {base[-1]['rate']:8,.0f} rows/s   ratio {ratio:.2f}"
            )

    def med(xs: list[dict[str, float]], k: str) -> float:
        return statistics.median(x[k] for x in xs)

    ratio = statistics.median(e["rate"] / b["rate"] for e, b in zip(e2e, base, strict=True))
    command = "python bench/ingest_e2e.py" + (f" --requests {args.requests}" if args.requests != 200 else "")
    base_name = "chDB insert of the same rows via clickhouse-connect"
    rows = [
        Row("Collector ingest end to end (OTLP → queryable)", round(med(e2e, "rate")), "spans/s", base_name,
            round(med(base, "rate")), round(ratio, 3), f"≥ {TARGET}×", ratio >= TARGET, command),
        Row("Collector CPU per 1k spans (end to end)", round(med(e2e, "cpu_ms_per_1k")), "ms", None, None, None,
            None, None, command),
        Row("Collector peak RSS (end to end)", round(med(e2e, "rss")), "MiB", None, None, None, None, None, command),
    ]  # fmt: skip
    print(f"\nmedians over {args.rounds} rounds:")
    print(f"  end to end   {rows[0].value:10,.0f} spans/s")
    print(f"  baseline     {rows[0].baseline_value:10,.0f} rows/s")
    print(f"  ratio        {ratio:10.2f}   (target ≥ {TARGET})")
    print(f"  CPU          {rows[1].value:10,.0f} ms per 1k spans")
    print(f"  peak RSS     {rows[2].value:10,.0f} MiB")
    return finish(rows, args)


if __name__ == "__main__":
    sys.exit(main())
