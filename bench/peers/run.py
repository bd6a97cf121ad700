"""Issue #8's peers mode: the SDK workload through Langfuse, Traceloop, OpenLIT and ddtrace.

Each peer runs in its own venv (their pins conflict), built once under ``.bench-venvs/<peer>``
from the full lock ``bench/peers/<peer>.txt`` and rebuilt only when that file changes (a
hash stamp). llmpulse runs through the same harness in the repo's ``.venv``, both as
``@llmpulse.llm`` (sdk_overhead.py's workload) and as ``instrument_openai()``.

Every harness (``harness.py``) measures, in its own process and alternating rounds: the
uninstrumented function, the peer's instrumented one, and issue #8's baseline (a bare OTel
SDK span with the same GenAI attributes and content, ``BatchSpanProcessor`` + the official
OTLP/HTTP exporter). All export to one local sink (``sink.py``: OTLP/HTTP receiver and fake
Datadog agent) in another process, which counts what each peer sent; a peer that exported
fewer spans than calls fails the run.

- all-in CPU: process CPU (every thread) per call through the peer's flush, minus the
  uninstrumented function's; its ratio is the median of per-round ratios to the baseline.
- call path: wall µs per call in the loop, minus the uninstrumented function's.

Usage: python bench/peers/run.py [--peers a,b] [--calls N] [--rounds R] [--json PATH] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

from report import Row, add_arguments, finish  # noqa: E402

VENVS = REPO / ".bench-venvs"
BASELINE = "bare OTel SDK span + BatchSpanProcessor + OTLP/HTTP exporter (same venv, same run)"
COMMAND = "python bench/peers/run.py"


@dataclass(frozen=True)
class Spec:
    label: str
    venv: str | None  # requirements file stem under bench/peers/, None: the repo's .venv
    target: float | None = None


PEERS = {
    "llmpulse": Spec("llmpulse @llmpulse.llm", None, 0.15),
    "llmpulse_openai": Spec("llmpulse instrument_openai()", None),
    "langfuse": Spec("Langfuse @observe", "langfuse"),
    "traceloop": Spec("Traceloop @workflow/@task", "traceloop"),
    "traceloop_workflow": Spec("Traceloop @workflow only", "traceloop"),
    "traceloop_openai": Spec("Traceloop openai instrumentation", "traceloop"),
    "openlit": Spec("OpenLIT openai instrumentation", "openlit"),
    "ddtrace": Spec("ddtrace LLM Observability @llm", "ddtrace"),
    "ddtrace_openai": Spec("ddtrace LLM Observability openai", "ddtrace"),
}


def ensure_venv(name: str) -> tuple[Path, float]:
    """The venv's python and the seconds spent building it (0 when reused)."""
    requirements = HERE / f"{name}.txt"
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python, 0.0
    print(f"building {venv} from {requirements.relative_to(REPO)} ...", flush=True)
    t0 = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(requirements)], check=True)
    stamp.write_text(digest)
    return python, time.monotonic() - t0


def start_sink() -> tuple[subprocess.Popen[bytes], str]:
    portfile = Path(tempfile.mkdtemp()) / "port"
    proc = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(portfile)])
    deadline = time.monotonic() + 10
    while not portfile.exists() or not portfile.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the peers sink did not start")
        time.sleep(0.02)
    return proc, f"http://127.0.0.1:{portfile.read_text()}"


def run_peer(name: str, python: Path, endpoint: str, calls: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [str(python), str(HERE / "harness.py"), name, "--endpoint", endpoint]
        cmd += ["--calls", str(calls), "--rounds", str(rounds), "--out", str(out)]
        # Peers print banners and warnings; keep them, but off the table's stdout.
        proc = subprocess.run(cmd, stdout=sys.stderr, check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"{name}: harness failed (exit {proc.returncode}); see its output above")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def summarise(result: dict[str, Any]) -> dict[str, float]:
    """Medians over rounds; ratios are medians of per-round ratios (both sides ran back to back)."""
    rs = result["rounds"]
    return {
        "path": statistics.median(r["peer"]["path"] for r in rs),
        "cpu": statistics.median(r["peer"]["cpu"] for r in rs),
        "cpu_q1": statistics.quantiles([r["peer"]["cpu"] for r in rs], n=4)[0],
        "cpu_q3": statistics.quantiles([r["peer"]["cpu"] for r in rs], n=4)[2],
        "bare_cpu": statistics.median(r["peer"]["bare_cpu"] for r in rs),
        "base_path": statistics.median(r["otel"]["path"] for r in rs),
        "base_cpu": statistics.median(r["otel"]["cpu"] for r in rs),
        "path_ratio": statistics.median(r["peer"]["path"] / r["otel"]["path"] for r in rs),
        "cpu_ratio": statistics.median(r["peer"]["cpu"] / r["otel"]["cpu"] for r in rs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, from: {', '.join(PEERS)}")
    parser.add_argument(
        "--calls",
        type=int,
        default=500,
        help="calls per round (default 500; past ~2000 the peers' default 2048-span queues drop, "
        "which the harness reports as a failure rather than an understated figure)",
    )
    parser.add_argument("--rounds", type=int, default=15)
    add_arguments(parser)
    args = parser.parse_args()
    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        parser.error(f"unknown peers: {', '.join(unknown)} (choose from {', '.join(PEERS)})")

    pythons: dict[str, Path] = {}
    for name in names:
        venv = PEERS[name].venv
        if venv is None:
            pythons[name] = Path(sys.executable)
            continue
        pythons[name], seconds = ensure_venv(venv)
        print(f"venv {name}: " + (f"built in {seconds:.0f} s" if seconds else "reused"), flush=True)

    results: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    sink, endpoint = start_sink()
    try:
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                results[name] = run_peer(name, pythons[name], endpoint, args.calls, args.rounds)
            except RuntimeError as e:
                print(f"error: {e}", file=sys.stderr)
                failures.append(name)
    finally:
        sink.terminate()
        sink.wait()

    print(
        f"\ncalls per round: {args.calls}, rounds: {args.rounds} (medians; overhead = instrumented minus "
        f"uninstrumented call, same process), python {sys.version.split()[0]}, {os.cpu_count()} cpus"
    )
    header = (
        f"{'peer':34}{'version':40}{'call path µs':>13}{'all-in CPU µs':>15}{'bare OTel µs':>14}{'ratio':>8}"
        f"{'spans/call':>11}"
    )
    print(header)
    rows: list[Row] = []
    for name, result in results.items():
        spec = PEERS[name]
        s = summarise(result)
        print(
            f"{spec.label:34}{result['version']:40}{s['path']:13.1f}{s['cpu']:15.1f}{s['base_cpu']:14.1f}"
            f"{s['cpu_ratio']:8.2f}{result['spans_per_call']:11.1f}"
        )
        ok = None if spec.target is None else s["cpu_ratio"] <= spec.target
        target = None if spec.target is None else f"≤ {spec.target}×"
        what = f"{spec.label} ({result['version']})"
        rows += [
            Row(f"Peers: all-in CPU per call, {what}", s["cpu"], "µs", BASELINE, s["base_cpu"], s["cpu_ratio"],
                target, ok, COMMAND),
            Row(f"Peers: call path per call (wall), {what}", s["path"], "µs", BASELINE, s["base_path"],
                s["path_ratio"], None, None, COMMAND),
        ]  # fmt: skip
    print("\nhow each peer is used, and what reached the sink:")
    for name, result in results.items():
        s = summarise(result)
        sent = ", ".join(f"{p} {v['requests']} req {v['spans']} spans {v['bytes'] / 1e6:.1f} MB" for p, v in
                         result["exported"].items() if not p.startswith("/baseline"))  # fmt: skip
        print(f"- {name}: {result['how']}")
        print(
            f"    uninstrumented call {s['bare_cpu']:.1f} µs CPU (subtracted); all-in CPU over rounds "
            f"{s['cpu_q1']:.1f}–{s['cpu_q3']:.1f} µs (quartiles); sent: {sent}"
        )
    if failures:
        print(f"\nFAILED: {', '.join(failures)} (no figures for them; see stderr)", file=sys.stderr)
    status = finish(rows, args)
    sys.exit(status or (1 if failures else 0))


if __name__ == "__main__":
    main()
