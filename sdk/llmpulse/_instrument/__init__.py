"""Opt-in auto-instrumentation of the real ``openai`` and ``anthropic`` client libraries.

``instrument_openai()`` / ``instrument_anthropic()`` replace a few methods on the
libraries' resource classes (so clients created before and after both are covered) with
wrappers from ``_wrappers.py``; ``uninstrument_*()`` puts the originals back. Calling
``instrument_*`` twice is harmless. Each target is looked up by name; one missing from
the installed version is skipped with a log line, none found at all is an error.

Covered (versions tested: see the README):

- OpenAI: ``chat.completions.create`` and ``responses.create`` (sync, async, ``stream=True``),
  ``embeddings.create`` (sync, async; its input texts are not captured as messages).
- Anthropic: ``messages.create`` (sync, async, ``stream=True``) and the
  ``messages.stream(...)`` context manager (sync, async).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from llmpulse._exceptions import ConfigError
from llmpulse._llm import LLMSpec

from . import _anthropic_stream
from ._wrappers import Capture, async_method, sync_method

__all__ = ["instrument_anthropic", "instrument_openai", "uninstrument_anthropic", "uninstrument_openai"]

log = logging.getLogger("llmpulse")


def _all_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return dict(kwargs)


def _model_only(kwargs: dict[str, Any]) -> dict[str, Any]:
    model = kwargs.get("model")
    return {"model": model} if model is not None else {}


def _spec(provider: str, operation: str) -> LLMSpec:
    return LLMSpec(provider, None, operation, None, ())


# (module, class, method, wrapper factory)
Target = tuple[str, str, str, Callable[[Callable[..., Any]], Callable[..., Any]]]


def _openai_targets() -> list[Target]:
    chat = _spec("openai", "chat")
    embeddings = _spec("openai", "embeddings")
    out: list[Target] = []
    for module, sync_cls, async_cls, spec, capture in (
        ("openai.resources.chat.completions", "Completions", "AsyncCompletions", chat, _all_kwargs),
        ("openai.resources.responses", "Responses", "AsyncResponses", chat, _all_kwargs),
        ("openai.resources.embeddings", "Embeddings", "AsyncEmbeddings", embeddings, _model_only),
    ):
        out.append((module, sync_cls, "create", _bind(sync_method, spec, capture)))
        out.append((module, async_cls, "create", _bind(async_method, spec, capture)))
    return out


def _anthropic_targets() -> list[Target]:
    chat = _spec("anthropic", "chat")
    module = "anthropic.resources.messages"
    return [
        (module, "Messages", "create", _bind(sync_method, chat, _all_kwargs)),
        (module, "AsyncMessages", "create", _bind(async_method, chat, _all_kwargs)),
        (module, "Messages", "stream", _bind(_anthropic_stream.sync_stream_method, chat, _all_kwargs)),
        (module, "AsyncMessages", "stream", _bind(_anthropic_stream.async_stream_method, chat, _all_kwargs)),
    ]


def _bind(
    factory: Callable[[Callable[..., Any], LLMSpec, Capture], Callable[..., Any]], spec: LLMSpec, capture: Capture
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return lambda original: factory(original, spec, capture)


_lock = threading.Lock()
# library -> [(class, method name, original)] of what is patched now
_patched: dict[str, list[tuple[type, str, Any]]] = {}


def _instrument(library: str, targets: Callable[[], list[Target]], hint: str) -> None:
    try:
        importlib.import_module(library)
    except ImportError as exc:
        raise ConfigError(
            f"instrument_{library}() needs the {library} package, which is not importable ({exc}); "
            f"install it ({hint}) or drop the call"
        ) from exc
    with _lock:
        if library in _patched:
            return  # already instrumented: harmless
        done: list[tuple[type, str, Any]] = []
        for module_name, class_name, method, make in targets():
            try:
                cls = getattr(importlib.import_module(module_name), class_name)
                original = cls.__dict__[method]
            except (ImportError, AttributeError, KeyError):
                log.warning("llmpulse: %s.%s.%s not found in this %s version; not instrumented",
                            module_name, class_name, method, library)  # fmt: skip
                continue
            setattr(cls, method, make(original))
            done.append((cls, method, original))
        if not done:
            raise ConfigError(
                f"instrument_{library}(): none of the {library} methods llmpulse wraps exist in this version"
            )
        _patched[library] = done


def _uninstrument(library: str) -> None:
    with _lock:
        for cls, method, original in reversed(_patched.pop(library, [])):
            setattr(cls, method, original)


def instrument_openai() -> None:
    """Record every call made through the ``openai`` library as an LLM span (see the module doc).

    Calls made before ``llmpulse.init()`` (or with llmpulse disabled) go straight through.
    Raises :class:`llmpulse.ConfigError` when ``openai`` is not installed.
    """
    _instrument("openai", _openai_targets, "pip install openai")


def uninstrument_openai() -> None:
    """Restore the ``openai`` methods :func:`instrument_openai` replaced (no-op if it did not)."""
    _uninstrument("openai")


def instrument_anthropic() -> None:
    """Record every call made through the ``anthropic`` library as an LLM span (see the module doc).

    Raises :class:`llmpulse.ConfigError` when ``anthropic`` is not installed.
    """
    _instrument("anthropic", _anthropic_targets, "pip install anthropic")


def uninstrument_anthropic() -> None:
    """Restore the ``anthropic`` methods :func:`instrument_anthropic` replaced."""
    _uninstrument("anthropic")
