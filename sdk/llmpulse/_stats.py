"""Process-wide counters of what the SDK dropped or could not do.

Nothing is lost silently: every drop and every swallowed internal error increments a
counter here, readable through ``llmpulse.sdk_stats()`` and logged at shutdown.
Counters are plain ints guarded by one lock; they are touched only off the hot path
(the exporter's queue-full path is the exception and is cheap enough).
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["Stats", "stats"]


class Stats:
    """Named monotonic counters (``spans_dropped.queue_full``, ``check_errors`` ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def incr(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def get(self, key: str) -> int:
        with self._lock:
            return self._counts[key]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Forget every count (tests, and a forked child that starts afresh)."""
        with self._lock:
            self._counts.clear()


stats = Stats()
