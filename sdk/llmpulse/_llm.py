"""LLM spans: what the decorator captures on the call path, and how the worker finishes it.

The call path stores references only (the return value or stream chunks, a shallow copy
of the call's keyword arguments, timestamps). Everything that reads them — response
extraction, refusal detection, cost, assertions, content capture with redaction and
sampling — runs on the exporter's worker thread in ``Finisher.finish``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from . import _extract, _messages, _semconv, _stream
from ._checks import Check, Outcome, _error_outcome, make_context, outcome_of
from ._config import speedup
from ._cost import PriceBook
from ._extract import Extracted
from ._otlp_json import _scrub
from ._prompt import Prompt
from ._refusal import RefusalDetector
from ._span import STATUS_ERROR, AttrValue, SharedAttributes, SpanEvent, SpanRecord
from ._stats import stats

__all__ = ["BRIDGED", "Finisher", "LLMCall", "LLMSpec"]

log = logging.getLogger("llmpulse")

EVALUATION_EVENT = "gen_ai.evaluation.result"
# SpanEvent(name, time_ns, attributes): its slots written in C where the extension is built.
_new_event: Callable[[str, int, dict[str, AttrValue]], SpanEvent] = (
    speedup("SlotMaker", SpanEvent, ("name", "time_ns", "attributes")) or SpanEvent
)
_TRUNCATION_MARK = "…[truncated {} chars]"
_CACHE_MIN_CHARS = 256
_CACHE_MAX_ENTRIES = 512


class LLMSpec:
    """What ``@llm(...)`` knows at decoration time, computed once."""

    __slots__ = ("checks", "model", "operation", "prompt", "provider", "span_name", "static_attributes")

    def __init__(
        self,
        provider: str | None,
        model: str | None,
        operation: str,
        prompt: Prompt | None,
        checks: tuple[Check, ...],
    ) -> None:
        self.provider = provider
        self.model = model
        self.operation = operation
        self.prompt = prompt
        self.checks = checks
        self.span_name = f"{operation} {model}" if model else operation
        attrs: dict[str, AttrValue] = {"gen_ai.operation.name": operation}
        if provider:
            attrs["gen_ai.provider.name"] = provider
        if model:
            attrs["gen_ai.request.model"] = model
        if prompt is not None:
            attrs["gen_ai.prompt.name"] = prompt.name
            attrs["llmpulse.prompt.version"] = prompt.version
        self.static_attributes = attrs


BRIDGED: Any = object()
"""Marks a span converted from the OTel SDK: its GenAI facts are read from attributes."""


class LLMCall:
    """Raw material of one model call, filled on the app's thread."""

    __slots__ = ("args", "checks", "chunks", "error", "first_chunk_ns", "kwargs", "result", "spec", "stream")

    def __init__(self, spec: LLMSpec, args: tuple[Any, ...], kwargs: dict[str, Any], stream: bool) -> None:
        self.spec = spec
        self.args = args
        self.kwargs = kwargs
        self.stream = stream
        self.result: Any = None
        self.chunks: list[Any] | None = [] if stream else None
        self.first_chunk_ns = 0
        self.error: BaseException | None = None
        self.checks: tuple[Check, ...] = ()  # from an enclosing llmpulse.attributes() block


def error_type(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


class Finisher:
    """Turns a recorded span into its exported form and decides whether to keep it."""

    def __init__(
        self,
        *,
        capture_content: bool,
        redact: Any,
        max_content_chars: int,
        sample_rate: float,
        checks: tuple[Check, ...],
        refusals: RefusalDetector,
        prices: PriceBook,
    ) -> None:
        self.capture_content = capture_content
        self.redact = redact
        self.max_content_chars = max_content_chars
        self.sample_rate = sample_rate
        # TraceIdRatioBased-style bound on the low 64 bits: every span of a trace gets the
        # same decision, so sampled traces stay whole.
        self._bound = round(sample_rate * (1 << 64))
        self._weight = 1.0 / sample_rate
        self.checks = checks
        self.refusals = refusals
        self.prices = prices
        self._clean_cache: dict[str, str] = {}
        self._json_cache: dict[str, str] = {}
        self._passes: dict[Check, tuple[object, SharedAttributes]] = {}

    # -- sampling -----------------------------------------------------------------------
    def trace_sampled(self, trace_id: int) -> bool:
        return self.sample_rate >= 1.0 or (trace_id & 0xFFFFFFFFFFFFFFFF) < self._bound

    def finish(self, span: SpanRecord) -> bool:
        call = span.llm
        if call is None:
            return self.trace_sampled(span.trace_id)
        span.llm = None
        interesting = self._finish_bridged(span) if call is BRIDGED else self._finish_llm(span, call)
        if self.sample_rate >= 1.0:
            return True
        if interesting:
            span.attributes["llmpulse.sample_weight"] = 1.0
            return True
        if self.trace_sampled(span.trace_id):
            span.attributes["llmpulse.sample_weight"] = self._weight
            return True
        stats.incr("spans_sampled_out")
        return False

    # -- the LLM recipe -------------------------------------------------------------------
    def _finish_llm(self, span: SpanRecord, call: LLMCall) -> bool:
        """Fill the span's attributes and events; True when it must survive sampling."""
        spec = call.spec
        attrs = span.attributes
        model = spec.model
        if model is None:
            model = _messages.request_model(call.kwargs)
            if model:
                attrs["gen_ai.request.model"] = model
                span.name = f"{spec.operation} {model}"
        if call.stream:
            attrs["gen_ai.request.stream"] = True
            if call.first_chunk_ns:
                attrs["gen_ai.response.time_to_first_chunk"] = (call.first_chunk_ns - span.start_ns) / 1e9
        if call.error is not None:
            attrs["error.type"] = error_type(call.error)
            span.status = STATUS_ERROR
            span.status_message = str(call.error)[:1024]
            if self.capture_content:
                self._capture_input(attrs, call)
            return True

        ex = self._extract(call)
        if ex.response_model:
            attrs["gen_ai.response.model"] = ex.response_model
        if ex.response_id:
            attrs["gen_ai.response.id"] = ex.response_id
        if ex.input_tokens is not None:
            attrs["gen_ai.usage.input_tokens"] = ex.input_tokens
        if ex.output_tokens is not None:
            attrs["gen_ai.usage.output_tokens"] = ex.output_tokens
        if ex.cache_read_tokens is not None:
            attrs["gen_ai.usage.cache_read.input_tokens"] = ex.cache_read_tokens
        if ex.cache_write_tokens is not None:
            attrs["gen_ai.usage.cache_creation.input_tokens"] = ex.cache_write_tokens
        if ex.reasoning_tokens is not None:
            attrs["gen_ai.usage.reasoning.output_tokens"] = ex.reasoning_tokens
        if ex.finish_reasons:
            attrs["gen_ai.response.finish_reasons"] = list(ex.finish_reasons)
        checks = self.checks + spec.checks if spec.checks else self.checks
        if call.checks:
            names = {c.name for c in call.checks}  # an attributes() check replaces one of the same name
            checks = tuple(c for c in checks if c.name not in names) + call.checks
        response = call.chunks if call.stream else call.result
        interesting = self.judge(span, ex, spec.provider, model, checks, response)
        if self.capture_content:
            self._capture_input(attrs, call)
            out = self._output_json(ex)
            if out is not None:
                attrs["gen_ai.output.messages"] = out
        return interesting

    def judge(
        self,
        span: SpanRecord,
        ex: _extract.Extracted,
        provider: str | None,
        model: str | None,
        checks: tuple[Check, ...],
        response: object,
    ) -> bool:
        """Refusal, cost and assertions for one model call; True when it must be kept."""
        attrs = span.attributes
        # Refusal: the provider's own signal first, then the phrase heuristic.
        refusal = False
        if ex.refusal:
            refusal = True
            attrs["llmpulse.refusal.source"] = "provider"
            if ex.refusal_category:
                attrs["llmpulse.refusal.category"] = ex.refusal_category
        elif ex.output_text:
            match = self.refusals.detect(ex.output_text)
            if match is not None:
                refusal = True
                attrs["llmpulse.refusal.source"] = "heuristic"
                if match.category:
                    attrs["llmpulse.refusal.category"] = match.category
        attrs["llmpulse.refusal"] = refusal

        priced_model = ex.response_model or model
        cost = None
        if priced_model:
            cost = self.prices.cost(
                provider,
                priced_model,
                ex.input_tokens,
                ex.output_tokens,
                ex.cache_read_tokens,
                ex.cache_write_tokens,
            )
            if cost is not None:
                attrs["llmpulse.cost.usd"] = cost

        failed = False
        if checks:
            ttft = attrs.get("gen_ai.response.time_to_first_chunk")
            ctx = make_context(
                ex.output_text or (ex.refusal_text or ""),
                (span.end_ns - span.start_ns) / 1e9,
                ttft if isinstance(ttft, float) else None,
                cost,
                refusal,
                priced_model,
                response,
            )
            events = span.events if type(span.events) is list else []
            end_ns = span.end_ns
            passes = self._passes
            for check in checks:
                # Checks return one ``CheckResult`` object for their pass (precomputed, as
                # the built-in ones do), so the attributes built for a passing result are
                # kept with it and reused while the check keeps returning that very object
                # (inlined here, the common case; _evaluate does the rest).
                try:
                    result = check(ctx)
                except Exception as exc:  # a broken assertion must never break the app
                    ev: dict[str, AttrValue] = _event_attributes(_error_outcome(check, exc))
                    failed = True
                else:
                    try:
                        hit = passes.get(check)
                    except TypeError:  # a check class that defines __eq__ without __hash__
                        hit = None
                    if hit is not None and hit[0] is result:
                        ev = hit[1]
                    else:
                        ev, passed = self._evaluate(check, result)
                        failed = failed or not passed
                events.append(_new_event(EVALUATION_EVENT, end_ns, ev))
            span.events = events
        return refusal or failed

    def _evaluate(self, check: Check, result: object) -> tuple[dict[str, AttrValue], bool]:
        """One check's result (not a kept pass): its evaluation event's attributes, and
        whether it passed. Fails usually carry a reason made for the call and are built
        each time; a pass is kept for the next call."""
        memo: dict[Check, tuple[object, SharedAttributes]] | None = self._passes
        try:
            hash(check)
        except TypeError:  # a check class that defines __eq__ without __hash__
            memo = None
        outcome = outcome_of(check, result)
        attrs = _event_attributes(outcome)
        passed = outcome.label == "pass"
        if passed and memo is not None:
            if len(memo) >= _CACHE_MAX_ENTRIES:  # checks made per call must not grow it
                memo.clear()
            memo[check] = (result, attrs)
        return attrs, passed

    def _finish_bridged(self, span: SpanRecord) -> bool:
        """A GenAI span from another instrumentation (``llmpulse.otel.SpanProcessor``)."""
        attrs = span.attributes
        if "llmpulse.refusal" in attrs:
            return True  # already judged (e.g. an llmpulse span that went through OTel)
        ex = _semconv.from_attributes(attrs)
        if span.status == STATUS_ERROR:
            return True
        return self.judge(span, ex, _semconv.provider_of(attrs), _semconv.request_model_of(attrs), self.checks, None)

    def _extract(self, call: LLMCall) -> _extract.Extracted:
        try:
            if call.stream:
                return _stream.extract_stream(call.chunks or ())
            return _extract.extract_response(call.result)
        except Exception:
            log.debug("llmpulse could not read the model response", exc_info=True)
            stats.incr("extract_errors")
            return _extract.Extracted()

    # -- content ------------------------------------------------------------------------
    def _capture_input(self, attrs: dict[str, AttrValue], call: LLMCall) -> None:
        pairs = _messages.simple_chat(call.args, call.kwargs)
        if pairs is not None:
            # The common shape, written straight to JSON: the same text as below, in one
            # join of str pieces (each `+` would copy the 2 KB system prompt again, and a
            # bytes join would need a decode pass more).
            if pairs:
                text_json = self._text_json
                out = ["["]
                add = out.append
                for role, text in pairs:
                    add(_message_head(role))
                    add(text_json(text))
                    add("}]},")
                out[-1] = "}]}]"
                attrs["gen_ai.input.messages"] = "".join(out)
            return
        messages = _messages.input_messages(call.args, call.kwargs)
        if messages:
            self._clean_messages(messages)
            attrs["gen_ai.input.messages"] = _dumps(messages).decode()

    def _output_json(self, ex: Extracted) -> str | None:
        """``gen_ai.output.messages`` as JSON, or None when the reply has no message."""
        text = ex.output_text or ex.refusal_text
        if text and not ex.tool_calls:
            # A text reply, the usual case: the same bytes as the general path below.
            reason = ex.finish_reasons[0] if ex.finish_reasons else "stop"
            tail = _OUTPUT_TAILS.get(reason)
            if tail is None:
                tail = '}],"finish_reason":' + _dumps(reason).decode() + "}]"
                if len(_OUTPUT_TAILS) < 64:  # finish reasons are few; odd ones are not kept
                    _OUTPUT_TAILS[reason] = tail
            return "".join((_OUTPUT_HEAD, self._text_json(text), tail))
        out = _messages.output_messages(ex)
        if not out:
            return None
        self._clean_messages(out)
        return _dumps(out).decode()

    def _text_json(self, text: str) -> str:
        """``text`` truncated, redacted and JSON-encoded; long repeated texts (system
        prompts) are cached."""
        if len(text) < _CACHE_MIN_CHARS:
            return _dumps(self._clean(text)).decode()
        cache = self._json_cache
        hit = cache.get(text)
        if hit is None:
            hit = _dumps(self._clean(text)).decode()
            if len(cache) >= _CACHE_MAX_ENTRIES:
                cache.clear()
            cache[text] = hit
        return hit

    def _clean_messages(self, messages: list[dict[str, Any]]) -> None:
        """Truncate and redact every string in the message parts, in place (the lists are
        ours, built by _extract), including strings nested in tool-call arguments."""
        for message in messages:
            parts = message.get("parts")
            if isinstance(parts, list):
                for part in parts:
                    if isinstance(part, dict):
                        for key, value in part.items():
                            if key != "type":
                                part[key] = self._clean_value(value, 0)

    def _clean_value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.clean_text(value)
        if depth > 20:
            return "[TOO_DEEP]"
        if isinstance(value, dict):
            return {k: self._clean_value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean_value(v, depth + 1) for v in value]
        return value

    def clean_text(self, text: str) -> str:
        """Truncate to ``max_content_chars`` and redact; long repeated texts are cached."""
        if len(text) < _CACHE_MIN_CHARS:
            return self._clean(text)
        cache = self._clean_cache
        hit = cache.get(text)
        if hit is None:
            hit = self._clean(text)
            if len(cache) >= _CACHE_MAX_ENTRIES:
                cache.clear()
            cache[text] = hit
        return hit

    def _clean(self, text: str) -> str:
        out = text
        limit = self.max_content_chars
        if len(out) > limit:
            out = out[:limit] + _TRUNCATION_MARK.format(len(out) - limit)
        if self.redact is not None:
            try:
                out = self.redact(out)
            except Exception:
                # A broken redactor must not leak what it was meant to hide.
                log.exception("llmpulse redactor failed; content dropped")
                stats.incr("redact_errors")
                out = "[REDACTION_FAILED]"
        return out


def _event_attributes(outcome: Outcome) -> SharedAttributes:
    """A ``gen_ai.evaluation.result`` event's attributes for ``outcome``."""
    ev = SharedAttributes()
    ev["gen_ai.evaluation.name"] = outcome.name
    ev["gen_ai.evaluation.score.label"] = outcome.label
    if outcome.score is not None and not math.isnan(outcome.score):
        ev["gen_ai.evaluation.score.value"] = outcome.score
    if outcome.explanation:
        ev["gen_ai.evaluation.explanation"] = outcome.explanation
    return ev


_OUTPUT_HEAD = '[{"role":"assistant","parts":[{"type":"text","content":'
_OUTPUT_TAILS: dict[str, str] = {}
_MESSAGE_HEADS: dict[str, str] = {}


def _dumps(value: Any) -> bytes:
    """``orjson.dumps`` that does not lose a span to a lone surrogate (half of a pair split
    by a stream or a bad decode): such strings are written with ``?`` in its place, as the
    OTLP encoders write them."""
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:
        return orjson.dumps(_scrub(value), default=str)


def _message_head(role: str) -> str:
    """``{"role":<role>,"parts":[{"type":"text","content":`` for one input message."""
    head = _MESSAGE_HEADS.get(role)
    if head is None:
        head = '{"role":' + _dumps(role).decode() + ',"parts":[{"type":"text","content":'
        if len(_MESSAGE_HEADS) < 64:  # roles are few; odd ones are not kept
            _MESSAGE_HEADS[role] = head
    return head


def clean_attributes(values: Mapping[str, Any]) -> dict[str, AttrValue]:
    """Keep only values OTLP can carry; others become their ``str``."""
    out: dict[str, AttrValue] = {}
    for key, value in values.items():
        out[str(key)] = value if isinstance(value, str | bool | int | float | list | tuple) else str(value)
    return out
