"""Figures the reliability tests measure, collected for the README by ``make reliability``.

When ``RELIABILITY_FIGURES`` names a file, :func:`record` appends one JSON line per figure to
it; otherwise it does nothing, so the tests run the same either way.
"""

from __future__ import annotations

import json
import os


def record(name: str, value: float | int | str, unit: str = "") -> None:
    path = os.environ.get("RELIABILITY_FIGURES")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"name": name, "value": value, "unit": unit}) + "\n")
