"""PriceBook: unit prices from genai-prices, cached per model, and the cost arithmetic."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import llmpulse._cost as cost_module
from llmpulse._cost import ModelPrice, PriceBook
from llmpulse._exceptions import ConfigError
from llmpulse._stats import stats

# Published list prices, USD per million tokens (openai.com/api/pricing,
# anthropic.com/pricing). Cache writes are Anthropic's default 5-minute rate.
GPT_4O_IN, GPT_4O_OUT, GPT_4O_CACHE_READ = 2.5, 10.0, 1.25
SONNET_45_IN, SONNET_45_OUT, SONNET_45_CACHE_READ, SONNET_45_CACHE_WRITE = 3.0, 15.0, 0.30, 3.75


@pytest.fixture
def calc_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model_ref genai_prices.calc_price is called with (it still prices for real)."""
    import genai_prices

    real = genai_prices.calc_price
    calls: list[str] = []

    def counting(usage: Any, model_ref: str, **kwargs: Any) -> Any:
        calls.append(model_ref)
        return real(usage, model_ref, **kwargs)

    monkeypatch.setattr(genai_prices, "calc_price", counting)
    return calls


# -- prices and arithmetic ---------------------------------------------------------------


def test_gpt_4o_cost_matches_published_prices() -> None:
    book = PriceBook()
    inp, cached, out = 10_000, 4_000, 500

    got = book.cost("openai", "gpt-4o", inp, out, cache_read_tokens=cached)

    expected = ((inp - cached) * GPT_4O_IN + cached * GPT_4O_CACHE_READ + out * GPT_4O_OUT) / 1e6
    assert got == pytest.approx(expected, rel=1e-12)
    price = book.unit_price("openai", "gpt-4o")
    assert price is not None
    assert (price.input, price.output, price.cache_read) == (
        GPT_4O_IN,
        GPT_4O_OUT,
        GPT_4O_CACHE_READ,
    )


def test_anthropic_cache_read_and_write_are_priced_once_at_their_rates() -> None:
    book = PriceBook()
    read, write, uncached, out = 20_000, 5_000, 1_000, 800
    # OTel semantics: input_tokens includes both cached parts.
    inp = uncached + read + write

    got = book.cost("anthropic", "claude-sonnet-4-5", inp, out, read, write)

    expected = (
        uncached * SONNET_45_IN + read * SONNET_45_CACHE_READ + write * SONNET_45_CACHE_WRITE + out * SONNET_45_OUT
    ) / 1e6
    assert got == pytest.approx(expected, rel=1e-12)
    # All-cached input costs the cache rate only, never input + cache.
    assert book.cost("anthropic", "claude-sonnet-4-5", read, 0, read) == pytest.approx(
        read * SONNET_45_CACHE_READ / 1e6, rel=1e-12
    )


def test_cached_counts_larger_than_input_never_go_negative() -> None:
    book = PriceBook({"m": {"input": 1.0, "output": 2.0, "cache_read": 0.5}})
    # Un-normalised Anthropic counts (cache reported beside input, not inside it).
    assert book.cost(None, "m", 10, 0, cache_read_tokens=1_000) == pytest.approx(500 / 1e6)


@pytest.mark.parametrize(
    ("provider", "snapshot", "base"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4o-2024-11-20", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        (None, "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"),
    ],
)
def test_dated_snapshots_price_like_their_model(provider: str | None, snapshot: str, base: str) -> None:
    book = PriceBook()
    price = book.unit_price(provider, snapshot)
    assert price is not None
    assert price == book.unit_price(provider, base)


def test_a_snapshot_with_its_own_price_is_not_folded_into_the_alias() -> None:
    # gpt-4o-2024-05-13 launched at $5/$15 and kept that price: matching is exact, not a prefix.
    price = PriceBook().unit_price("openai", "gpt-4o-2024-05-13")
    assert price is not None
    assert (price.input, price.output) == (5.0, 15.0)


@pytest.mark.parametrize(
    ("otel_provider", "model", "genai_provider"),
    [
        ("azure.ai.openai", "gpt-4o", "azure"),
        ("az.ai.openai", "gpt-4o", "azure"),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
        ("gcp.vertex_ai", "claude-sonnet-4-5@20250929", "google"),
        ("gcp.gen_ai", "gemini-2.5-flash", "google"),
        ("gcp.gemini", "gemini-2.5-pro", "google"),
        ("vertex_ai", "gemini-2.5-pro", "google"),
        ("mistral_ai", "mistral-large-latest", "mistral"),
        ("x_ai", "grok-4", "x-ai"),
        ("xai", "grok-4", "x-ai"),
        ("groq", "llama-3.3-70b-versatile", "groq"),
        ("deepseek", "deepseek-reasoner", "deepseek"),
        ("cohere", "command-r-plus", "cohere"),
        ("perplexity", "sonar", "perplexity"),
        ("OpenAI", "GPT-4o", "openai"),
    ],
)
def test_otel_provider_names_map_to_genai_prices_providers(otel_provider: str, model: str, genai_provider: str) -> None:
    book = PriceBook()
    price = book.unit_price(otel_provider, model)
    assert price is not None
    assert price == book.unit_price(genai_provider, model)


def test_unknown_or_missing_provider_matches_the_model_alone() -> None:
    book = PriceBook()
    expected = book.unit_price("openai", "gpt-4o")
    assert book.unit_price(None, "gpt-4o") == expected
    assert book.unit_price("ibm.watsonx.ai", "gpt-4o") == expected
    assert book.unit_price(None, "llama-3.3-70b-versatile") is None  # Groq's name, no provider


def test_a_known_provider_without_the_model_gives_no_price() -> None:
    # An OpenAI-compatible endpoint reported as "openai": no guessing from another catalogue.
    assert PriceBook().unit_price("openai", "deepseek-chat") is None


def test_provider_prefixed_model_names() -> None:
    book = PriceBook()
    gpt_4o = book.unit_price("openai", "gpt-4o")
    assert book.unit_price(None, "openai/gpt-4o") == gpt_4o
    assert book.unit_price("openai", "openai/gpt-4o") == gpt_4o
    assert book.unit_price(None, "models/gemini-2.5-pro") == book.unit_price("google", "gemini-2.5-pro")


def test_per_request_fees_are_not_token_prices() -> None:
    # Perplexity's sonar: $1/$1 per MTok plus a per-request fee that is left out.
    assert PriceBook().cost("perplexity", "sonar", 1_000, 1_000) == pytest.approx(2_000 / 1e6)


def test_models_priced_in_other_units_get_no_price() -> None:
    book = PriceBook()
    assert book.unit_price("openai", "tts-1") is None  # per character
    assert book.unit_price("openai", "whisper-1") is None  # per audio hour


# -- unknown models and absent counts ----------------------------------------------------


def test_unknown_model_gives_none_is_remembered_and_counted() -> None:
    book = PriceBook()
    before = stats.get("cost_unknown_model")

    assert book.cost("openai", "no-such-model-x", 100, 10) is None
    assert book.cost(None, "no-such-model-y", 100, 10) is None
    assert book.cost(None, "no-such-model-y", 100, 10) is None

    assert book.unknown_models == frozenset({"openai/no-such-model-x", "no-such-model-y"})
    assert stats.get("cost_unknown_model") - before == 3


@pytest.mark.parametrize("model", [None, ""])
def test_no_model_gives_none(model: str | None) -> None:
    assert PriceBook().cost("openai", model, 100, 10) is None


def test_no_token_counts_give_none_without_a_lookup(calc_calls: list[str]) -> None:
    book = PriceBook()
    assert book.cost("openai", "gpt-4o", None, None) is None
    assert book.cost("openai", "gpt-4o", None, None, None, None) is None
    assert calc_calls == []


@pytest.mark.parametrize("bad", [-1, True, False, 1.5, 10.0, "100", float("nan"), object()])
def test_bad_token_counts_count_as_absent(bad: Any) -> None:
    book = PriceBook({"m": {"input": 1.0, "output": 2.0, "cache_read": 0.5}})
    assert book.cost(None, "m", bad, bad, bad, bad) is None
    assert book.cost(None, "m", 1_000, bad) == pytest.approx(1_000 / 1e6)
    assert book.cost(None, "m", bad, 1_000) == pytest.approx(2_000 / 1e6)
    assert book.cost(None, "m", 1_000, 0, cache_read_tokens=bad) == pytest.approx(1_000 / 1e6)


def test_zero_tokens_cost_zero() -> None:
    assert PriceBook().cost("openai", "gpt-4o", 0, 0) == 0.0


# -- overrides ---------------------------------------------------------------------------


def test_override_as_plain_mapping(calc_calls: list[str]) -> None:
    book = PriceBook({"my-finetune": {"input": 3.0, "output": 12.0}})

    assert book.unit_price(None, "my-finetune") == ModelPrice(input=3.0, output=12.0)
    assert book.cost("openai", "My-Finetune", 2_000, 100, cache_read_tokens=1_000) == (
        pytest.approx((2_000 * 3.0 + 100 * 12.0) / 1e6)
    )
    assert calc_calls == []  # an override never reaches genai-prices


def test_override_as_model_price_wins_over_genai_prices() -> None:
    custom = ModelPrice(input=1.0, output=4.0, cache_read=0.1, cache_write=2.0)
    book = PriceBook({"gpt-4o": custom})

    assert book.unit_price("openai", "gpt-4o") == custom
    assert book.cost("openai", "gpt-4o", 1_000, 1_000, 300, 200) == pytest.approx(
        (500 * 1.0 + 300 * 0.1 + 200 * 2.0 + 1_000 * 4.0) / 1e6
    )


def test_provider_scoped_override_applies_to_that_provider_only() -> None:
    book = PriceBook({"azure/gpt-4o": {"input": 2.75, "output": 11.0}})

    assert book.unit_price("azure", "gpt-4o") == ModelPrice(input=2.75, output=11.0)
    # The OTel name of the same provider matches the genai-prices id in the key.
    assert book.unit_price("azure.ai.openai", "gpt-4o") == ModelPrice(input=2.75, output=11.0)
    openai_price = book.unit_price("openai", "gpt-4o")
    assert openai_price is not None
    assert openai_price.input == GPT_4O_IN


@pytest.mark.parametrize(
    ("overrides", "model"),
    [
        ({"m1": {"input": -1.0, "output": 1.0}}, "m1"),
        ({"m2": {"input": float("nan"), "output": 1.0}}, "m2"),
        ({"m3": {"input": 1.0, "output": float("inf")}}, "m3"),
        ({"m4": {"input": "3", "output": 1.0}}, "m4"),
        ({"m5": {"input": True, "output": 1.0}}, "m5"),
        ({"m6": {"input": 1.0, "ouput": 1.0}}, "m6"),
        ({"m7": {"input": 1.0}}, "m7"),
        ({"m8": {"input": 1.0, "output": 1.0, "cache_read": -0.1}}, "m8"),
        ({"m9": [1.0, 2.0]}, "m9"),
        ({"m10": 3.0}, "m10"),
        ({"m11": ModelPrice(input=1.0, output=-2.0)}, "m11"),
        ({"m12": ModelPrice(input=1.0, output=2.0, cache_write=float("nan"))}, "m12"),
    ],
)
def test_invalid_overrides_raise_config_error_naming_prices_and_model(overrides: Any, model: str) -> None:
    with pytest.raises(ConfigError) as info:
        PriceBook(overrides)
    message = str(info.value)
    assert "`prices`" in message
    assert repr(model) in message


@pytest.mark.parametrize("overrides", [[("m", {"input": 1.0, "output": 1.0})], "m", 3])
def test_overrides_must_be_a_mapping(overrides: Any) -> None:
    with pytest.raises(ConfigError, match="`prices`"):
        PriceBook(overrides)


@pytest.mark.parametrize("key", ["", "  ", 3])
def test_override_keys_must_be_model_names(key: Any) -> None:
    with pytest.raises(ConfigError, match="`prices`"):
        PriceBook({key: {"input": 1.0, "output": 1.0}})


# -- caching -----------------------------------------------------------------------------


def test_cache_hit_does_not_call_genai_prices_again(calc_calls: list[str]) -> None:
    book = PriceBook()

    first = book.cost("openai", "gpt-4o", 1_000, 100)
    probes = len(calc_calls)
    assert probes > 0
    for _ in range(100):
        assert book.cost("openai", "gpt-4o", 1_000, 100) == first
        book.unit_price("openai", "gpt-4o")

    assert len(calc_calls) == probes


def test_misses_are_cached_too(calc_calls: list[str]) -> None:
    book = PriceBook()

    assert book.cost("openai", "no-such-model-z", 1, 1) is None
    lookups = len(calc_calls)
    for _ in range(20):
        assert book.cost("openai", "no-such-model-z", 1, 1) is None

    assert len(calc_calls) == lookups


def test_time_dependent_prices_are_re_derived(calc_calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # DeepSeek's chat model has off-peak prices: its cache entry expires, gpt-4o's never does.
    monkeypatch.setattr(cost_module, "_REFRESH_CONDITIONAL_S", -1.0)
    book = PriceBook()
    book.unit_price("deepseek", "deepseek-chat")
    book.unit_price("openai", "gpt-4o")
    calc_calls.clear()

    book.unit_price("deepseek", "deepseek-chat")
    book.unit_price("openai", "gpt-4o")

    assert set(calc_calls) == {"deepseek-chat"}


def test_cache_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost_module, "_MAX_CACHED", 3)
    book = PriceBook({f"m{i}": {"input": float(i), "output": 0.0} for i in range(10)})

    for i in range(10):
        assert book.cost(None, f"m{i}", 1_000_000, 0) == float(i)

    assert len(book._cache) == 3


def test_thread_safety_many_threads_same_results(calc_calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    models = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18"),
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("azure.ai.openai", "gpt-4.1"),
        (None, "no-such-model-t"),
    ]
    expected = [PriceBook().cost(p, m, 12_345, 678, 2_000, 100) for p, m in models]
    calc_calls.clear()
    import genai_prices

    counting = genai_prices.calc_price

    def slow(*args: Any, **kwargs: Any) -> Any:
        # Widen the window in which the other threads miss the cache and queue up.
        time.sleep(0.002)
        return counting(*args, **kwargs)

    monkeypatch.setattr(genai_prices, "calc_price", slow)
    book = PriceBook()
    threads_n = 16
    start = threading.Barrier(threads_n)
    results: list[list[float | None]] = [[] for _ in range(threads_n)]

    def work(slot: int) -> None:
        start.wait()
        for _ in range(200):
            for p, m in models:
                results[slot].append(book.cost(p, m, 12_345, 678, 2_000, 100))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    # Switch threads as often as possible so the first lookups really race.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(old_interval)
    assert not any(t.is_alive() for t in threads)

    for got in results:
        assert got == expected * 200
    # Each model was looked up once, however many threads missed the cache together.
    threaded_calls = len(calc_calls)
    calc_calls.clear()
    for p, m in models:
        PriceBook().unit_price(p, m)
    assert threaded_calls == len(calc_calls)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_during_a_lookup_does_not_deadlock_the_child() -> None:
    book = PriceBook({"m": {"input": 1.0, "output": 1.0}})
    # As if another thread were resolving a miss when the process forked.
    with book._lock, warnings.catch_warnings():
        # 3.12+ warns about fork() with threads alive; only this thread touches the book.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
        if pid == 0:  # child: price a model not cached yet, then report
            os._exit(0 if book.cost(None, "m", 1_000_000, 0) == 1.0 else 1)

    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    if done == (0, 0):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child deadlocked on the PriceBook lock")
    assert os.waitstatus_to_exitcode(done[1]) == 0


# -- never raises ------------------------------------------------------------------------


def test_odd_arguments_never_raise() -> None:
    book = PriceBook()
    assert book.unit_price(None, 42) is None  # type: ignore[arg-type]
    assert book.cost(object(), "gpt-4o", 1_000, 0) == pytest.approx(  # type: ignore[arg-type]
        1_000 * GPT_4O_IN / 1e6
    )
    assert book.cost("openai", ["gpt-4o"], 1, 1) is None  # type: ignore[arg-type]


def test_a_failing_price_source_gives_none_and_is_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, expect_sdk_errors: None
) -> None:
    import genai_prices

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("price data broken")

    monkeypatch.setattr(genai_prices, "calc_price", broken)
    before = stats.get("cost_errors")

    with caplog.at_level(logging.WARNING, logger="llmpulse"):
        assert PriceBook().cost("openai", "gpt-4o", 10, 10) is None

    assert stats.get("cost_errors") - before == 1
    assert "gpt-4o" in caplog.text


# -- import cost -------------------------------------------------------------------------


def test_importing_the_module_does_not_import_genai_prices() -> None:
    sdk_dir = Path(cost_module.__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(sdk_dir), env.get("PYTHONPATH")]))
    code = (
        "import sys, llmpulse._cost as c\n"
        "assert 'genai_prices' not in sys.modules, 'imported at module import'\n"
        "c.PriceBook({'m': {'input': 1.0, 'output': 1.0}}).cost(None, 'm', 1, 1)\n"
        "assert 'genai_prices' not in sys.modules, 'imported for an override'\n"
        "c.PriceBook().cost('openai', 'gpt-4o', 1, 1)\n"
        "assert 'genai_prices' in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_model_price_is_frozen_and_slotted() -> None:
    price = ModelPrice(input=1.0, output=2.0)
    with pytest.raises(AttributeError):
        price.input = 3.0  # type: ignore[misc]
    assert not hasattr(price, "__dict__")
    assert math.isclose(price.output, 2.0)
