"""``llmpulse.attributes(...)``: per-call extras for the LLM spans created inside a block.

Frameworks and auto-instrumented clients leave no place to pass a prompt version or a user
id to the model call; a context manager does, without touching the call::

    with llmpulse.attributes(prompt=SUPPORT, user_id=user.id, assertions=[check.max_length(400)]):
        reply = client.chat.completions.create(...)   # instrumented, or an @llm function

The values live in a ``ContextVar``, so they follow the code into awaited coroutines and
stay apart between threads and tasks. Blocks nest: an inner block's values override the
outer ones, assertions add up (an inner assertion replaces an outer one of the same name).
Only LLM spans read them (``Client.start_llm``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from ._checks import Check, validate_checks
from ._exceptions import ConfigError
from ._prompt import Prompt
from ._span import AttrValue

__all__ = ["CallAttributes", "attributes", "current_attributes"]


@dataclass(frozen=True, slots=True)
class CallAttributes:
    """What an ``attributes()`` block adds to each LLM span: span attributes and assertions."""

    values: dict[str, AttrValue]
    checks: tuple[Check, ...]


_current: contextvars.ContextVar[CallAttributes | None] = contextvars.ContextVar("llmpulse_attributes", default=None)


def current_attributes() -> CallAttributes | None:
    return _current.get()


def _text(value: object, option: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"attributes({option}=...) must be a non-empty string, got {value!r}")
    return value


@contextmanager
def attributes(
    *,
    prompt: Prompt | None = None,
    assertions: Check | Iterable[Check] = (),
    user_id: str | None = None,
    session_id: str | None = None,
    feature: str | None = None,
    metadata: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[None]:
    """Apply these values to every LLM span created inside the block (decorated or auto-instrumented).

    - ``prompt``: an :class:`llmpulse.Prompt`; its name and version label the span (and win
      over an ``@llm(prompt=...)``), so metrics compare prompt versions.
    - ``assertions``: checks run on each reply, after those of ``init`` and ``@llm``.
    - ``user_id``, ``session_id``: recorded on spans (``user.id``, ``session.id``) and in
      ClickHouse for drill-down, never as metric labels.
    - ``feature``: the product feature making the call (``llmpulse.feature``).
    - ``metadata``: more attributes, as ``llmpulse.metadata.<key>``.

    Raises :class:`llmpulse.ConfigError` for a value of the wrong type.
    """
    values: dict[str, AttrValue] = {}
    if prompt is not None:
        if not isinstance(prompt, Prompt):
            raise ConfigError(f"attributes(prompt=...) must be an llmpulse.Prompt, got {type(prompt).__name__}")
        values["gen_ai.prompt.name"] = prompt.name
        values["llmpulse.prompt.version"] = prompt.version
    if user_id is not None:
        values["user.id"] = _text(user_id, "user_id")
    if session_id is not None:
        values["session.id"] = _text(session_id, "session_id")
    if feature is not None:
        values["llmpulse.feature"] = _text(feature, "feature")
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"attributes(metadata=...) keys must be non-empty strings, got {key!r}")
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(
                f"attributes(metadata={{{key!r}: ...}}) must be a str, int, float or bool, got {type(value).__name__}"
            )
        values[f"llmpulse.metadata.{key}"] = value
    checks = validate_checks(assertions, "attributes(assertions=...)")
    outer = _current.get()
    if outer is not None:
        values = {**outer.values, **values}
        names = {c.name for c in checks}
        checks = tuple(c for c in outer.checks if c.name not in names) + checks  # an inner check of a name wins
    token = _current.set(CallAttributes(values, checks))
    try:
        yield
    finally:
        _current.reset(token)
