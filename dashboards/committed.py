"""Keep generated files and their committed copies in step (shared by the dashboard generators)."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from pathlib import Path


def sync(rendered: Mapping[str, str], out: Path, *, check: bool, script: str) -> int:
    """Write each ``name -> text`` under ``out``, or with ``check`` only report (and diff) stale files.

    Returns the exit status: 1 when ``check`` found a stale file, else 0.
    """
    stale = []
    for name, text in rendered.items():
        path = out / name
        current = path.read_text() if path.exists() else ""
        if current == text:
            continue
        if check:
            stale.append(name)
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(path), "generated", lineterm="")
            print("\n".join(list(diff)[:40]), file=sys.stderr)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python {script} to regenerate", file=sys.stderr)
        return 1
    return 0
