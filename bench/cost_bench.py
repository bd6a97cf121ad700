"""PriceBook.cost() once cached vs one genai_prices.calc_price call, side by side.

    .venv/bin/python bench/cost_bench.py [--number 20000] [--repeat 5]

Both price the same call (gpt-4o snapshot, 1,200 input tokens of which 1,024 cached, 300
output). calc_price already memoises its model lookup, so its figure is its steady state,
not a cold one. Also shown: the one-off costs a PriceBook pays per model (three probe
calc_price calls) and once per process (importing genai_prices).
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk"))

PROVIDER, MODEL = "openai", "gpt-4o-2024-08-06"
INPUT, CACHE_READ, OUTPUT = 1_200, 1_024, 300


def best_us(timer: timeit.Timer, number: int, repeat: int) -> float:
    """Best of `repeat` runs, in microseconds per call (the least disturbed run)."""
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="calls per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the best is shown")
    args = parser.parse_args()

    from llmpulse._cost import PriceBook

    t0 = time.perf_counter()
    import genai_prices

    import_ms = (time.perf_counter() - t0) * 1e3

    book = PriceBook()
    t0 = time.perf_counter()
    cached_usd = book.cost(PROVIDER, MODEL, INPUT, OUTPUT, CACHE_READ)
    first_lookup_ms = (time.perf_counter() - t0) * 1e3

    usage = genai_prices.Usage(input_tokens=INPUT, output_tokens=OUTPUT, cache_read_tokens=CACHE_READ)
    calc = genai_prices.calc_price
    direct_usd = calc(usage, MODEL, provider_id=PROVIDER).total_price
    if cached_usd is None or abs(Decimal(repr(cached_usd)) - direct_usd) > Decimal("1e-12"):
        raise SystemExit(f"prices disagree: PriceBook {cached_usd!r} vs calc_price {direct_usd}")

    cost = book.cost
    cached_us = best_us(
        timeit.Timer(
            "cost(p, m, i, o, r)",
            globals={
                "cost": cost,
                "p": PROVIDER,
                "m": MODEL,
                "i": INPUT,
                "o": OUTPUT,
                "r": CACHE_READ,
            },
        ),
        args.number,
        args.repeat,
    )
    calc_number = max(1, args.number // 20)  # ~100x slower: keep the run short
    calc_us = best_us(
        timeit.Timer(
            "calc(u, m, provider_id=p)",
            globals={"calc": calc, "u": usage, "m": MODEL, "p": PROVIDER},
        ),
        calc_number,
        args.repeat,
    )
    miss_number = max(1, args.number // 200)
    miss_us = best_us(
        timeit.Timer(
            "PriceBook().unit_price(p, m)",
            globals={"PriceBook": PriceBook, "p": PROVIDER, "m": MODEL},
        ),
        miss_number,
        args.repeat,
    )

    print(f"genai-prices {genai_prices.__version__}, Python {sys.version.split()[0]}")
    print(f"call priced: {PROVIDER}/{MODEL}, {INPUT} in ({CACHE_READ} cached), {OUTPUT} out = ${cached_usd:.6f}")
    print()
    print(f"{'':44}{'µs/call':>10}")
    print(f"{'PriceBook.cost(), cached':44}{cached_us:>10.2f}")
    print(f"{'genai_prices.calc_price(), uncached':44}{calc_us:>10.2f}")
    print(f"{'ratio calc_price / cached cost()':44}{calc_us / cached_us:>9.0f}x")
    print()
    print("one-off costs")
    print(f"{'  first lookup of a model (3 probes)':44}{miss_us:>10.0f} µs")
    print(f"{'  import genai_prices':44}{import_ms:>10.0f} ms")
    print(f"{'  first cost() in the process (incl. data)':44}{first_lookup_ms:>10.0f} ms")


if __name__ == "__main__":
    main()
