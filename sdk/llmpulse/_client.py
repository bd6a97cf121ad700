"""The process-wide client that ``init()`` builds: config, span pipeline, exit hook.

``_state.client`` is ``None`` until ``init()``; every decorator reads it at call time and
calls straight through when it is ``None``, so decorating at import time and calling
``init()`` later (or never) both work.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import propagation as _otel_propagation

from ._checks import Check
from ._config import Config
from ._context import _current as _attributes
from ._cost import PriceBook
from ._export import BatchProcessor, Exporter, HttpExporter
from ._llm import Finisher, LLMCall, LLMSpec, error_type
from ._otlp import make_encoder
from ._refusal import RefusalDetector
from ._span import KIND_CLIENT, STATUS_ERROR, AttrValue, SpanRecord
from ._stats import stats
from ._version import __version__

__all__ = ["Client", "IdGenerator", "current_span", "get_client", "set_client"]

log = logging.getLogger("llmpulse")

# The innermost llmpulse span of the current context (task or thread).
_current: contextvars.ContextVar[SpanRecord | None] = contextvars.ContextVar("llmpulse_span", default=None)


# The key under which the OTel API keeps the current span. Reading it straight from the
# current context skips get_current_span()'s INVALID_SPAN fallback on the hot path.
_OTEL_SPAN_KEY: str | None = getattr(_otel_propagation, "_SPAN_KEY", None)


def _otel_context_getter() -> Callable[[], otel_context.Context]:
    """``opentelemetry.context.get_current``, or, when OTel runs its default contextvars
    runtime context (``OTEL_PYTHON_CONTEXT`` unset), the ``get`` of the ContextVar behind
    it: the same value without two Python calls. OTel picks its runtime context once, at
    import."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(var, contextvars.ContextVar):
        get: Callable[[], otel_context.Context] = var.get
        return get
    return otel_context.get_current


_otel_current_context = _otel_context_getter()


def _otel_parent() -> otel_trace.SpanContext | None:
    if _OTEL_SPAN_KEY is None:  # pragma: no cover - an OTel API without the private key
        ctx = otel_trace.get_current_span().get_span_context()
    else:
        span: Any = _otel_current_context().get(_OTEL_SPAN_KEY)
        if span is None:
            return None
        ctx = span.get_span_context()
    return ctx if ctx.is_valid else None


class IdGenerator:
    """Random W3C ids (``random`` is reseeded in a forked child by CPython itself)."""

    def trace_id(self) -> int:
        return random.getrandbits(128) or 1

    def span_id(self) -> int:
        return random.getrandbits(64) or 1


class _State:
    client: Client | None = None


_state = _State()


def get_client() -> Client | None:
    return _state.client


def set_client(client: Client | None) -> None:
    _state.client = client


def current_span() -> SpanRecord | None:
    return _current.get()


class Activation:
    """Makes a span current for llmpulse and, for non-LLM spans, for the OTel API too."""

    __slots__ = ("_otel_token", "_token")

    def __init__(self, span: SpanRecord, otel: bool) -> None:
        self._token = _current.set(span)
        self._otel_token: object | None = None
        if otel:
            ctx = otel_trace.SpanContext(
                span.trace_id,
                span.span_id,
                is_remote=False,
                trace_flags=otel_trace.TraceFlags(otel_trace.TraceFlags.SAMPLED),
            )
            self._otel_token = otel_context.attach(otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(ctx)))

    def close(self) -> None:
        try:
            if self._otel_token is not None:
                otel_context.detach(self._otel_token)  # type: ignore[arg-type]
            _current.reset(self._token)
        except ValueError:
            # Reset from another context (e.g. a generator finished elsewhere): the
            # variable is already out of scope there.
            pass


class Client:
    """Owns the configuration, the exporter thread and the exit hook."""

    def __init__(
        self,
        config: Config,
        *,
        checks: tuple[Check, ...],
        refusals: RefusalDetector,
        prices: PriceBook,
        exporter: Exporter | None = None,
        ids: IdGenerator | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        resource: dict[str, AttrValue] = {
            "service.name": config.service,
            "telemetry.sdk.name": "llmpulse",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.version": __version__,
        }
        if config.environment:
            resource["deployment.environment.name"] = config.environment
        if config.release:
            resource["service.version"] = config.release
        self.resource = resource
        if exporter is None:
            encoder = make_encoder(config.protocol, resource, "llmpulse", __version__)
            exporter = HttpExporter(
                config.traces_url,
                config.feedback_url,
                encoder,
                api_key=config.api_key,
                timeout=config.export_timeout,
                compress=config.compression == "gzip",
            )
        self.exporter = exporter
        self.finisher = Finisher(
            capture_content=config.capture_content,
            redact=config.redact,
            max_content_chars=config.max_content_chars,
            sample_rate=config.sample_rate,
            checks=checks,
            refusals=refusals,
            prices=prices,
        )
        self.processor = BatchProcessor(
            exporter,
            self.finisher.finish,
            max_queue_size=config.max_queue_size,
            max_batch_size=config.max_export_batch_size,
            interval=config.export_interval,
            export_timeout=config.export_timeout,
        )
        self.ids = ids or IdGenerator()
        self._new_trace_id = self.ids.trace_id
        self._new_span_id = self.ids.span_id
        self.clock = clock or time.time_ns
        self._closed = False
        atexit.register(self._at_exit)

    # -- span lifecycle (hot path: keep it lean, never raise) ---------------------------
    def _parent(self) -> tuple[int, int]:
        cur = _current.get()
        if cur is not None and cur.llm is not None:
            # Inside an LLM span (not published to the OTel context): it is innermost.
            return cur.trace_id, cur.span_id
        ctx = _otel_parent()
        if ctx is not None:
            return ctx.trace_id, ctx.span_id
        if cur is not None:
            return cur.trace_id, cur.span_id
        return self._new_trace_id(), 0

    def start_llm(self, spec: LLMSpec, args: tuple[Any, ...], kwargs: dict[str, Any], stream: bool) -> SpanRecord:
        trace_id, parent_id = self._parent()
        span = SpanRecord(
            spec.span_name,
            trace_id,
            self._new_span_id(),
            parent_id,
            KIND_CLIENT,
            self.clock(),
            dict(spec.static_attributes),
        )
        # Shallow copies: an app that appends the reply to its `messages` list after the
        # call must not change what this call is recorded to have sent. The record gets its
        # own dict: the wrapper passes `kwargs` on to the app's function, which must receive
        # the very list it was called with.
        if kwargs:
            messages = kwargs.get("messages")
            if type(messages) is list:
                kwargs = {**kwargs, "messages": list(messages)}
        elif args and type(args[0]) is list:
            args = (list(args[0]), *args[1:])
        call = span.llm = LLMCall(spec, args, kwargs, stream)
        extra = _attributes.get()
        if extra is not None:
            span.attributes.update(extra.values)
            call.checks = extra.checks
        return span

    def start_span(self, name: str, kind: int, attributes: dict[str, AttrValue]) -> SpanRecord:
        trace_id, parent_id = self._parent()
        return SpanRecord(name, trace_id, self._new_span_id(), parent_id, kind, self.clock(), attributes)

    def end(self, span: SpanRecord) -> None:
        span.end_ns = self.clock()
        self.processor.enqueue(span)

    def end_with_error(self, span: SpanRecord, exc: BaseException) -> None:
        call = span.llm
        if call is not None:
            call.error = exc
        else:
            span.status = STATUS_ERROR
            span.status_message = str(exc)[:1024]
            span.attributes["error.type"] = error_type(exc)
        self.end(span)

    # -- feedback -----------------------------------------------------------------------
    def feedback(self, item: dict[str, Any]) -> None:
        self.processor.enqueue_feedback(item)

    # -- lifecycle ----------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        return self.processor.force_flush(timeout)

    def shutdown(self, timeout: float) -> bool:
        if self._closed:
            return True
        self._closed = True
        atexit.unregister(self._at_exit)
        ok = self.processor.shutdown(timeout)
        dropped = {k: v for k, v in stats.snapshot().items() if "dropped" in k}
        if dropped:
            log.warning("llmpulse shut down; dropped so far: %s", dropped)
        return ok

    def _at_exit(self) -> None:
        try:
            self.shutdown(5.0)
        except Exception:  # pragma: no cover - never fail interpreter exit
            log.debug("llmpulse exit hook failed", exc_info=True)


def feedback_item(trace_id: str, name: str, value: object, comment: str | None, now: float) -> dict[str, Any]:
    """Validate ``feedback()`` arguments into the collector's JSON shape."""
    if not isinstance(trace_id, str) or not trace_id.strip():
        raise ValueError(f"feedback: trace_id must be a trace id or a response id string, got {trace_id!r}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"feedback: name must be a non-empty string such as 'thumbs', got {name!r}")
    if isinstance(value, bool):
        number = 1.0 if value else 0.0
    elif isinstance(value, int | float) and math.isfinite(value):
        number = float(value)
    else:
        raise ValueError(f"feedback: value must be a bool or a finite number, got {value!r}")
    if comment is not None and not isinstance(comment, str):
        raise ValueError(f"feedback: comment must be a string or None, got {type(comment).__name__}")
    ident = trace_id.strip().lower()
    item: dict[str, Any] = {"name": name, "value": number, "timestamp": now}
    if len(ident) == 32 and all(c in "0123456789abcdef" for c in ident):
        item["trace_id"] = ident
    else:
        item["response_id"] = trace_id.strip()
    if comment is not None:
        item["comment"] = comment
    return item


def make_client(
    config: Config,
    *,
    checks: tuple[Check, ...],
    refusal_patterns: Any,
    extra_refusal_patterns: Any,
    prices: Mapping[str, Any] | None,
    exporter: Exporter | None,
    ids: IdGenerator | None,
    clock: Callable[[], int] | None,
) -> Client:
    refusals = RefusalDetector(refusal_patterns, extra_patterns=extra_refusal_patterns)
    price_book = PriceBook(prices)
    client = Client(
        config, checks=checks, refusals=refusals, prices=price_book, exporter=exporter, ids=ids, clock=clock
    )
    _warm_up(refusals, price_book)
    return client


def _warm_up(refusals: RefusalDetector, prices: PriceBook) -> None:
    """Compile the refusal patterns and load the price table on a daemon thread now,
    rather than on the exporter thread at the first span (~250 ms, during which spans of a
    busy app would pile up in the queue and could overflow it)."""

    def run() -> None:
        try:
            refusals.warm_up()
            prices.warm_up()
        except Exception:  # only a head start: the first span does the same work
            log.debug("llmpulse warm-up failed", exc_info=True)

    with contextlib.suppress(RuntimeError):  # interpreter shutdown: the first span will do it
        threading.Thread(target=run, name="llmpulse-warmup", daemon=True).start()


__all__ += ["Activation", "feedback_item", "make_client"]
