"""Types of the compiled OTLP scanner and row builder (``_otlpscan.c``; contracts in its comments)."""

from collections.abc import Callable
from typing import Any

def scan(
    body: bytes, lim: int, event_names: frozenset[str], truncate: Callable[[str, int], str], /
) -> list[Any] | None: ...
def normalize_span(
    ctx: tuple[Any, ...],
    resource: tuple[str, str, str],
    scope: str,
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    name: str,
    kind: int,
    start: int,
    end: int,
    status_code: int,
    status_message: str,
    attrs: dict[str, Any],
    events: list[tuple[str, int, dict[str, Any]]],
    /,
) -> dict[str, Any] | None: ...
def assertion_row(
    template: dict[str, Any],
    labels: dict[str, str],
    trace_id: str,
    span_id: str,
    time: int,
    attrs: dict[str, Any],
    keys: tuple[str, str, str, str, str, str, float],
    /,
) -> dict[str, Any] | None: ...
def native_block(rows: list[dict[str, Any]], columns: tuple[tuple[str, bytes, int, Any], ...], /) -> bytes | None: ...
