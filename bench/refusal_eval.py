"""Measure the refusal heuristic: accuracy on the labelled dataset, and cost per call.

Run from the repo root::

    .venv/bin/python bench/refusal_eval.py

Prints precision, recall and F1 over ``tests/sdk/data/refusals.jsonl``, every
misclassified example, the categories given to detected refusals, and microseconds per
``detect()`` call for a 1 KB non-refusal, a short refusal and a 1 MB reply, next to the
built-in patterns joined into one ``re.IGNORECASE`` regex for comparison.

The dataset has three parts, told apart by the start of ``note``:

* (no prefix) written first, before any pattern; the patterns were then designed
  against it, so its score is optimistic.
* ``holdout`` written after the first patterns and scored once before they were tuned
  further (precision 0.889, recall 0.640, F1 0.744 at that point); the patterns were
  then generalised to cover its misses.
* ``blind`` written last and never tuned on: the fairest estimate of how the heuristic
  does on unseen phrasings.
"""

from __future__ import annotations

import json
import re
import sys
import timeit
from collections import Counter
from collections.abc import Callable
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
# First-person and negations throughout: every "I'm", "I can", "I don't" is a pattern
# head, so the search goes on into the phrases that may follow it, which plain prose
# rarely makes it do.
CHATTY_1KB = (
    "I'm so glad you asked! I can walk you through it step by step. I don't think you need "
    "the premium plan for this; I'm pretty sure the free tier covers it. I won't bore you "
    "with the details, but I can't stress enough how much easier it gets once the sync is "
    "on. I'd start with the desktop app. I am not a fan of the web version, honestly. "
) * 4
CHATTY_1KB = CHATTY_1KB[:1024]
REFUSAL = (
    "I’m sorry, but I can’t help with that. Creating malware that steals passwords is "
    "illegal and could seriously harm people."
)


def load() -> list[dict[str, object]]:
    with DATASET.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def split_of(row: dict[str, object]) -> str:
    note = str(row.get("note", ""))
    return next((s for s in ("holdout", "blind") if note.startswith(s)), "original")


def scores(detector: RefusalDetector, rows: list[dict[str, object]]) -> str:
    tp = fp = fn = 0
    for row in rows:
        flagged = detector.detect(str(row["text"])) is not None
        tp += flagged and bool(row["refusal"])
        fp += flagged and not row["refusal"]
        fn += not flagged and bool(row["refusal"])
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f"n={len(rows):<4} precision={precision:.3f} recall={recall:.3f} f1={f1:.3f}"


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
    for split in ("original", "holdout", "blind"):
        print(f"  {split:<9} {scores(detector, [r for r in rows if split_of(r) == split])}")
    print("categories of detected refusals:", dict(categories.most_common()))
    for kind, text, pattern in misses:
        print(f"\n[{kind}] {text[:300]!r}")
        if pattern is not None:
            print(f"    matched: {pattern[:120]}")
    return precision, recall


def per_call_us(fn: Callable[[str], object], text: str, number: int) -> float:
    # The minimum of many short runs: on a shared machine, long runs absorb other load.
    timer = timeit.Timer(lambda: fn(text))
    best = min(timer.repeat(repeat=30, number=number))
    return best / number * 1e6


def bench(detector: RefusalDetector) -> None:
    naive = re.compile("|".join(f"(?:{p})" for p in DEFAULT_PATTERNS), re.IGNORECASE)
    one_mb = NON_REFUSAL_1KB * 1024
    print("\nµs per detect() call (best of 30 runs):")
    cases = [
        ("1 KB non-refusal", NON_REFUSAL_1KB, 2_000),
        ("1 KB chatty reply", CHATTY_1KB, 2_000),
        ("refusal (119 chars)", REFUSAL, 2_000),
        ("1 MB non-refusal", one_mb, 1_000),
    ]
    for name, text, number in cases:
        ours = per_call_us(detector.detect, text, number)
        base = per_call_us(lambda t: naive.search(t[:400]), text, max(number // 20, 50))
        print(f"  {name:<22} {ours:7.2f} µs   (naive IGNORECASE regex on the head: {base:7.1f} µs)")


def main() -> int:
    detector = RefusalDetector()
    evaluate(detector, load())
    bench(detector)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
