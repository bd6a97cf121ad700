"""What llmpulse adds to an app besides CPU per call: import time, memory, and a 10k calls/s burst.

Each figure runs in fresh child processes, llmpulse and the bare OpenTelemetry SDK
(TracerProvider + BatchSpanProcessor + the official OTLP/HTTP exporter, the baseline of
``sdk_overhead.py``) alternating, with the same workload (``sdk_overhead.py``'s ~2 KB
system prompt, ~1 KB reply, two assertions on the llmpulse side), exporting to the same
local sink:

- import time: wall time of ``import llmpulse`` vs importing the OTel SDK and exporter;
- RSS added: resident memory after import + setup + 10,000 calls and a flush, minus the
  process's before the import (after the app's own imports; default queue and batch sizes);
- 10k calls/s: the app calls at a paced 10,000 calls/s for a few seconds with default
  settings, starting 1 s after setup (and once more right at setup, "cold"), waiting
  between calls with ``sleep(0)`` (the GIL free, as an app waiting on its next request);
  reported: the rate it achieved, spans dropped (SDK counters), spans exported, and the
  app's median and p99 time per call, against the same paced loop calling the function
  undecorated (how much the app was slowed).

Usage: python bench/sdk_footprint.py [--runs 5] [--seconds 3] [--json PATH] [--check]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from report import Row, add_arguments, finish
from sdk_overhead import start_sink

ROOT = Path(__file__).resolve().parent

# Child programs. Each prints one JSON object on its last line.
IMPORT_LLMPULSE = "import time; t = time.perf_counter(); import llmpulse; print((time.perf_counter() - t) * 1e3)"
IMPORT_OTEL = (
    "import time; t = time.perf_counter(); import opentelemetry.sdk.trace, "
    "opentelemetry.sdk.trace.export, opentelemetry.exporter.otlp.proto.http.trace_exporter; "
    "print((time.perf_counter() - t) * 1e3)"
)

CHILD = r"""
import json, sys, time
sys.path.insert(0, {bench!r})
def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
side, mode, endpoint, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
import sdk_overhead as so
so.response()  # the app's own imports (openai's types) are not counted
before = rss_kib()
if side == "llmpulse":
    import llmpulse
    from llmpulse import check
    resp = so.response()
    llmpulse.init(service="bench", endpoint=endpoint)  # defaults: queue 2048, batch 512
    @llmpulse.llm(provider="openai", model="gpt-4o-mini", assertions=[check.starts_lowercase(), check.max_length(4000)])
    def call(messages):
        return resp
    messages = [{{"role": "system", "content": so.SYSTEM_PROMPT}}, {{"role": "user", "content": so.USER_MESSAGE}}]
    fn = lambda: call(messages)
    flush = lambda: llmpulse.flush(60)
    stats = llmpulse.sdk_stats
elif side == "otel":
    fn, flush, _ = so.make_otel(endpoint)
    stats = lambda: {{}}
else:  # the app's own loop, undecorated
    resp = so.response()
    def call(messages):
        return resp
    messages = [{{"role": "system", "content": so.SYSTEM_PROMPT}}, {{"role": "user", "content": so.USER_MESSAGE}}]
    fn = lambda: call(messages)
    flush = lambda: None
    stats = lambda: {{}}
out = {{}}
if mode == "rss":
    for _ in range(10_000):
        fn()
    flush()
    out["rss_added_mib"] = (rss_kib() - before) / 1024
else:  # paced 10k calls/s, starting 1 s after setup ("burst") or at once ("cold")
    if mode == "burst":
        time.sleep(1.0)
    rate = 10_000
    n = int(rate * seconds)
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        due = t0 + i / rate
        # Wait as an app waits for its next request: without holding the GIL.
        while time.perf_counter() < due:
            time.sleep(0)
        a = time.perf_counter_ns()
        fn()
        lat.append(time.perf_counter_ns() - a)
    took = time.perf_counter() - t0
    flush()
    lat.sort()
    s = stats()
    out.update(
        rate=n / took,
        p50_us=lat[len(lat) // 2] / 1e3,
        p99_us=lat[int(len(lat) * 0.99)] / 1e3,
        dropped=sum(v for k, v in s.items() if k.startswith("spans_dropped")),
        exported=s.get("spans_exported", 0),
        calls=n,
    )
print(json.dumps(out))
"""


def run_child(side: str, mode: str, endpoint: str, seconds: float) -> dict[str, Any]:
    code = CHILD.format(bench=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code, side, mode, endpoint, str(seconds)], capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise SystemExit(f"{side} {mode} child failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def import_ms(program: str) -> float:
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="child processes per side and figure")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the 10k calls/s burst")
    add_arguments(parser)
    args = parser.parse_args()

    imports: dict[str, list[float]] = {"llmpulse": [], "otel": []}
    for _ in range(args.runs):
        imports["llmpulse"].append(import_ms(IMPORT_LLMPULSE))
        imports["otel"].append(import_ms(IMPORT_OTEL))

    sink, endpoint = start_sink()
    try:
        rss: dict[str, list[float]] = {"llmpulse": [], "otel": []}
        burst: dict[str, list[dict[str, Any]]] = {"llmpulse": [], "plain": []}
        cold: list[dict[str, Any]] = []
        for _ in range(args.runs):
            for side, sizes in rss.items():
                sizes.append(run_child(side, "rss", endpoint, args.seconds)["rss_added_mib"])
            for side, runs in burst.items():
                runs.append(run_child(side, "burst", endpoint, args.seconds))
            cold.append(run_child("llmpulse", "cold", endpoint, args.seconds))
    finally:
        sink.terminate()
        sink.wait()

    med = statistics.median
    imp = {k: med(v) for k, v in imports.items()}
    mem = {k: med(v) for k, v in rss.items()}
    ours = {k: med(r[k] for r in burst["llmpulse"]) for k in ("rate", "p50_us", "p99_us")}
    plain = {k: med(r[k] for r in burst["plain"]) for k in ("rate", "p50_us", "p99_us")}
    dropped = sum(r["dropped"] for r in burst["llmpulse"])
    calls = sum(r["calls"] for r in burst["llmpulse"])
    exported = sum(r["exported"] for r in burst["llmpulse"])
    cold_dropped = sum(r["dropped"] for r in cold)
    cold_calls = sum(r["calls"] for r in cold)

    print(f"{args.runs} child processes per side and figure (medians)")
    print(f"  import: llmpulse {imp['llmpulse']:.0f} ms, OTel SDK + OTLP/HTTP exporter {imp['otel']:.0f} ms")
    print(f"  RSS added by setup + 10,000 calls: llmpulse {mem['llmpulse']:.1f} MiB, OTel {mem['otel']:.1f} MiB")
    print(
        f"  10k calls/s for {args.seconds:.0f} s: achieved {ours['rate']:,.0f}/s (undecorated {plain['rate']:,.0f}/s), "
        f"per call p50 {ours['p50_us']:.1f} µs p99 {ours['p99_us']:.1f} µs "
        f"(undecorated {plain['p50_us']:.2f} / {plain['p99_us']:.2f} µs); "
        f"{exported:,} of {calls:,} spans exported, {dropped:,} dropped (counted)"
    )
    print(f"  the same burst from a cold start (no pause after init): {cold_dropped:,} of {cold_calls:,} dropped")
    cmd = "python bench/sdk_footprint.py"
    otel = "bare OTel SDK + OTLP/HTTP exporter"
    rows = [
        Row("`import llmpulse`", imp["llmpulse"], "ms", "import of " + otel, imp["otel"],
            imp["llmpulse"] / imp["otel"], None, None, cmd),
        Row("RSS added (setup + 10,000 calls)", mem["llmpulse"], "MiB", otel + ", same calls", mem["otel"],
            mem["llmpulse"] / mem["otel"], None, None, cmd),
        Row("Call rate held at a paced 10k calls/s", ours["rate"], "calls/s", "same loop undecorated",
            plain["rate"], ours["rate"] / plain["rate"], "≥ 0.99×", ours["rate"] / plain["rate"] >= 0.99, cmd),
        Row("p99 time per call at 10k calls/s", ours["p99_us"], "µs", "same loop undecorated", plain["p99_us"],
            ours["p99_us"] / plain["p99_us"], None, None, cmd),
        Row("Spans dropped at 10k calls/s (counted in sdk_stats)", dropped, "spans", f"of {calls:,} calls", None,
            None, None, None, cmd),
        Row("... the same burst starting at init (cold)", cold_dropped, "spans", f"of {cold_calls:,} calls", None,
            None, None, None, cmd),
    ]  # fmt: skip
    sys.exit(finish(rows, args))


if __name__ == "__main__":
    main()
