"""The read API at 10 million spans (issue #8): dashboards' queries over HTTP against a loaded collector.

    .venv/bin/python bench/query_scale.py [--spans 10000000] [--reuse] [--json PATH] [--check]

1. ``load_spans.py`` fills a fresh data dir (default ``.bench-data/query-<spans>``) with 24 h
   of traffic through the collector's own tables, views and rollups (a few minutes for 10M).
   ``--reuse`` keeps a directory already loaded with as many spans (its traffic then ends
   when it was loaded, so recent windows hold less: for iterating, not for the README).
2. ``llmpulse serve`` opens it (a separate process, embedded chDB, defaults). Each figure is
   the median of ``--repeat`` requests after warm-up, timed at the client:
   - ``GET /api/stats?window=86400&group_by=model``, the collector otherwise idle;
   - ``GET /api/stats?window=3600`` (the API's default grouping, service and model) idle, then
     while two senders post ``workload.otlp_requests`` (500-span OTLP requests) paced at half
     the ingest target: the target is 0.5x the insert baseline ``ingest_e2e.py`` measures, so
     the pace is 0.25x that baseline, read from its ``--json`` file (``--ingest-baseline``,
     as ``make bench`` runs them), else ``--ingest-rate`` spans/s (default 16,000: half the
     target by the issue's ~64k rows/s). Then the same offered at ``--flat-out-rate``
     (default 16,000), more than the collector takes here, at the default priority and with
     ``LLMPULSE_INGEST_NICE=10``; the rates reached are reported. Between the paced and the
     flat-out figures, the paced one again with ``LLMPULSE_MERGE_NICE=0`` (merges at the API's
     priority instead of the default 10);
   - ``GET /api/traces/{id}`` for traces spread over the day.
   The collector's peak RSS (VmHWM) over all of it is reported against 1.5 GiB.
3. Baseline, after the collector stops (one chDB process per path): a child process opens
   the same store and times the same answers computed from raw spans (``stats(...,
   source="raw")``: a GROUP BY over every span in the window) and the trace lookup with the
   ``trace_id`` skip index turned off, next to the rollup path called the same way, so the
   ratio compares like with like (no HTTP on either side).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from ingest_e2e import TARGET as INGEST_TARGET
from ingest_e2e import _get, _peak_rss_mib, run_worker, running_collector
from load_spans import MARKER, store_dsn
from report import Row, add_arguments, finish
from workload import otlp_requests

ROOT = Path(__file__).resolve().parent.parent
S = 10**9
TARGETS_MS = {"stats_24h_by_model": 100.0, "stats_1h_ingest": 50.0, "trace": 50.0}
RSS_TARGET_MIB = 1536.0
STATS_24H = "/api/stats?window=86400&group_by=model"
STATS_1H = "/api/stats?window=3600"


def _timed_get(port: int, path: str) -> float:
    started = time.perf_counter()
    status, body = _get(port, path)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise SystemExit(f"GET {path}: HTTP {status}: {body[:300]!r}")
    return elapsed


def _median_ms(port: int, paths: list[str], repeat: int, warmup: int = 3) -> float:
    for path in paths[:warmup]:
        _timed_get(port, path)
    times = [_timed_get(port, paths[i % len(paths)]) for i in range(repeat)]
    return statistics.median(times) * 1000


class Ingest:
    """Two sender threads posting OTLP requests at a paced total rate until stopped."""

    def __init__(self, port: int, bodies: list[bytes], spans_per_body: int, rate: float) -> None:
        self.port, self.bodies, self.per_body = port, bodies, spans_per_body
        self.interval = 2 * spans_per_body / rate  # each of the two senders sends every interval
        self.sent = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(2)]

    def __enter__(self) -> Ingest:
        self.started = time.perf_counter()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        self.elapsed = time.perf_counter() - self.started

    def _run(self, which: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": "application/x-protobuf"}
        next_at = time.perf_counter() + which * self.interval / 2
        i = which
        while not self._stop.is_set():
            if (wait := next_at - time.perf_counter()) > 0 and self._stop.wait(wait):
                break
            next_at += self.interval
            conn.request("POST", "/v1/traces", body=self.bodies[i % len(self.bodies)], headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status == 200:
                self.sent += self.per_body
            elif resp.status not in (429, 503):
                self.errors.append(f"HTTP {resp.status}: {data[:200]!r}")
                return
            i += 2
        conn.close()


def serve_and_measure(data_dir: Path, trace_ids: list[str], args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    with running_collector(data_dir, startup_s=300) as (port, proc):
        out["stats_1h_idle"] = _median_ms(port, [STATS_1H], args.repeat)
        out["stats_24h_by_model"] = _median_ms(port, [STATS_24H], args.repeat)
        rng = random.Random(3)
        paths = [f"/api/traces/{t}" for t in rng.sample(trace_ids, min(len(trace_ids), 100))]
        out["trace"] = _median_ms(port, paths, args.repeat)
        # The same lookups with the listing's start as a hint (what a UI linking from the list sends).
        hinted = [f"{path}?around={orjson.loads(_get(port, path)[1])['start']}" for path in paths[: args.repeat]]
        out["trace_around"] = _median_ms(port, hinted, args.repeat)
        out["stats_1h_ingest"], out["ingest_rate"] = _under_ingest(port, args, args.ingest_rate)
        rss = _peak_rss_mib(proc.pid)
    # Right after, the same pace with merges at the API's priority: what LLMPULSE_MERGE_NICE (10)
    # buys. (Before the flat-out runs, which leave merges pending for whatever comes next.)
    with running_collector(data_dir, env={**os.environ, "LLMPULSE_MERGE_NICE": "0"}, startup_s=300) as (port, _):
        out["stats_1h_ingest_merge0"], out["ingest_rate_merge0"] = _under_ingest(port, args, args.ingest_rate)
    with running_collector(data_dir, startup_s=300) as (port, proc):
        out["stats_1h_flat_out"], out["flat_out_rate"] = _under_ingest(port, args, args.flat_out_rate)
        out["rss_mib"] = max(rss, _peak_rss_mib(proc.pid))
    # Flat out again with ingest at a lower CPU priority: what LLMPULSE_INGEST_NICE buys.
    with running_collector(data_dir, env={**os.environ, "LLMPULSE_INGEST_NICE": "10"}, startup_s=300) as (port, _):
        out["stats_1h_flat_out_nice10"], out["flat_out_rate_nice10"] = _under_ingest(port, args, args.flat_out_rate)
    return out


def _under_ingest(port: int, args: argparse.Namespace, rate: float) -> tuple[float, float]:
    """Median ms of the last-hour stats while two senders post at ``rate`` spans/s; the rate reached."""
    bodies = otlp_requests(args.ingest_requests, spans=500, seed=11)
    with Ingest(port, bodies, 500, rate) as ingest:
        time.sleep(2.0)  # the senders reach their pace
        ms = _median_ms(port, [STATS_1H], args.repeat)
    if ingest.errors:
        raise SystemExit(f"ingest failed: {ingest.errors[0]}")
    return ms, ingest.sent / ingest.elapsed


def baseline(data_dir: Path, trace_ids: list[str], repeat: int) -> dict[str, float]:
    """Raw-span answers vs the rollup path, in a child process that opens the store itself."""
    argv = [__file__, "--baseline-worker", str(data_dir), "--repeat", str(repeat)]
    return run_worker(argv, stdin=json.dumps(trace_ids))


def baseline_worker(data_dir: Path, repeat: int) -> None:
    from llmpulse_collector.storage import Store, queries

    trace_ids: list[str] = json.loads(sys.stdin.read())

    def median_ms(fn: Any) -> float:
        fn()
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    rng = random.Random(3)
    ids = iter(rng.choices(trace_ids, k=10 * repeat + 10))
    indexed = "SELECT span_id FROM spans WHERE project = {p:String} AND trace_id = {t:String}"
    unindexed = indexed + " SETTINGS use_skip_indexes = 0"
    with Store.connect(store_dsn(data_dir), database="llmpulse") as store:
        out = {
            "stats_24h_by_model_raw": median_ms(
                lambda: queries.stats(store, "default", window_s=86400, group_by=["model"], source="raw")
            ),
            "stats_24h_by_model_direct": median_ms(
                lambda: queries.stats(store, "default", window_s=86400, group_by=["model"])
            ),
            "stats_1h_raw": median_ms(
                lambda: queries.stats(store, "default", window_s=3600, group_by=["service", "model"], source="raw")
            ),
            "stats_1h_direct": median_ms(
                lambda: queries.stats(store, "default", window_s=3600, group_by=["service", "model"])
            ),
            "trace_spans_unindexed": median_ms(lambda: store.query(unindexed, {"p": "default", "t": next(ids)})),
            "trace_spans_indexed": median_ms(lambda: store.query(indexed, {"p": "default", "t": next(ids)})),
        }
    print(orjson.dumps(out).decode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=10_000_000, help="spans to load (default 10,000,000)")
    parser.add_argument("--data-dir", type=Path, help="default: .bench-data/query-<spans>")
    parser.add_argument("--reuse", action="store_true", help="keep a directory already loaded with --spans")
    parser.add_argument("--repeat", type=int, default=30, help="requests per figure (default 30)")
    parser.add_argument(
        "--ingest-rate", type=float, default=16_000, help="spans/s posted during the 1 h query (see --ingest-baseline)"
    )
    parser.add_argument(
        "--ingest-baseline",
        type=Path,
        metavar="JSON",
        help="ingest_e2e.py's --json file: post at 0.25x its insert baseline (half the 0.5x target) instead",
    )
    parser.add_argument(
        "--flat-out-rate", type=float, default=16_000, help="spans/s offered for the flat-out figures (default 16,000)"
    )
    parser.add_argument("--ingest-requests", type=int, default=40, help="distinct 500-span bodies to cycle through")
    parser.add_argument("--baseline-worker", type=Path, help=argparse.SUPPRESS)
    add_arguments(parser)
    args = parser.parse_args()
    if args.baseline_worker:
        baseline_worker(args.baseline_worker, args.repeat)
        return 0
    pace = "the --ingest-rate offered"
    if args.ingest_baseline is not None and args.ingest_baseline.exists():
        (e2e,) = [r for r in json.loads(args.ingest_baseline.read_text()) if r["figure"].startswith("Collector ingest")]
        args.ingest_rate = e2e["baseline_value"] * INGEST_TARGET / 2
        pace = f"half the ingest target, 0.25× the run's {e2e['baseline_value']:,.0f} rows/s insert baseline"

    data_dir = args.data_dir or ROOT / ".bench-data" / f"query-{args.spans}"
    if not args.reuse and (data_dir / MARKER).exists():
        shutil.rmtree(data_dir)
    loader_cmd = [sys.executable, str(Path(__file__).with_name("load_spans.py")), "--spans", str(args.spans)]
    loader = subprocess.run([*loader_cmd, "--data-dir", str(data_dir)], check=False)
    if loader.returncode != 0:
        raise SystemExit("load_spans.py failed")
    info = json.loads((data_dir / MARKER).read_text())
    age_min = (time.time_ns() - info["end_ns"]) / 60 / S
    if age_min > 10:
        print(f"note: the loaded traffic ended {age_min:.0f} min ago; recent windows hold less of it")
    http_ms = serve_and_measure(data_dir, info["trace_ids"], args)
    base = baseline(data_dir, info["trace_ids"], max(7, args.repeat // 3))

    command = "python bench/query_scale.py" + (f" --spans {args.spans}" if args.spans != 10_000_000 else "")
    n = f"{info['spans'] / 1e6:g}M spans"
    ingest = f"{http_ms['ingest_rate']:,.0f} spans/s (paced at {args.ingest_rate:,.0f}: {pace})"
    nice10, nice0 = http_ms["stats_1h_flat_out_nice10"], http_ms["stats_1h_flat_out"]
    trace_ms, around_ms = http_ms["trace"], http_ms["trace_around"]
    rows = [
        Row(f"GET /api/stats 24 h by model ({n})", round(http_ms["stats_24h_by_model"], 1), "ms",
            "same answer from raw spans (GROUP BY, no HTTP)", round(base["stats_24h_by_model_raw"], 1),
            round(base["stats_24h_by_model_direct"] / base["stats_24h_by_model_raw"], 3),
            "≤ 100 ms", http_ms["stats_24h_by_model"] <= TARGETS_MS["stats_24h_by_model"], command),
        Row(f"GET /api/stats last hour by service and model, idle ({n})", round(http_ms["stats_1h_idle"], 1), "ms",
            None, None, None, None, None, command),
        Row(f"GET /api/stats last hour by service and model, ingest at {ingest} ({n})",
            round(http_ms["stats_1h_ingest"], 1), "ms",
            "same answer from raw spans (GROUP BY, no HTTP, no ingest)", round(base["stats_1h_raw"], 1),
            round(base["stats_1h_direct"] / base["stats_1h_raw"], 3),
            "≤ 50 ms", http_ms["stats_1h_ingest"] <= TARGETS_MS["stats_1h_ingest"], command),
        Row(f"... ingest flat out ({args.flat_out_rate:,.0f} offered, "
            f"{http_ms['flat_out_rate']:,.0f} spans/s taken)", round(nice0, 1), "ms",
            None, None, None, None, None, command),
        Row(f"... flat out with LLMPULSE_INGEST_NICE=10 ({http_ms['flat_out_rate_nice10']:,.0f} spans/s taken)",
            round(nice10, 1), "ms", "ingest at the API's CPU priority (the default)", round(nice0, 1),
            round(nice10 / nice0, 3), None, None, command),
        Row(f"... paced, merges at nice 10 (the default) against nice 0 (LLMPULSE_MERGE_NICE=0, "
            f"{http_ms['ingest_rate_merge0']:,.0f} spans/s, measured next)", round(http_ms["stats_1h_ingest"], 1), "ms",
            "merges at nice 0", round(http_ms["stats_1h_ingest_merge0"], 1),
            round(http_ms["stats_1h_ingest"] / http_ms["stats_1h_ingest_merge0"], 3), None, None, command),
        Row(f"GET /api/traces/{{id}} ({n})", round(http_ms["trace"], 1), "ms",
            "its spans without the trace_id skip index (no HTTP)", round(base["trace_spans_unindexed"], 1),
            round(base["trace_spans_indexed"] / base["trace_spans_unindexed"], 3),
            "≤ 50 ms", http_ms["trace"] <= TARGETS_MS["trace"], command),
        Row(f"... with the listing's start as a hint (?around=) ({n})", round(around_ms, 1), "ms",
            "the same lookups without it", round(trace_ms, 1), round(around_ms / trace_ms, 3), None, None, command),
        Row(f"Collector peak RSS, queries + ingest ({n})", round(http_ms["rss_mib"]), "MiB", None, None, None,
            "≤ 1536 MiB", http_ms["rss_mib"] <= RSS_TARGET_MIB, command),
    ]  # fmt: skip
    print(f"\n{n}, medians of {args.repeat} requests (ratios: rollup path / raw spans, both in-process):")
    for row in rows:
        target = f"   target {row.target}" if row.target else ""
        base_text = f"   baseline {row.baseline_value} ms, ratio {row.ratio}" if row.baseline_value else ""
        print(f"  {row.figure:60s} {row.value:>8} {row.unit}{target}{base_text}")
    return finish(rows, args)


if __name__ == "__main__":
    sys.exit(main())
