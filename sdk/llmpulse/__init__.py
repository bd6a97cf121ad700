"""llmpulse: every LLM call measured — latency, time to first token, tokens, cost,
refusals and deterministic assertions — as OpenTelemetry spans.

::

    import llmpulse
    from llmpulse import check

    llmpulse.init(service="support-bot", environment="prod")

    @llmpulse.llm(provider="openai", model="gpt-4o-mini", assertions=[check.starts_lowercase()])
    def reply(messages):
        return client.chat.completions.create(model="gpt-4o-mini", messages=messages)

Without ``init()`` (or with ``LLMPULSE_DISABLED=1``) every decorator calls straight through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from . import check
from ._checks import Check, validate_checks
from ._client import IdGenerator, feedback_item, get_client, make_client, set_client
from ._config import build_config, env_disabled, validate_sequence_of_str
from ._context import attributes
from ._decorators import SpanHandle, llm, observe, span
from ._exceptions import ConfigError, LlmpulseError
from ._export import Exporter
from ._instrument import instrument_anthropic, instrument_openai, uninstrument_anthropic, uninstrument_openai
from ._prompt import Prompt
from ._stats import stats
from ._version import __version__

__all__ = [
    "ConfigError",
    "LlmpulseError",
    "Prompt",
    "SpanHandle",
    "__version__",
    "attributes",
    "check",
    "current_trace_id",
    "feedback",
    "flush",
    "init",
    "instrument_anthropic",
    "instrument_openai",
    "llm",
    "observe",
    "sdk_stats",
    "shutdown",
    "span",
    "uninstrument_anthropic",
    "uninstrument_openai",
]

log = logging.getLogger("llmpulse")


def init(
    service: str | None = None,
    endpoint: str | None = None,
    api_key: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    capture_content: bool | None = None,
    sample_rate: float | None = None,
    redact: bool | Callable[[str], str] | None = None,
    assertions: Check | Iterable[Check] = (),
    *,
    refusal_patterns: Sequence[str] | None = None,
    extra_refusal_patterns: Sequence[str] = (),
    prices: Mapping[str, Any] | None = None,
    protocol: str | None = None,
    compression: str | None = None,
    max_queue_size: int | None = None,
    max_export_batch_size: int | None = None,
    export_interval: float | None = None,
    export_timeout: float | None = None,
    max_content_chars: int | None = None,
    exporter: Exporter | None = None,
    id_generator: IdGenerator | None = None,
    clock: Callable[[], int] | None = None,
) -> bool:
    """Start recording. Returns False (and records nothing) when ``LLMPULSE_DISABLED`` is set.

    Each option falls back to an environment variable, then a default:

    - ``service`` (``LLMPULSE_SERVICE``, ``OTEL_SERVICE_NAME``): required; ``service.name``.
    - ``endpoint`` (``LLMPULSE_ENDPOINT``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
      ``http://127.0.0.1:4318``): the collector's base URL; spans go to ``/v1/traces``.
    - ``api_key`` (``LLMPULSE_API_KEY``): sent as ``Authorization: Bearer``.
    - ``environment`` / ``release`` (``LLMPULSE_ENVIRONMENT`` / ``LLMPULSE_RELEASE``):
      ``deployment.environment.name`` / ``service.version``.
    - ``capture_content`` (``LLMPULSE_CAPTURE_CONTENT``, True): record prompts and replies.
    - ``sample_rate`` (``LLMPULSE_SAMPLE_RATE``, 1.0): in (0, 1]; errors, refusals and
      failed assertions are always kept, other LLM spans carry ``llmpulse.sample_weight``.
    - ``redact`` (``LLMPULSE_REDACT``, True): mask emails, phone and card numbers and API
      keys in captured content; or a ``str -> str`` function of your own.
    - ``assertions``: checks from ``llmpulse.check`` run on every ``@llm`` call.
    - ``refusal_patterns`` / ``extra_refusal_patterns``: replace / extend the English
      refusal phrases (regular expressions).
    - ``prices``: per-model price overrides in USD per million tokens,
      ``{"my-model": {"input": 1.0, "output": 2.0, "cache_read": 0.1}}``.
    - ``protocol`` (``LLMPULSE_PROTOCOL``, ``OTEL_EXPORTER_OTLP_PROTOCOL``):
      ``http/protobuf`` (default) or ``http/json``.
    - ``compression`` (``LLMPULSE_COMPRESSION``, ``OTEL_EXPORTER_OTLP_COMPRESSION``):
      ``none`` (default, as in OTel) or ``gzip`` (worth it for a remote collector: prompts
      repeat, so batches compress 10-30x).
    - ``max_queue_size`` (2048), ``max_export_batch_size`` (512), ``export_interval``
      (1.0 s), ``export_timeout`` (10 s), ``max_content_chars`` (32768): the exporter.
    - ``exporter``, ``id_generator``, ``clock``: replace the network exporter, ids and
      clock (``llmpulse.testing`` uses them).

    Calling ``init`` again shuts the previous client down (flushing it) and starts anew.
    A bad value raises ``ConfigError`` naming the option.
    """
    if env_disabled():
        log.info("llmpulse disabled by LLMPULSE_DISABLED")
        shutdown()
        return False
    config = build_config(
        service=service,
        endpoint=endpoint,
        api_key=api_key,
        environment=environment,
        release=release,
        capture_content=capture_content,
        sample_rate=sample_rate,
        redact=redact,
        protocol=protocol,
        compression=compression,
        max_queue_size=max_queue_size,
        max_export_batch_size=max_export_batch_size,
        export_interval=export_interval,
        export_timeout=export_timeout,
        max_content_chars=max_content_chars,
    )
    checks = validate_checks(assertions, "assertions")
    if refusal_patterns is not None:
        refusal_patterns = validate_sequence_of_str(refusal_patterns, "refusal_patterns")
    extra = validate_sequence_of_str(extra_refusal_patterns, "extra_refusal_patterns")
    client = make_client(
        config,
        checks=checks,
        refusal_patterns=refusal_patterns,
        extra_refusal_patterns=extra,
        prices=prices,
        exporter=exporter,
        ids=id_generator,
        clock=clock,
    )
    shutdown()
    set_client(client)
    return True


def flush(timeout: float = 5.0) -> bool:
    """Export everything recorded so far; False if ``timeout`` seconds passed first."""
    client = get_client()
    return True if client is None else client.flush(timeout)


def shutdown(timeout: float = 5.0) -> bool:
    """Flush (within ``timeout``) and stop; decorators call straight through afterwards."""
    client = get_client()
    if client is None:
        return True
    set_client(None)
    return client.shutdown(timeout)


def current_trace_id() -> str | None:
    """The current trace id as 32 hex characters (llmpulse's span, else the OTel API's)."""
    from opentelemetry import trace as otel_trace

    from ._client import current_span

    cur = current_span()
    if cur is not None:
        return cur.trace_id_hex
    ctx = otel_trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


def feedback(trace_id: str, name: str, value: float | bool, comment: str | None = None) -> None:
    """Tie a product signal (thumbs up, conversion, a 1-5 rating) to a traced call.

    ``trace_id`` is the 32-hex trace id (``current_trace_id()``) or a provider response
    id (``chatcmpl-...``, ``msg_...``). Sent in the background to ``/v1/feedback``.
    Invalid arguments raise ``ValueError``; without ``init`` this does nothing.
    """
    item = feedback_item(trace_id, name, value, comment, time.time())
    client = get_client()
    if client is not None:
        client.feedback(item)


def sdk_stats() -> dict[str, int]:
    """Counters of what the SDK exported and dropped (by reason) in this process."""
    return stats.snapshot()
