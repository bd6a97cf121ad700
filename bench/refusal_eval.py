"""Measure the refusal heuristic: accuracy on the labelled dataset, and cost per call.

Run from the repo root::

    .venv/bin/python bench/refusal_eval.py

Prints precision, recall and F1 over ``tests/sdk/data/refusals.jsonl``, every
misclassified example, the category each detected refusal got, and microseconds per
``detect()`` call for a 1 KB non-refusal, a short refusal, a 1 MB reply, and the same
replies with ``re.IGNORECASE`` applied naively for comparison.
"""

from __future__ import annotations

import json
import re
import sys
import timeit
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sdk"))

from llmpulse._refusal import DEFAULT_PATTERNS, RefusalDetector  # noqa: E402

DATASET = ROOT / "tests" / "sdk" / "data" / "refusals.jsonl"

NON_REFUSAL_1KB = (
    "Sure! Here's how to set up the project. First, install the dependencies with pip, then "
    "create a virtual environment. I don't think you need Docker for this, and it isn't "
    "required for local development. Run the tests with pytest and check the coverage report; "
    "if anything fails, it's usually a missing environment variable, so copy .env.example to "
    ".env and fill in the database URL. You can't skip the migration step, though: the app "
    "won't start without the tables.\n\n"
) * 3
NON_REFUSAL_1KB = NON_REFUSAL_1KB[:1024]
REFUSAL = (
    "I’m sorry, but I can’t help with that. Creating malware that steals passwords is "
    "illegal and could seriously harm people."
)


def load() -> list[dict[str, object]]:
    with DATASET.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate(detector: RefusalDetector, rows: list[dict[str, object]]) -> tuple[float, float]:
    tp = fp = fn = tn = 0
    misses: list[tuple[str, str, str | None]] = []
    categories: Counter[str | None] = Counter()
    for row in rows:
        text = str(row["text"])
        match = detector.detect(text)
        if match is not None:
            categories[match.category] += 1
        if row["refusal"] and match is not None:
            tp += 1
        elif row["refusal"]:
            fn += 1
            misses.append(("missed refusal", text, None))
        elif match is not None:
            fp += 1
            misses.append(("false positive", text, match.pattern))
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    refusals = sum(1 for r in rows if r["refusal"])
    print(f"dataset: {len(rows)} replies ({refusals} refusals, {len(rows) - refusals} not)")
    print(f"tp={tp} fp={fp} fn={fn} tn={tn}")
    print(f"precision={precision:.3f} recall={recall:.3f} f1={f1:.3f}")
    print("categories of detected refusals:", dict(categories.most_common()))
    for kind, text, pattern in misses:
        print(f"\n[{kind}] {text[:300]!r}")
        if pattern is not None:
            print(f"    matched: {pattern[:120]}")
    return precision, recall


def per_call_us(fn: object, text: str, number: int) -> float:
    timer = timeit.Timer(lambda: fn(text))  # type: ignore[operator]
    best = min(timer.repeat(repeat=5, number=number))
    return best / number * 1e6


def bench(detector: RefusalDetector) -> None:
    naive = re.compile("|".join(f"(?:{p})" for p in DEFAULT_PATTERNS), re.IGNORECASE)
    one_mb = NON_REFUSAL_1KB * 1024
    print("\nµs per detect() call (best of 5):")
    cases = [
        ("1 KB non-refusal", NON_REFUSAL_1KB, 20_000),
        ("refusal (119 chars)", REFUSAL, 20_000),
        ("1 MB non-refusal", one_mb, 2_000),
    ]
    for name, text, number in cases:
        ours = per_call_us(detector.detect, text, number)
        base = per_call_us(lambda t: naive.search(t[:400]), text, max(number // 20, 100))
        print(f"  {name:<22} {ours:7.2f} µs   (naive IGNORECASE regex on the head: {base:7.1f} µs)")


def main() -> int:
    detector = RefusalDetector()
    evaluate(detector, load())
    bench(detector)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
