"""Cost of a model call in USD, from `genai-prices` unit prices cached per model.

``PriceBook.cost()`` runs for every LLM span, from the span processor and the collector,
on several threads at once. A ``genai_prices.calc_price`` call costs 60-170 µs and
importing ``genai_prices`` 150-300 ms, so:

- ``genai_prices`` is imported on the first lookup, never when this module is imported;
- a model's unit prices are derived once, by pricing small probe usages
  (``_PROBE_TOKENS`` tokens each), and cached per ``(provider, model)``, misses included;
- after that a cost is a dict lookup and a few multiplications (0.7-1.3 µs against
  90-200 µs for calc_price on a 2-core box; ``bench/cost_bench.py`` measures both).

Token accounting follows the OpenTelemetry GenAI conventions: ``input_tokens`` *includes*
the cached tokens read (``gen_ai.usage.cache_read.input_tokens``) and written to the cache,
so the uncached remainder is priced at the input rate and cached tokens are priced once, at
their own rate::

    book = PriceBook({"my-finetune": {"input": 3.0, "output": 12.0}})
    book.cost("openai", "gpt-4o-2024-08-06", input_tokens=1200, output_tokens=300,
              cache_read_tokens=1024)

What the cached unit prices leave out, on purpose:

- context-length tiers (e.g. Anthropic and Gemini charge more past 200k input tokens):
  the probes stay in the lowest tier, so a call past a tier threshold is under-priced;
- per-request fees (Perplexity), web-search and other non-token charges, batch or
  priority price variants, audio/image token rates, and Anthropic's 1-hour cache writes
  (cache writes are priced at the default 5-minute rate);
- prices that change with the time of day or on a scheduled date are taken at lookup time,
  not at the call's time, and re-derived every ``_REFRESH_CONDITIONAL_S`` seconds instead
  of being cached for good;
- ``genai_prices`` data refreshed at runtime (its ``UpdatePrices``) reaches a model already
  cached only through a new ``PriceBook``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from llmpulse._exceptions import ConfigError
from llmpulse._stats import stats

if TYPE_CHECKING:
    from types import ModuleType

    from genai_prices.types import PriceCalculation

__all__ = ["PROVIDER_IDS", "ModelPrice", "PriceBook"]

logger = logging.getLogger("llmpulse")

# OTel GenAI `gen_ai.provider.name` (and older `gen_ai.system`) values -> genai-prices
# provider ids, where genai-prices would not resolve the OTel name to the right provider
# itself. genai-prices matches a provider id exactly, then by substring rules ("bedrock" ->
# aws, "vertex"/"gemini" -> google, "mistral*" -> mistral, "openai" -> openai), so
# "x_ai" and "gcp.gen_ai" would be unknown and "azure.ai.openai" would become plain OpenAI.
# Old `gen_ai.system` names are listed too so that overrides keyed by the genai-prices id
# match them. Names that already match ("openai", "anthropic", "groq", "deepseek",
# "cohere", "perplexity", "fireworks", "openrouter", ...) pass through unchanged; names
# genai-prices does not know ("ibm.watsonx.ai") fall back to matching the model alone.
PROVIDER_IDS: Mapping[str, str] = {
    "azure.ai.openai": "azure",  # Azure's own catalogue, falling back to OpenAI's
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",  # Google's catalogue, falling back to Anthropic's (Claude on Vertex)
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
}

# Small enough to stay in every model's lowest context-length tier, large enough that
# per-million prices come out exact in Decimal arithmetic.
_PROBE_TOKENS = 1000
# Prices with a time-of-day or start-date condition (DeepSeek's off-peak rates) are
# re-derived this often; everything else is cached for the PriceBook's lifetime.
_REFRESH_CONDITIONAL_S = 60.0
# Model names come from API responses: bound what a stream of odd names can pin in memory.
_MAX_CACHED = 4096
_MAX_UNKNOWN = 256

_PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")
_REQUIRED_FIELDS = ("input", "output")
_TOKEN_PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
_KEY_TYPES = (str, type(None))


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Unit prices of one model, in USD per million tokens.

    ``cache_read`` and ``cache_write`` of ``None`` mean those tokens cost the input rate.
    """

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


# (unit price or None for "no known price", monotonic expiry or None for "never")
_Entry = tuple[ModelPrice | None, float | None]


class PriceBook:
    """Prices model calls, with unit prices cached per ``(provider, model)``.

    Thread-safe: lookups that hit the cache take no lock; a miss is resolved once under a
    lock. ``cost()`` and ``unit_price()`` never raise.

    ``overrides`` map a model name, or ``"provider/model"``, to a ``ModelPrice`` or a
    mapping with ``input`` and ``output`` (and optionally ``cache_read``,
    ``cache_write``) in USD per million tokens. They win over genai-prices and match
    exactly, ignoring case; ``provider`` may be the name the span carries or its
    genai-prices id (``"azure/gpt-4o"`` matches ``azure.ai.openai``)::

        PriceBook({"my-finetune": {"input": 3.0, "output": 12.0},
                   "openai/gpt-4o": ModelPrice(input=2.5, output=10.0, cache_read=1.25)})
    """

    def __init__(self, overrides: Mapping[str, ModelPrice | Mapping[str, float]] | None = None) -> None:
        self._overrides = _validate_overrides(overrides)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str | None, str], _Entry] = {}
        self._unknown: set[str] = set()
        weak_reinit = weakref.WeakMethod(self._at_fork_reinit)

        def _after_fork() -> None:
            method = weak_reinit()
            if method is not None:
                method()

        if hasattr(os, "register_at_fork"):  # not on Windows
            os.register_at_fork(after_in_child=_after_fork)

    def _at_fork_reinit(self) -> None:
        # A fork while another thread was resolving a miss (or importing genai_prices)
        # leaves the child a lock nobody will release. The cache itself is still valid.
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Import genai-prices and load its price table now (the first lookup does it
        otherwise, ~150 ms)."""
        from genai_prices.data_snapshot import get_snapshot

        get_snapshot()

    @property
    def unknown_models(self) -> frozenset[str]:
        """Models looked up without finding a price, as ``"provider/model"`` (or ``"model"``
        when the call named no provider): each is a key to add to ``overrides``. At most
        the first 256; the ``cost_unknown_model`` counter counts every unpriced call."""
        with self._lock:
            return frozenset(self._unknown)

    def unit_price(self, provider: str | None, model: str) -> ModelPrice | None:
        """The model's unit prices, or ``None`` when neither overrides nor genai-prices know it.

        Cached per ``(provider, model)``, including ``None``; thread-safe; never raises.
        """
        key = _cache_key(provider, model)
        if key is None:
            return None
        # dict.get is atomic: the hit path needs no lock.
        entry = self._cache.get(key)
        if entry is not None and (entry[1] is None or time.monotonic() < entry[1]):
            return entry[0]
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and (entry[1] is None or time.monotonic() < entry[1]):
                return entry[0]
            try:
                price, expires = self._lookup(*key)
            except Exception:
                # Never into the app: an unexpected failure prices the model as unknown.
                stats.incr("cost_errors")
                logger.warning("could not look up the price of %r", model, exc_info=True)
                price, expires = None, None
            if price is None and len(self._unknown) < _MAX_UNKNOWN:
                self._unknown.add(f"{key[0]}/{key[1]}" if key[0] else key[1])
            if key not in self._cache and len(self._cache) >= _MAX_CACHED:
                # Oldest first: dicts keep insertion order.
                del self._cache[next(iter(self._cache))]
            self._cache[key] = (price, expires)
            return price

    def cost(
        self,
        provider: str | None,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float | None:
        """Cost of one call in USD.

        ``input_tokens`` includes ``cache_read_tokens`` and ``cache_write_tokens`` (OTel
        GenAI semantics); each cached token is priced once, at its cache rate. Counts that
        are negative, bools or not ints are treated as absent.

        Returns ``None`` when there are no token counts, no model, or no known price for
        the model (then the call is counted as ``cost_unknown_model`` and the model is
        remembered in ``unknown_models``). Never raises.
        """
        # Hot path (every LLM span): `type(x) is int` rejects bools and non-ints in one test.
        try:
            inp = input_tokens if type(input_tokens) is int and input_tokens >= 0 else None
            out = output_tokens if type(output_tokens) is int and output_tokens >= 0 else None
            read = cache_read_tokens if type(cache_read_tokens) is int and cache_read_tokens >= 0 else None
            write = cache_write_tokens if type(cache_write_tokens) is int and cache_write_tokens >= 0 else None
            if inp is None and out is None and read is None and write is None:
                return None
            if type(model) is not str or not model:
                return None
            entry = self._cache.get((provider, model)) if type(provider) in _KEY_TYPES else None
            price = entry[0] if entry is not None and entry[1] is None else self.unit_price(provider, model)
            if price is None:
                stats.incr("cost_unknown_model")
                return None
            inp = 0 if inp is None else inp
            read = 0 if read is None else read
            write = 0 if write is None else write
            usd = max(0, inp - read - write) * price.input
            if read:
                usd += read * (price.input if price.cache_read is None else price.cache_read)
            if write:
                usd += write * (price.input if price.cache_write is None else price.cache_write)
            if out:
                usd += out * price.output
            return usd / 1_000_000
        except Exception:
            stats.incr("cost_errors")
            logger.warning("could not compute the cost of a call to %r", model, exc_info=True)
            return None

    # -- lookup (under self._lock) ---------------------------------------------------------

    def _lookup(self, provider: str | None, model: str) -> tuple[ModelPrice | None, float | None]:
        name = model.strip()
        if not name:
            return None, None
        prov = provider.strip().lower() if provider else None
        if self._overrides:
            override = self._override(prov, name.lower())
            if override is not None:
                return override, None

        # Deferred: importing genai_prices costs ~150 ms, paid on the first lookup only.
        import genai_prices
        from genai_prices.data_snapshot import get_snapshot

        def provider_id(candidate: str | None) -> str | None:
            # None (match the model alone) when genai-prices does not know the provider.
            if not candidate:
                return None
            try:
                return get_snapshot().find_provider(None, PROVIDER_IDS.get(candidate, candidate), None).id
            except LookupError:
                return None

        try:
            return _probe(genai_prices, provider_id(prov), name)
        except LookupError:
            pass
        # "openai/gpt-4o" (OpenRouter, LiteLLM) or "models/gemini-2.5-pro": genai-prices
        # matches neither, so try the part after the slash, scoped to the prefix when the
        # prefix names a provider.
        prefix, slash, rest = name.partition("/")
        if slash and rest:
            scoped = provider_id(prefix.lower())
            try:
                return _probe(genai_prices, scoped if scoped else provider_id(prov), rest)
            except LookupError:
                pass
        logger.debug("no price known for model %r (provider %r)", model, provider)
        return None, None

    def _override(self, provider: str | None, model: str) -> ModelPrice | None:
        if provider:
            price = self._overrides.get(f"{provider}/{model}")
            if price is None and provider in PROVIDER_IDS:
                price = self._overrides.get(f"{PROVIDER_IDS[provider]}/{model}")
            if price is not None:
                return price
        return self._overrides.get(model)


def _probe(gp: ModuleType, provider_id: str | None, model: str) -> tuple[ModelPrice | None, float | None]:
    """Derive the model's unit prices from three calc_price calls; LookupError if unknown.

    The input and output probes read ``input_price`` / ``output_price``, which leave out
    per-request fees. genai-prices splits ``input_tokens`` into uncached, cache-read and
    cache-write parts itself, so an input probe whose tokens are all cache reads costs
    exactly the cache-read rate (the input rate when the model has none).
    """
    n = _PROBE_TOKENS
    io: PriceCalculation = gp.calc_price(gp.Usage(input_tokens=n, output_tokens=n), model, provider_id=provider_id)
    read: PriceCalculation = gp.calc_price(
        gp.Usage(input_tokens=n, cache_read_tokens=n), model, provider_id=provider_id
    )
    write: PriceCalculation = gp.calc_price(
        gp.Usage(input_tokens=n, cache_write_tokens=n), model, provider_id=provider_id
    )
    price = ModelPrice(
        input=_per_mtok(io.input_price),
        output=_per_mtok(io.output_price),
        cache_read=_per_mtok(read.input_price),
        cache_write=_per_mtok(write.input_price),
    )
    model_price = io.model_price
    if all(getattr(model_price, key) is None for key in _TOKEN_PRICE_KEYS) and any(
        value is not None for value in vars(model_price).values()
    ):
        # Priced per character, audio hour, page or request (tts-1, whisper-1): a token
        # cost of zero would be wrong, so no price rather than a free model.
        return None, None
    prices = io.model.prices
    conditional = isinstance(prices, list) and any(p.constraint is not None for p in prices)
    return price, (time.monotonic() + _REFRESH_CONDITIONAL_S) if conditional else None


def _cache_key(provider: object, model: object) -> tuple[str | None, str] | None:
    # Span attributes are untyped at runtime: anything but a str model has no price.
    if not isinstance(model, str):
        return None
    return (provider if isinstance(provider, str) else None, model)


def _per_mtok(usd_for_probe: Decimal) -> float:
    return float(usd_for_probe * 1_000_000 / _PROBE_TOKENS)


def _validate_overrides(
    overrides: Mapping[str, ModelPrice | Mapping[str, float]] | None,
) -> dict[str, ModelPrice]:
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            f"`prices` must map model names to prices, got {type(overrides).__name__}; "
            'e.g. prices={"my-finetune": {"input": 3.0, "output": 12.0}}'
        )
    result: dict[str, ModelPrice] = {}
    for key, value in overrides.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"`prices` keys must be model names (or 'provider/model'), got {key!r}")
        if isinstance(value, ModelPrice):
            fields: dict[str, object] = {name: getattr(value, name) for name in _PRICE_FIELDS}
        elif isinstance(value, Mapping):
            unknown = sorted(str(k) for k in value if k not in _PRICE_FIELDS)
            if unknown:
                raise ConfigError(
                    f"`prices` for model {key!r}: unknown key(s) {', '.join(unknown)}; "
                    f"use {', '.join(_PRICE_FIELDS)} (USD per million tokens)"
                )
            missing = [name for name in _REQUIRED_FIELDS if name not in value]
            if missing:
                raise ConfigError(
                    f"`prices` for model {key!r}: missing {', '.join(missing)} "
                    "(USD per million tokens; use 0 for a free direction)"
                )
            fields = {name: value.get(name) for name in _PRICE_FIELDS}
        else:
            raise ConfigError(
                f"`prices` for model {key!r} must be a ModelPrice or a mapping such as "
                f'{{"input": 3.0, "output": 12.0}}, got {type(value).__name__}'
            )
        result[key.strip().lower()] = ModelPrice(
            input=_usd_per_mtok(key, "input", fields["input"]),
            output=_usd_per_mtok(key, "output", fields["output"]),
            cache_read=None if fields["cache_read"] is None else _usd_per_mtok(key, "cache_read", fields["cache_read"]),
            cache_write=None
            if fields["cache_write"] is None
            else _usd_per_mtok(key, "cache_write", fields["cache_write"]),
        )
    return result


def _usd_per_mtok(model: str, name: str, number: object) -> float:
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number) or number < 0:
        raise ConfigError(
            f"`prices` for model {model!r}: {name} must be a finite, non-negative number "
            f"of USD per million tokens, got {number!r}"
        )
    return float(number)
