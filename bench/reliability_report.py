"""Print the reliability figures recorded by the tests (``make reliability``) as a Markdown table.

Usage: ``python bench/reliability_report.py FIGURES.jsonl``; the file holds one JSON object per
line, ``{"name", "value", "unit"}``, written by ``tests/figures.py`` when ``RELIABILITY_FIGURES``
names it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LABELS = {
    "crash_rounds_survived": "SIGKILL rounds under load survived",
    "crash_spans_acknowledged": "spans acknowledged across the crashes",
    "crash_spans_stored": "spans stored after the crashes (each acknowledged one exactly once)",
    "outage_seconds_survived": "storage outage + slowness survived",
    "outage_spans_sent_stored": "spans sent during the outage = stored after it",
    "outage_503_answers": "503 + Retry-After answers while the log was full",
    "fuzz_api_cases": "generated API requests (schemathesis), none a 5xx",
    "soak_seconds": "soak duration",
    "soak_spans_sent": "spans sent during the soak",
    "soak_spans_stored": "spans stored after the soak",
    "soak_peak_rss_mib": "collector peak RSS during the soak",
}


def main(path: str) -> int:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not rows:
        print("no figures recorded", file=sys.stderr)
        return 1
    print("| figure | value |\n|---|---|")
    for row in rows:
        unit = f" {row['unit']}" if row["unit"] else ""
        print(f"| {LABELS.get(row['name'], row['name'])} | {row['value']:,}{unit} |" if isinstance(row["value"], int)
              else f"| {LABELS.get(row['name'], row['name'])} | {row['value']}{unit} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
