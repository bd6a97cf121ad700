"""The pieces every client patch is built from: method wrappers and stream proxies.

A wrapped method records one LLM span per call with the same machinery as ``@llm``
(``Client.start_llm``; extraction, refusal, cost and assertions on the worker thread).
It calls straight through when llmpulse is not initialised, and inside an ``@llm`` span:
there the decorator already records the call, and counting it twice would double every
metric. A streamed response is handed back wrapped in a proxy that records each chunk as
the app reads it and ends the span when the stream is exhausted, fails, is closed or is
garbage-collected; everything else is delegated to the real stream object.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

from llmpulse._client import Client, _state, current_span
from llmpulse._decorators import _finish, _internal_error, _start
from llmpulse._llm import LLMSpec
from llmpulse._span import SpanRecord

__all__ = ["AsyncStreamProxy", "StreamProxy", "async_method", "begin", "end", "sync_method"]

log = logging.getLogger("llmpulse")

# What of the call's keyword arguments to keep for the span (content capture reads them).
Capture = Callable[[dict[str, Any]], dict[str, Any]]


def recording() -> Client | None:
    """The client to record with, or None (not initialised, or inside an ``@llm`` span)."""
    client = _state.client
    if client is None:
        return None
    cur = current_span()
    if cur is not None and cur.llm is not None:
        return None
    return client


def begin(client: Client, spec: LLMSpec, kwargs: dict[str, Any], stream: bool) -> SpanRecord | None:
    return _start(spec, stream, client, (), kwargs)


def end(client: Client, span: SpanRecord | None, exc: BaseException | None = None) -> None:
    _finish(client, span, None, exc)


def _finish_result(client: Client, span: SpanRecord | None, result: Any) -> None:
    if span is not None and span.llm is not None:
        span.llm.result = result
    end(client, span)


def sync_method(original: Callable[..., Any], spec: LLMSpec, capture: Capture) -> Callable[..., Any]:
    """Wrap a client method such as ``Completions.create``; ``stream=True`` returns a :class:`StreamProxy`."""

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = recording()
        if client is None:
            return original(self, *args, **kwargs)
        stream = kwargs.get("stream") is True
        span = begin(client, spec, capture(kwargs), stream)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            end(client, span, exc)
            raise
        if stream and span is not None:
            return StreamProxy(result, client, span)
        _finish_result(client, span, result)
        return result

    wrapper.__llmpulse_original__ = original  # type: ignore[attr-defined]
    return wrapper


def async_method(original: Callable[..., Any], spec: LLMSpec, capture: Capture) -> Callable[..., Any]:
    """The coroutine form of :func:`sync_method`; ``stream=True`` returns an :class:`AsyncStreamProxy`."""

    @functools.wraps(original)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = recording()
        if client is None:
            return await original(self, *args, **kwargs)
        stream = kwargs.get("stream") is True
        span = begin(client, spec, capture(kwargs), stream)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            end(client, span, exc)
            raise
        if stream and span is not None:
            return AsyncStreamProxy(result, client, span)
        _finish_result(client, span, result)
        return result

    wrapper.__llmpulse_original__ = original  # type: ignore[attr-defined]
    return wrapper


class _Recorder:
    """The span side of a stream proxy: chunks in, one end, whatever happens."""

    __slots__ = ("_client", "_done", "_span")

    def __init__(self, client: Client, span: SpanRecord) -> None:
        self._client = client
        self._span = span
        self._done = False

    def chunk(self, chunk: object) -> None:
        try:
            call = self._span.llm
            if call is not None and not self._done:
                if not call.first_chunk_ns:
                    call.first_chunk_ns = self._client.clock()
                call.chunks.append(chunk)
        except Exception:
            _internal_error("stream chunk")

    def finish(self, exc: BaseException | None = None, closed_early: bool = False) -> None:
        if self._done:
            return
        self._done = True
        if closed_early:
            self._span.attributes["llmpulse.stream.closed_early"] = True
        end(self._client, self._span, exc)


class StreamProxy:
    """Iterates a provider stream for the app, recording each chunk; delegates everything else.

    Works for OpenAI's ``Stream`` (chat chunks, Responses events) and Anthropic's ``Stream``
    of message events; usable as the context manager the real objects are. Note that it is
    not an instance of the provider's class.
    """

    def __init__(self, stream: Any, client: Client, span: SpanRecord) -> None:
        self._llmpulse_stream = stream
        self._llmpulse_recorder = _Recorder(client, span)
        self._llmpulse_iter: Any = None

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        if self._llmpulse_iter is None:
            self._llmpulse_iter = iter(self._llmpulse_stream)
        try:
            chunk = next(self._llmpulse_iter)
        except StopIteration:
            self._llmpulse_recorder.finish()
            raise
        except BaseException as exc:
            self._llmpulse_recorder.finish(exc)
            raise
        self._llmpulse_recorder.chunk(chunk)
        return chunk

    def close(self) -> None:
        try:
            self._llmpulse_stream.close()
        finally:
            self._llmpulse_recorder.finish(closed_early=True)

    def __enter__(self) -> StreamProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llmpulse_stream, name)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # e.g. at interpreter shutdown
            self._llmpulse_recorder.finish(closed_early=True)


class AsyncStreamProxy:
    """The async form of :class:`StreamProxy` (OpenAI and Anthropic ``AsyncStream``)."""

    def __init__(self, stream: Any, client: Client, span: SpanRecord) -> None:
        self._llmpulse_stream = stream
        self._llmpulse_recorder = _Recorder(client, span)
        self._llmpulse_iter: Any = None

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        if self._llmpulse_iter is None:
            self._llmpulse_iter = self._llmpulse_stream.__aiter__()
        try:
            chunk = await self._llmpulse_iter.__anext__()
        except StopAsyncIteration:
            self._llmpulse_recorder.finish()
            raise
        except BaseException as exc:
            self._llmpulse_recorder.finish(exc)
            raise
        self._llmpulse_recorder.chunk(chunk)
        return chunk

    async def close(self) -> None:
        try:
            await self._llmpulse_stream.close()
        finally:
            self._llmpulse_recorder.finish(closed_early=True)

    async def aclose(self) -> None:
        await self.close()

    async def __aenter__(self) -> AsyncStreamProxy:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llmpulse_stream, name)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # e.g. at interpreter shutdown
            self._llmpulse_recorder.finish(closed_early=True)
