"""Encode llmpulse span records as OTLP/HTTP trace requests (protobuf or JSON).

The OTel SDK's Python OTLP encoder builds a protobuf message object per span, attribute
and value before serialising, ~39 µs a span here; the SDK's budget is a few µs a span all
in. So this module writes the protobuf wire format by hand (varints, length-delimited
fields, fixed64) straight from :class:`~llmpulse._span.SpanRecord`, and builds OTLP/JSON
as plain dicts for ``orjson``: about 10x (protobuf) and 7x (JSON) less CPU than OTel's
path on the same spans (``bench/encode_bench.py``). It imports neither ``protobuf`` nor
``opentelemetry-proto``: the SDK does not depend on them (the tests decode with them).

One request holds one ``ResourceSpans`` (the resource) with one ``ScopeSpans`` (the
scope) with the spans::

    enc = make_encoder("http/protobuf", {"service.name": "shop"}, "llmpulse", "0.1.0")
    body = enc.encode(spans)  # POST to /v1/traces with Content-Type: enc.content_type

Field numbers are those of opentelemetry-proto (``trace/v1/trace.proto``,
``common/v1/common.proto``, ``resource/v1/resource.proto``,
``collector/trace/v1/trace_service.proto``). Fields are written in field-number order and
proto3 defaults are left out, so the bytes equal protobuf's own serialisation of the same
message. Attribute values map as: ``str`` → string, ``bool`` → bool (checked before
``int``), ``int`` → int64 (outside int64: the decimal string), ``float`` → double,
``list``/``tuple`` → array (mixed element types allowed), ``bytes`` → bytes, anything
else → ``str(value)``. Strings that are not valid UTF-8 (lone surrogates) are encoded with
``errors="replace"``, in both formats.

Where the C extension ``_otlpenc`` is built (``pip install`` with a C compiler), it writes the
protobuf body instead, ~1-3 µs a span: the same bytes as :meth:`ProtobufEncoder._encode_python`,
the reference, which encodes any batch the extension leaves to it (values that need ``str()``,
subclasses, out-of-range ids; see ``_otlpenc.c``). ``LLMPULSE_PURE_PYTHON=1`` (read at import)
turns it off, as it does the collector's.

Invariants the SDK guarantees and this module relies on: ids are in range (128-bit trace
id, 64-bit span ids) and timestamps are non-negative nanoseconds below 2**64; a record
breaking them makes ``encode`` raise (``OverflowError`` / ``struct.error``), which the
exporter counts like any other failed batch.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from llmpulse._config import ENV
from llmpulse._exceptions import ConfigError
from llmpulse._span import AttrValue, SharedAttributes, SpanRecord

try:
    from llmpulse import _otlpenc as compiled
except ImportError:  # not built (no C compiler at install): the Python encoder below
    compiled = None  # type: ignore[assignment]
if os.environ.get(ENV.PURE_PYTHON):  # the Python reference even where the extension is built
    compiled = None  # type: ignore[assignment]
_c_encode = None if compiled is None else compiled.encode

__all__ = ["Encoder", "ProtobufEncoder", "compiled", "make_encoder"]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_U64 = (1 << 64) - 1
# Arrays nested deeper than this (or a list holding itself) are sent as str(value).
_MAX_DEPTH = 8
# The attribute key set is small and repeats; the bound only guards against dynamic keys.
_KEY_CACHE_MAX = 2048


class Encoder(Protocol):
    """Turns a batch of span records into one OTLP/HTTP ``ExportTraceServiceRequest`` body."""

    content_type: str

    def encode(self, spans: Sequence[SpanRecord]) -> bytes: ...


def make_encoder(protocol: str, resource: Mapping[str, AttrValue], scope_name: str, scope_version: str) -> Encoder:
    """The encoder for an ``OTEL_EXPORTER_OTLP_PROTOCOL`` value: ``http/protobuf`` or ``http/json``.

    Raises :class:`~llmpulse._exceptions.ConfigError` for any other value (``grpc`` is not
    supported: the SDK speaks OTLP/HTTP only).
    """
    if protocol == "http/protobuf":
        return ProtobufEncoder(resource, scope_name, scope_version)
    if protocol == "http/json":
        from ._otlp_json import JsonEncoder

        return JsonEncoder(resource, scope_name, scope_version)
    raise ConfigError(
        f"protocol must be 'http/protobuf' or 'http/json' (OTEL_EXPORTER_OTLP_PROTOCOL values; llmpulse"
        f" exports over HTTP only, gRPC is not supported), got {protocol!r}"
    )


# --- protobuf wire format ----------------------------------------------------------------
#
# Hot-path notes (CPython 3.11, measured): a Python function call costs ~60-200 ns, as much
# as encoding a short value, and each bytes concatenation ~45 ns. So the per-attribute loop
# inlines every common case, fixed-shape fields come from precomputed tables or one
# struct.pack, and the values that repeat (model names, flags, finish reasons) are cached
# whole per key. Pieces are appended to one list per span, joined per span and once more
# per request.
# Two-byte varints (128 <= x < 16384, e.g. the lengths of a 2 KB prompt) are computed as the
# little-endian uint16 ``x + (x & -128) + 128``: low 7 bits with the continuation bit, then
# the next 7 bits.

_B1 = tuple(bytes((i,)) for i in range(128))


def _varint(n: int) -> bytes:
    """Base-128 varint; a negative int64 is written as its 64-bit two's complement."""
    if n < 0:
        n &= _U64
    if n < 128:
        return _B1[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 127) | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def _utf8(s: str) -> bytes:
    try:
        return s.encode()
    except UnicodeEncodeError:  # lone surrogates
        return s.encode("utf-8", "replace")


def _safe_str(v: object) -> str:
    try:
        return str(v)
    except Exception:  # a broken __str__ must not lose the whole batch
        return f"<unprintable {type(v).__name__}>"


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, varint length, payload."""
    return tag + _varint(len(payload)) + payload


_TAG_V2 = struct.Struct("<BH").pack  # a one-byte tag and a two-byte varint


def _tag_len(tag: int, n: int) -> bytes:
    """The tag and length prefix of a length-delimited field of ``n`` bytes."""
    if n < 128:
        return bytes((tag, n))
    if n < 16384:
        return _TAG_V2(tag, n + (n & -128) + 128)
    return bytes((tag,)) + _varint(n)


def _any_value(v: object, depth: int = 0) -> bytes:
    """The body of an ``AnyValue`` message (the general path; the hot loop inlines scalars).

    The value is a oneof, so it is written even when it is the default ("" / 0 / False).
    """
    if isinstance(v, str):
        return _ld(b"\x0a", _utf8(v))
    if isinstance(v, bool):
        return b"\x10\x01" if v else b"\x10\x00"
    if isinstance(v, int):
        if _INT64_MIN <= v <= _INT64_MAX:
            return b"\x18" + _varint(int(v))
        return _ld(b"\x0a", str(int(v)).encode())
    if isinstance(v, float):
        return _DOUBLE_AV(0x21, v)
    if isinstance(v, (list, tuple)) and depth < _MAX_DEPTH:
        return _array_value(v, depth)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _ld(b"\x3a", bytes(v))
    return _ld(b"\x0a", _utf8(_safe_str(v)))


def _array_value(v: Sequence[Any], depth: int) -> bytes:
    """An ``AnyValue`` body holding ``array_value`` (5); short strings are inlined."""
    parts: list[bytes] = []
    add = parts.append
    for x in v:
        if type(x) is str:
            try:
                b = x.encode()
            except UnicodeEncodeError:
                b = x.encode("utf-8", "replace")
            n = len(b)
            if n < 126:
                add(_ARRAY_STR_HDR[n] + b)
                continue
            av = _ld(b"\x0a", b)
        else:
            av = _any_value(x, depth + 1)
        n = len(av)
        add((_F0A[n] if n < 128 else _tag_len(0x0A, n)) + av)  # ArrayValue.values (1)
    body = b"".join(parts)
    n = len(body)
    return (_F2A[n] if n < 128 else _tag_len(0x2A, n)) + body


_DOUBLE_AV = struct.Struct("<Bd").pack
# KeyValue.value (field 2) holding an AnyValue of a fixed shape, whole.
_TRUE_VF = b"\x12\x02\x10\x01"
_FALSE_VF = b"\x12\x02\x10\x00"
# KeyValue.value header for an int whose varint takes i bytes (1..10).
_INT_VF_HDR = tuple(bytes((0x12, i + 1, 0x18)) for i in range(11))
# KeyValue.value header for a string of n < 126 bytes: field 2, len, AnyValue field 1, len.
_STR_VF_HDR = tuple(bytes((0x12, n + 2, 0x0A, n)) for n in range(126))
# ... the same for 128 <= n < 16381 bytes: both lengths are two-byte varints.
_STR_VF_HDR2 = struct.Struct("<BHBH").pack
# ArrayValue.values header for a string element of n < 126 bytes.
_ARRAY_STR_HDR = tuple(bytes((0x0A, n + 2, 0x0A, n)) for n in range(126))
_IDS = struct.Struct(">BBQQBBQ").pack  # trace_id (1), span_id (2), as 16 and 8 bytes
_IDS_PARENT = struct.Struct(">BBQQBBQBBQ").pack  # ... and parent_span_id (4)
_TIMES = struct.Struct("<BQBQ").pack  # start (7) and end (8) time, fixed64
_FIXED64 = struct.Struct("<BQ").pack
# Tag and one-byte length of the length-delimited fields written in hot loops.
_FRAMES = {tag: tuple(bytes((tag, n)) for n in range(128)) for tag in (0x0A, 0x12, 0x1A, 0x2A, 0x4A)}
_F0A = _FRAMES[0x0A]
_F12 = _FRAMES[0x12]
_F2A = _FRAMES[0x2A]
_KIND = tuple(b"\x30" + bytes((i,)) for i in range(128))  # Span.kind (6)
_STATUS = tuple(bytes((0x7A, 2, 0x18, i)) for i in range(128))  # Span.status (15).code (3)

# Per attribute key, built once: its encoded key field; {recent short str, bool or
# all-str tuple value: the whole framed KeyValue}; and the framed KeyValue up to the
# value's last bytes for a double, a one-byte int and a two-byte int (their lengths are
# fixed, so is the framing). No str equals a bool or a tuple, so True is never served for
# 1 (ints and floats are not looked up there: 1 == True, 0.0 == -0.0).
_KeyEntry = tuple[bytes, dict[Any, bytes], bytes, bytes, bytes]
_VALUES_PER_KEY = 32
_PACK_DOUBLE = struct.Struct("<d").pack
_PACK_U16 = struct.Struct("<H").pack
_PACK_U64 = struct.Struct("<Q").pack


def _key_entry(cache: dict[str, _KeyEntry], key: str, tag: int) -> _KeyEntry:
    if len(cache) >= _KEY_CACHE_MAX:
        cache.clear()
    # KeyValue.key (1); "" is proto3's default and left out, as protobuf itself would.
    kenc = _ld(b"\x0a", _utf8(key)) if key else b""
    n = len(kenc)
    entry: _KeyEntry = (
        kenc,
        {},
        _tag_len(tag, n + 11) + kenc + b"\x12\x09\x21",  # value (2): AnyValue.double_value (4)
        _tag_len(tag, n + 4) + kenc + b"\x12\x02\x18",  # value (2): AnyValue.int_value (3)
        _tag_len(tag, n + 5) + kenc + b"\x12\x03\x18",
    )
    cache[key] = entry
    return entry


def _encode_attrs(
    attrs: Mapping[str, Any],  # Any: the loop dispatches on type() itself
    tag: int,
    cache: dict[str, _KeyEntry],
    out: list[bytes],
) -> None:
    """Append one ``KeyValue`` field (field number and wire type in ``tag``) per attribute.

    Every common case is inlined: a Python call costs as much as encoding a short value.
    """
    add = out.append
    frames = _FRAMES[tag]
    for k, v in attrs.items():
        t = type(v)
        entry = cache.get(k)
        if entry is None:
            entry = _key_entry(cache, k, tag)
        if t is str:
            # Only short strings are looked up: hashing a fresh 2 KB prompt costs ~1 µs.
            if len(v) < 126:
                piece = entry[1].get(v)
                if piece is not None:
                    add(piece)
                    continue
            try:
                b = v.encode()
            except UnicodeEncodeError:
                b = v.encode("utf-8", "replace")
            n = len(b)
            kenc = entry[0]
            if n < 126:
                m = len(kenc) + n + 4
                piece = (frames[m] if m < 128 else _tag_len(tag, m)) + kenc
                piece += _STR_VF_HDR[n] + b
                seen = entry[1]
                if len(seen) >= _VALUES_PER_KEY:
                    seen.clear()
                seen[v] = piece
                add(piece)
                continue
            m = len(kenc) + n + 6
            if n >= 128 and m < 16384:
                a = n + 3
                add(
                    _TAG_V2(tag, m + (m & -128) + 128)
                    + kenc
                    + _STR_VF_HDR2(0x12, a + (a & -128) + 128, 0x0A, n + (n & -128) + 128)
                )
            else:
                h = b"\x0a" + _varint(n)
                vh = _tag_len(0x12, len(h) + n) + h
                add(_tag_len(tag, len(kenc) + len(vh) + n) + kenc + vh)
            add(b)
        elif t is float:
            add(entry[2] + _PACK_DOUBLE(v))
        elif t is int:
            if 0 <= v < 128:
                add(entry[3] + _B1[v])
            elif 0 < v < 16384:
                add(entry[4] + _PACK_U16(v + (v & -128) + 128))
            else:
                if _INT64_MIN <= v <= _INT64_MAX:
                    iv = _varint(v)
                    vf = _INT_VF_HDR[len(iv)] + iv
                else:
                    av = _any_value(v)
                    vf = _tag_len(0x12, len(av)) + av
                kenc = entry[0]
                add(_tag_len(tag, len(kenc) + len(vf)) + kenc + vf)
        elif t is bool:
            piece = entry[1].get(v)
            if piece is None:
                kenc = entry[0]
                piece = _tag_len(tag, len(kenc) + 4) + kenc + (_TRUE_VF if v else _FALSE_VF)
                entry[1][v] = piece
            add(piece)
        elif t is list or t is tuple:
            # Lists of strings repeat too (finish reasons): cached under their tuple, only
            # when every element is a str, so (1,) can never be served for (True,).
            key = tuple(v) if t is list else v
            try:
                piece = entry[1].get(key)
            except TypeError:  # an unhashable element (a nested list)
                piece = key = None
            if piece is None:
                av = _array_value(v, 0)
                n = len(av)
                vf = (_F12[n] if n < 128 else _tag_len(0x12, n)) + av
                kenc = entry[0]
                m = len(kenc) + len(vf)
                piece = (frames[m] if m < 128 else _tag_len(tag, m)) + kenc + vf
                if key is not None and all(type(x) is str for x in key):
                    seen = entry[1]
                    if len(seen) >= _VALUES_PER_KEY:
                        seen.clear()
                    seen[key] = piece
            add(piece)
        else:
            av = _any_value(v)
            n = len(av)
            vf = (_F12[n] if n < 128 else _tag_len(0x12, n)) + av
            kenc = entry[0]
            m = len(kenc) + len(vf)
            add((frames[m] if m < 128 else _tag_len(tag, m)) + kenc + vf)


def _cached_name(names: dict[str, bytes], name: str, tag: bytes) -> bytes:
    """A name field (Span.name is 5, Span.Event.name 2), encoded; names are few and repeat."""
    if len(names) >= _KEY_CACHE_MAX:
        names.clear()
    f = names[name] = _ld(tag, _utf8(name))
    return f


def _shared_pb(ea: SharedAttributes, event_keys: dict[str, _KeyEntry]) -> bytes:
    """The encoded ``Event.attributes`` (3) fields of shared attributes, kept on them."""
    pb = ea.pb
    if pb is None:
        encoded: list[bytes] = []
        _encode_attrs(ea, 0x1A, event_keys, encoded)
        pb = ea.pb = b"".join(encoded)
    return pb


def _shared_event(
    ea: SharedAttributes, name: str, event_keys: dict[str, _KeyEntry], event_names: dict[str, bytes]
) -> tuple[str, bytes, bytes]:
    """A ``Span.events`` (11) field with these attributes and ``name`` is ``head``, the
    time as fixed64, then ``tail``; returns and keeps ``(name, head, tail)`` on ``ea``."""
    tail = _shared_pb(ea, event_keys)
    if name:
        f = event_names.get(name)
        tail = (f if f is not None else _cached_name(event_names, name, b"\x12")) + tail
    # Span.events (11), then Event.time_unix_nano (1, fixed64) up to its 8 bytes.
    head = _tag_len(0x5A, 9 + len(tail)) + b"\x09"
    ev = ea.event = (name, head, tail)
    return ev


class ProtobufEncoder:
    """OTLP/HTTP protobuf (``application/x-protobuf``), written by hand.

    Safe to share between threads: the only mutable state is the caches, dicts of
    immutable values that a race can at worst make recompute.
    """

    content_type = "application/x-protobuf"

    def __init__(self, resource: Mapping[str, AttrValue], scope_name: str, scope_version: str) -> None:
        res: list[bytes] = []
        _encode_attrs(resource, 0x0A, {}, res)  # Resource.attributes (1)
        scope = b""
        if scope_name:
            scope += _ld(b"\x0a", _utf8(scope_name))
        if scope_version:
            scope += _ld(b"\x12", _utf8(scope_version))
        # ResourceSpans.resource (1) and ScopeSpans.scope (1): the same in every request.
        self._resource_field = _ld(b"\x0a", b"".join(res))
        self._scope_field = _ld(b"\x0a", scope)
        self._span_keys: dict[str, _KeyEntry] = {}
        self._event_keys: dict[str, _KeyEntry] = {}
        self._names: dict[str, bytes] = {}
        self._event_names: dict[str, bytes] = {}

    def encode(self, spans: Sequence[SpanRecord]) -> bytes:
        """An ``ExportTraceServiceRequest`` with one ResourceSpans (the resource) holding one
        ScopeSpans (the scope) holding the spans."""
        if _c_encode is not None:
            body = _c_encode(spans, self._resource_field, self._scope_field)
            if body is not None:
                return body
        return self._encode_python(spans)

    def _encode_python(self, spans: Sequence[SpanRecord]) -> bytes:
        """:meth:`encode` in Python: the reference the compiled encoder is tested against, and
        what encodes the batches it leaves (or everything, where it is not built)."""
        out: list[bytes] = []
        push = out.append
        size = 0
        span_keys = self._span_keys
        event_keys = self._event_keys
        names = self._names
        event_names = self._event_names
        for s in spans:
            tid = s.trace_id
            pid = s.parent_id
            p: list[bytes] = [
                _IDS_PARENT(10, 16, tid >> 64, tid & _U64, 18, 8, s.span_id, 34, 8, pid)
                if pid
                else _IDS(10, 16, tid >> 64, tid & _U64, 18, 8, s.span_id)
            ]
            add = p.append
            name = s.name
            if name:
                f = names.get(name)
                add(f if f is not None else _cached_name(names, name, b"\x2a"))
            kind = s.kind
            if kind:
                add(_KIND[kind] if 0 < kind < 128 else b"\x30" + _varint(kind))
            start = s.start_ns
            end = s.end_ns
            if start and end:
                add(_TIMES(0x39, start, 0x41, end))
            elif start:
                add(_FIXED64(0x39, start))
            elif end:
                add(_FIXED64(0x41, end))
            if s.attributes:
                _encode_attrs(s.attributes, 0x4A, span_keys, p)  # Span.attributes (9)
            for e in s.events:
                ea = e.attributes
                name = e.name
                if type(ea) is SharedAttributes and e.time_ns:
                    # The same event on every call but for its time: the framing and the
                    # fields around the time are kept with the attributes.
                    ev = ea.event
                    if ev is None or ev[0] != name:
                        ev = _shared_event(ea, name, event_keys, event_names)
                    add(ev[1])
                    add(_PACK_U64(e.time_ns))
                    add(ev[2])
                    continue
                ep: list[bytes] = [_FIXED64(0x09, e.time_ns)] if e.time_ns else []
                if name:
                    f = event_names.get(name)
                    ep.append(f if f is not None else _cached_name(event_names, name, b"\x12"))
                if type(ea) is SharedAttributes:
                    ep.append(_shared_pb(ea, event_keys))
                elif ea:
                    _encode_attrs(ea, 0x1A, event_keys, ep)  # Event.attributes (3)
                body = b"".join(ep)
                n = len(body)
                add((_TAG_V2(0x5A, n + (n & -128) + 128) if 128 <= n < 16384 else _tag_len(0x5A, n)) + body)
            code = s.status
            msg = s.status_message
            if msg:
                st = _ld(b"\x12", _utf8(msg))
                if code:
                    st += b"\x18" + _varint(code)
                add(_ld(b"\x7a", st))
            elif code:
                add(_STATUS[code] if 0 < code < 128 else _ld(b"\x7a", b"\x18" + _varint(code)))
            # Join per span: one join of many small pieces is cheap, while joining a
            # whole batch's pieces at once costs ~50 ns a piece (measured).
            body = b"".join(p)
            n = len(body)
            # ScopeSpans.spans (2)
            f = _TAG_V2(0x12, n + (n & -128) + 128) if 128 <= n < 16384 else _tag_len(0x12, n)
            push(f)
            push(body)
            size += len(f) + n
        scope_spans = len(self._scope_field) + size
        scope_spans_hdr = _tag_len(0x12, scope_spans)  # ResourceSpans.scope_spans (2)
        resource_spans = len(self._resource_field) + len(scope_spans_hdr) + scope_spans
        out[:0] = (
            _tag_len(0x0A, resource_spans),  # ExportTraceServiceRequest.resource_spans (1)
            self._resource_field,
            scope_spans_hdr,
            self._scope_field,
        )
        return b"".join(out)
