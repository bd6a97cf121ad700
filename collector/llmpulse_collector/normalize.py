"""Span attributes, whatever instrumentation wrote them, → one :data:`~.rows.SpanRow`.

The wire decoders (``ingest/otlp.py``) hand over each span as plain values (ids as hex,
attributes as a ``dict`` of str/int/float/bool/list/dict, strings already cut to
``max_attribute_chars``); :class:`Normalizer` fills the columns. Attribute names are read
through ``llmpulse._semconv``, the same mapping the SDK's OTel bridge uses, so current and
older OTel GenAI names (``gen_ai.provider.name`` / ``gen_ai.system``,
``gen_ai.usage.input_tokens`` / ``prompt_tokens``), OpenLLMetry (``gen_ai.prompt.N.*``,
``gen_ai.completion.N.*``, ``llm.request.type``) and OpenInference (``llm.model_name``,
``llm.token_count.*``, ``openinference.span.kind``, ``input.value``) land in the same columns.
Where the C extension is built, ``_otlpscan.normalize_span`` and ``assertion_row`` build the
rows :meth:`Normalizer.span` and ``_assertion`` would (this module is their reference and
takes every span or event they leave to it); the rules below are the same for both.

Rules where the conventions leave a choice:

- ``is_llm``: a span any convention marks as GenAI, except operations that are not a model
  call (``execute_tool``, ``invoke_agent``, ``create_agent``, ``invoke_workflow``,
  ``retrieval``: the SDK's ``@observe(kind="tool")`` spans carry ``gen_ai.operation.name``
  too). Other spans are kept with ``is_llm = 0``.
- Token counts that are negative, NaN, fractional, not numbers or ≥ 2**53 count as absent
  (0), never as an error.
- ``refusal``: the SDK's verdict (``llmpulse.refusal*``) when the span has one; otherwise,
  for model calls, what the SDK itself would decide: a provider signal (finish reason
  ``content_filter`` or ``refusal``, a ``refusal`` message) first, then the
  :class:`~llmpulse._refusal.RefusalDetector` phrase heuristic on the output text.
- ``model``: the response model (``gen_ai.response.model``); for a call without one (a
  failure, or an instrumentation that does not record it), the response model calls with
  the same project, provider and request model were last answered as
  (:class:`ModelNames`), else the request model. ``request_model`` and ``response_model``
  keep what the span said.
- ``cost_usd``: ``llmpulse.cost.usd`` when it is a finite number ≥ 0, else the collector's
  :class:`~llmpulse._cost.PriceBook` price of the response (else request) model; ``None``
  when the model's price is unknown.
- ``sample_weight``: ``llmpulse.sample_weight`` when finite and ≥ 1, else 1 with a warning
  in the request's error message (a weight below 1 would shrink counters).
- ``user_id``: ``user.id``, ``llmpulse.user_id``, ``enduser.id`` (deprecated OTel name);
  ``session_id``: ``session.id``, ``llmpulse.session_id``, ``gen_ai.conversation.id``.
  First present wins.
- ``input`` / ``output``: ``gen_ai.input.messages`` / ``gen_ai.output.messages`` as sent
  (JSON text); else the same semconv message shape built from OpenLLMetry's
  ``gen_ai.prompt.N.role/content`` (``gen_ai.completion.N.*``) or OpenInference's
  ``llm.input_messages.N.message.role/content``; else a step's raw text
  (``llmpulse.input`` / ``llmpulse.output`` from the SDK's ``span().set_input``,
  OpenInference's ``input.value`` / ``output.value``). Cut to ``max_content_chars``.
- ``attributes``: every span attribute not copied into a column, as a JSON object
  (alias names of a column count as copied: ``gen_ai.system`` next to
  ``gen_ai.provider.name`` is left out too; on a span that is not GenAI, GenAI names such as
  a rolled-up ``llm.token_count.prompt`` are not read, so they stay here). Resource
  attributes other than the three below are not stored.
- ``service`` / ``environment`` / ``release``: the resource's ``service.name``,
  ``deployment.environment.name`` (or the older ``deployment.environment``) and
  ``service.version``.
- Assertions: each ``gen_ai.evaluation.result`` event. Its label is ``pass``, ``fail`` or
  ``error`` (common synonyms such as ``passed``/``true``/``yes`` are mapped); any other
  label with a score in [0, 1] becomes ``pass`` when the score is ≥ 0.5, else ``fail``;
  events with neither a usable label nor such a score, or without a name, are skipped
  with a warning. Other span events are not stored, except that an ``exception`` event's
  ``exception.type`` fills ``error_type`` when ``error.type`` is absent.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from llmpulse import _semconv
from llmpulse._config import ENV
from llmpulse._cost import PriceBook
from llmpulse._extract import Extracted
from llmpulse._refusal import RefusalDetector

from .rows import ASSERTION_SCHEMA, SPAN_SCHEMA, AssertionRow, SpanRow

try:  # the C extension (setup.py): OTLP scanner and row builders; None: everything in Python
    from llmpulse_collector import _otlpscan as compiled
except ImportError:  # pragma: no cover - a build without a C compiler
    compiled = None  # type: ignore[assignment]
if os.environ.get(ENV.PURE_PYTHON):  # the Python reference even where the extension is built
    compiled = None  # type: ignore[assignment]
_c_span = None if compiled is None else compiled.normalize_span
_c_assertion = None if compiled is None else compiled.assertion_row

__all__ = ["EVENT_NAMES", "TRUNCATION_MARK", "ModelNames", "Normalizer", "Problems", "Resource", "compiled", "truncate"]

EVALUATION_EVENT = "gen_ai.evaluation.result"
EXCEPTION_EVENT = "exception"
#: The span events the collector reads; decoders may skip converting all others.
EVENT_NAMES = frozenset((EVALUATION_EVENT, EXCEPTION_EVENT))

#: Appended to a cut string (``.format(number of characters cut)``); the SDK's marker, so a
#: value cut by the SDK and one cut here read the same.
TRUNCATION_MARK = "…[truncated {} chars]"
# Counts at or past 2**53 are not exact as doubles (JSON readers, ClickHouse Float64
# aggregates) and no real call uses that many tokens.
_MAX_TOKENS = 1 << 53
_MAX_INDEXED_MESSAGES = 1000
_MAX_FINISH_REASONS = 16
_SHORT = 256  # LowCardinality values taken from free-form strings (finish reasons, labels)

_NOT_MODEL_CALLS = frozenset(("execute_tool", "invoke_agent", "create_agent", "invoke_workflow", "retrieval"))
# OpenLLMetry's `llm.request.type` and OpenInference's span kind -> gen_ai.operation.name.
_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings", "rerank": "rerank"}
_OPENINFERENCE_KINDS = {
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "TOOL": "execute_tool",
    "AGENT": "invoke_agent",
    "RETRIEVER": "retrieval",
    "RERANKER": "rerank",
}

_USER_KEYS = ("user.id", "llmpulse.user_id", "enduser.id")
_SESSION_KEYS = ("session.id", "llmpulse.session_id", "gen_ai.conversation.id")
_TTFT_KEYS = ("gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token")
_STREAM_KEYS = ("gen_ai.request.stream", "gen_ai.is_streaming", "llm.is_streaming")
_PROMPT_VERSION_KEYS = ("llmpulse.prompt.version", "llm.prompt_template.version")
_TOKEN_KEYS = frozenset(
    (
        *_semconv._INPUT_KEYS,
        *_semconv._OUTPUT_KEYS,
        *_semconv._CACHE_READ_KEYS,
        *_semconv._CACHE_WRITE_KEYS,
        *_semconv._REASONING_KEYS,
    )
)
# Attributes whose value goes into a column (with every alias of the column's name): read
# on every span, and in addition on GenAI spans.
_CONSUMED_ALWAYS = frozenset(
    (
        *_USER_KEYS,
        *_SESSION_KEYS,
        *_PROMPT_VERSION_KEYS,
        "gen_ai.operation.name",
        "llm.request.type",
        "gen_ai.prompt.name",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "llmpulse.sample_weight",
        "error.type",
    )
)
_CONSUMED_GENAI = _CONSUMED_ALWAYS.union(
    (
        *_semconv._PROVIDER_KEYS,
        *_semconv._REQUEST_MODEL_KEYS,
        *_semconv._RESPONSE_MODEL_KEYS,
        *_TOKEN_KEYS,
        *_TTFT_KEYS,
        *_STREAM_KEYS,
        "gen_ai.response.id",
        "gen_ai.response.finish_reasons",
        "gen_ai.completion.0.finish_reason",
        "llmpulse.refusal",
        "llmpulse.refusal.source",
        "llmpulse.refusal.category",
        "llmpulse.cost.usd",
    )
)
# (role key, content key) formats of indexed message attributes, first match wins.
_INDEXED_INPUT = (
    ("gen_ai.prompt.{}.role", "gen_ai.prompt.{}.content"),
    ("llm.input_messages.{}.message.role", "llm.input_messages.{}.message.content"),
)
_INDEXED_OUTPUT = (
    ("gen_ai.completion.{}.role", "gen_ai.completion.{}.content"),
    ("llm.output_messages.{}.message.role", "llm.output_messages.{}.message.content"),
)
# ... with the keys of message 0, to test for cheaply.
_INDEXED_INPUT_0 = tuple((r, c, r.format(0), c.format(0)) for r, c in _INDEXED_INPUT)
_INDEXED_OUTPUT_0 = tuple((r, c, r.format(0), c.format(0)) for r, c in _INDEXED_OUTPUT)
_RAW_INPUT = ("llmpulse.input", "input.value")
_RAW_OUTPUT = ("llmpulse.output", "output.value")

_LABELS = {
    **dict.fromkeys(("pass", "passed", "ok", "true", "yes", "success", "succeeded", "correct"), "pass"),
    **dict.fromkeys(("fail", "failed", "failure", "false", "no", "incorrect"), "fail"),
    **dict.fromkeys(("error", "errored"), "error"),
}

#: The columns an assertion row takes from its span's row, in the order of ``_assertion``'s
#: ``keys`` (and of ``ASSERTION_KEY_COLUMNS`` in ``_otlpscan.c``).
_ASSERTION_KEYS = ("service", "environment", "provider", "model", "prompt_name", "prompt_version", "sample_weight")

#: A resource's columns: (service, environment, release).
Resource = tuple[str, str, str]


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters plus ``…[truncated N chars]`` when longer."""
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARK.format(len(text) - limit)


def _text(value: object) -> str:
    """A scalar attribute as a column string ("" for lists, maps and absent values)."""
    if type(value) is str:
        return value
    if type(value) is int or type(value) is float:
        return str(value)
    return ""


def _tokens(value: int | None) -> int | None:
    return value if value is not None and value < _MAX_TOKENS else None


def _number(value: object) -> float | None:
    """A finite, non-negative int or float attribute, else None (bools are not numbers)."""
    if (type(value) is float or type(value) is int) and 0 <= value < math.inf:
        return float(value)
    return None


class Problems:
    """One readable message per distinct problem, with how often it occurred.

    ``add(key, message)``: ``key`` names the kind of problem (``"traceId:length"``), and
    the first message of each kind is kept, e.g.
    ``"resourceSpans[0].scopeSpans[0].spans[3].traceId: expected 32 hex characters, got 8
    (and 2 more like it)"``.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, list[Any]] = {}

    def add(self, key: str, message: str) -> None:
        entry = self._seen.get(key)
        if entry is None:
            self._seen[key] = [message, 1]
        else:
            entry[1] += 1

    def messages(self) -> list[str]:
        return [msg if n == 1 else f"{msg} (and {n - 1} more like it)" for msg, n in self._seen.values()]


class ModelNames:
    """The response model each request model was last answered as, per project and provider.

    A failed call has no response model, so ``model`` would otherwise split one model's calls
    across two names (``gpt-4o-mini`` for its failures, ``gpt-4o-mini-2024-07-18`` for the
    rest) and every error ratio by model would be wrong. Shared by all requests of a
    collector; each operation is one dict operation, atomic under the GIL. At most
    ``capacity`` request models are remembered: past that, new ones are not learned (their
    answerless calls keep the request name), so a client sending endless model names costs
    bounded memory.
    """

    __slots__ = ("_answers", "capacity")

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._answers: dict[tuple[str, str, str], str] = {}

    def learn(self, key: tuple[str, str, str], response_model: str) -> None:
        """Remember ``response_model`` as the answer to ``(project, provider, request model)``."""
        answers = self._answers
        known = answers.get(key)
        if known != response_model and (known is not None or len(answers) < self.capacity):
            answers[key] = response_model

    def seed(self, answers: Iterable[tuple[tuple[str, str, str], str]]) -> None:
        """Learn stored answers (at startup) without overriding any learned since."""
        known = self._answers
        for key, response_model in answers:
            if key not in known and len(known) < self.capacity:
                known[key] = response_model

    def answer(self, key: tuple[str, str, str]) -> str | None:
        """The response model last learned for ``(project, provider, request model)``, if any."""
        return self._answers.get(key)

    def __len__(self) -> int:
        return len(self._answers)


class Normalizer:
    """Builds the rows of one request: create one per request, call :meth:`span` per span.

    Not thread-safe (one request, one thread); the ``PriceBook``, ``RefusalDetector`` and
    ``ModelNames`` it is given are, and are shared by all requests.
    """

    __slots__ = (
        "_assertion_row",
        "_attr_chars",
        "_c_ctx",
        "_content_chars",
        "_models",
        "_prices",
        "_project",
        "_refusals",
        "_span_row",
        "assertions",
        "ingested_at_ms",
        "problems",
        "rejected",
        "spans",
    )

    def __init__(
        self,
        *,
        project: str,
        max_attribute_chars: int,
        max_content_chars: int,
        prices: PriceBook,
        refusals: RefusalDetector,
        ingested_at_ms: int,
        models: ModelNames | None = None,
    ) -> None:
        self.ingested_at_ms = ingested_at_ms
        self._project = project
        self._models = models
        self._attr_chars = max_attribute_chars
        self._content_chars = max_content_chars
        self._prices = prices
        self._refusals = refusals
        # Rows start as copies of these: a dict copy is cheaper than a 45-key literal.
        self._span_row: SpanRow = {c: d for c, _, d in SPAN_SCHEMA}
        self._span_row.update(project=project, ingested_at=ingested_at_ms)
        self._assertion_row: AssertionRow = {c: d for c, _, d in ASSERTION_SCHEMA}
        self._assertion_row["project"] = project
        self.spans: list[SpanRow] = []
        self.assertions: list[AssertionRow] = []
        self.problems = Problems()
        self.rejected = 0
        # What the compiled span() reads (ctx_of in _otlpscan.c unpacks it in this order); None: Python only.
        self._c_ctx: tuple[Any, ...] | None = None
        if _c_span is not None:
            self._c_ctx = (
                self._span_row,
                max_attribute_chars,
                max_content_chars,
                project,
                models,
                prices.cost,
                refusals.detect,
                _semconv._output_text,
                orjson.dumps,
                truncate,
                _REQUEST_TYPES,
                _OPENINFERENCE_KINDS,
                _NOT_MODEL_CALLS,
                _CONSUMED_GENAI,
                _CONSUMED_ALWAYS,
            )

    def reject(self, key: str, message: str, spans: int = 1) -> None:
        """Drop ``spans`` spans for one reason (OTLP partial success)."""
        self.rejected += spans
        self.problems.add(key, message)

    def resource(self, attrs: Mapping[str, Any]) -> Resource:
        """The columns a ``Resource`` gives every span under it."""
        get = attrs.get
        env = _text(get("deployment.environment.name")) or _text(get("deployment.environment"))
        lim = self._attr_chars
        return (
            truncate(_text(get("service.name")), lim),
            truncate(env, lim),
            truncate(_text(get("service.version")), lim),
        )

    def span(
        self,
        resource: Resource,
        scope: str,
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        name: str,
        kind: int,
        start_ns: int,
        end_ns: int,
        status_code: int,
        status_message: str,
        attrs: dict[str, Any],
        events: list[tuple[str, int, dict[str, Any]]],
    ) -> None:
        """Add the row of one valid span (ids lowercase hex, ``start_ns <= end_ns``) and the
        rows of its evaluation events."""
        ctx = self._c_ctx
        if ctx is not None and _c_span is not None:  # the row from C, or None: left to the code below
            built = _c_span(
                ctx,
                resource,
                scope,
                trace_id,
                span_id,
                parent_span_id,
                name,
                kind,
                start_ns,
                end_ns,
                status_code,
                status_message,
                attrs,
                events,
            )
            if built is not None:
                self.spans.append(built)
                if events:
                    self._evaluations(built, end_ns, events)
                return
        get = attrs.get
        lim = self._attr_chars
        row = self._span_row.copy()
        row["start_time"] = start_ns
        row["end_time"] = end_ns
        row["duration_s"] = (end_ns - start_ns) / 1e9
        row["trace_id"] = trace_id
        row["span_id"] = span_id
        row["parent_span_id"] = parent_span_id
        row["name"] = name if len(name) <= lim else truncate(name, lim)
        row["kind"] = kind
        if status_code:
            row["status_code"] = status_code
        if status_message:
            row["status_message"] = status_message if len(status_message) <= lim else truncate(status_message, lim)
        service, environment, release = resource
        row["service"] = service
        row["environment"] = environment
        row["release"] = release
        row["scope"] = scope

        operation = get("gen_ai.operation.name")
        if type(operation) is not str:
            operation = _REQUEST_TYPES.get(_text(get("llm.request.type")), "")
            if not operation:
                operation = _OPENINFERENCE_KINDS.get(_text(get("openinference.span.kind")), "")
        row["operation"] = operation
        # The first test is is_genai's commonest marker, without its call and generator.
        genai = "gen_ai.operation.name" in attrs or _semconv.is_genai(attrs)
        is_llm = genai and operation not in _NOT_MODEL_CALLS
        provider = model = ""
        if not genai:
            row["finish_reasons"] = []
        else:
            # The SDK's own verdict makes the reply's text (a JSON parse) unnecessary.
            ex = self._extract(attrs, output_text=type(get("llmpulse.refusal")) is not bool)
            provider = _semconv.provider_of(attrs) or ""
            request_model = _semconv.request_model_of(attrs) or ""
            response_model = ex.response_model or ""
            models = self._models
            if models is None:
                model = response_model or request_model
            elif response_model:
                model = response_model
                if request_model:
                    models.learn((self._project, provider, request_model), response_model)
            else:
                model = (request_model and models.answer((self._project, provider, request_model))) or request_model
            input_tokens = _tokens(ex.input_tokens)
            output_tokens = _tokens(ex.output_tokens)
            cache_read = _tokens(ex.cache_read_tokens)
            cache_write = _tokens(ex.cache_write_tokens)
            reasoning = _tokens(ex.reasoning_tokens)
            row["is_llm"] = 1 if is_llm else 0
            row["provider"] = provider
            row["request_model"] = request_model
            row["response_model"] = response_model
            row["model"] = model
            row["response_id"] = ex.response_id or ""
            row["input_tokens"] = 0 if input_tokens is None else input_tokens
            row["output_tokens"] = 0 if output_tokens is None else output_tokens
            row["cache_read_tokens"] = 0 if cache_read is None else cache_read
            row["cache_write_tokens"] = 0 if cache_write is None else cache_write
            row["reasoning_tokens"] = 0 if reasoning is None else reasoning
            reasons = ex.finish_reasons
            row["finish_reasons"] = [r[:_SHORT] for r in reasons[:_MAX_FINISH_REASONS]] if reasons else []

            value = get("llmpulse.cost.usd")
            cost = None if value is None else _number(value)
            if cost is None and is_llm and model:
                cost = self._prices.cost(provider or None, model, input_tokens, output_tokens, cache_read, cache_write)
            row["cost_usd"] = cost

            refusal = get("llmpulse.refusal")
            if type(refusal) is bool:
                if refusal:
                    row["refusal"] = 1
                    row["refusal_source"] = _text(get("llmpulse.refusal.source"))
                    row["refusal_category"] = _text(get("llmpulse.refusal.category"))
            elif is_llm:
                if ex.refusal:
                    row["refusal"] = 1
                    row["refusal_source"] = "provider"
                    row["refusal_category"] = ex.refusal_category or ""
                elif ex.output_text:
                    match = self._refusals.detect(ex.output_text)
                    if match is not None:
                        row["refusal"] = 1
                        row["refusal_source"] = "heuristic"
                        row["refusal_category"] = match.category or ""

            value = get(_TTFT_KEYS[0])
            if value is None:
                value = get(_TTFT_KEYS[1])
            if value is not None:
                row["ttft_s"] = _number(value)
            if get(_STREAM_KEYS[0]) is True or get(_STREAM_KEYS[1]) is True or get(_STREAM_KEYS[2]) is True:
                row["stream"] = 1

        value = get("llmpulse.sample_weight")
        if value is not None:
            if (type(value) is float or type(value) is int) and 1 <= value < math.inf:
                row["sample_weight"] = float(value)
            else:
                self.problems.add(
                    "sample_weight",
                    f"llmpulse.sample_weight must be a finite number >= 1 (1 / sample rate), got {value!r:.100};"
                    " used 1",
                )

        value = get("error.type")
        if value is not None:
            row["error_type"] = _text(value)
        elif events:
            for ev_name, _, ev_attrs in events:
                if ev_name == EXCEPTION_EVENT:
                    error_type = _text(ev_attrs.get("exception.type"))
                    if error_type:
                        row["error_type"] = error_type
                        break

        used: list[str] = []
        content = self._content_chars
        text = self._content(attrs, "gen_ai.input.messages", _INDEXED_INPUT_0, "user", _RAW_INPUT, used)
        if text:
            row["input"] = text if len(text) <= content else truncate(text, content)
        text = self._content(attrs, "gen_ai.output.messages", _INDEXED_OUTPUT_0, "assistant", _RAW_OUTPUT, used)
        if text:
            row["output"] = text if len(text) <= content else truncate(text, content)

        skip = _CONSUMED_GENAI if genai else _CONSUMED_ALWAYS
        if used:
            skip = skip.union(used)
        rest = {k: v for k, v in attrs.items() if k not in skip}
        if rest:
            row["attributes"] = self._json(rest)

        for key in _USER_KEYS:
            value = get(key)
            if value is not None:
                text = _text(value)
                if text:
                    row["user_id"] = text
                    break
        for key in _SESSION_KEYS:
            value = get(key)
            if value is not None:
                text = _text(value)
                if text:
                    row["session_id"] = text
                    break
        value = get("gen_ai.prompt.name")
        prompt_name = "" if value is None else _text(value)
        value = get(_PROMPT_VERSION_KEYS[0])
        if value is None:
            value = get(_PROMPT_VERSION_KEYS[1])
        prompt_version = "" if value is None else _text(value)
        row["prompt_name"] = prompt_name
        row["prompt_version"] = prompt_version
        self.spans.append(row)
        if events:
            self._evaluations(row, end_ns, events)

    # -- helpers ---------------------------------------------------------------------------

    def _evaluations(self, row: SpanRow, end_ns: int, events: list[tuple[str, int, dict[str, Any]]]) -> None:
        """The assertion rows of a span's ``gen_ai.evaluation.result`` events, labelled as its row."""
        keys = tuple(row[column] for column in _ASSERTION_KEYS)
        trace_id, span_id = row["trace_id"], row["span_id"]
        compiled = _c_assertion if self._c_ctx is not None else None
        for ev_name, ev_time, ev_attrs in events:
            if ev_name == EVALUATION_EVENT:
                time_ns = ev_time or end_ns
                if compiled is not None:  # the same row from C, or None: an event _assertion warns about
                    built = compiled(self._assertion_row, _LABELS, trace_id, span_id, time_ns, ev_attrs, keys)
                    if built is not None:
                        self.assertions.append(built)
                        continue
                self._assertion(trace_id, span_id, time_ns, ev_attrs, keys)

    def _extract(self, attrs: dict[str, Any], *, output_text: bool) -> Extracted:
        try:
            return _semconv.from_attributes(attrs, output_text=output_text)
        except Exception:
            # Defensive: _semconv is meant never to raise (it once did on a token count "²"
            # and on `"parts": 5`); if some new shape makes it, read the span again without
            # string token counts and output messages rather than lose it.
            self.problems.add(
                "semconv",
                "could not read a span's GenAI attributes (malformed token counts or"
                " gen_ai.output.messages); those attributes were ignored",
            )
            safe = {
                k: v
                for k, v in attrs.items()
                if k != "gen_ai.output.messages" and not (k in _TOKEN_KEYS and type(v) is str)
            }
            try:
                return _semconv.from_attributes(safe, output_text=output_text)
            except Exception:
                return Extracted()

    def _content(
        self,
        attrs: dict[str, Any],
        key: str,
        indexed: tuple[tuple[str, str, str, str], ...],
        default_role: str,
        raw: tuple[str, ...],
        used: list[str],
    ) -> str:
        value = attrs.get(key)
        if value is not None:
            return value if type(value) is str else self._json(value)
        for role_key, content_key, role_0, content_0 in indexed:
            if role_0 in attrs or content_0 in attrs:
                return self._json(_indexed_messages(attrs, role_key, content_key, default_role, used))
        for raw_key in raw:
            value = attrs.get(raw_key)
            if value is not None:
                used.append(raw_key)
                return value if type(value) is str else self._json(value)
        return ""

    def _json(self, value: object) -> str:
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # cannot happen with decoded OTLP values; never lose the span for it
            self.problems.add("json", "some attribute values could not be stored as JSON and were left out")
            return "{}"

    def _assertion(
        self,
        trace_id: str,
        span_id: str,
        time_ns: int,
        attrs: dict[str, Any],
        keys: tuple[str, str, str, str, str, str, float],
    ) -> None:
        get = attrs.get
        name = _text(get("gen_ai.evaluation.name"))
        raw_score: Any = get("gen_ai.evaluation.score.value")
        score = float(raw_score) if type(raw_score) in (float, int) and math.isfinite(raw_score) else None
        raw_label = get("gen_ai.evaluation.score.label")
        label = _LABELS.get(raw_label.strip().lower(), "") if type(raw_label) is str else ""
        if not label and score is not None and 0.0 <= score <= 1.0:
            label = "pass" if score >= 0.5 else "fail"
        if not name or not label:
            self.problems.add(
                "evaluation",
                "skipped a gen_ai.evaluation.result event: it needs gen_ai.evaluation.name and"
                " gen_ai.evaluation.score.label pass|fail|error (or a score in [0, 1]);"
                f" got name {name[:100]!r}, label {raw_label!r:.100}, score {raw_score!r:.100}",
            )
            return
        row = self._assertion_row.copy()
        row["time"] = time_ns
        row["trace_id"] = trace_id
        row["span_id"] = span_id
        row.update(zip(_ASSERTION_KEYS, keys, strict=True))
        row["name"] = name[:_SHORT]
        row["label"] = label
        row["score"] = score
        row["explanation"] = _text(get("gen_ai.evaluation.explanation"))
        self.assertions.append(row)


_EMPTY = Extracted()


def _indexed_messages(
    attrs: Mapping[str, Any], role_key: str, content_key: str, default_role: str, used: list[str]
) -> list[dict[str, Any]]:
    """Semconv-shaped messages from ``gen_ai.prompt.0.role``/``.content``-style attributes."""
    messages: list[dict[str, Any]] = []
    for i in range(_MAX_INDEXED_MESSAGES):
        rk = role_key.format(i)
        ck = content_key.format(i)
        role = attrs.get(rk)
        content = attrs.get(ck)
        if role is None and content is None:
            break
        used.append(rk)
        used.append(ck)
        parts = [] if content is None else [{"type": "text", "content": content}]
        messages.append({"role": role if type(role) is str else default_role, "parts": parts})
    return messages
