"""How much the default redactor costs per captured text.

Runs ``default_redact`` on ~2 KB prompts (nothing to mask; one email and one card; a
technical prompt full of dates, versions and ids that trips the digit prefilter but
holds nothing to mask) and, side by side, the same patterns with every prefilter
removed, to show what the prefilters buy. Prints µs per call::

    .venv/bin/python bench/redact_bench.py
"""

from __future__ import annotations

import re
import timeit
from collections.abc import Callable

from llmpulse._redact import _redact_unfiltered, default_redact

_PROSE = (
    "You are a friendly support assistant for an online bookshop. Answer briefly, in a "
    "casual tone, and never promise refunds you cannot give. The customer asked about "
    "their recent order and whether the paperback edition ships faster than the hardcover. "
    "Explain the shipping options, mention that tracking emails go out when the parcel "
    "leaves the warehouse, and suggest the newsletter if they like thrillers. Keep it to "
    "three short paragraphs and avoid bullet points unless they ask for a list. "
)
_TECH = (
    "Release 3.11.7 shipped on 2024-01-15T10:30:00Z (build 20240115, commit "
    "3f2a9c1e4b5d6f7081928374655647382910abcd). Request id 123e4567-e89b-12d3-a456-"
    "426614174000 took 1,234 ms at p99; order 12345 cost $1,299.99 in Q3 2023. "
)


def _two_kb(unit: str) -> str:
    return (unit * (2048 // len(unit) + 1))[:2048]


CLEAN = _two_kb(_PROSE)
TECH = _two_kb(_TECH + _PROSE)
HALF = len(CLEAN) // 2
PII = CLEAN[:HALF] + " Reach me at jane.doe@example.com, card 4111 1111 1111 1111. " + CLEAN[HALF : 2048 - 62]


def _us_per_call(fn: Callable[[str], str], text: str, number: int = 2000, repeat: int = 7) -> float:
    timer = timeit.Timer(lambda: fn(text))
    runs = timer.repeat(repeat=repeat, number=number)
    return min(runs) / number * 1e6  # the least disturbed run, as timeit advises


def main() -> None:
    assert default_redact(CLEAN) is CLEAN
    assert default_redact(TECH) == TECH
    masked = default_redact(PII)
    assert "jane.doe" not in masked
    assert re.search(r"4111.1111", masked) is None
    print(f"{'text (2 KB)':<34}{'default_redact':>16}{'no prefilter':>16}{'ratio':>8}")
    for label, text in (
        ("nothing to mask (prose)", CLEAN),
        ("nothing to mask (dates, ids)", TECH),
        ("one email + one card", PII),
    ):
        fast = _us_per_call(default_redact, text)
        slow = _us_per_call(_redact_unfiltered, text)
        print(f"{label:<34}{fast:>13.1f} µs{slow:>13.1f} µs{slow / fast:>7.1f}x")


if __name__ == "__main__":
    main()
