"""Fill a collector data directory with N spans of synthetic traffic, for the query benchmark.

    .venv/bin/python bench/load_spans.py --spans 10000000          # -> .bench-data/10000000

What it holds: 24 h of traffic ending now, project ``default`` (the collector's project
without API keys); 3 services, 10 models from 3 providers, 2 prompt versions, 2
environments; traces of one root span and three LLM calls; ~3% refusals, ~1% errors, half
the calls streamed (with a time to first token), ~20% sampled at p = 1/4 (weight 4), a few
hundred bytes of message content a call, and two assertion results per call (~4% fail).

How: the collector's own ``Store.connect`` on ``<data-dir>/clickhouse`` (the path
``llmpulse serve --data-dir`` opens) and its migrations, then one ``INSERT ... SELECT`` per
hour of traffic that ClickHouse generates from ``numbers()``: the rows go through the
real tables, so the materialized views fill the rollups exactly as the collector's inserts
do, without Python building 10M rows. Assertion rows are derived from the stored LLM spans.
A directory already loaded with the same ``--spans`` is reused (``loaded.json``; its
timestamps then end when it was loaded, which the query benchmark accounts for); an
unfinished or different load is wiped and redone; any other content is refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "collector"))

from llmpulse_collector.storage import Store
from llmpulse_collector.storage.migrations import migrate

__all__ = ["MARKER", "SPANS_PER_TRACE", "load", "store_dsn"]

S = 10**9
PROJECT = "default"
DATABASE = "llmpulse"
MARKER = "loaded.json"
SPANS_PER_TRACE = 4  # a root span and three LLM calls
HOURS = 24

SERVICES = ("support-bot", "search", "summarizer")
MODELS = (
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-1"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
)
PROMPT_VERSIONS = ("3f9a2c1e", "77b0d4aa")
WORDS = ("the", "order", "refund", "account", "shipping", "password", "invoice", "delivery", "policy")


def store_dsn(data_dir: Path) -> str:
    """The chDB DSN ``llmpulse serve --data-dir data_dir`` opens."""
    return "chdb://" + str((data_dir / "clickhouse").resolve())


def _lit(values: Any) -> str:
    return "[" + ", ".join("'" + str(v) + "'" for v in values) + "]"


def _hex16(*args: str) -> str:
    """SQL for 16 lowercase hex digits hashed from ``args``."""
    return f"leftPad(lower(hex(cityHash64({', '.join(args)}))), 16, '0')"


def _text(seed: str, words: str) -> str:
    """SQL for ``words`` (an expression) words of ``WORDS`` picked by hashing ``seed`` and the position."""
    pick = f"{_lit(WORDS)}[1 + cityHash64({seed}, i) % {len(WORDS)}]"
    return f"arrayStringConcat(arrayMap(i -> {pick}, range({words})), ' ')"


def _spans_sql(first: int, count: int, start_ns: int, step_ns: int) -> str:
    """The INSERT for spans ``first .. first+count-1``: span ``n`` is span ``n % 4`` of trace ``n // 4``,
    traces evenly spread from ``start_ns`` (``step_ns`` apart) with a few ms of jitter."""
    providers, models = _lit(p for p, _ in MODELS), _lit(m for _, m in MODELS)
    return f"""
INSERT INTO spans (project, start_time, end_time, duration_s, trace_id, span_id, parent_span_id, name,
    kind, status_code, status_message, service, environment, scope, is_llm, operation, provider,
    request_model, response_model, model, prompt_name, prompt_version, response_id,
    input_tokens, output_tokens, cost_usd, ttft_s, stream, finish_reasons, refusal, refusal_source,
    error_type, sample_weight, input, output, attributes, ingested_at)
SELECT
    '{PROJECT}',
    fromUnixTimestamp64Nano(toInt64(t0 + pos * 1000000 + (pos > 0) * toInt64(offset_s * 1e9))),
    fromUnixTimestamp64Nano(toInt64(t0 + pos * 1000000 + (pos > 0) * toInt64(offset_s * 1e9) + dur * 1e9)),
    dur,
    {_hex16("trace", "'trace'")} || {_hex16("trace", "'trace2'")},
    {_hex16("n", "'span'")},
    if(pos = 0, '', {_hex16(f"trace * {SPANS_PER_TRACE}", "'span'")}),
    if(pos = 0, 'handle_request', 'chat ' || model),
    if(pos = 0, 1, 3),
    if(err, 2, 1),
    if(err, 'upstream timeout', ''),
    {_lit(SERVICES)}[1 + cityHash64(trace, 'svc') % {len(SERVICES)}],
    if(cityHash64(trace, 'env') % 10 < 8, 'prod', 'staging'),
    'llmpulse',
    pos > 0,
    if(pos = 0, '', 'chat'),
    if(pos = 0, '', {providers}[1 + m]),
    if(pos = 0, '', model), if(pos = 0, '', model), if(pos = 0, '', model),
    if(pos = 0, '', 'support-reply'),
    if(pos = 0, '', {_lit(PROMPT_VERSIONS)}[1 + cityHash64(trace, 'pv') % 2]),
    if(pos = 0, '', 'chatcmpl-' || {_hex16("n", "'resp'")}),
    if(pos = 0, 0, 200 + h % 3800),
    if(pos = 0, 0, 20 + intDiv(h, 4096) % 780),
    if(pos = 0 OR m = 4, NULL, ((200 + h % 3800) * 0.15 + (20 + intDiv(h, 4096) % 780) * 0.6) / 1e6),
    if(pos > 0 AND stream, dur / 4, NULL),
    pos > 0 AND stream,
    if(pos = 0, [], if(refused, ['content_filter'], ['stop'])),
    refused,
    if(refused, 'heuristic', ''),
    if(err, 'TimeoutError', ''),
    if(cityHash64(trace, 'sample') % 5 = 0, 4.0, 1.0),
    if(pos = 0, '', '[{{"role":"user","content":"' || {_text("n", "40 + h % 40")} || '"}}]'),
    if(pos = 0, '', '[{{"role":"assistant","content":"' || {_text("n + 1", "20 + h % 30")} || '"}}]'),
    if(pos = 0, '{{}}', '{{"gen_ai.request.temperature":0.2}}'),
    toDateTime64(toInt64(t0 / 1e9) + 1, 3, 'UTC')
FROM (
    SELECT
        number AS n,
        intDiv(number, {SPANS_PER_TRACE}) AS trace,
        number % {SPANS_PER_TRACE} AS pos,
        cityHash64(number, 'h') AS h,
        {start_ns} + trace * {step_ns} + cityHash64(trace, 'jitter') % 5000000 AS t0,
        cityHash64(trace, 'model', pos) % {len(MODELS)} AS m,
        {models}[1 + m] AS model,
        exp(-0.5 + 0.6 * ((h % 1000) / 1000.0 - 0.5) * 3) AS dur,
        (pos - 1) * 1.2 AS offset_s,
        h % 2 = 0 AS stream,
        pos > 0 AND h % 100 < 3 AS refused,
        h % 1000 >= 990 AS err
    FROM numbers({first}, {count})
)
SETTINGS max_insert_block_size = 1048576, min_insert_block_size_rows = 1048576
"""


def _assertions_sql(lo_ns: int, hi_ns: int) -> str:
    """Two results per LLM span stored in ``[lo_ns, hi_ns)``: ``json_valid`` (fails ~2%) and ``no_pii`` (~2%)."""
    return f"""
INSERT INTO assertions (project, time, trace_id, span_id, service, environment, provider, model,
    prompt_name, prompt_version, name, label, score, explanation, sample_weight)
SELECT project, end_time, trace_id, span_id, service, environment, provider, model, prompt_name,
    prompt_version, check, if(failed, 'fail', 'pass'), if(failed, 0.0, 1.0),
    if(failed, check || ' failed on this reply', ''), sample_weight
FROM (
    SELECT *, arrayJoin(['json_valid', 'no_pii']) AS check, cityHash64(span_id, check) % 100 < 2 AS failed
    FROM spans
    WHERE project = '{PROJECT}' AND is_llm = 1
      AND start_time >= fromUnixTimestamp64Nano({lo_ns}) AND start_time < fromUnixTimestamp64Nano({hi_ns})
)
"""


def _wait_for_merges(store: Store, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = store.query("SELECT count() AS n FROM system.merges WHERE database = {db:String}", {"db": DATABASE})
        if not rows[0]["n"]:
            return
        time.sleep(1.0)


def load(data_dir: Path, spans: int) -> dict[str, Any]:
    """Fill ``data_dir`` with ``spans`` spans (or reuse it when already so loaded); what ``loaded.json`` says."""
    if spans < SPANS_PER_TRACE * HOURS:
        raise ValueError(f"--spans must be at least {SPANS_PER_TRACE * HOURS}, got {spans}")
    spans -= spans % SPANS_PER_TRACE
    marker = data_dir / MARKER
    if marker.exists():
        info: dict[str, Any] = json.loads(marker.read_text())
        if info.get("spans") == spans and info.get("complete"):
            print(f"{data_dir}: already holds {spans:,} spans; reusing it")
            return info
        print(f"{data_dir}: holds an unfinished or different load; redoing it")
        shutil.rmtree(data_dir)
    elif data_dir.exists() and any(data_dir.iterdir()):
        raise SystemExit(f"{data_dir} exists and was not made by this script; pick another --data-dir")
    data_dir.mkdir(parents=True, exist_ok=True)
    end_ns = time.time_ns() // S * S
    start_ns = end_ns - HOURS * 3600 * S
    traces = spans // SPANS_PER_TRACE
    step_ns = HOURS * 3600 * S // traces
    info = {"spans": spans, "traces": traces, "start_ns": start_ns, "end_ns": end_ns, "complete": False}
    marker.write_text(json.dumps(info))
    started = time.perf_counter()
    with Store.connect(store_dsn(data_dir), database=DATABASE) as store:
        migrate(store)
        per_hour = traces // HOURS
        for hour in range(HOURS):
            first_trace = hour * per_hour
            n_traces = per_hour if hour < HOURS - 1 else traces - first_trace
            store.command(_spans_sql(first_trace * SPANS_PER_TRACE, n_traces * SPANS_PER_TRACE, start_ns, step_ns))
            lo = start_ns + first_trace * step_ns
            hi = end_ns + 3600 * S if hour == HOURS - 1 else start_ns + (first_trace + n_traces) * step_ns
            store.command(_assertions_sql(lo, hi))
            done = (first_trace + n_traces) * SPANS_PER_TRACE
            elapsed = time.perf_counter() - started
            print(f"  hour {hour + 1:>2}/{HOURS}: {done:>11,} spans, {done / elapsed:>9,.0f} spans/s", flush=True)
        load_s = time.perf_counter() - started
        _wait_for_merges(store, 900)
        counts = {
            table: int(store.query(f"SELECT count() AS n FROM {table}")[0]["n"])
            for table in ("spans", "assertions", "llm_1m", "assertions_1m")
        }
        sample = store.query(  # traces spread over the day, for trace lookups
            "SELECT trace_id FROM spans WHERE parent_span_id = '' ORDER BY cityHash64(trace_id) LIMIT 200"
        )
    info.update(complete=True, load_s=round(load_s, 1), rows=counts, trace_ids=[r["trace_id"] for r in sample])
    marker.write_text(json.dumps(info))
    print(f"loaded in {load_s:.0f} s ({spans / load_s:,.0f} spans/s); rows {counts}")
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=10_000_000, help="spans to store (default 10,000,000)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: .bench-data/<spans>")
    args = parser.parse_args()
    load(args.data_dir or Path(".bench-data") / str(args.spans), args.spans)


if __name__ == "__main__":
    main()
