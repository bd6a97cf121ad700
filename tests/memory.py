"""Leak checks for the C extensions' tests: Python memory still held after many calls."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable


def traced_growth(run: Callable[[], object], repeat: int) -> int:
    """Bytes of traced Python memory held after calling ``run()`` ``repeat`` times, garbage
    collected before and after: an object leaked per call shows as ``repeat`` times its size."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(repeat):
            run()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
