"""Anthropic's ``messages.stream(...)`` helper: a context manager around a ``MessageStream``.

The request is sent when the manager is entered, so that is where the span starts. Every
way of reading a ``MessageStream`` (iterating events, ``text_stream``, ``until_done``,
``get_final_message``) pulls from its ``_raw_stream`` attribute, the raw event stream, so
the proxy goes there: chunks and time to first chunk are recorded whichever way the app
reads, and leaving the ``with`` block (which closes the raw stream) ends the span. That
attribute is private to ``anthropic``; the versions tested are pinned in the dev
dependencies and a test covers each reading style.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from llmpulse._llm import LLMSpec

from ._wrappers import AsyncStreamProxy, Capture, StreamProxy, begin, end, recording

__all__ = ["async_stream_method", "sync_stream_method"]


class _Manager:
    def __init__(self, manager: Any, spec: LLMSpec, kwargs: dict[str, Any]) -> None:
        self._manager = manager
        self._spec = spec
        self._kwargs = kwargs

    def __enter__(self) -> Any:
        client = recording()
        if client is None:
            return self._manager.__enter__()
        span = begin(client, self._spec, self._kwargs, True)
        try:
            stream = self._manager.__enter__()
        except BaseException as exc:
            end(client, span, exc)
            raise
        raw = getattr(stream, "_raw_stream", None)
        if span is not None:
            if raw is None:  # an anthropic version without it: record what we can, when the block ends
                end(client, span)
            else:
                stream._raw_stream = StreamProxy(raw, client, span)
        return stream

    def __exit__(self, *exc_info: Any) -> Any:
        return self._manager.__exit__(*exc_info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


class _AsyncManager:
    def __init__(self, manager: Any, spec: LLMSpec, kwargs: dict[str, Any]) -> None:
        self._manager = manager
        self._spec = spec
        self._kwargs = kwargs

    async def __aenter__(self) -> Any:
        client = recording()
        if client is None:
            return await self._manager.__aenter__()
        span = begin(client, self._spec, self._kwargs, True)
        try:
            stream = await self._manager.__aenter__()
        except BaseException as exc:
            end(client, span, exc)
            raise
        raw = getattr(stream, "_raw_stream", None)
        if span is not None:
            if raw is None:
                end(client, span)
            else:
                stream._raw_stream = AsyncStreamProxy(raw, client, span)
        return stream

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self._manager.__aexit__(*exc_info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


def sync_stream_method(original: Callable[..., Any], spec: LLMSpec, capture: Capture) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        if recording() is None:
            return manager
        return _Manager(manager, spec, capture(kwargs))

    wrapper.__llmpulse_original__ = original  # type: ignore[attr-defined]
    return wrapper


def async_stream_method(original: Callable[..., Any], spec: LLMSpec, capture: Capture) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:  # AsyncMessages.stream is a plain method
        manager = original(self, *args, **kwargs)
        if recording() is None:
            return manager
        return _AsyncManager(manager, spec, capture(kwargs))

    wrapper.__llmpulse_original__ = original  # type: ignore[attr-defined]
    return wrapper
