"""Types of the compiled OTLP scanner (``_otlpscan.c``; the contract is in its header)."""

from collections.abc import Callable
from typing import Any

def scan(
    body: bytes, lim: int, event_names: frozenset[str], truncate: Callable[[str, int], str], /
) -> list[Any] | None: ...
