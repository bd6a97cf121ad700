"""Rows as ClickHouse Native blocks: encoded once, on the request path, and kept so in the log.

With JSON entries a span's values were written to the log as JSON, read back into Python
lists by the writer, filled with defaults and serialised again by clickhouse-connect (about
11 µs of the collector's ~100 µs of CPU per span). Where the C extension is built, a
request's rows are encoded into the bytes clickhouse-connect would send for them
(``_otlpscan.native_block``) before they are appended to the log, and the writer sends a
batch's blocks, concatenated, in one insert (``Store.insert_native``). Rows the encoder
leaves alone (a value of an unexpected type, a row with other keys) keep the JSON entry and
the driver's path, so what reaches ClickHouse, and how a bad value fails, is unchanged.

Payload (a JSON payload starts with ``{``)::

    0x01  u32 little-endian header length  header  block  block ...
    header = {"<table key>": {"columns": [names], "rows": n, "bytes": block length}, ...}
             (JSON; the blocks follow in the header's order)

Python reads blocks back (``read_blocks``) only for the dead-letter file and tests.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from llmpulse._otlp import _varint as leb128  # protobuf's varint is LEB128

from .normalize import compiled
from .rows import ASSERTION_SCHEMA, FEEDBACK_SCHEMA, SPAN_SCHEMA
from .storage.clickhouse import wire_type

__all__ = ["MAGIC", "decode", "encode", "read_blocks", "spec"]

MAGIC = b"\x01"
_HEADER_LENGTH = struct.Struct("<I")

# _otlpscan.c's wire type codes (W_*).
_CODES = {
    "String": 0,
    "UInt8": 1,
    "UInt64": 2,
    "Float64": 3,
    "Nullable(Float64)": 4,
    "Array(String)": 6,
}
_DATETIME64 = 5  # DateTime64(p, tz): integer ticks as Int64


def spec(schema: Sequence[tuple[str, str, Any]]) -> tuple[tuple[str, bytes, int, Any], ...]:
    """``native_block``'s column description of a ``rows.py`` schema: (key, header, code, default)."""
    out = []
    for name, column_type, default in schema:
        wire = wire_type(column_type)
        code = _DATETIME64 if wire.startswith("DateTime64(") else _CODES.get(wire)
        if code is None:
            raise ValueError(f"column {name}: no Native encoding for {column_type}")
        name_bytes, wire_bytes = name.encode(), wire.encode()
        header = b"".join((leb128(len(name_bytes)), name_bytes, leb128(len(wire_bytes)), wire_bytes))
        out.append((name, header, code, default))
    return tuple(out)


SPECS = {"spans": spec(SPAN_SCHEMA), "assertions": spec(ASSERTION_SCHEMA), "feedback": spec(FEEDBACK_SCHEMA)}
_NAMES = {key: [name for name, _, _, _ in columns] for key, columns in SPECS.items()}
_c_native: Callable[[list[Any], tuple[Any, ...]], bytes | None] | None = (
    None if compiled is None else compiled.native_block
)


def encode(tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes | None:
    """A log payload holding each table's rows as a Native block; None where JSON must do.

    None without the C extension, for a table ``rows.py`` does not describe, and for rows
    the encoder leaves to the driver (see ``_otlpscan.native_block``).
    """
    if _c_native is None:
        return None
    header: dict[str, Any] = {}
    blocks: list[bytes] = []
    for key, rows in tables.items():
        if not rows:
            continue
        columns = SPECS.get(key)
        if columns is None or type(rows) is not list:
            return None
        block = _c_native(rows, columns)
        if block is None:
            return None
        header[key] = {"columns": _NAMES[key], "rows": len(rows), "bytes": len(block)}
        blocks.append(block)
    head = orjson.dumps(header)
    return b"".join((MAGIC, _HEADER_LENGTH.pack(len(head)), head, *blocks))


def decode(payload: bytes) -> dict[str, tuple[tuple[str, ...], int, bytes]]:
    """A payload ``encode`` wrote, as (column names, row count, block) per table key."""
    if payload[:1] != MAGIC or len(payload) < 5:
        raise ValueError("not a Native log payload")
    (size,) = _HEADER_LENGTH.unpack_from(payload, 1)
    at = 5 + size
    view = memoryview(payload)
    out = {}
    for key, part in orjson.loads(view[5:at]).items():
        end = at + part["bytes"]
        if end > len(payload):
            raise ValueError(f"Native log payload cut short in table {key}")
        out[key] = (tuple(part["columns"]), part["rows"], bytes(view[at:end]))
        at = end
    return out


def read_blocks(data: bytes) -> tuple[tuple[str, ...], list[list[Any]], int]:
    """Concatenated Native blocks (as ``native_block`` writes them) back to column values.

    Values come back as the rows held them: ints for integers and DateTime64 ticks, floats,
    None in a Nullable column, str, lists of str. All blocks must have the same columns.
    """
    reader = _Reader(data)
    names: tuple[str, ...] | None = None
    values: list[list[Any]] = []
    count = 0
    while reader.at < len(data):
        ncols, nrows = reader.leb128(), reader.leb128()
        block_names = []
        for c in range(ncols):
            name, column_type = reader.text(), reader.text()
            block_names.append(name)
            if names is None:
                values.append([])
            values[c].extend(reader.column(column_type, nrows))
        if names is None:
            names = tuple(block_names)
        elif tuple(block_names) != names:
            raise ValueError(f"Native blocks with different columns: {names} and {tuple(block_names)}")
        count += nrows
    return names or (), values, count


class _Reader:
    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def leb128(self) -> int:
        shift = n = 0
        while True:
            if self.at >= len(self.data):
                raise ValueError("Native block cut short")
            byte = self.data[self.at]
            self.at += 1
            n |= (byte & 0x7F) << shift
            if byte < 0x80:
                return n
            shift += 7

    def raw(self, size: int) -> bytes:
        end = self.at + size
        if end > len(self.data):
            raise ValueError("Native block cut short")
        out = self.data[self.at : end]
        self.at = end
        return out

    def text(self) -> str:
        return self.raw(self.leb128()).decode()

    def fixed(self, code: str, n: int) -> list[Any]:
        size = struct.calcsize(code)
        return list(struct.unpack(f"<{n}{code}", self.raw(size * n)))

    def column(self, column_type: str, n: int) -> list[Any]:
        if column_type == "String":
            return [self.text() for _ in range(n)]
        if column_type == "UInt8":
            return list(self.raw(n))
        if column_type == "UInt64":
            return self.fixed("Q", n)
        if column_type == "Float64":
            return self.fixed("d", n)
        if column_type == "Nullable(Float64)":
            nulls = self.raw(n)
            return [None if null else v for null, v in zip(nulls, self.fixed("d", n), strict=True)]
        if column_type.startswith("DateTime64("):
            return self.fixed("q", n)
        if column_type == "Array(String)":
            ends = self.fixed("Q", n)
            starts = [0, *ends[:-1]]
            return [[self.text() for _ in range(end - start)] for start, end in zip(starts, ends, strict=True)]
        raise ValueError(f"Native column type {column_type} is not one the collector writes")
