"""Deterministic assertions on every model call ("evals as unit tests").

Each factory returns a :class:`Check`; pass them to ``llmpulse.init(assertions=[...])`` or
``@llmpulse.llm(assertions=[...])``. After each call every check yields pass or fail, a
score and a short reason, recorded as a ``gen_ai.evaluation.result`` span event. A check
that raises is recorded as ``error`` and never reaches your application::

    import llmpulse
    from llmpulse import check

    @llmpulse.llm(model="gpt-4o-mini", assertions=[
        check.starts_lowercase(),
        check.not_contains("As an AI", name="no_as_an_ai"),
        check.max_latency(2.0),
    ])
    def reply(prompt: str) -> str: ...

Arguments are checked when the factory is called (a bad one raises ``ConfigError``
naming it), and everything a check can precompute is computed then: checks run on every
production call and cost a microsecond or two each on a few KB of output (``regex`` and
``json_schema`` cost what the pattern and jsonschema cost). Every factory takes ``name=``
to rename the check; names label the assertion in metrics, so two checks on one call
need distinct names. Semantics follow promptfoo's assertions of the same names.

Reasons never quote more than a few characters of the output, which may hold private
data.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

import orjson

from llmpulse._checks import Check, CheckContext, CheckResult, validate_name
from llmpulse._exceptions import ConfigError

__all__ = [
    "Check",
    "CheckContext",
    "CheckResult",
    "contains",
    "custom",
    "icontains",
    "is_json",
    "json_schema",
    "max_cost",
    "max_latency",
    "max_length",
    "min_length",
    "not_contains",
    "not_refusal",
    "regex",
    "starts_lowercase",
    "starts_with",
]

_PASS = 1.0
_FAIL = 0.0
# How much of the output, or of a user-supplied needle or pattern, a reason may quote.
_QUOTE = 30


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(text: str, limit: int = _QUOTE) -> str:
    return repr(_clip(text, limit))


def _passed(reason: str) -> CheckResult:
    return CheckResult(True, _PASS, reason)


def _failed(reason: str) -> CheckResult:
    return CheckResult(False, _FAIL, reason)


def _name(name: str | None, default: str) -> str:
    return default if name is None else validate_name(name)


def _needle(value: object, factory: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(
            f"check.{factory}(s): s must be a str, got {type(value).__name__}; "
            f"pass the text to look for, e.g. check.{factory}('refund')"
        )
    if not value:
        raise ConfigError(f"check.{factory}(s): s must not be empty (it would match every output)")
    return value


def _non_negative_int(value: object, factory: str, arg: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"check.{factory}({arg}): {arg} must be an int >= 0 (a number of characters), got {value!r}")
    return value


def _is_finite_number(value: object) -> TypeGuard[float]:
    # float stands for any real number here: int, float, Fraction, numpy floats.
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def _non_negative_number(value: object, factory: str, arg: str, unit: str) -> float:
    if not _is_finite_number(value) or value < 0:
        raise ConfigError(f"check.{factory}({arg}): {arg} must be a finite number >= 0 ({unit}), got {value!r}")
    return float(value)


# --- text -----------------------------------------------------------------------------

# A Unicode letter: a word character that is neither a digit nor "_".
_LETTER = re.compile(r"[^\W\d_]")


class _StartsLowercase(Check):
    __slots__ = ("_ok",)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._ok = _passed("output starts with a lowercase letter")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        match = _LETTER.search(ctx.output)
        if match is None:
            return _failed("output is empty" if not ctx.output.strip() else "output has no letters")
        letter = match.group()
        if letter.islower():
            return self._ok
        return _failed(f"output starts with {letter!r}, expected a lowercase letter")


def starts_lowercase(*, name: str | None = None) -> Check:
    """Pass when the reply's first letter is lowercase (a casual tone, for instance).

    Leading whitespace, digits, punctuation, quotes and emoji are skipped, so ``"hey"``,
    ``'"sure"'``, ``"**ok**"`` and ``"2 things: ..."`` pass and ``"2 Things"`` fails. An
    empty reply, or one with no letter at all, fails. Letters of scripts without case
    (Chinese, Arabic ...) are not lowercase, so such replies fail::

        check.starts_lowercase()
    """
    return _StartsLowercase(_name(name, "starts_lowercase"))


class _StartsWith(Check):
    __slots__ = ("_fail", "_ok", "_prefix")

    def __init__(self, name: str, prefix: str) -> None:
        super().__init__(name)
        self._prefix = prefix
        self._ok = _passed(f"output starts with {_quote(prefix)}")
        self._fail = _failed(f"output does not start with {_quote(prefix)}")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        output = ctx.output
        # Models often emit a leading newline or space; it is invisible to the reader.
        if output.startswith(self._prefix) or output.lstrip().startswith(self._prefix):
            return self._ok
        return self._fail


def starts_with(s: str, *, name: str | None = None) -> Check:
    """Pass when the reply starts with ``s`` (case-sensitive, leading whitespace ignored)::

    check.starts_with("Dear ")
    """
    return _StartsWith(_name(name, "starts_with"), _needle(s, "starts_with"))


class _Contains(Check):
    __slots__ = ("_fail", "_needle", "_ok")

    def __init__(self, name: str, needle: str) -> None:
        super().__init__(name)
        self._needle = needle
        self._ok = _passed(f"output contains {_quote(needle)}")
        self._fail = _failed(f"output does not contain {_quote(needle)}")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        return self._ok if self._needle in ctx.output else self._fail


def contains(s: str, *, name: str | None = None) -> Check:
    """Pass when ``s`` occurs in the reply (case-sensitive)::

    check.contains("refund policy")
    """
    return _Contains(_name(name, "contains"), _needle(s, "contains"))


class _IContains(Check):
    __slots__ = ("_fail", "_needle", "_ok")

    def __init__(self, name: str, needle: str) -> None:
        super().__init__(name)
        self._needle = needle.casefold()
        self._ok = _passed(f"output contains {_quote(needle)} (ignoring case)")
        self._fail = _failed(f"output does not contain {_quote(needle)} (ignoring case)")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        return self._ok if self._needle in ctx.output.casefold() else self._fail


def icontains(s: str, *, name: str | None = None) -> Check:
    """Pass when ``s`` occurs in the reply, ignoring case (Unicode casefolding)::

    check.icontains("Refund")  # matches "REFUND", "refund", "Refund"
    """
    return _IContains(_name(name, "icontains"), _needle(s, "icontains"))


class _NotContains(Check):
    __slots__ = ("_needle", "_ok", "_quoted")

    def __init__(self, name: str, needle: str) -> None:
        super().__init__(name)
        self._needle = needle
        self._quoted = _quote(needle)
        self._ok = _passed(f"output does not contain {self._quoted}")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        index = ctx.output.find(self._needle)
        if index < 0:
            return self._ok
        return _failed(f"output contains {self._quoted} at char {index}")


def not_contains(s: str, *, name: str | None = None) -> Check:
    """Pass when ``s`` does not occur in the reply (case-sensitive)::

    check.not_contains("As an AI language model", name="no_as_an_ai")
    """
    return _NotContains(_name(name, "not_contains"), _needle(s, "not_contains"))


class _Regex(Check):
    __slots__ = ("_fail", "_pattern", "_quoted")

    def __init__(self, name: str, pattern: re.Pattern[str]) -> None:
        super().__init__(name)
        self._pattern = pattern
        self._quoted = _quote(pattern.pattern)
        self._fail = _failed(f"no match for {self._quoted}")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        match = self._pattern.search(ctx.output)
        if match is None:
            return self._fail
        return _passed(f"{self._quoted} matches at char {match.start()}")


def regex(p: str | re.Pattern[str], *, name: str | None = None) -> Check:
    """Pass when the pattern matches anywhere in the reply (``re.search``).

    ``p`` is a pattern string or a compiled ``re.Pattern`` (use the latter for flags)::

        check.regex(r"order #\\d{6}")
        check.regex(re.compile(r"^thanks", re.IGNORECASE | re.MULTILINE))
    """
    if isinstance(p, re.Pattern):
        if not isinstance(p.pattern, str):
            raise ConfigError("check.regex(p): p must be a str pattern, got a bytes pattern")
        pattern: re.Pattern[str] = p
    elif isinstance(p, str):
        try:
            pattern = re.compile(p)
        except re.error as exc:
            raise ConfigError(f"check.regex(p): p is not a valid regular expression: {exc}") from None
    else:
        raise ConfigError(f"check.regex(p): p must be a str or a compiled re.Pattern, got {type(p).__name__}")
    return _Regex(_name(name, "regex"), pattern)


# --- structure ------------------------------------------------------------------------


class _IsJson(Check):
    __slots__ = ("_ok",)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._ok = _passed("output is valid JSON")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        try:
            orjson.loads(ctx.output)
        except orjson.JSONDecodeError as exc:
            return _failed(f"output is not valid JSON: {exc.msg}")
        return self._ok


def is_json(*, name: str | None = None) -> Check:
    """Pass when the whole reply (surrounding whitespace allowed) is one JSON value.

    A reply wrapped in a Markdown code fence or followed by prose fails; so do ``NaN`` and
    ``Infinity``, which are not JSON::

        check.is_json()
    """
    return _IsJson(_name(name, "is_json"))


_MAX_SCHEMA_MESSAGE = 60


class _JsonSchema(Check):
    __slots__ = ("_best_match", "_ok", "_validator")

    def __init__(self, name: str, validator: Any, best_match: Callable[[Any], Any]) -> None:
        super().__init__(name)
        self._validator = validator
        self._best_match = best_match
        self._ok = _passed("output is valid JSON matching the schema")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        try:
            instance = orjson.loads(ctx.output)
        except orjson.JSONDecodeError as exc:
            return _failed(f"output is not valid JSON: {exc.msg}")
        # best_match is the error jsonschema.validate() would raise: the most relevant one.
        error = self._best_match(self._validator.iter_errors(instance))
        if error is None:
            return self._ok
        # The message quotes the offending value, i.e. part of the output. A long one is
        # replaced by the keyword that failed, which quotes only the schema.
        message = str(error.message)
        if len(message) > _MAX_SCHEMA_MESSAGE:
            message = f"value fails {error.validator}={_clip(repr(error.validator_value), 40)}"
        # The path names the output's keys: clip it too.
        return _failed(f"at {_clip(str(error.json_path), 40)}: {message}")


def json_schema(schema: Mapping[str, Any] | bool, *, name: str | None = None) -> Check:
    """Pass when the reply is valid JSON and valid against a JSON Schema.

    Needs the ``jsonschema`` package. The draft comes from ``$schema`` (default 2020-12);
    ``format`` is not enforced. The reason on failure names the first error's path::

        check.json_schema({
            "type": "object",
            "required": ["answer"],
            "properties": {"answer": {"type": "string"}},
        })
    """
    if not isinstance(schema, (Mapping, bool)):
        raise ConfigError(
            f"check.json_schema(schema): schema must be a dict (a JSON Schema), got {type(schema).__name__}"
        )
    try:
        validators = importlib.import_module("jsonschema.validators")
        exceptions = importlib.import_module("jsonschema.exceptions")
    except ImportError:
        raise ConfigError("check.json_schema needs the jsonschema package: pip install jsonschema") from None
    cls = validators.validator_for(schema, default=None)
    if cls is None:
        if isinstance(schema, Mapping) and "$schema" in schema:
            raise ConfigError(
                f"check.json_schema(schema): unknown $schema {schema['$schema']!r}; "
                f"use a draft jsonschema knows, e.g. "
                f"'https://json-schema.org/draft/2020-12/schema'"
            )
        cls = validators.validator_for({})  # the latest draft
    try:
        cls.check_schema(schema)
    except exceptions.SchemaError as exc:
        raise ConfigError(
            f"check.json_schema(schema): schema is not a valid JSON Schema: at {exc.json_path}: {exc.message}"
        ) from None
    return _JsonSchema(_name(name, "json_schema"), cls(schema), exceptions.best_match)


class _MaxLength(Check):
    __slots__ = ("_limit", "_ok")

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(name)
        self._limit = limit
        self._ok = _passed(f"output is at most {limit} characters")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        length = len(ctx.output)
        if length <= self._limit:
            return self._ok
        return _failed(f"output is {length} characters, max {self._limit}")


def max_length(n: int, *, name: str | None = None) -> Check:
    """Pass when the reply has at most ``n`` characters (code points)::

    check.max_length(280)
    """
    return _MaxLength(_name(name, "max_length"), _non_negative_int(n, "max_length", "n"))


class _MinLength(Check):
    __slots__ = ("_limit", "_ok")

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(name)
        self._limit = limit
        self._ok = _passed(f"output is at least {limit} characters")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        length = len(ctx.output)
        if length >= self._limit:
            return self._ok
        return _failed(f"output is {length} characters, min {self._limit}")


def min_length(n: int, *, name: str | None = None) -> Check:
    """Pass when the reply has at least ``n`` characters (code points)::

    check.min_length(1, name="non_empty")
    """
    return _MinLength(_name(name, "min_length"), _non_negative_int(n, "min_length", "n"))


# --- call metadata --------------------------------------------------------------------


class _MaxLatency(Check):
    __slots__ = ("_limit", "_ok")

    def __init__(self, name: str, limit: float) -> None:
        super().__init__(name)
        self._limit = limit
        self._ok = _passed(f"latency <= {limit:g} s")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        latency = ctx.latency_s
        if latency <= self._limit:
            return self._ok
        return _failed(f"latency {latency:.3g} s > {self._limit:g} s")


def max_latency(seconds: float, *, name: str | None = None) -> Check:
    """Pass when the whole call (the full stream, for streams) took at most ``seconds``::

    check.max_latency(2.5)
    """
    limit = _non_negative_number(seconds, "max_latency", "seconds", "seconds")
    return _MaxLatency(_name(name, "max_latency"), limit)


class _MaxCost(Check):
    __slots__ = ("_limit", "_ok")

    def __init__(self, name: str, limit: float) -> None:
        super().__init__(name)
        self._limit = limit
        self._ok = _passed(f"cost <= ${limit:g}")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        cost = ctx.cost_usd
        if cost is None:
            # Neither pass nor fail: an unknown price must not look like a cheap call.
            model = "(no model reported)" if ctx.model is None else repr(ctx.model)
            raise LookupError(f"cost unknown for model {model}; add a price override to check its cost")
        if cost <= self._limit:
            return self._ok
        return _failed(f"cost ${cost:.6g} > ${self._limit:g}")


def max_cost(usd: float, *, name: str | None = None) -> Check:
    """Pass when the call cost at most ``usd`` dollars.

    When the model's price is unknown the outcome is ``error`` ("cost unknown for model
    X"), not pass or fail::

        check.max_cost(0.01)
    """
    return _MaxCost(_name(name, "max_cost"), _non_negative_number(usd, "max_cost", "usd", "USD"))


class _NotRefusal(Check):
    __slots__ = ("_fail", "_ok")

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._ok = _passed("model did not refuse")
        self._fail = _failed("model refused")

    def __call__(self, ctx: CheckContext) -> CheckResult:
        return self._fail if ctx.refusal else self._ok


def not_refusal(*, name: str | None = None) -> Check:
    """Pass unless the call was detected as a refusal (provider signal or phrase heuristic)::

    check.not_refusal()
    """
    return _NotRefusal(_name(name, "not_refusal"))


# --- custom ---------------------------------------------------------------------------


class _Custom(Check):
    __slots__ = ("_fn", "_threshold", "_with_ctx")

    def __init__(self, name: str, fn: Callable[..., object], with_ctx: bool, threshold: float) -> None:
        super().__init__(name)
        self._fn = fn
        self._with_ctx = with_ctx
        self._threshold = threshold

    def __call__(self, ctx: CheckContext) -> CheckResult:
        value = self._fn(ctx.output, ctx) if self._with_ctx else self._fn(ctx.output)
        if isinstance(value, bool):
            return CheckResult(value, _PASS if value else _FAIL, f"{self.name} returned {value}")
        if isinstance(value, CheckResult):
            return value
        if isinstance(value, tuple):
            if len(value) == 2 and isinstance(value[0], bool) and isinstance(value[1], str):
                return CheckResult(value[0], _PASS if value[0] else _FAIL, value[1])
            raise TypeError(f"custom check {self.name!r} returned a tuple; expected (bool, reason: str)")
        if isinstance(value, numbers.Real):
            score = float(value)
            if not math.isfinite(score):
                raise ValueError(f"custom check {self.name!r} returned a non-finite score")
            op = ">=" if score >= self._threshold else "<"
            return CheckResult(score >= self._threshold, score, f"score {score:.4g} {op} {self._threshold:g}")
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()  # never awaited: close it so Python does not warn
            raise TypeError(f"custom check {self.name!r} returned an awaitable; async is unsupported")
        raise TypeError(
            f"custom check {self.name!r} returned {type(value).__name__}; expected bool, "
            f"a number, CheckResult or (bool, reason)"
        )


def _is_async(fn: Callable[..., object]) -> bool:
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - the class's __call__, not callable()
    return call is not None and (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))


def _wants_ctx(fn: Callable[..., object]) -> bool:
    """Whether ``fn`` is called as ``fn(output, ctx)`` rather than ``fn(output)``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: call with one arg
        return False
    positional = [
        p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    var_positional = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    required = [p.name for p in positional if p.default is inspect.Parameter.empty]
    keyword_only = [
        p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]
    if keyword_only or len(required) > 2 or not (positional or var_positional):
        raise ConfigError(
            "check.custom(fn): fn must take (output) or (output, ctx), "
            f"got a function with parameters {inspect.signature(fn)}"
        )
    return var_positional or len(positional) >= 2


def custom(
    fn: Callable[[str], object] | Callable[[str, CheckContext], object],
    name: str | None = None,
    threshold: float = 0.5,
) -> Check:
    """Turn a function into a check.

    ``fn`` takes ``(output)`` or ``(output, ctx)`` (decided once from its signature) and
    returns ``True``/``False``, a score (passes when ``score >= threshold``), a
    :class:`CheckResult`, or ``(passed, reason)``. Anything else, or raising, records an
    ``error`` outcome. Async functions are not supported. The name defaults to
    ``fn.__name__`` ("custom" for lambdas and partials)::

        def mentions_product(output: str) -> bool:
            return "Acme" in output

        check.custom(mentions_product)
        check.custom(lambda out, ctx: ctx.ttft_s is not None and ctx.ttft_s < 0.5, name="fast_ttft")
        check.custom(readability_score, threshold=0.7)
    """
    if isinstance(fn, Check):
        raise ConfigError(f"check.custom(fn): fn is already a Check ({fn.name!r}); pass it directly")
    if not callable(fn):
        raise ConfigError(f"check.custom(fn): fn must be a function, got {type(fn).__name__}")
    if _is_async(fn):
        raise ConfigError(
            "check.custom(fn): async functions are not supported (checks run synchronously, "
            "off the call path); pass a plain function"
        )
    if not _is_finite_number(threshold):
        raise ConfigError(f"check.custom(threshold): threshold must be a finite number, got {threshold!r}")
    if name is None:
        default = getattr(fn, "__name__", None)
        name = default if isinstance(default, str) and default.isidentifier() else "custom"
    return _Custom(validate_name(name), fn, _wants_ctx(fn), float(threshold))
