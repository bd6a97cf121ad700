"""Deterministic assertions: every factory's pass and fail cases, argument validation, the
runner's error handling and the normalisation of ``assertions=``."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import random
import re
import string
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmpulse
from llmpulse import check
from llmpulse._checks import Check, CheckContext, CheckResult, Outcome, run_checks, validate_checks
from llmpulse._exceptions import ConfigError
from llmpulse._stats import stats


def ctx(
    output: str = "",
    *,
    latency_s: float = 0.5,
    ttft_s: float | None = None,
    cost_usd: float | None = 0.001,
    refusal: bool = False,
    model: str | None = "gpt-4o-mini",
) -> CheckContext:
    return CheckContext(
        output=output,
        latency_s=latency_s,
        ttft_s=ttft_s,
        cost_usd=cost_usd,
        refusal=refusal,
        model=model,
        response={"raw": True},
    )


def verdict(c: Check, output: str = "", **kw: Any) -> CheckResult:
    result = c(ctx(output, **kw))
    assert isinstance(result, CheckResult)
    assert result.score == (1.0 if result.passed else 0.0)  # binary checks score 1 / 0
    assert result.reason
    return result


def one(c: Check, context: CheckContext) -> Outcome:
    (outcome,) = run_checks([c], context)
    return outcome


# --- the public module ------------------------------------------------------------------


def test_public_module_exports_the_factories_and_the_types() -> None:
    assert set(check.__all__) == {
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
    }
    assert check.Check is Check
    assert check.CheckContext is CheckContext
    assert check.CheckResult is CheckResult
    assert llmpulse.check is check
    for name in check.__all__:
        assert getattr(check, name).__doc__, name


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (check.starts_lowercase, "starts_lowercase"),
        (lambda **kw: check.starts_with("a", **kw), "starts_with"),
        (lambda **kw: check.contains("a", **kw), "contains"),
        (lambda **kw: check.icontains("a", **kw), "icontains"),
        (lambda **kw: check.not_contains("a", **kw), "not_contains"),
        (lambda **kw: check.regex("a", **kw), "regex"),
        (check.is_json, "is_json"),
        (lambda **kw: check.json_schema({"type": "object"}, **kw), "json_schema"),
        (lambda **kw: check.max_length(3, **kw), "max_length"),
        (lambda **kw: check.min_length(3, **kw), "min_length"),
        (lambda **kw: check.max_latency(1, **kw), "max_latency"),
        (lambda **kw: check.max_cost(1, **kw), "max_cost"),
        (check.not_refusal, "not_refusal"),
    ],
)
def test_default_name_is_the_factory_name_and_name_renames(factory: Callable[..., Check], name: str) -> None:
    assert factory().name == name
    renamed = factory(name="my_rule")
    assert renamed.name == "my_rule"
    assert isinstance(renamed, Check)
    assert "my_rule" in repr(renamed)


@pytest.mark.parametrize("bad", ["", "   ", 3, b"rule"])
def test_a_bad_name_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="name must be a non-empty string"):
        check.contains("x", name=bad)  # type: ignore[arg-type]


def test_check_is_abstract_and_subclassable() -> None:
    with pytest.raises(TypeError):
        Check("x")  # type: ignore[abstract]

    class NoMarkdown(Check):
        def __init__(self) -> None:
            super().__init__("no_markdown")

        def __call__(self, ctx: CheckContext) -> CheckResult:
            ok = "**" not in ctx.output
            return CheckResult(ok, float(ok), "ok" if ok else "output contains '**'")

    assert run_checks([NoMarkdown()], ctx("**bold**")) == [Outcome("no_markdown", "fail", 0.0, "output contains '**'")]


def test_results_and_outcomes_are_frozen() -> None:
    result = CheckResult(True, 1.0, "ok")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.passed = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx("x").output = "y"  # type: ignore[misc]


# --- text checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    ["hey there", "  \n hello", '"sure"', "**ok**", "2 things: a and b", "…well", "😀 yes", "élan", "ß"],
)
def test_starts_lowercase_passes(output: str) -> None:
    assert verdict(check.starts_lowercase(), output).passed


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("Hello there", "output starts with 'H', expected a lowercase letter"),
        ("  Hi", "output starts with 'H', expected a lowercase letter"),
        ("2 Things", "output starts with 'T', expected a lowercase letter"),
        ('"Sure"', "output starts with 'S', expected a lowercase letter"),
        ("Élan", "output starts with 'É', expected a lowercase letter"),
        ("你好", "output starts with '你', expected a lowercase letter"),
        ("", "output is empty"),
        ("  \n\t", "output is empty"),
        ("42!", "output has no letters"),
    ],
)
def test_starts_lowercase_fails(output: str, reason: str) -> None:
    result = verdict(check.starts_lowercase(), output)
    assert not result.passed
    assert result.reason == reason


def test_starts_with_ignores_leading_whitespace_and_is_case_sensitive() -> None:
    c = check.starts_with("Dear ")
    assert verdict(c, "Dear Ann,").passed
    assert verdict(c, "\n  Dear Ann,").passed
    assert not verdict(c, "dear Ann,").passed
    assert not verdict(c, "Hi, Dear Ann").passed
    assert verdict(c, "").reason == "output does not start with 'Dear '"
    assert verdict(check.starts_with(" indented"), " indented").passed


def test_contains_and_not_contains() -> None:
    assert verdict(check.contains("refund"), "your refund is on its way").passed
    missing = verdict(check.contains("refund"), "your REFUND is on its way")
    assert not missing.passed
    assert missing.reason == "output does not contain 'refund'"
    assert verdict(check.not_contains("As an AI"), "sure thing").passed
    found = verdict(check.not_contains("As an AI"), "Well. As an AI, I cannot")
    assert not found.passed
    assert found.reason == "output contains 'As an AI' at char 6"


def test_icontains_casefolds_both_sides() -> None:
    c = check.icontains("Straße")
    assert verdict(c, "in der STRASSE").passed
    assert verdict(c, "strasse 5").passed
    assert verdict(check.icontains("REFUND"), "a refund").passed
    result = verdict(c, "road")
    assert not result.passed
    assert result.reason == "output does not contain 'Straße' (ignoring case)"


@pytest.mark.parametrize("factory", [check.starts_with, check.contains, check.icontains, check.not_contains])
def test_substring_arguments_are_validated(factory: Callable[[str], Check]) -> None:
    with pytest.raises(ConfigError, match=r"s must be a str, got int"):
        factory(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"s must not be empty"):
        factory("")
    with pytest.raises(ConfigError, match=rf"check\.{factory.__name__}\(s\)"):
        factory(b"x")  # type: ignore[arg-type]


def test_regex_searches_anywhere_and_takes_compiled_patterns() -> None:
    c = check.regex(r"order #\d{6}")
    result = verdict(c, "Your order #123456 shipped")
    assert result.passed
    assert result.reason == r"'order #\\d{6}' matches at char 5"
    assert not verdict(c, "Your order #12 shipped").passed
    assert verdict(c, "nothing").reason == r"no match for 'order #\\d{6}'"
    flagged = check.regex(re.compile(r"^thanks", re.IGNORECASE | re.MULTILINE))
    assert verdict(flagged, "ok\nThanks!").passed
    assert not verdict(flagged, "no thanks").passed


def test_regex_arguments_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"check\.regex\(p\): p is not a valid regular expression"):
        check.regex("(unclosed")
    with pytest.raises(ConfigError, match=r"p must be a str or a compiled re\.Pattern, got int"):
        check.regex(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="bytes pattern"):
        check.regex(re.compile(b"x"))  # type: ignore[arg-type]


# --- structure --------------------------------------------------------------------------


@pytest.mark.parametrize("output", ['{"a": 1}', "  [1, 2]\n", '"text"', "42", "null", "true"])
def test_is_json_passes_on_any_whole_json_value(output: str) -> None:
    assert verdict(check.is_json(), output).passed


@pytest.mark.parametrize(
    "output",
    ["", "{'a': 1}", '```json\n{"a": 1}\n```', '{"a": 1} and more', "NaN", '{"a": 1', "\ufeff{}"],
)
def test_is_json_fails_on_anything_else(output: str) -> None:
    result = verdict(check.is_json(), output)
    assert not result.passed
    assert result.reason.startswith("output is not valid JSON: ")


SCHEMA = {
    "type": "object",
    "required": ["answer", "items"],
    "properties": {
        "answer": {"type": "string"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"price": {"type": "number"}}}},
    },
}


def test_json_schema_passes_valid_documents() -> None:
    c = check.json_schema(SCHEMA)
    assert verdict(c, '{"answer": "yes", "items": [{"price": 3.5}]}').passed


def test_json_schema_reports_the_first_error_path_and_message() -> None:
    c = check.json_schema(SCHEMA)
    bad_price = verdict(c, '{"answer": "yes", "items": [{"price": 1}, {"price": "free"}]}')
    assert not bad_price.passed
    assert bad_price.reason == "at $.items[1].price: 'free' is not of type 'number'"
    missing = verdict(c, '{"answer": "yes"}')
    assert missing.reason == "at $: 'items' is a required property"
    not_json = verdict(c, "sure! here it is")
    assert not not_json.passed
    assert not_json.reason.startswith("output is not valid JSON")


def test_json_schema_reason_does_not_quote_the_output_at_length() -> None:
    private = "".join(random.Random(1).choices(string.ascii_letters, k=300))
    result = verdict(check.json_schema({"type": "object"}), f'"{private}"')
    assert result.reason == "at $: value fails type='object'"
    long_key = verdict(check.json_schema({"additionalProperties": False}), f'{{"{private}": 1}}')
    assert not long_key.passed
    assert private[:40] not in long_key.reason
    assert len(long_key.reason) < 100


def test_json_schema_uses_the_draft_named_by_dollar_schema() -> None:
    draft4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "number",
        "maximum": 5,
        "exclusiveMaximum": True,
    }
    c = check.json_schema(draft4)
    assert verdict(c, "4").passed
    assert not verdict(c, "5").passed
    assert verdict(check.json_schema(True), "[1]").passed
    assert not verdict(check.json_schema(False), "[1]").passed


def test_json_schema_validates_the_schema_at_construction() -> None:
    with pytest.raises(ConfigError, match=r"schema is not a valid JSON Schema: at \$\.type: 'strng' is not valid"):
        check.json_schema({"type": "strng"})
    with pytest.raises(ConfigError, match=r"unknown \$schema 'https://example\.com/mine'"):
        check.json_schema({"$schema": "https://example.com/mine", "type": "object"})
    with pytest.raises(ConfigError, match=r"schema must be a dict \(a JSON Schema\), got str"):
        check.json_schema('{"type": "object"}')  # type: ignore[arg-type]


def test_json_schema_without_jsonschema_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_jsonschema(name: str, package: str | None = None) -> Any:
        if name.startswith("jsonschema"):
            raise ImportError(f"No module named {name!r}")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_jsonschema)
    with pytest.raises(ConfigError, match="pip install jsonschema"):
        check.json_schema({"type": "object"})


def test_length_checks_count_characters() -> None:
    assert verdict(check.max_length(5), "héllo").passed
    too_long = verdict(check.max_length(5), "héllo!")
    assert not too_long.passed
    assert too_long.reason == "output is 6 characters, max 5"
    assert verdict(check.max_length(0), "").passed
    assert verdict(check.min_length(1), "x").passed
    too_short = verdict(check.min_length(1), "")
    assert not too_short.passed
    assert too_short.reason == "output is 0 characters, min 1"


@pytest.mark.parametrize("factory", [check.max_length, check.min_length])
@pytest.mark.parametrize("bad", [-1, 2.5, "10", True, None])
def test_length_arguments_are_validated(factory: Callable[[int], Check], bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"check\.{factory.__name__}\(n\): n must be an int >= 0"):
        factory(bad)  # type: ignore[arg-type]


# --- call metadata ----------------------------------------------------------------------


def test_max_latency() -> None:
    c = check.max_latency(2)
    assert verdict(c, latency_s=1.5).passed
    assert verdict(c, latency_s=2.0).passed
    slow = verdict(c, latency_s=2.31)
    assert not slow.passed
    assert slow.reason == "latency 2.31 s > 2 s"


def test_max_cost() -> None:
    c = check.max_cost(0.01)
    assert verdict(c, cost_usd=0.002).passed
    expensive = verdict(c, cost_usd=0.05)
    assert not expensive.passed
    assert expensive.reason == "cost $0.05 > $0.01"


def test_max_cost_of_an_unpriced_model_is_an_error_not_a_pass() -> None:
    outcome = one(check.max_cost(0.01), ctx("x", cost_usd=None, model="my-finetune"))
    assert outcome.label == "error"
    assert outcome.score is None
    assert outcome.explanation.startswith("LookupError: cost unknown for model 'my-finetune'")
    no_model = one(check.max_cost(0.01), ctx("x", cost_usd=None, model=None))
    assert "cost unknown for model (no model reported)" in no_model.explanation


@pytest.mark.parametrize("factory", [check.max_latency, check.max_cost])
@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "1", True, None])
def test_limits_are_validated(factory: Callable[[float], Check], bad: object) -> None:
    arg = "seconds" if factory is check.max_latency else "usd"
    with pytest.raises(ConfigError, match=rf"check\.{factory.__name__}\({arg}\): {arg} must be a finite number >= 0"):
        factory(bad)  # type: ignore[arg-type]


def test_limits_accept_ints_and_other_reals() -> None:
    assert verdict(check.max_latency(Fraction(1, 2)), latency_s=0.5).passed  # type: ignore[arg-type]
    assert verdict(check.max_cost(0), cost_usd=0.0).passed


def test_not_refusal() -> None:
    assert verdict(check.not_refusal(), "sure", refusal=False).passed
    refused = verdict(check.not_refusal(), "I can't help", refusal=True)
    assert not refused.passed
    assert refused.reason == "model refused"


# --- custom -----------------------------------------------------------------------------


def mentions_acme(output: str) -> bool:
    return "Acme" in output


def test_custom_with_one_argument_returning_bool() -> None:
    c = check.custom(mentions_acme)
    assert c.name == "mentions_acme"
    assert run_checks([c], ctx("Acme rocks")) == [Outcome("mentions_acme", "pass", 1.0, "mentions_acme returned True")]
    assert one(c, ctx("nope")).label == "fail"


def test_custom_with_the_context() -> None:
    seen: list[CheckContext] = []

    def fast_first_token(output: str, context: CheckContext) -> bool:
        seen.append(context)
        return context.ttft_s is not None and context.ttft_s < 0.5

    c = check.custom(fast_first_token)
    assert one(c, ctx("x", ttft_s=0.2)).label == "pass"
    assert one(c, ctx("x", ttft_s=None)).label == "fail"
    assert seen[0].output == "x"
    assert seen[0].response == {"raw": True}


def test_custom_signature_variants() -> None:
    def with_default(output: str, context: CheckContext | None = None) -> bool:
        return context is not None

    def var_args(*args: Any) -> bool:
        return len(args) == 2

    def one_and_kw_default(output: str, *, strict: bool = False) -> bool:
        return not strict

    for fn in (with_default, var_args, one_and_kw_default):
        assert one(check.custom(fn), ctx("x")).label == "pass", fn.__name__
    assert one(check.custom(str.islower), ctx("abc")).label == "pass"  # a builtin, one argument


@pytest.mark.parametrize(
    ("returned", "label", "score", "explanation"),
    [
        (0.9, "pass", 0.9, "score 0.9 >= 0.5"),
        (0.2, "fail", 0.2, "score 0.2 < 0.5"),
        (1, "pass", 1.0, "score 1 >= 0.5"),
        (Fraction(1, 4), "fail", 0.25, "score 0.25 < 0.5"),
        ((False, "too formal"), "fail", 0.0, "too formal"),
        ((True, "friendly"), "pass", 1.0, "friendly"),
        (CheckResult(False, 0.3, "mine"), "fail", 0.3, "mine"),
    ],
)
def test_custom_return_values(returned: object, label: str, score: float, explanation: str) -> None:
    c = check.custom(lambda output: returned, name="rule")
    assert one(c, ctx("x")) == Outcome("rule", label, score, explanation)  # type: ignore[arg-type]


def test_custom_threshold() -> None:
    c = check.custom(lambda output: 0.6, name="readability", threshold=0.7)
    assert one(c, ctx("x")) == Outcome("readability", "fail", 0.6, "score 0.6 < 0.7")
    with pytest.raises(ConfigError, match=r"check\.custom\(threshold\): threshold must be a finite number"):
        check.custom(mentions_acme, threshold=math.nan)
    with pytest.raises(ConfigError, match="threshold"):
        check.custom(mentions_acme, threshold="high")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            None,
            "TypeError: custom check 'rule' returned NoneType; expected bool, a number, CheckResult or (bool, reason)",
        ),
        ("yes", "TypeError: custom check 'rule' returned str"),
        ((True,), "TypeError: custom check 'rule' returned a tuple; expected (bool, reason: str)"),
        ((1, "x"), "TypeError: custom check 'rule' returned a tuple"),
        (math.nan, "ValueError: custom check 'rule' returned a non-finite score"),
    ],
)
def test_custom_bad_return_values_are_errors(returned: object, message: str) -> None:
    outcome = one(check.custom(lambda output: returned, name="rule"), ctx("x"))
    assert outcome.label == "error"
    assert outcome.score is None
    assert outcome.explanation.startswith(message)


def test_custom_returning_a_coroutine_is_an_error_without_a_never_awaited_warning() -> None:
    async def judge(output: str) -> bool:
        return True

    def sneaky(output: str) -> object:  # sync, so only its result gives it away
        return judge(output)

    outcome = one(check.custom(sneaky), ctx("x"))
    assert outcome.label == "error"
    assert "returned an awaitable" in outcome.explanation
    # filterwarnings=error: an unclosed coroutine would fail the test at collection.


def test_custom_name_defaults() -> None:
    assert check.custom(lambda output: True).name == "custom"
    assert check.custom(mentions_acme, name="acme").name == "acme"

    class Scorer:
        def __call__(self, output: str) -> float:
            return 1.0

    assert check.custom(Scorer()).name == "custom"


def test_custom_refuses_async_and_bad_callables() -> None:
    async def judge(output: str) -> bool:
        return True

    class AsyncScorer:
        async def __call__(self, output: str) -> bool:
            return True

    for fn in (judge, AsyncScorer()):
        with pytest.raises(ConfigError, match=r"check\.custom\(fn\): async functions are not supported"):
            check.custom(fn)
    with pytest.raises(ConfigError, match="fn must be a function, got str"):
        check.custom("Acme")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fn is already a Check"):
        check.custom(check.not_refusal())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"fn must take \(output\) or \(output, ctx\)"):
        check.custom(lambda a, b, c: True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"fn must take \(output\) or \(output, ctx\)"):
        check.custom(lambda: True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"fn must take \(output\) or \(output, ctx\)"):
        check.custom(lambda output, *, level: True)  # type: ignore[arg-type]


# --- run_checks -------------------------------------------------------------------------


def test_run_checks_keeps_order_and_labels() -> None:
    outcomes = run_checks(
        [check.starts_lowercase(), check.max_length(3), check.not_refusal()],
        ctx("hello"),
    )
    assert [(o.name, o.label, o.score) for o in outcomes] == [
        ("starts_lowercase", "pass", 1.0),
        ("max_length", "fail", 0.0),
        ("not_refusal", "pass", 1.0),
    ]
    assert run_checks([], ctx("x")) == []


def test_a_raising_check_is_an_error_outcome_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    def explode(output: str) -> bool:
        raise RuntimeError("bug in my check")

    before = stats.get("check_errors")
    with caplog.at_level(logging.DEBUG, logger="llmpulse"):
        outcomes = run_checks([check.custom(explode), check.contains("x")], ctx("x"))
    assert outcomes[0] == Outcome("explode", "error", None, "RuntimeError: bug in my check")
    assert outcomes[1].label == "pass"  # the others still run
    assert stats.get("check_errors") == before + 1
    (record,) = [r for r in caplog.records if r.name == "llmpulse"]
    assert record.levelno == logging.DEBUG
    assert "explode" in record.getMessage()
    assert record.exc_info is not None


def test_error_explanations_are_bounded_and_never_empty() -> None:
    def huge(output: str) -> bool:
        raise ValueError("x" * 5000)

    def silent(output: str) -> bool:
        raise KeyError

    long, bare = run_checks([check.custom(huge), check.custom(silent)], ctx("x"))
    assert long.explanation.startswith("ValueError: xxx")
    assert len(long.explanation) <= 220
    assert bare.explanation == "KeyError"


def test_run_checks_survives_checks_that_misbehave() -> None:
    class ReturnsDict(Check):
        def __call__(self, ctx: CheckContext) -> CheckResult:
            return {"passed": True}  # type: ignore[return-value]

    class NanScore(Check):
        def __call__(self, ctx: CheckContext) -> CheckResult:
            return CheckResult(True, math.nan, "?")

    class NoName(Check):
        def __init__(self) -> None:  # forgot super().__init__
            pass

        def __call__(self, ctx: CheckContext) -> CheckResult:
            raise AssertionError("boom")

    class NoReason(Check):
        def __call__(self, ctx: CheckContext) -> CheckResult:
            return CheckResult(True, 1.0, None)  # type: ignore[arg-type]

    outcomes = run_checks([ReturnsDict("dict"), NanScore("nan"), NoName(), NoReason("none")], ctx("x"))
    assert [(o.name, o.label, o.score) for o in outcomes] == [
        ("dict", "error", None),
        ("nan", "error", None),
        ("NoName", "error", None),
        ("none", "error", None),
    ]
    assert outcomes[0].explanation == "TypeError: check returned dict, expected CheckResult"
    assert outcomes[1].explanation.startswith("ValueError: check returned a non-finite score")
    assert outcomes[2].explanation == "AssertionError: boom"
    assert outcomes[3].explanation == "TypeError: check returned a NoneType reason, expected str"
    assert stats.get("check_errors") == 4


def test_base_exceptions_are_not_swallowed() -> None:
    def interrupt(output: str) -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_checks([check.custom(interrupt)], ctx("x"))


# --- validate_checks --------------------------------------------------------------------


def test_validate_checks_accepts_one_check_or_an_iterable() -> None:
    a, b = check.contains("a"), check.not_refusal()
    assert validate_checks(a, "assertions") == (a,)
    assert validate_checks([a, b], "assertions") == (a, b)
    assert validate_checks((c for c in (a, b)), "assertions") == (a, b)
    assert validate_checks((), "assertions") == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("starts_lowercase", r"assertions must be a Check or a list of Checks .*got str 'starts_lowercase'"),
        (None, r"assertions must be a Check or a list of Checks .*got NoneType None"),
        (42, r"assertions must be a Check or a list of Checks .*got int 42"),
        ([check.not_refusal(), "contains"], r"assertions\[1\] must be a Check \(from llmpulse\.check\), got str"),
        ([mentions_acme], r"assertions\[0\] must be a Check .*wrap a function with llmpulse\.check\.custom\(fn\)"),
        ([check.starts_lowercase], r"assertions\[0\] must be a Check .*call the factory: check\.starts_lowercase"),
        (check.not_refusal, r"assertions must be a Check .*call the factory: check\.not_refusal"),
    ],
)
def test_validate_checks_rejects_anything_else_naming_the_option(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_checks(value, "assertions")


def test_validate_checks_names_the_option_it_was_given() -> None:
    with pytest.raises(ConfigError, match=r"^llm\(assertions=\.\.\.\) must be"):
        validate_checks(3.5, "llm(assertions=...)")


def test_a_check_subclass_without_a_name_is_a_config_error() -> None:
    class Forgetful(Check):
        def __init__(self) -> None:  # forgot super().__init__
            pass

        def __call__(self, ctx: CheckContext) -> CheckResult:
            return CheckResult(True, 1.0, "ok")

    with pytest.raises(ConfigError, match=r"assertions\[0\] \(Forgetful\) has no name; .*super\(\)\.__init__"):
        validate_checks([Forgetful()], "assertions")


def test_two_checks_with_one_name_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"assertions has two checks named 'contains'; give one a distinct name="):
        validate_checks([check.contains("a"), check.contains("b")], "assertions")
    ok = validate_checks([check.contains("a"), check.contains("b", name="contains_b")], "assertions")
    assert [c.name for c in ok] == ["contains", "contains_b"]


# --- privacy of reasons -----------------------------------------------------------------

ALL_CHECKS: list[Check] = [
    check.starts_lowercase(),
    check.starts_with("Z"),
    check.contains("needle"),
    check.icontains("needle"),
    check.not_contains("a"),
    check.regex(r"\d{9}"),
    check.is_json(),
    check.json_schema({"type": "object", "properties": {"a": {"type": "integer"}}}),
    check.max_length(10),
    check.min_length(10_000),
    check.max_latency(1),
    check.not_refusal(),
    check.custom(lambda output: output.isdigit(), name="digits"),
]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=string.ascii_letters + ' {}":,0123456789', min_size=61, max_size=400))
def test_reasons_never_quote_more_than_60_characters_of_the_output(output: str) -> None:
    json_wrapped = '{"a": "' + output.replace('"', "") + '"}'
    for text in (output, json_wrapped):
        for outcome in run_checks(ALL_CHECKS, ctx(text)):
            windows = {text[i : i + 61] for i in range(len(text) - 60)}
            assert not any(w in outcome.explanation for w in windows), outcome
