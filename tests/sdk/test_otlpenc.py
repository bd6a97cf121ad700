"""The compiled OTLP encoder (``llmpulse._otlpenc``) against its pure-Python reference.

The contract: for any batch, ``_otlpenc.encode`` returns exactly the bytes
``ProtobufEncoder._encode_python`` returns, or None to leave the batch to it (which then
encodes it, or raises). These tests generate streams of batches (every field, every value
type, lookalike values, odd objects, the depth limit, shared event attributes), feed the same
stream to both paths on the same long-lived encoder (its Python caches warm) and on fresh ones,
and compare bytes; test_otlp.py checks the bytes themselves against opentelemetry-proto, on
both paths.
"""

from __future__ import annotations

import collections
import math
import struct
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_otlp import LOOKALIKES, RESOURCE, SCOPE, T0, Color, Level, Tone, Unprintable, make_span, text

from llmpulse import _otlp, _otlpenc
from llmpulse._otlp import ProtobufEncoder
from llmpulse._span import SharedAttributes, SpanEvent, SpanRecord

# _otlpenc is imported, not skipped when missing: `make test` builds it, and a build that
# silently failed must fail the suite rather than hide these tests (as in test_otlpscan.py).
from memory import traced_growth

# derandomized: the same examples every run, so the suite's time does not depend on the seed
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)

# --- values --------------------------------------------------------------------------------

U64 = 2**64 - 1
INT_EDGES = [0, 1, -1, 127, 128, 16383, 16384, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, U64, 2**64, -(2**64)]
NAN_PAYLOAD = struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]
FLOAT_EDGES = [0.0, -0.0, math.nan, -math.nan, NAN_PAYLOAD, math.inf, -math.inf, 5e-324, 1.5]

# Mostly-ASCII text with a few characters at each UTF-8 length boundary and lone surrogates,
# at every offset (the C path looks at 8, 4 or 2 characters at once, by storage width).
PIECES = ["a", "abc ", "\x7f", "\x80", "é", "ÿ", "\u07ff", "\u0800", "’", "\ud7ff", "\ud800", "\udbff", "\udc00"]
PIECES += ["\udfff", "\ue000", "\uffff", "\U00010000", "😀", "\U0010ffff"]
texts = text | st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
ints = st.integers(-(2**70), 2**70) | st.sampled_from(INT_EDGES)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(FLOAT_EDGES)
blobs = st.binary(max_size=300)
# What the C path encodes itself: exact str, bool, int, float, bytes, bytearray, list, tuple.
plain_scalars = texts | st.booleans() | ints | floats | blobs | blobs.map(bytearray)


def nested(inner: st.SearchStrategy[Any], levels: int) -> st.SearchStrategy[Any]:
    """A value inside exactly ``levels`` lists or tuples (level 1: the value's own array),
    each level a list or a tuple, with or without a scalar beside the inner one."""
    out = inner
    for _ in range(levels):
        out = st.builds(
            lambda x, beside, as_tuple: (tuple if as_tuple else list)([x, *beside]),
            out,
            st.lists(inner, max_size=1),
            st.booleans(),
        )
    return out


def depth(v: Any) -> int:
    """How many lists or tuples deep ``v`` goes (the reference sends str() past 8)."""
    if type(v) in (list, tuple):
        return 1 + max((depth(x) for x in v), default=0)
    return 0


plain_values = (
    st.recursive(
        plain_scalars,
        lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple),
        max_leaves=10,
    ).filter(lambda v: depth(v) <= 8)
    | st.one_of([nested(plain_scalars, n) for n in range(1, 9)])
    | st.sampled_from(LOOKALIKES)
)


class Printable:
    def __str__(self) -> str:
        return "printable ✓ \ud800"


class MyStr(str):
    pass


class LoudStr(str):
    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"LOUD"


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyList(list[Any]):
    pass


class MyBytes(bytes):
    pass


class MyDict(dict[str, Any]):
    pass


class MyShared(SharedAttributes):
    pass


def _self_containing() -> list[Any]:
    v: list[Any] = ["loop"]
    v.append(v)
    return v


# What the C path leaves to Python: each must give the same bytes (or exception) either way.
ODD: list[Any] = [
    None,
    {"a": 1},
    {1, 2},
    Color.RED,
    Tone.CASUAL,
    Level.HIGH,
    Printable(),
    Unprintable(),
    MyStr("x"),
    MyStr("1"),
    LoudStr("quiet"),
    MyInt(5),
    MyInt(2**70),
    MyFloat(1.5),
    MyList([1, "a"]),
    MyBytes(b"ab"),
    memoryview(b"mv"),
    memoryview(b"abcdef")[::2],  # not contiguous
    ["ok", None],
    ("x", Printable()),
    [[Level.HIGH]],
    _self_containing(),
    range(3),
    1j,
]
odd_values = (
    plain_values
    | st.sampled_from(ODD)
    | st.one_of([nested(plain_scalars, n) for n in range(9, 12)])  # past the depth limit
    | st.lists(st.sampled_from(ODD) | plain_scalars, max_size=3)
)

keys = texts | st.sampled_from(["k", "gen_ai.request.model", "", "\ud800", "x" * 300])


def attr_dicts(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(keys, values, max_size=6)


u64 = st.integers(0, U64) | st.sampled_from([0, 1, U64, T0])
times = st.just(0) | u64
trace_ids = st.integers(0, 2**128 - 1) | st.sampled_from([0, 2**128 - 1, 2**64, U64])
names = texts | st.sampled_from(["chat gpt-4o", "gen_ai.evaluation.result", ""])
messages = st.just("") | texts
plain_kinds = st.sampled_from([0, 1, 2, 3, 4, 5, 127, 128, 16384, 2**63 - 1, U64, -1, -(2**63), -(2**64), -(2**70)])
plain_codes = st.sampled_from([0, 1, 2, 127, 128, 2**32, -1, -(2**64), U64])
# What the C path leaves to Python in a span, beside odd values: kinds and codes it does not
# write (bools, longer varints, floats), mappings that are not plain dicts, keys that are not str.
odd_kinds = plain_kinds | st.sampled_from([True, 2**64, 2**80, 1.0])
odd_codes = plain_codes | st.sampled_from([True, 2**64, -(2**65)])
ODD_MAPPINGS: list[Callable[[dict[str, Any]], Any]] = [
    collections.OrderedDict,
    types.MappingProxyType,
    MyDict,
    MyShared,
    lambda a: {**a, 7: "int key"},
    lambda a: {**a, MyStr("k"): "str subclass key"},
]


@st.composite
def streams(draw: st.DrawFn, dicts: st.SearchStrategy[dict[str, Any]], odd: bool = False) -> list[list[SpanRecord]]:
    """Batches of span records; events draw their attributes from a few SharedAttributes that
    recur across the stream (as kept assertion outcomes do) or from fresh dicts."""
    pool = [SharedAttributes(draw(dicts)) for _ in range(draw(st.integers(0, 3)))]

    def attributes() -> Any:
        if pool and draw(st.booleans()):
            return pool[draw(st.integers(0, len(pool) - 1))]
        attrs = draw(dicts)
        if odd and draw(st.integers(0, 9)) == 0:
            return ODD_MAPPINGS[draw(st.integers(0, len(ODD_MAPPINGS) - 1))](attrs)
        return attrs

    def span() -> SpanRecord:
        s = SpanRecord(
            draw(names),
            draw(trace_ids),
            draw(u64),
            draw(times),
            draw(odd_kinds if odd else plain_kinds),
            draw(times),
            attributes(),
        )
        s.end_ns = draw(times)
        s.events = [SpanEvent(draw(names), draw(times), attributes()) for _ in range(draw(st.integers(0, 3)))]
        s.status = draw(odd_codes if odd else plain_codes)
        s.status_message = draw(messages)
        return s

    return [[span() for _ in range(draw(st.integers(0, 3)))] for _ in range(draw(st.integers(1, 3)))]


plain_dicts = attr_dicts(plain_values)
odd_dicts = attr_dicts(odd_values)


def twin(stream: list[list[SpanRecord]]) -> list[list[SpanRecord]]:
    """The same records as new objects, with their own SharedAttributes (shared alike, nothing
    kept on them), so neither path sees what the other kept on the originals."""
    shared: dict[int, Any] = {}

    def attrs(a: Any) -> Any:
        if isinstance(a, SharedAttributes):
            if id(a) not in shared:
                shared[id(a)] = type(a)(a)
            return shared[id(a)]
        return a

    out = []
    for batch in stream:
        copies = []
        for s in batch:
            c = SpanRecord(s.name, s.trace_id, s.span_id, s.parent_id, s.kind, s.start_ns, attrs(s.attributes))
            c.end_ns = s.end_ns
            c.events = [SpanEvent(e.name, e.time_ns, attrs(e.attributes)) for e in s.events]
            c.status = s.status
            c.status_message = s.status_message
            copies.append(c)
        out.append(copies)
    return out


def outcome(encode: Callable[[list[SpanRecord]], bytes | None], batch: list[SpanRecord]) -> Any:
    """The bytes, or the type of the exception raised."""
    try:
        return encode(batch)
    except Exception as exc:
        return type(exc)


def compiled(enc: ProtobufEncoder) -> Callable[[list[SpanRecord]], bytes | None]:
    return lambda batch: _otlpenc.encode(batch, enc._resource_field, enc._scope_field)


# One long-lived encoder, as in production: the Python path's caches stay warm across examples.
SHARED = ProtobufEncoder(RESOURCE, *SCOPE)

# --- the contract ---------------------------------------------------------------------------


@SETTINGS
@given(stream=streams(plain_dicts), resource=plain_dicts, scope=st.tuples(texts, texts))
def test_plain_batches_are_encoded_in_c_to_the_python_bytes(
    stream: list[list[SpanRecord]], resource: dict[str, Any], scope: tuple[str, str]
) -> None:
    """Every value type the C path takes, on the shared encoder and on a fresh one: never
    left to Python, and byte for byte what Python writes."""
    for enc_c, enc_py in ((SHARED, SHARED), (ProtobufEncoder(resource, *scope), ProtobufEncoder(resource, *scope))):
        c_stream, py_stream = twin(stream), twin(stream)
        for c_batch, py_batch in zip(c_stream, py_stream, strict=True):
            got = compiled(enc_c)(c_batch)
            assert got is not None, "a plain batch was left to Python"
            assert got == enc_py._encode_python(py_batch)


@SETTINGS
@given(stream=streams(odd_dicts, odd=True), warm=st.lists(st.booleans(), min_size=3, max_size=3))
def test_any_batch_encodes_as_python_does(stream: list[list[SpanRecord]], warm: list[bool]) -> None:
    """Odd values, odd mappings, odd kinds and codes: ``encode`` (C, else Python) gives the
    Python bytes or raises the same exception. ``warm``: Python encoded that batch first, so
    the C path reads the encodings Python kept on its SharedAttributes."""
    c_stream, py_stream = twin(stream), twin(stream)
    for c_batch, py_batch, w in zip(c_stream, py_stream, warm, strict=False):
        if w:
            outcome(SHARED._encode_python, c_batch)
        assert outcome(SHARED.encode, c_batch) == outcome(SHARED._encode_python, py_batch)


def everyday_span(i: int, content: str) -> SpanRecord:
    """The SDK's LLM span shape (as bench/encode_bench.py builds it)."""
    s = make_span(
        span_id=i + 1,
        attributes={
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.id": f"chatcmpl-{i:024x}",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.usage.input_tokens": 200 + 37 * i,
            "gen_ai.usage.output_tokens": i,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.input.messages": content * (1 + i),
            "llmpulse.cost_usd": i / 1e6,
            "llmpulse.streaming": True,
            "llmpulse.refusal": False,
            "server.port": 443,
        },
        status=1,
    )
    s.events = [
        SpanEvent("gen_ai.evaluation.result", s.end_ns, PASSED),
        SpanEvent("gen_ai.evaluation.result", s.end_ns, {"gen_ai.evaluation.name": "x", "score": 0.0}),
    ]
    return s


PASSED = SharedAttributes({"gen_ai.evaluation.name": "is_json", "gen_ai.evaluation.score.label": "pass"})


@pytest.mark.parametrize("content", ['[{"role": "user", "content": "hi"}]', "don’t — café ✓ 😀 " * 40])
def test_everyday_llm_spans_are_encoded_in_c(content: str) -> None:
    """ASCII and non-ASCII (UCS-2, astral) content, every length prefix size: never left to Python."""
    spans = [everyday_span(i, content) for i in range(0, 400, 7)]
    got = compiled(SHARED)(spans)
    assert got is not None
    assert got == SHARED._encode_python(twin([spans])[0])


@pytest.mark.parametrize("value", ODD, ids=[f"{type(v).__name__}-{i}" for i, v in enumerate(ODD)])
def test_values_c_leaves_to_python(value: Any) -> None:
    s = make_span(attributes={"ok": "fine", "odd": value})
    assert compiled(SHARED)([s]) is None
    assert SHARED.encode([s]) == SHARED._encode_python([s])


def _unset_slot() -> SpanRecord:
    s = make_span()
    del s.status_message
    return s


@pytest.mark.parametrize(
    "spans",
    [
        pytest.param(lambda: iter([make_span()]), id="iterator"),
        pytest.param(lambda: collections.deque([make_span()]), id="deque"),
        pytest.param(lambda: [type("MySpan", (SpanRecord,), {})("n", 1, 2, 0, 1, T0, {})], id="SpanRecord subclass"),
        pytest.param(lambda: [make_span(events=[type("MyEvent", (SpanEvent,), {})("e", T0, {})])], id="event subclass"),
        pytest.param(lambda: [make_span(name=MyStr("n"))], id="name str subclass"),
        pytest.param(lambda: [make_span(kind=2**64)], id="kind 2**64"),
        pytest.param(lambda: [make_span(status=2**64 + 5)], id="status code 2**64"),
        pytest.param(lambda: [make_span(kind=True)], id="kind bool"),
        pytest.param(lambda: [make_span(attributes=None)], id="attributes None"),
        pytest.param(lambda: [make_span(events=(SpanEvent("e", T0, {}),))], id="events tuple"),
        pytest.param(lambda: [make_span(status_message=None)], id="message None"),
        pytest.param(lambda: [make_span(attributes={"big": 10**5000})], id="int too long for str"),
        pytest.param(lambda: [make_span(), _unset_slot()], id="unset slot"),
    ],
)
def test_batches_c_leaves_to_python(spans: Callable[[], Any]) -> None:
    assert compiled(SHARED)(spans()) is None
    assert outcome(SHARED.encode, spans()) == outcome(SHARED._encode_python, spans())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trace_id", -1),
        ("trace_id", 2**128),
        ("trace_id", 1.5),
        ("trace_id", "1"),
        ("span_id", -1),
        ("span_id", 2**64),
        ("span_id", None),
        ("parent_id", -1),
        ("parent_id", 2**64),
        ("start_ns", -1),
        ("end_ns", 2**64),
        ("end_ns", 1.5),
        ("event_time", -1),
        ("event_time", 2**64),
    ],
)
def test_invalid_ids_and_times_raise_on_both_paths(field: str, value: Any) -> None:
    """Out-of-range or non-int ids and times: C leaves the batch to Python, which raises (an
    Exception, which the exporter counts as a failed batch), whichever path is on."""
    s = make_span()
    if field == "event_time":
        s.events = [SpanEvent("e", value, {})]
    else:
        setattr(s, field, value)
    assert compiled(SHARED)([make_span(), s]) is None
    with pytest.raises(Exception) as on_c:  # noqa: PT011 - the reference decides which
        SHARED.encode([make_span(), s])
    with pytest.raises(Exception) as on_python:  # noqa: PT011
        SHARED._encode_python([make_span(), s])
    assert type(on_c.value) is type(on_python.value)
    assert type(on_python.value) in (struct.error, OverflowError, TypeError)


def test_the_exporter_counts_a_batch_neither_path_encodes() -> None:
    """The exporter drops and counts a batch whose encoding raises, as before (the compiled
    path leaves it to Python, which raises); nothing is sent."""
    from llmpulse._export import HttpExporter
    from llmpulse._stats import stats

    exporter = HttpExporter(
        "http://127.0.0.1:9/v1/traces", "http://127.0.0.1:9/v1/feedback", SHARED, api_key=None, timeout=1
    )
    assert exporter.export_spans([make_span(), make_span(trace_id=2**128)], time.monotonic() + 1) is False
    assert stats.get("spans_dropped.encode_error") == 2


def test_shared_attributes_keep_their_encoding_on_both_paths() -> None:
    """C keeps the attributes' encoding on a SharedAttributes as Python does, and reads the one
    Python kept: even attributes changed after their first encoding (read-only by contract)
    give the same bytes on both paths."""
    a = SharedAttributes({"gen_ai.evaluation.name": "x" * 200, "score": 1.0})
    b = SharedAttributes({"gen_ai.evaluation.name": "y", "score": 0.0})

    def batch(x: SharedAttributes, y: SharedAttributes) -> list[SpanRecord]:
        return [make_span(events=[SpanEvent("e", T0, x), SpanEvent("", 0, x), SpanEvent("f", T0, y)])]

    a2, b2 = SharedAttributes(a), SharedAttributes(b)
    first = compiled(SHARED)(batch(a, b))
    assert first == SHARED._encode_python(batch(a2, b2))
    assert a.pb == a2.pb
    assert b.pb == b2.pb
    # changed after the first encoding: both paths keep writing what they kept
    for x in (a, a2):
        x["score"] = 0.5
    assert compiled(SHARED)(batch(a, b)) == first == SHARED._encode_python(batch(a2, b2))
    # encoded first by Python, then read by C (and a kept encoding that is not bytes: Python's)
    c = SharedAttributes({"k": "v"})
    py_first = SHARED._encode_python(batch(c, b))
    assert c.pb is not None
    assert compiled(SHARED)(batch(c, b)) == py_first
    c.pb = bytearray(c.pb)
    assert compiled(SHARED)(batch(c, b)) is None
    assert SHARED.encode(batch(c, b)) == py_first


# --- resources ------------------------------------------------------------------------------


def _leak_batches() -> list[Callable[[], list[SpanRecord]]]:
    """Batches through every way out of the C path: encoded, left to Python at the last
    attribute or event, and left to Python for an invalid id."""

    def full() -> list[SpanRecord]:
        shared = SharedAttributes({"k": "v", "n": 1})
        s = make_span(
            name="chat ✓",
            attributes={"s": "é" * 200, "b": True, "i": 2**70, "f": 0.5, "l": [[1, "\ud800"], b"x"], "": bytearray()},
            events=[SpanEvent("é", T0, shared), SpanEvent("é", T0, shared), SpanEvent("d", 0, {"x": "y"})],
            status=2,
            status_message="boom \udc80",
        )
        return [s, make_span(span_id=3)]

    def late_odd_value() -> list[SpanRecord]:
        spans = full()
        spans[-1].attributes = {"a": [1, [2, [3]]], "z": Printable()}
        return spans

    def late_odd_event() -> list[SpanRecord]:
        spans = full()
        spans[-1].events = [SpanEvent("e", T0, SharedAttributes({"a": 1, "z": None}))]
        return spans

    def bad_id() -> list[SpanRecord]:
        spans = full()
        spans[-1].trace_id = 2**128
        return spans

    def too_deep() -> list[SpanRecord]:
        spans = full()
        spans[-1].attributes = {"d": [[[[[[[[["nine"]]]]]]]]]}
        return spans

    def unset_slot() -> list[SpanRecord]:
        spans = full()
        del spans[-1].status_message  # the last slot read: the others were taken
        return spans

    return [full, late_odd_value, late_odd_event, bad_id, too_deep, unset_slot]


def test_encoding_leaks_no_memory() -> None:
    batches = [make() for make in _leak_batches() for _ in range(20)]
    fields = (SHARED._resource_field, SHARED._scope_field)
    for batch in batches:  # warm up
        _otlpenc.encode(batch, *fields)

    def encode_all() -> None:
        for make in _leak_batches():  # fresh objects: SharedAttributes get their encoding kept
            _otlpenc.encode(make(), *fields)
        for batch in batches:
            _otlpenc.encode(batch, *fields)

    grown = traced_growth(encode_all, 30)
    # one leaked object a span would be ~30 x 130 spans x 30+ bytes = 117 KB
    assert grown < 16_384, grown


def test_encoding_keeps_no_references() -> None:
    """Every object the C path reads has the same reference count after as before, on each
    way out (tracemalloc cannot see a leaked reference to an existing object)."""
    for make in _leak_batches():
        batch = make()
        _otlpenc.encode(batch, SHARED._resource_field, SHARED._scope_field)  # keeps pb (once)
        objects: list[Any] = [batch]
        for s in batch:
            objects += [s, s.name, s.trace_id, s.attributes, s.events, getattr(s, "status_message", None)]
            objects += [*s.attributes, *s.attributes.values()]
            for e in s.events:
                objects += [e, e.name, e.time_ns, e.attributes, *e.attributes, *e.attributes.values()]
                if isinstance(e.attributes, SharedAttributes) and e.attributes.pb is not None:
                    objects.append(e.attributes.pb)
        before = [sys.getrefcount(o) for o in objects]
        for _ in range(50):
            _otlpenc.encode(batch, SHARED._resource_field, SHARED._scope_field)
        after = [sys.getrefcount(o) for o in objects]
        assert after == before, make.__name__


# --- the switch -----------------------------------------------------------------------------


def test_encode_uses_the_compiled_path_here() -> None:
    assert _otlp._c_encode is _otlpenc.encode
