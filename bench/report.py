"""Benchmark results: the rows every ``bench/`` script writes, and the README table.

Each benchmark prints its own table and, with ``--json PATH``, writes a list of rows::

    {"figure": "SDK all-in CPU per call", "value": 25.1, "unit": "µs",
     "baseline": "bare OTel SDK span + OTLP/HTTP exporter", "baseline_value": 88.0,
     "ratio": 0.285, "target": "≤ 0.15×", "ok": false, "command": "make bench"}

``--check`` makes a script exit 1 when a row misses its target (``ok`` false); without it
benchmarks only report, because this machine is shared and noisy. Run as a script, this
module merges result files into the Markdown table the README carries::

    python bench/report.py bench/results/*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Row", "add_arguments", "finish", "markdown"]


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    target: str | None = None
    ok: bool | None = None
    command: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON rows")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure misses its target")


def finish(rows: list[Row], args: argparse.Namespace) -> int:
    """Write ``--json``; the exit status ``--check`` asks for."""
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([asdict(r) for r in rows], indent=1, ensure_ascii=False) + "\n")
    missed = [r.figure for r in rows if r.ok is False]
    if args.check and missed:
        print("missed targets: " + "; ".join(missed), file=sys.stderr)
        return 1
    return 0


def _num(v: float | None) -> str:
    if v is None:
        return ""
    if v == 0 or abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| Figure | Measured | Baseline (same run) | Ratio | Target | Met | Command |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        unit = r["unit"]
        measured = f"{_num(r['value'])} {unit}".strip()
        base = r.get("baseline") or ""
        if r.get("baseline_value") is not None:
            base = f"{base}: {_num(r['baseline_value'])} {unit}".strip()
        ratio = f"{r['ratio']:.3f}×" if r.get("ratio") is not None else ""
        met = {True: "yes", False: "**no**", None: ""}[r.get("ok")]
        lines.append(
            f"| {r['figure']} | {measured} | {base} | {ratio} | {r.get('target') or ''} | {met} | `{r['command']}` |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Merge bench result files into one Markdown table.")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for path in args.files:
        rows.extend(json.loads(path.read_text()))
    print(markdown(rows))


if __name__ == "__main__":
    main()
