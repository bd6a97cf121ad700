"""Native log entries (``native.py``, ``_otlpscan.native_block``) against clickhouse-connect.

The contract: for rows it takes, ``native_block`` writes exactly the bytes clickhouse-connect's
own Native writer sends for them (the insert path the writer used before, defaults filled by
``_fill_defaults``, LowCardinality sent as its plain type); for rows clickhouse-connect would
take differently or refuse it returns None and the entry stays JSON. Then the whole path: a
batch of such entries lands in the real embedded store as the JSON path stores it, once per
token, and a batch ClickHouse refuses still reaches the dead-letter file as rows.
"""

from __future__ import annotations

import base64
import math
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.transform import NativeTransform
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from known_batch import calls, encode
from server_harness import wait_for

from llmpulse._cost import PriceBook
from llmpulse._refusal import RefusalDetector
from llmpulse_collector import native
from llmpulse_collector.ingest import Limits, otlp
from llmpulse_collector.normalize import ModelNames
from llmpulse_collector.rows import ASSERTION_SCHEMA, FEEDBACK_SCHEMA, SPAN_SCHEMA
from llmpulse_collector.storage import StorageError
from llmpulse_collector.storage.clickhouse import TABLE_SCHEMAS, _fill_defaults, wire_type
from llmpulse_collector.wal import WriteAheadLog
from llmpulse_collector.writer import Columns, Native, Writer, decode_entry, encode_entry
from memory import traced_growth

SCHEMAS = {"spans": SPAN_SCHEMA, "assertions": ASSERTION_SCHEMA, "feedback": FEEDBACK_SCHEMA}
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)


def driver_bytes(key: str, rows: list[dict[str, Any]]) -> bytes:
    """What the writer's columns path sent: clickhouse-connect's Native writer, one block."""
    schema = SCHEMAS[key]
    names = [name for name, _, _ in schema]
    types = [get_from_name(wire_type(t)) for _, t, _ in schema]
    values = _fill_defaults(key, names, [[row[n] for row in rows] for n in names])
    context = InsertContext(key, names, types, values, column_oriented=True, block_size=len(rows) + 1)
    body = b"".join(NativeTransform.build_insert(context))
    return body[body.index(b"FORMAT Native\n") + len(b"FORMAT Native\n") :]


def realistic_rows() -> dict[str, list[dict[str, Any]]]:
    """The normaliser's rows for a known batch (3 models, errors, refusals, assertions, streams)."""
    result = otlp.decode_traces(
        encode(calls(60)),
        content_type="application/x-protobuf",
        content_encoding=None,
        project="default",
        limits=Limits(),
        prices=PriceBook(),
        refusals=RefusalDetector(),
        models=ModelNames(),
    )
    return {"spans": result.spans, "assertions": result.assertions}


def template(key: str) -> dict[str, Any]:
    return {name: default for name, _, default in SCHEMAS[key]}


# Values of each wire type, edges included; None where the driver fills the default.
_text = st.one_of(st.sampled_from(["", "é", "日本語", "🙂" * 3, "a\x00b", "x" * 300]), st.text(max_size=40))
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "String": st.one_of(_text, st.none()),
    "UInt8": st.one_of(st.integers(0, 255), st.none()),
    "UInt64": st.one_of(st.sampled_from([0, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1), st.none()),
    "Float64": st.one_of(st.floats(allow_nan=False), st.integers(-(2**53), 2**53), st.none()),
    "Nullable(Float64)": st.one_of(st.none(), st.floats(allow_nan=False), st.integers(-(2**53), 2**53)),
    "DateTime64": st.one_of(st.sampled_from([0, -(2**63), 2**63 - 1]), st.integers(0, 2**62), st.none()),
    "Array(String)": st.one_of(st.lists(_text, max_size=4), st.tuples(_text), st.none()),
}


def _strategy(column_type: str) -> st.SearchStrategy[Any]:
    wire = wire_type(column_type)
    return _VALUES["DateTime64" if wire.startswith("DateTime64") else wire]


def _rows(key: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.fixed_dictionaries({name: _strategy(t) for name, t, _ in SCHEMAS[key]})
    return st.lists(row, min_size=1, max_size=5)


@SETTINGS
@given(key=st.sampled_from(sorted(SCHEMAS)), data=st.data())
def test_generated_rows_encode_as_clickhouse_connect_does(key: str, data: st.DataObject) -> None:
    rows = data.draw(_rows(key))
    block = native._c_native(rows, native.SPECS[key])
    assert block is not None
    assert block == driver_bytes(key, rows)


def test_the_normalisers_rows_encode_as_clickhouse_connect_does() -> None:
    tables = realistic_rows()
    assert len(tables["spans"]) == 60
    assert tables["assertions"]
    for key, rows in tables.items():
        block = native._c_native(rows, native.SPECS[key])
        assert block is not None, key  # the normaliser's rows are never left to the driver
        assert block == driver_bytes(key, rows)


def test_blocks_read_back_to_the_values_the_driver_would_send() -> None:
    tables = realistic_rows()
    payload = encode_entry(tables)
    assert payload[:1] == native.MAGIC
    parts = decode_entry(payload)
    for key, rows in tables.items():
        part = parts[key]
        assert isinstance(part, Native)
        assert part.count == len(rows)
        names = tuple(name for name, _, _ in SCHEMAS[key])
        expected = _fill_defaults(key, names, [[row[n] for row in rows] for n in names])
        got = part.columns()
        assert got.names == names
        assert [[list(v) if isinstance(v, tuple) else v for v in column] for column in expected] == got.values


def test_nan_and_infinities_are_kept_bit_for_bit() -> None:
    rows = [dict(template("spans"), duration_s=v, cost_usd=v) for v in (math.nan, math.inf, -math.inf, -0.0)]
    block = native._c_native(rows, native.SPECS["spans"])
    assert block is not None
    assert block == driver_bytes("spans", rows)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("kind", True),  # bool: the driver's array takes it as 1, but it is not an int row value
        ("kind", 256),
        ("kind", -1),
        ("input_tokens", -1),
        ("input_tokens", 2**64),
        ("input_tokens", 1.0),
        ("start_time", 2**63),
        ("start_time", 1.5),  # _fill_defaults would int() it
        ("duration_s", "1"),
        ("duration_s", 10**400),  # does not fit a double
        ("cost_usd", True),
        ("name", b"bytes"),
        ("name", "\ud800"),  # a lone surrogate has no UTF-8
        ("name", 5),
        ("finish_reasons", ["stop", 1]),
        ("finish_reasons", "stop"),
        ("finish_reasons", {"stop"}),
    ],
)
def test_values_the_driver_would_take_differently_are_left_to_it(column: str, value: Any) -> None:
    row = dict(template("spans"), **{column: value})
    assert native._c_native([template("spans"), row], native.SPECS["spans"]) is None
    try:
        orjson.dumps(value)
    except TypeError:  # nor can the JSON entry hold it: the request fails as it did before Native entries
        with pytest.raises(TypeError):
            encode_entry({"spans": [row]})
    else:  # the entry stays JSON and the driver's path decides
        assert encode_entry({"spans": [row]})[:1] == b"{"


def test_rows_with_other_keys_or_shapes_are_left_to_json() -> None:
    full = template("spans")
    missing = dict(full)
    del missing["name"]
    extra = dict(full, unknown=1)
    swapped = dict(missing, unknown="")  # same size, one key not the schema's

    class Row(dict[str, Any]):
        pass

    for rows in ([missing], [extra], [swapped], [Row(full)], [full, [1, 2]]):
        assert native._c_native(rows, native.SPECS["spans"]) is None
    assert encode_entry({"spans": [missing]})[:1] == b"{"
    assert encode_entry({"spans": (full,)})[:1] == b"{"  # not a list
    assert encode_entry({"spans": [full], "other": [{"a": 1}]})[:1] == b"{"  # a table rows.py does not describe


def test_bad_column_descriptions_are_type_errors() -> None:
    with pytest.raises(TypeError, match="each column is"):
        native._c_native([{}], (("a", "not bytes", 0, ""),))
    with pytest.raises(ValueError, match="unknown wire type code 9"):
        native._c_native([{"a": 1}], (("a", b"", 9, 0),))
    with pytest.raises(ValueError, match="no Native encoding for Map"):
        native.spec((("m", "Map(String, String)", {}),))


def test_cut_or_foreign_payloads_are_value_errors() -> None:
    payload = encode_entry(realistic_rows())
    with pytest.raises(ValueError, match="cut short"):
        native.decode(payload[:-10])
    with pytest.raises(ValueError, match="not a Native log payload"):
        native.decode(b'{"spans": []}')
    part = decode_entry(payload)["spans"]
    assert isinstance(part, Native)
    with pytest.raises(ValueError, match="cut short"):
        native.read_blocks(part.data[:-3])
    with pytest.raises(ValueError, match="not one the collector writes"):
        native.read_blocks(b"\x01\x01\x01a\x04Int8\x00")


def test_encoding_leaks_nothing() -> None:
    tables = realistic_rows()
    bad = [dict(template("spans"), input_tokens=-1)]

    def run() -> None:
        for key, rows in tables.items():
            native._c_native(rows, native.SPECS[key])
        native._c_native(bad, native.SPECS["spans"])
        native._c_native([dict(template("spans"), name="\ud800")], native.SPECS["spans"])

    run()
    grown = traced_growth(run, 200)
    assert grown < 16_384, grown  # one leaked 64 KB buffer or block per call would be ~13 MB


# -- the writer ----------------------------------------------------------------------------


def _drain(tmp_path: Path, payloads: list[bytes], insert: Any, **kwargs: Any) -> None:
    wal = WriteAheadLog(tmp_path / "wal.sqlite3", fsync=False)
    for payload in payloads:
        wal.append("traces", payload)
    writer = Writer(wal, insert, idle_wait=0.01, linger=0, **kwargs)
    writer.start()
    wait_for(lambda: wal.pending_entries == 0, timeout=30)
    writer.stop()
    wal.close()


def _spans(first: int, n: int) -> list[dict[str, Any]]:
    now = time.time_ns()  # within retention: rows from 1970 would be dropped by the TTL at insert
    return [
        dict(template("spans"), span_id=f"{i:016x}", name=f"span {i}", input="é" * i, start_time=now, end_time=now)
        for i in range(first, first + n)
    ]


def test_a_batch_of_native_entries_is_one_insert_of_their_blocks(tmp_path: Path) -> None:
    inserts: list[tuple[str, Columns | Native, str]] = []
    payloads = [encode_entry({"spans": _spans(10 * e, 10)}) for e in range(3)]
    _drain(tmp_path, payloads, lambda t, d, k: inserts.append((t, d, k)))
    ((table, data, token),) = inserts
    assert table == "spans"
    assert token.endswith(":spans")
    assert isinstance(data, Native)
    assert data.count == 30
    assert data.data == b"".join(decode_entry(p)["spans"].data for p in payloads)  # type: ignore[union-attr]
    assert [r["span_id"] for r in data.rows()] == [f"{i:016x}" for i in range(30)]


def test_a_batch_mixing_formats_goes_through_the_columns_path(tmp_path: Path) -> None:
    inserts: list[tuple[str, Columns | Native, str]] = []
    partial = {"span_id": f"{99:016x}", "name": "old"}  # an older entry's row: only some keys
    payloads = [encode_entry({"spans": _spans(0, 2)}), orjson.dumps({"spans": [partial]})]
    _drain(tmp_path, payloads, lambda t, d, k: inserts.append((t, d, k)))
    ((_, data, _),) = inserts
    assert isinstance(data, Columns)
    assert data.count == 3
    rows = data.rows()
    assert [r["span_id"] for r in rows] == [f"{i:016x}" for i in (0, 1, 99)]
    assert rows[0]["input"] == ""
    assert rows[1]["input"] == "é"
    assert rows[2]["input"] == ""
    assert rows[2]["sample_weight"] == 1.0


def test_native_rows_clickhouse_refuses_reach_the_dead_letter_file(tmp_path: Path) -> None:
    """Isolation splits a native batch per entry and writes the refused entry's rows as JSON."""
    landed: dict[str, list[dict[str, Any]]] = {}

    def insert(table: str, data: Columns | Native, token: str) -> None:
        rows = data.rows()
        if any(r["name"] == "span 11" for r in rows):
            raise StorageError("Cannot parse input: refused for the test")
        landed.setdefault(token, rows)  # what insert_deduplication_token does

    payloads = [encode_entry({"spans": _spans(10 * e, 2)}) for e in range(3)]
    dead = tmp_path / "dead-letter.jsonl"
    _drain(tmp_path, payloads, insert, dead_letter=dead, isolate_after=2)
    stored = sorted(r["span_id"] for rows in landed.values() for r in rows)
    assert stored == [f"{i:016x}" for i in (0, 1, 20, 21)]
    (record,) = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [r["span_id"] for r in record["rows"]] == [f"{10:016x}", f"{11:016x}"]
    assert record["rows"][1]["input"] == "é" * 11
    assert set(record["rows"][0]) == {n for n, _, _ in SPAN_SCHEMA}


# -- the real embedded store ---------------------------------------------------------------


def test_native_inserts_store_what_the_columns_path_stores(store: Any) -> None:
    """The same rows through insert_native and insert_columns read back equal from chDB."""
    tables = realistic_rows()
    parts = decode_entry(encode_entry(tables))
    for key, rows in tables.items():
        part = parts[key]
        assert isinstance(part, Native)
        store.insert_native(key, part.names, part.data, rows=part.count, dedup_token=f"native:{key}")
        names = [n for n, _, _ in SCHEMAS[key]]
        store.insert_columns(key, names, [[r[n] for r in rows] for n in names], dedup_token=f"columns:{key}")
    spans = store.query("SELECT * EXCEPT ingested_at FROM spans ORDER BY span_id, _part")
    assert len(spans) == 120
    assert spans[0::2] == spans[1::2]
    assertions = store.query("SELECT count() AS n FROM assertions")[0]["n"]
    assert assertions == 2 * len(tables["assertions"])


def test_a_repeated_native_insert_is_stored_once(store: Any) -> None:
    part = decode_entry(encode_entry({"spans": _spans(0, 5)}))["spans"]
    assert isinstance(part, Native)
    for _ in range(2):
        store.insert_native("spans", part.names, part.data, rows=part.count, dedup_token="batch-1:spans")
    assert store.query("SELECT count() AS n FROM spans")[0]["n"] == 5
    rows = store.query("SELECT input FROM spans ORDER BY span_id")
    assert [r["input"] for r in rows] == ["é" * i for i in range(5)]


def test_a_block_clickhouse_cannot_read_is_a_storage_error(store: Any) -> None:
    part = decode_entry(encode_entry({"spans": _spans(0, 2)}))["spans"]
    assert isinstance(part, Native)
    with pytest.raises(StorageError) as caught:
        store.insert_native("spans", part.names, part.data[:-5], rows=2, dedup_token="cut:spans")
    assert type(caught.value) is StorageError  # not transient: the writer isolates the batch
    with pytest.raises(ValueError, match="column must be a plain identifier"):
        store.insert_native("spans", ["na me"], part.data, rows=2, dedup_token="t")
    assert store.query("SELECT count() AS n FROM spans")[0]["n"] == 0
    assert set(TABLE_SCHEMAS) >= set(SCHEMAS)


def test_a_batch_of_blocks_is_one_part(store: Any) -> None:
    """ClickHouse squashes the concatenated blocks of a batch into one part, as it does the
    driver's one block: a part per request would multiply merges."""
    blocks = [decode_entry(encode_entry({"spans": _spans(10 * e, 10)}))["spans"] for e in range(5)]
    data = b"".join(b.data for b in blocks)  # type: ignore[union-attr]
    store.insert_native("spans", blocks[0].names, data, rows=50, dedup_token="batch-2:spans")
    parts = store.query(
        "SELECT count() AS n, sum(rows) AS r FROM system.parts"
        " WHERE database = currentDatabase() AND table = 'spans' AND active"
    )
    assert parts == [{"n": 1, "r": 50}]


def test_a_column_the_table_lacks_is_a_storage_error(store: Any) -> None:
    """A collector newer than its database (the runbook's schema mismatch): the insert is refused
    as bad data, not retried forever as an outage, so the writer isolates and dead-letters it."""
    store.command("ALTER TABLE feedback DROP COLUMN comment")
    row = dict(template("feedback"), time=int(time.time() * 1000), name="thumbs")
    part = decode_entry(encode_entry({"feedback": [row]}))["feedback"]
    assert isinstance(part, Native)
    with pytest.raises(StorageError, match="comment") as caught:
        store.insert_native("feedback", part.names, part.data, rows=1, dedup_token="newer:feedback")
    assert type(caught.value) is StorageError


def test_a_refused_block_python_cannot_read_is_dead_lettered_as_bytes(tmp_path: Path) -> None:
    """Should a block be both refused and unreadable (a bug, not a user's input), its bytes are
    set aside as they were, with the decode error, and the log moves on."""
    good = encode_entry({"spans": _spans(0, 1)})
    head = orjson.dumps({"spans": {"columns": [n for n, _, _ in SPAN_SCHEMA], "rows": 2, "bytes": 3}})
    bad = native.MAGIC + len(head).to_bytes(4, "little") + head + b"\xff\xff\xff"

    def insert(table: str, data: Columns | Native, token: str) -> None:
        if isinstance(data, Native) and data.data.endswith(b"\xff\xff\xff"):
            raise StorageError("Cannot read all data: refused for the test")

    dead = tmp_path / "dead-letter.jsonl"
    _drain(tmp_path, [good, bad], insert, dead_letter=dead, isolate_after=1)
    (record,) = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert record["rows"] == []
    assert base64.b64decode(record["native_base64"]) == b"\xff\xff\xff"
    assert record["native_columns"][0] == "project"
    assert "cut short" in record["decode_error"]
