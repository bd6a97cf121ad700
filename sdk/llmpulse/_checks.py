"""Deterministic assertions ("evals as unit tests"): the types and the runner.

A :class:`Check` is a named callable from a :class:`CheckContext` (one model call's
output, latency, cost ...) to a :class:`CheckResult`. The public factories live in
``llmpulse.check``; this module holds what the instrumentation calls:

- :func:`validate_checks` turns ``init(assertions=...)`` / ``@llm(assertions=...)`` into a
  tuple of checks once, at configuration time, raising :class:`ConfigError` there;
- :func:`run_checks` runs them after every model call and never raises: a check that
  raises becomes an ``"error"`` outcome, logged at DEBUG and counted as ``check_errors``.
"""

from __future__ import annotations

import abc
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from llmpulse._config import speedup
from llmpulse._exceptions import ConfigError
from llmpulse._stats import stats

__all__ = [
    "Check",
    "CheckContext",
    "CheckResult",
    "Outcome",
    "make_context",
    "outcome_of",
    "run_checks",
    "validate_checks",
]

_log = logging.getLogger("llmpulse")

# An exception message may quote the output (private data) or be huge; keep explanations short.
_MAX_EXPLANATION = 200


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check concluded about one call.

    ``score`` is 1.0 / 0.0 for binary checks; custom checks may return any finite number.
    ``reason`` is short and must not quote more than a few words of the output.
    """

    passed: bool
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class CheckContext:
    """Everything a check may look at for one model call."""

    output: str  # the reply text ("" when the call produced none)
    latency_s: float
    ttft_s: float | None  # time to first chunk for streams
    cost_usd: float | None  # None when the model's price is unknown
    refusal: bool
    model: str | None
    response: object  # the raw return value (or the list of stream chunks)


_CONTEXT_FIELDS = ("output", "latency_s", "ttft_s", "cost_usd", "refusal", "model", "response")
_new_object = object.__new__
_SET_CONTEXT = tuple(CheckContext.__dict__[name].__set__ for name in _CONTEXT_FIELDS)


def _make_context(
    output: str,
    latency_s: float,
    ttft_s: float | None,
    cost_usd: float | None,
    refusal: bool,
    model: str | None,
    response: object,
) -> CheckContext:
    """``CheckContext(...)`` for the exporter's hot path: the frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__`` (~2 µs for seven); writing
    the slots through their descriptors gives the same object for a third of that."""
    ctx = _new_object(CheckContext)
    s_out, s_lat, s_ttft, s_cost, s_ref, s_model, s_resp = _SET_CONTEXT
    s_out(ctx, output)
    s_lat(ctx, latency_s)
    s_ttft(ctx, ttft_s)
    s_cost(ctx, cost_usd)
    s_ref(ctx, refusal)
    s_model(ctx, model)
    s_resp(ctx, response)
    return ctx


#: ``CheckContext(*fields)``, positional in field order: written into the slots in C where the
#: extension is built (~0.1 µs), else by :func:`_make_context` (~1 µs).
make_context: Callable[[str, float, float | None, float | None, bool, str | None, object], CheckContext] = (
    speedup("SlotMaker", CheckContext, _CONTEXT_FIELDS) or _make_context
)


class Check(abc.ABC):
    """Base class of every assertion; subclass it to write your own.

    A check must be cheap (it runs on every model call), thread-safe and stateless:
    precompute what you can in ``__init__``. Raising is fine, it is recorded as an
    ``"error"`` outcome and never reaches the application::

        class NoMarkdown(Check):
            def __init__(self) -> None:
                super().__init__("no_markdown")

            def __call__(self, ctx: CheckContext) -> CheckResult:
                ok = "**" not in ctx.output
                return CheckResult(ok, float(ok), "" if ok else "output contains '**'")
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = validate_name(name)

    @abc.abstractmethod
    def __call__(self, ctx: CheckContext) -> CheckResult:
        """Judge one call."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One check's verdict on one call, as recorded on the span."""

    name: str
    label: Literal["pass", "fail", "error"]
    score: float | None  # None when label == "error"
    explanation: str


def validate_name(name: object, option: str = "name") -> str:
    """Return ``name`` if it is a usable check name, else raise :class:`ConfigError`."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(
            f"{option} must be a non-empty string (it labels the assertion in metrics), got {_describe(name)}"
        )
    return name


def run_checks(checks: Sequence[Check], ctx: CheckContext) -> list[Outcome]:
    """Run every check on ``ctx``, in order. Never raises.

    A check that raises (or returns something other than a :class:`CheckResult` with a
    finite score and a str reason) gives label ``"error"``, explanation ``"<ExcType>: <message>"``, a DEBUG
    log on the ``llmpulse`` logger and one more ``check_errors`` in the SDK stats.
    """
    outcomes: list[Outcome] = []
    for check in checks:
        try:
            result = check(ctx)
        except Exception as exc:  # a broken assertion must never break the app
            outcomes.append(_error_outcome(check, exc))
            continue
        outcomes.append(outcome_of(check, result))
    return outcomes


def outcome_of(check: Check, result: object) -> Outcome:
    """The :class:`Outcome` of ``check`` having returned ``result``; an ``"error"`` outcome
    when ``result`` is not a :class:`CheckResult` with a finite score and a str reason."""
    try:
        if not isinstance(result, CheckResult):
            raise TypeError(f"check returned {type(result).__name__}, expected CheckResult")
        score = float(result.score)
        if not math.isfinite(score):
            raise ValueError(f"check returned a non-finite score ({score})")
        if not isinstance(result.reason, str):
            raise TypeError(f"check returned a {type(result.reason).__name__} reason, expected str")
        return Outcome(check.name, "pass" if result.passed else "fail", score, result.reason)
    except Exception as exc:
        return _error_outcome(check, exc)


def _error_outcome(check: object, exc: Exception) -> Outcome:
    name = getattr(check, "name", None)
    if not isinstance(name, str):
        name = type(check).__name__
    message = str(exc)
    if len(message) > _MAX_EXPLANATION:
        message = message[: _MAX_EXPLANATION - 1] + "…"
    explanation = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    _log.debug("assertion %r raised %s", name, explanation, exc_info=exc)
    stats.incr("check_errors")
    return Outcome(name, "error", None, explanation)


def validate_checks(value: object, option: str) -> tuple[Check, ...]:
    """Normalise a check or an iterable of checks given as ``option`` into a tuple.

    Raises :class:`ConfigError` naming ``option`` for anything else, including strings,
    functions that are not wrapped in ``check.custom``, a factory that was not called,
    and two checks sharing a name (their results would merge in metrics).
    """
    if isinstance(value, Check):
        return (value,)
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
        raise ConfigError(
            f"{option} must be a Check or a list of Checks "
            f"(e.g. [llmpulse.check.not_refusal()]), got {_describe(value)}"
            f"{_hint(value)}"
        )
    checks = tuple(value)
    seen: set[str] = set()
    for i, item in enumerate(checks):
        if not isinstance(item, Check):
            raise ConfigError(
                f"{option}[{i}] must be a Check (from llmpulse.check), got {_describe(item)}{_hint(item)}"
            )
        name = getattr(item, "name", None)
        if not isinstance(name, str):
            raise ConfigError(
                f"{option}[{i}] ({type(item).__name__}) has no name; its __init__ must call super().__init__(name)"
            )
        if name in seen:
            raise ConfigError(
                f"{option} has two checks named {name!r}; give one a distinct name=, "
                f"e.g. check.contains('refund', name='mentions_refund')"
            )
        seen.add(name)
    return checks


def _hint(value: object) -> str:
    if not callable(value):
        return ""
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", "")
    if module == "llmpulse.check" and "." not in qualname:
        return f"; call the factory: check.{qualname}(...)"
    return "; wrap a function with llmpulse.check.custom(fn)"


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:59] + "…"
    return f"{type(value).__name__} {text}"
