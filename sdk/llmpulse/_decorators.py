"""``@llm``, ``@observe`` and ``span()``: the SDK's instrumentation surface.

Each decorator computes its static attributes once, branches explicitly on the kind of
function (sync, coroutine, generator, async generator), and on every call reads the
process client: ``None`` means "not initialised / disabled" and the call goes straight
through. SDK work is guarded so that it never raises into the app; the app's own
exceptions are re-raised unchanged with a bare ``raise``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import Any, TypeVar, cast, overload

from typing_extensions import ParamSpec

from ._checks import Check, validate_checks
from ._client import Activation, Client, _state
from ._exceptions import ConfigError
from ._llm import LLMSpec, clean_attributes
from ._prompt import Prompt
from ._span import KIND_INTERNAL, AttrValue, SpanRecord
from ._stats import stats

__all__ = ["SpanHandle", "llm", "observe", "span"]

log = logging.getLogger("llmpulse")

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

SPAN_KINDS = ("workflow", "task", "agent", "tool", "retrieval", "embedding", "rerank")
OPERATIONS = (
    "chat",
    "text_completion",
    "generate_content",
    "embeddings",
    "create_agent",
    "invoke_agent",
    "execute_tool",
)


def _internal_error(where: str) -> None:
    log.debug("llmpulse internal error in %s", where, exc_info=True)
    stats.incr("internal_errors")


def _start(
    spec: LLMSpec, stream: bool, client: Client, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> SpanRecord | None:
    # spec and stream first: @llm binds them with functools.partial (no Python frame).
    try:
        return client.start_llm(spec, args, kwargs, stream)
    except Exception:
        _internal_error("start_llm")
        return None


def _activate(span: SpanRecord | None, otel: bool = False) -> Activation | None:
    if span is None:
        return None
    try:
        return Activation(span, otel)
    except Exception:
        _internal_error("activate")
        return None


def _finish(client: Client, span: SpanRecord | None, act: Activation | None, exc: BaseException | None = None) -> None:
    if act is not None:
        act.close()
    if span is None:
        return
    try:
        if exc is None:
            client.end(span)
        else:
            client.end_with_error(span, exc)
    except Exception:
        _internal_error("end")


def _on_chunk(client: Client, span: SpanRecord | None, chunk: object) -> None:
    if span is None:
        return
    call = span.llm
    if not call.first_chunk_ns:
        call.first_chunk_ns = client.clock()
    call.chunks.append(chunk)


def _wrap_sync(
    fn: Callable[P, R], start: Callable[[Client, tuple[Any, ...], dict[str, Any]], SpanRecord | None], otel: bool
) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        client = _state.client
        if client is None:
            return fn(*args, **kwargs)
        span = start(client, args, kwargs)
        act = _activate(span, otel)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _finish(client, span, act, exc)
            raise
        if span is not None and span.llm is not None:
            span.llm.result = result
        _finish(client, span, act)
        return result

    return wrapper


def _wrap_async(
    fn: Callable[P, Awaitable[R]],
    start: Callable[[Client, tuple[Any, ...], dict[str, Any]], SpanRecord | None],
    otel: bool,
) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        client = _state.client
        if client is None:
            return await fn(*args, **kwargs)
        span = start(client, args, kwargs)
        act = _activate(span, otel)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            _finish(client, span, act, exc)
            raise
        if span is not None and span.llm is not None:
            span.llm.result = result
        _finish(client, span, act)
        return result

    return wrapper


def _wrap_gen(
    fn: Callable[P, Generator[Any, Any, Any]],
    start: Callable[[Client, tuple[Any, ...], dict[str, Any]], SpanRecord | None],
    otel: bool,
    record_chunks: bool,
) -> Callable[P, Generator[Any, Any, Any]]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Generator[Any, Any, Any]:
        client = _state.client
        if client is None:
            return (yield from fn(*args, **kwargs))
        span = start(client, args, kwargs)
        # The span is current only while the wrapped generator runs, never across a
        # yield: the consumer's code between chunks is not part of the call.
        act = _activate(span, otel)
        try:
            gen = fn(*args, **kwargs)
            chunk = next(gen)
        except StopIteration as stop:
            _finish(client, span, act)
            return stop.value
        except BaseException as exc:
            _finish(client, span, act, exc)
            raise
        while True:
            if act is not None:
                act.close()
            if record_chunks:
                _on_chunk(client, span, chunk)
            try:
                sent = yield chunk
            except GeneratorExit:
                # The consumer stopped early (break, close, garbage collection).
                act = _activate(span, otel)
                try:
                    gen.close()
                finally:
                    _mark_closed_early(span)
                    _finish(client, span, act)
                raise
            except BaseException as exc:
                act = _activate(span, otel)
                try:
                    chunk = gen.throw(exc)
                except StopIteration as stop:
                    _finish(client, span, act)
                    return stop.value
                except BaseException as inner:
                    _finish(client, span, act, inner)
                    raise
                continue
            act = _activate(span, otel)
            try:
                chunk = gen.send(sent)
            except StopIteration as stop:
                _finish(client, span, act)
                return stop.value
            except BaseException as exc:
                _finish(client, span, act, exc)
                raise

    return wrapper


def _wrap_asyncgen(
    fn: Callable[P, AsyncGenerator[Any, Any]],
    start: Callable[[Client, tuple[Any, ...], dict[str, Any]], SpanRecord | None],
    otel: bool,
    record_chunks: bool,
) -> Callable[P, AsyncGenerator[Any, Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Any, Any]:
        client = _state.client
        if client is None:
            agen = fn(*args, **kwargs)
            try:
                async for item in agen:
                    yield item
            finally:
                await agen.aclose()
            return
        span = start(client, args, kwargs)
        act = _activate(span, otel)
        try:
            agen = fn(*args, **kwargs)
            chunk = await agen.__anext__()
        except StopAsyncIteration:
            _finish(client, span, act)
            return
        except BaseException as exc:
            _finish(client, span, act, exc)
            raise
        while True:
            if act is not None:
                act.close()
            if record_chunks:
                _on_chunk(client, span, chunk)
            try:
                sent = yield chunk
            except GeneratorExit:
                act = _activate(span, otel)
                try:
                    await agen.aclose()
                finally:
                    _mark_closed_early(span)
                    _finish(client, span, act)
                raise
            except BaseException as exc:
                act = _activate(span, otel)
                try:
                    chunk = await agen.athrow(exc)
                except StopAsyncIteration:
                    _finish(client, span, act)
                    return
                except BaseException as inner:
                    _finish(client, span, act, inner)
                    raise
                continue
            act = _activate(span, otel)
            try:
                chunk = await agen.asend(sent)
            except StopAsyncIteration:
                _finish(client, span, act)
                return
            except BaseException as exc:
                _finish(client, span, act, exc)
                raise

    return wrapper


def _mark_closed_early(span: SpanRecord | None) -> None:
    if span is not None:
        span.attributes["llmpulse.stream.closed_early"] = True


def _wrap(fn: Any, start: Any, otel: bool, record_chunks: bool) -> Any:
    if inspect.isasyncgenfunction(fn):
        return _wrap_asyncgen(fn, start, otel, record_chunks)
    if inspect.iscoroutinefunction(fn):
        return _wrap_async(fn, start, otel)
    if inspect.isgeneratorfunction(fn):
        return _wrap_gen(fn, start, otel, record_chunks)
    return _wrap_sync(fn, start, otel)


def _optional_str(value: object, option: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{option} must be a non-empty string or None, got {value!r}")
    return value


def llm(
    provider: str | None = None,
    model: str | None = None,
    operation: str = "chat",
    prompt: Prompt | None = None,
    assertions: Check | Iterable[Check] = (),
) -> Callable[[F], F]:
    """Record every call of the decorated function as one LLM span.

    Works on sync, async, generator and async-generator (streaming) functions. The
    function's arguments and return value are untouched; the return value (or the
    chunks it yields) is read afterwards, off the call path, for the response model,
    token usage, finish reasons, output text and refusal signals of OpenAI and
    Anthropic objects or their dict forms::

        @llmpulse.llm(provider="openai", model="gpt-4o-mini",
                      assertions=[llmpulse.check.starts_lowercase()])
        def reply(messages: list[dict[str, str]]) -> ChatCompletion:
            return client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    ``model`` may be left out when the function passes ``model=`` through its keyword
    arguments. ``assertions`` run on every call, after the global ones from ``init``.
    """
    provider = _optional_str(provider, "llm(provider=...)")
    model = _optional_str(model, "llm(model=...)")
    if not isinstance(operation, str) or not operation:
        raise ConfigError(f"llm(operation=...) must be a string such as 'chat', got {operation!r}")
    if prompt is not None and not isinstance(prompt, Prompt):
        raise ConfigError(f"llm(prompt=...) must be an llmpulse.Prompt, got {type(prompt).__name__}")
    spec = LLMSpec(provider, model, operation, prompt, validate_checks(assertions, "llm(assertions=...)"))

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise ConfigError(f"@llm decorates a function, got {fn!r}")
        streaming = inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn)
        start = functools.partial(_start, spec, streaming)
        return cast(F, _wrap(fn, start, otel=False, record_chunks=True))

    return decorate


def _start_plain(client: Client, name: str, attributes: dict[str, AttrValue]) -> SpanRecord | None:
    try:
        return client.start_span(name, KIND_INTERNAL, dict(attributes))
    except Exception:
        _internal_error("start_span")
        return None


def _kind_attributes(kind: str, name: str) -> dict[str, AttrValue]:
    if kind not in SPAN_KINDS:
        raise ConfigError(f"kind must be one of {', '.join(SPAN_KINDS)}, got {kind!r}")
    attrs: dict[str, AttrValue] = {"llmpulse.span.kind": kind}
    if kind == "tool":
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = name
    elif kind == "agent":
        attrs["gen_ai.operation.name"] = "invoke_agent"
        attrs["gen_ai.agent.name"] = name
    return attrs


@overload
def observe(name: F, kind: str = "workflow") -> F: ...
@overload
def observe(name: str | None = None, kind: str = "workflow") -> Callable[[F], F]: ...


def observe(name: Any = None, kind: str = "workflow") -> Any:
    """Record a non-LLM step (a request, retrieval, a tool) as a span; LLM calls inside nest in it.

    ``@observe`` and ``@observe(name="retrieve", kind="retrieval")`` both work; the span
    name defaults to the function's qualified name. ``kind`` is one of
    ``workflow, task, agent, tool, retrieval, embedding, rerank``. The span is also made
    current for the OpenTelemetry API, so spans the app creates with its own OTel tracer
    inside it join the same trace.
    """
    if callable(name):
        return observe(None, kind)(name)
    span_name = _optional_str(name, "observe(name=...)")

    def decorate(fn: F) -> F:
        label = span_name or getattr(fn, "__qualname__", None) or repr(fn)
        attrs = _kind_attributes(kind, label)

        def start(client: Client, args: tuple[Any, ...], kwargs: dict[str, Any]) -> SpanRecord | None:
            return _start_plain(client, label, attrs)

        return cast(F, _wrap(fn, start, otel=True, record_chunks=False))

    return decorate


class SpanHandle:
    """What ``with llmpulse.span(name) as s`` gives: set attributes and an output on the span."""

    __slots__ = ("_act", "_client", "_span")

    def __init__(self, client: Client | None, span: SpanRecord | None) -> None:
        self._client = client
        self._span = span
        self._act: Activation | None = None

    @property
    def trace_id(self) -> str | None:
        """The span's trace id as 32 hex characters (None when the SDK is disabled)."""
        return None if self._span is None else self._span.trace_id_hex

    @property
    def span_id(self) -> str | None:
        return None if self._span is None else self._span.span_id_hex

    def set_attribute(self, key: str, value: object) -> None:
        """Set one attribute (str, bool, int, float or a list of them; others become str)."""
        if self._span is None:
            return
        try:
            self._span.attributes.update(clean_attributes({key: value}))
        except Exception:
            _internal_error("set_attribute")

    def set_output(self, value: object) -> None:
        """Record the step's output as ``llmpulse.output`` (only with content capture on, redacted)."""
        self._set_content("llmpulse.output", value)

    def set_input(self, value: object) -> None:
        """Record the step's input as ``llmpulse.input`` (only with content capture on, redacted)."""
        self._set_content("llmpulse.input", value)

    def _set_content(self, key: str, value: object) -> None:
        client = self._client
        if self._span is None or client is None or not client.config.capture_content:
            return
        try:
            from ._llm import _dumps

            text = value if isinstance(value, str) else _dumps(value).decode()
            self._span.attributes[key] = client.finisher.clean_text(text)
        except Exception:
            _internal_error("set_output")

    def __enter__(self) -> SpanHandle:
        if self._span is not None:
            self._act = _activate(self._span, otel=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            _finish(self._client, self._span, self._act, exc)
        self._act = None


def span(name: str, kind: str = "task", **attributes: object) -> SpanHandle:
    """A span around a block of code, as a context manager::

    with llmpulse.span("retrieve", kind="retrieval", top_k=5) as s:
        docs = search(query)
        s.set_attribute("retrieval.documents", len(docs))
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"span name must be a non-empty string, got {name!r}")
    attrs = _kind_attributes(kind, name)
    client = _state.client
    if client is None:
        return SpanHandle(None, None)
    if attributes:
        attrs.update(clean_attributes(attributes))
    return SpanHandle(client, _start_plain(client, name, attrs))
