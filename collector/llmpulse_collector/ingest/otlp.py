"""OTLP/HTTP trace requests → rows: content negotiation, bounded decompression, decoding.

``decode_traces`` takes a ``POST /v1/traces`` body as received and returns the rows of its
valid spans (see ``normalize.py`` for how attributes become columns)::

    result = decode_traces(body, content_type="application/x-protobuf", content_encoding="gzip",
                           project="default", limits=Limits(), prices=PriceBook(),
                           refusals=RefusalDetector())
    response = encode_response(result.rejected, "; ".join(result.errors), json=False)

Formats: ``application/x-protobuf`` (also ``application/protobuf``), scanned by the compiled
``_otlpscan.scan`` (one pass over the wire bytes), else parsed by protobuf's upb backend
(``_pb_scan``, the reference, also for every body the scanner leaves to it);
``application/json`` (OTLP/JSON), parsed by ``orjson`` and walked here, since
``google.protobuf.json_format`` costs ~158 µs a span. OTLP/JSON differs from protobuf's JSON
mapping: ids are hex, enums integers (their names are accepted too), 64-bit integers strings
or numbers. Field names are lowerCamelCase only; unknown fields are ignored, as the spec asks.
Encodings: ``gzip`` (also ``x-gzip``, several members), ``deflate`` (zlib-wrapped, or raw as
some clients send it), ``identity``; each inflated with a cap on its output.

Where the problem sits decides the answer: the envelope (not a request, a ``resourceSpans``
that is not an array, a malformed resource) makes the whole request a 400; a problem inside
one span (ids of the wrong length, no start time, an end before the start, an attribute of the
wrong type) drops that span only, counted as rejected, with one message per kind of problem
(OTLP partial success).

Decoded values are bounded, whatever arrives: strings are cut to ``max_attribute_chars``
(with a marker), arrays and kvlists nest at most 16 levels and keep their first 1024 items,
a span, event or resource keeps its first 1024 attributes and a span its first 1024 events
(with a warning in the response). upb itself refuses messages nested past its depth limit.

Reading attributes out of upb messages is the real cost (each field access builds a Python
object), hence the compiled scanner; the reference's loops touch each field once, read the
common string case first, and only convert the events the collector stores.
"""

from __future__ import annotations

import base64
import time
import zlib
from collections.abc import Sequence
from typing import Any, NoReturn

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmpulse._cost import PriceBook
from llmpulse._refusal import RefusalDetector
from llmpulse_collector.normalize import (
    EVENT_NAMES,
    TRUNCATION_MARK,
    ModelNames,
    Normalizer,
    Problems,
    Resource,
    compiled,
    truncate,
)

from . import DecodeResult, Limits, PayloadError

# The compiled scanner, if built and not turned off (see normalize.compiled); else _pb_scan.
_c_scan = None if compiled is None else compiled.scan

__all__ = ["decode_traces", "encode_response"]

_PROTOBUF_TYPES = frozenset(("application/x-protobuf", "application/protobuf"))
_JSON_TYPE = "application/json"
_UTF8_CHARSETS = frozenset(("utf-8", "utf8", "us-ascii"))
_SEND = "send application/x-protobuf or application/json (OTLP/HTTP)"
_JSON_SHAPE = (
    'an OTLP/JSON ExportTraceServiceRequest: {"resourceSpans": [{"resource": {"attributes": [...]},'
    ' "scopeSpans": [{"scope": {"name": "..."}, "spans": [...]}]}]}'
)

# Bounds on what one value may expand into once decoded (memory, recursion).
_MAX_DEPTH = 16  # nested arrays / kvlists
_MAX_ITEMS = 1024  # elements of one array or kvlist
_MAX_ATTRIBUTES = 1024  # attributes of one span, event or resource
_MAX_EVENTS = 1024  # events of one span
_TOO_MANY_EVENTS = f"kept the first {_MAX_EVENTS} events of a span"
_TOO_DEEP = f"…[truncated: nested deeper than {_MAX_DEPTH} levels]"
_END_OF_TIME = 1 << 63  # DateTime64(9) ends in 2262; fixed64 times past int64 are garbage
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_BOM = b"\xef\xbb\xbf"

_SPAN_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
# Field names in messages, per format: trace id, span id, parent span id, start, end.
_PB_FIELDS = ("trace_id", "span_id", "parent_span_id", "start_time_unix_nano", "end_time_unix_nano")
_JSON_FIELDS = ("traceId", "spanId", "parentSpanId", "startTimeUnixNano", "endTimeUnixNano")

Events = list[tuple[str, int, dict[str, Any]]]


def decode_traces(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    project: str,
    limits: Limits,
    prices: PriceBook,
    refusals: RefusalDetector,
    now_ns: int | None = None,
    models: ModelNames | None = None,
) -> DecodeResult:
    """The rows of one OTLP/HTTP ``ExportTraceServiceRequest`` body.

    ``models``, shared by a collector's requests, names the ``model`` of calls without a
    response model after their request model's last answer (see ``normalize.ModelNames``).

    Raises:
        PayloadError: 400 when the body cannot be decoded or its envelope is malformed,
            413 when it is (or inflates to, or holds) more than ``limits`` allow, 415 for a
            ``Content-Type`` or ``Content-Encoding`` other than those listed in the module
            docstring. Nothing else: invalid spans are dropped and counted instead.
    """
    if len(body) > limits.max_body_bytes:
        raise PayloadError(
            413, f"request body of {len(body)} bytes is over the limit of {limits.max_body_bytes}; send smaller batches"
        )
    as_json = _is_json(content_type)
    body = _decode_content(body, content_encoding, limits.max_decompressed_bytes)
    norm = Normalizer(
        project=project,
        max_attribute_chars=limits.max_attribute_chars,
        max_content_chars=limits.max_content_chars,
        prices=prices,
        refusals=refusals,
        ingested_at_ms=(time.time_ns() if now_ns is None else now_ns) // 1_000_000,
        models=models,
    )
    if as_json:
        _json_request(body, norm, limits)
    else:
        _protobuf_request(body, norm, limits)
    return DecodeResult(norm.spans, norm.assertions, norm.rejected, norm.problems.messages())


def encode_response(rejected: int, message: str, *, json: bool) -> bytes:
    """ExportTraceServiceResponse (partial_success) as protobuf or OTLP/JSON, matching the request's format.

    A request accepted whole, without warnings, gets an empty response, as the OTLP spec asks.
    """
    message = message.encode("utf-8", "replace").decode()  # lone surrogates cannot go on the wire
    if json:
        partial: dict[str, Any] = {}
        if rejected:
            partial["rejectedSpans"] = str(rejected)  # int64: a string in protobuf's JSON mapping
        if message:
            partial["errorMessage"] = message
        return orjson.dumps({"partialSuccess": partial} if partial else {})
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return response.SerializeToString()


# -- content negotiation ----------------------------------------------------------------------


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        raise PayloadError(415, f"the request has no Content-Type; {_SEND}")
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media in _PROTOBUF_TYPES:
        return False
    if media != _JSON_TYPE:
        raise PayloadError(415, f"unsupported Content-Type {content_type[:100]!r}; {_SEND}")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in _UTF8_CHARSETS:
            raise PayloadError(415, f"unsupported charset {charset[:40]!r}: OTLP/JSON is UTF-8; send charset=utf-8")
    return True


def _decode_content(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    if not content_encoding:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    for coding in codings:
        if coding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise PayloadError(
                415, f"unsupported Content-Encoding {coding[:40]!r}; send gzip, deflate or an uncompressed body"
            )
    for coding in reversed(codings):  # listed in the order they were applied
        if not body or coding in ("", "identity"):
            continue
        if coding == "deflate":
            # HTTP's deflate is the zlib format; some clients send raw deflate instead.
            zlib_header = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
            body = _inflate(body, 15 if zlib_header else -15, "deflate", limit)
        else:
            body = _inflate(body, 31, "gzip", limit)
    return body


def _inflate(data: bytes, wbits: int, name: str, limit: int) -> bytes:
    """Decompress, never producing more than ``limit`` bytes (zip bombs): 413 past it."""
    out: list[bytes] = []
    total = 0
    while True:
        d = zlib.decompressobj(wbits)
        try:
            chunk = d.decompress(data, limit - total + 1)
        except zlib.error as exc:
            raise PayloadError(
                400, f"the body is not valid {name} data ({exc}); compress it with {name} or drop Content-Encoding"
            ) from None
        total += len(chunk)
        if total > limit:
            raise PayloadError(
                413, f"the {name} body inflates to more than the limit of {limit} bytes; send smaller batches"
            )
        if not d.eof:
            raise PayloadError(400, f"the {name} stream ends early; was the body cut short?")
        out.append(chunk)
        data = d.unused_data
        if wbits != 31 or not data.startswith(b"\x1f\x8b"):
            break  # another gzip member follows, or we are done
    if data.strip(b"\x00"):  # zero padding is tolerated, as gzip(1) does
        raise PayloadError(400, f"unexpected bytes after the end of the {name} stream")
    return out[0] if len(out) == 1 else b"".join(out)


def _check_count(total: int, limits: Limits) -> None:
    if total > limits.max_spans_per_request:
        raise PayloadError(
            413,
            f"{total} spans in one request is over the limit of {limits.max_spans_per_request};"
            " send smaller batches (e.g. a lower max_export_batch_size)",
        )


_EXPIRED = "started before the store's retention window (LLMPULSE_RETENTION_DAYS): it would be deleted at once"


def _oldest_start(norm: Normalizer, limits: Limits) -> int:
    """The earliest start (ns) a span may have to be kept: 0 without a retention limit."""
    if limits.retention_days is None:
        return 0
    return norm.ingested_at_ms * 1_000_000 - limits.retention_days * 86_400 * 10**9


def _span_problem(
    tid: bytes, sid: bytes, pid: bytes, start: int, end: int, oldest: int = 0
) -> tuple[int, str, str] | None:
    """The first problem that makes a span invalid: (field index, problem kind, description)."""
    if len(tid) != 16:
        return 0, "length", f"expected 16 bytes, got {len(tid)}" if tid else "missing"
    if tid == _ZERO_TRACE:
        return 0, "zero", "all zeros is not a valid trace id"
    if len(sid) != 8:
        return 1, "length", f"expected 8 bytes, got {len(sid)}" if sid else "missing"
    if sid == _ZERO_SPAN:
        return 1, "zero", "all zeros is not a valid span id"
    if pid and len(pid) != 8:
        return 2, "length", f"expected 8 bytes (or none for a root span), got {len(pid)}"
    if not start:
        return 3, "missing", "missing"
    if start >= _END_OF_TIME:
        return 3, "range", f"{start} is out of range (past the year 2262)"
    if not end:
        return 4, "missing", "missing (spans are exported once they end)"
    if end >= _END_OF_TIME:
        return 4, "range", f"{end} is out of range (past the year 2262)"
    if end < start:
        return 4, "order", f"the span ends before it starts ({end} < {start})"
    if start < oldest:
        return 3, "expired", _EXPIRED
    return None


# -- protobuf -------------------------------------------------------------------------------


# What a protobuf body scans to (``_pb_scan``, or the C scanner ``_otlpscan.scan``): per
# resource its attributes and per scope its name and spans, each span as
# (trace id, span id, parent span id, name, kind, start, end, status code, status message,
# attributes, events of EVENT_NAMES), ids as bytes.
ScannedSpan = tuple[bytes, bytes, bytes, str, int, int, int, int, str, dict[str, Any], Events]
Scanned = list[tuple[dict[str, Any], list[tuple[str, list[ScannedSpan]]]]]


def _protobuf_request(body: bytes, norm: Normalizer, limits: Limits) -> None:
    lim = limits.max_attribute_chars
    scanned = None if _c_scan is None else _c_scan(body, lim, EVENT_NAMES, truncate)
    if scanned is None:  # no compiled scanner, or a body it leaves to the reference
        scanned = _pb_scan(body, limits, norm.problems)
    else:
        _check_count(sum(len(spans) for _, scopes in scanned for _, spans in scopes), limits)
    oldest = _oldest_start(norm, limits)
    add_span = norm.span
    for ri, (resource_attrs, scopes) in enumerate(scanned):
        resource: Resource = norm.resource(resource_attrs)
        for si, (scope, spans) in enumerate(scopes):
            for i, (tid, sid, pid, name, kind, start, end, code, message, attrs, events) in enumerate(spans):
                if not (
                    len(tid) == 16
                    and len(sid) == 8
                    and 0 < start <= end < _END_OF_TIME
                    and start >= oldest
                    and (not pid or len(pid) == 8)
                    and tid != _ZERO_TRACE
                    and sid != _ZERO_SPAN
                ):  # the common case in one test; _span_problem says what is wrong
                    problem = _span_problem(tid, sid, pid, start, end, oldest)
                    assert problem is not None
                    field = _PB_FIELDS[problem[0]]
                    norm.reject(
                        f"{field}:{problem[1]}",
                        f"resource_spans[{ri}].scope_spans[{si}].spans[{i}].{field}: {problem[2]}",
                    )
                    continue
                add_span(
                    resource,
                    scope,
                    tid.hex(),
                    sid.hex(),
                    pid.hex() if pid and pid != _ZERO_SPAN else "",
                    name,
                    kind if 0 <= kind <= 5 else 0,
                    start,
                    end,
                    code if 0 <= code <= 2 else 0,
                    message,
                    attrs,
                    events,
                )


def _pb_scan(body: bytes, limits: Limits, problems: Problems) -> Scanned:
    """The reference scan: upb's parse, then each field read once into plain values."""
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except Exception as exc:  # DecodeError, or anything else upb says about bytes it cannot parse
        raise PayloadError(
            400,
            f"not a valid OTLP ExportTraceServiceRequest protobuf: {exc}; send a serialised"
            " ExportTraceServiceRequest as application/x-protobuf, or OTLP/JSON as application/json",
        ) from None
    resource_spans = request.resource_spans
    _check_count(sum(len(ss.spans) for rs in resource_spans for ss in rs.scope_spans), limits)
    lim = limits.max_attribute_chars
    out: Scanned = []
    for rs in resource_spans:
        scopes: list[tuple[str, list[ScannedSpan]]] = []
        out.append((_pb_attributes(rs.resource.attributes, lim, problems), scopes))
        for ss in rs.scope_spans:
            spans: list[ScannedSpan] = []
            scopes.append((truncate(ss.scope.name, lim), spans))
            for sp in ss.spans:
                events: Events = []
                span_events: Sequence[Span.Event] = sp.events
                if len(span_events) > _MAX_EVENTS:
                    problems.add("events", _TOO_MANY_EVENTS)
                    span_events = span_events[:_MAX_EVENTS]
                for e in span_events:
                    ev_name = e.name
                    if ev_name in EVENT_NAMES:
                        t = e.time_unix_nano
                        events.append(
                            (ev_name, t if t < _END_OF_TIME else 0, _pb_attributes(e.attributes, lim, problems))
                        )
                status = sp.status
                spans.append(
                    (
                        sp.trace_id,
                        sp.span_id,
                        sp.parent_span_id,
                        sp.name,
                        sp.kind,
                        sp.start_time_unix_nano,
                        sp.end_time_unix_nano,
                        status.code,
                        status.message,
                        _pb_attributes(sp.attributes, lim, problems),
                        events,
                    )
                )
    return out


def _pb_attributes(kvs: Sequence[KeyValue], lim: int, problems: Problems) -> dict[str, Any]:
    if len(kvs) > _MAX_ATTRIBUTES:
        problems.add("attributes", f"kept the first {_MAX_ATTRIBUTES} attributes of a span, event or resource")
        kvs = kvs[:_MAX_ATTRIBUTES]
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        s = v.string_value  # the common case first: one access instead of WhichOneof + getattr
        if s:
            out[kv.key] = s if len(s) <= lim else truncate(s, lim)
        else:
            out[kv.key] = _pb_value(v, lim, 0)
    return out


def _pb_value(v: AnyValue, lim: int, depth: int) -> Any:
    which = v.WhichOneof("value")
    if which == "string_value":
        s = v.string_value
        return s if len(s) <= lim else truncate(s, lim)
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        if depth >= _MAX_DEPTH:
            return _TOO_DEEP
        values = v.array_value.values
        items = [_pb_value(x, lim, depth + 1) for x in values[:_MAX_ITEMS]]
        if len(values) > _MAX_ITEMS:
            items.append(f"…[truncated {len(values) - _MAX_ITEMS} items]")
        return items
    if which == "kvlist_value":
        if depth >= _MAX_DEPTH:
            return _TOO_DEEP
        entries = v.kvlist_value.values
        out = {kv.key: _pb_value(kv.value, lim, depth + 1) for kv in entries[:_MAX_ITEMS]}
        if len(entries) > _MAX_ITEMS:
            out["…"] = f"[truncated {len(entries) - _MAX_ITEMS} entries]"
        return out
    if which == "bytes_value":
        return _base64(v.bytes_value, lim)
    return None


def _base64(raw: bytes, lim: int) -> str:
    """Bytes as base64 (OTLP/JSON's form), encoding no more than ``lim`` characters' worth."""
    full = (len(raw) + 2) // 3 * 4
    if full <= lim:
        return base64.b64encode(raw).decode("ascii")
    head = base64.b64encode(raw[: (lim // 4 + 1) * 3]).decode("ascii")[:lim]
    return head + TRUNCATION_MARK.format(full - lim)


# -- OTLP/JSON ----------------------------------------------------------------------------------


class _Bad(Exception):
    """A value inside one span (or resource) that OTLP/JSON does not allow."""

    def __init__(self, where: str, what: str, key: str) -> None:
        super().__init__(what)
        self.where = where  # path below the span, e.g. ".attributes[2] ('k').value.intValue"
        self.what = what
        self.key = key  # the kind of problem, for one message per kind


def _kind(value: object) -> str:
    """How a JSON value reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r:.40}"
    if isinstance(value, str):
        return f"the string {value!r:.60}"
    return "an array" if isinstance(value, list) else "an object"


def _shape(path: str, expected: str, got: object) -> NoReturn:
    raise PayloadError(400, f"{path}: expected {expected}, got {_kind(got)}; send {_JSON_SHAPE}")


def _json_list(obj: dict[str, Any], name: str, path: str) -> list[Any]:
    value = obj.get(name)
    if value is None:
        return []
    if type(value) is not list:
        _shape(path, "an array", value)
    return value


def _json_request(body: bytes, norm: Normalizer, limits: Limits) -> None:
    if body.startswith(_BOM):
        body = body[3:]
    if not body.strip():
        return  # an empty body is an empty request, as for protobuf
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(400, f"not valid JSON ({exc}); send {_JSON_SHAPE}") from None
    if type(doc) is not dict:
        _shape("the body", "a JSON object", doc)
    if "resourceSpans" not in doc and "resource_spans" in doc:
        raise PayloadError(400, "resource_spans: OTLP/JSON field names are lowerCamelCase; send resourceSpans")
    # First the envelope's shape and the span count, before any span is converted.
    batches: list[tuple[str, list[Any], list[tuple[str, str, list[Any]]]]] = []
    total = 0
    for ri, rs in enumerate(_json_list(doc, "resourceSpans", "resourceSpans")):
        path = f"resourceSpans[{ri}]"
        if type(rs) is not dict:
            _shape(path, "an object", rs)
        res = rs.get("resource")
        if res is not None and type(res) is not dict:
            _shape(f"{path}.resource", "an object", res)
        res_attrs = _json_list(res, "attributes", f"{path}.resource.attributes") if res else []
        scopes: list[tuple[str, str, list[Any]]] = []
        for si, ss in enumerate(_json_list(rs, "scopeSpans", f"{path}.scopeSpans")):
            spath = f"{path}.scopeSpans[{si}]"
            if type(ss) is not dict:
                _shape(spath, "an object", ss)
            scope = ss.get("scope")
            scope_name: Any = ""
            if type(scope) is dict:
                scope_name = scope.get("name")
                if scope_name is None:
                    scope_name = ""
                elif type(scope_name) is not str:
                    _shape(f"{spath}.scope.name", "a string", scope_name)
            elif scope is not None:
                _shape(f"{spath}.scope", "an object", scope)
            spans = _json_list(ss, "spans", f"{spath}.spans")
            total += len(spans)
            scopes.append((spath, truncate(scope_name, limits.max_attribute_chars), spans))
        batches.append((path, res_attrs, scopes))
    _check_count(total, limits)

    lim = limits.max_attribute_chars
    oldest = _oldest_start(norm, limits)
    problems = norm.problems
    for path, res_attrs, scopes in batches:
        try:
            resource = norm.resource(_json_attributes(res_attrs, lim, problems))
        except _Bad as exc:
            raise PayloadError(400, f"{path}.resource.attributes{exc.where}: {exc.what}") from None
        for spath, scope_name, spans in scopes:
            for i, sp in enumerate(spans):
                try:
                    _json_span(sp, resource, scope_name, norm, lim, oldest)
                except _Bad as exc:
                    norm.reject(exc.key, f"{spath}.spans[{i}]{exc.where}: {exc.what}")


def _json_span(sp: Any, resource: Resource, scope: str, norm: Normalizer, lim: int, oldest: int) -> None:
    if type(sp) is not dict:
        raise _Bad("", f"expected a span object, got {_kind(sp)}", "span:type")
    tid = _json_id(sp, 0, 16)
    sid = _json_id(sp, 1, 8)
    pid = _json_id(sp, 2, 8) if sp.get("parentSpanId") else b""
    start = _json_time(sp.get("startTimeUnixNano"), ".startTimeUnixNano")
    end = _json_time(sp.get("endTimeUnixNano"), ".endTimeUnixNano")
    problem = _span_problem(tid, sid, pid, start, end, oldest)
    if problem is not None:
        field = _JSON_FIELDS[problem[0]]
        raise _Bad(f".{field}", problem[2], f"{field}:{problem[1]}")
    name = sp.get("name")
    if name is None:
        name = ""
    elif type(name) is not str:
        raise _Bad(".name", f"expected a string, got {_kind(name)}", "name:type")
    kind = _json_enum(sp.get("kind"), _SPAN_KINDS, ".kind", 5)
    status = sp.get("status")
    code = 0
    message: Any = ""
    if type(status) is dict:
        code = _json_enum(status.get("code"), _STATUS_CODES, ".status.code", 2)
        message = status.get("message")
        if message is None:
            message = ""
        elif type(message) is not str:
            raise _Bad(".status.message", f"expected a string, got {_kind(message)}", "status:type")
    elif status is not None:
        raise _Bad(".status", f"expected an object, got {_kind(status)}", "status:type")
    problems = norm.problems
    try:
        attrs = _json_attributes(sp.get("attributes"), lim, problems)
    except _Bad as exc:
        raise _Bad(f".attributes{exc.where}", exc.what, exc.key) from None
    events: Events = []
    raw_events = sp.get("events")
    if raw_events is not None:
        if type(raw_events) is not list:
            raise _Bad(".events", f"expected an array, got {_kind(raw_events)}", "events:type")
        if len(raw_events) > _MAX_EVENTS:
            norm.problems.add("events", _TOO_MANY_EVENTS)
            raw_events = raw_events[:_MAX_EVENTS]
        for j, e in enumerate(raw_events):
            if type(e) is not dict:
                raise _Bad(f".events[{j}]", f"expected an object, got {_kind(e)}", "event:type")
            ev_name = e.get("name")
            if type(ev_name) is str and ev_name in EVENT_NAMES:
                try:
                    t = _json_time(e.get("timeUnixNano"), ".timeUnixNano")
                    ev_attrs = _json_attributes(e.get("attributes"), lim, problems)
                except _Bad as exc:
                    raise _Bad(f".events[{j}]{exc.where}", exc.what, exc.key) from None
                events.append((ev_name, t if t < _END_OF_TIME else 0, ev_attrs))
    norm.span(
        resource,
        scope,
        tid.hex(),
        sid.hex(),
        pid.hex() if pid and pid != _ZERO_SPAN else "",
        name,
        kind,
        start,
        end,
        code,
        message,
        attrs,
        events,
    )


def _json_id(sp: dict[str, Any], field: int, size: int) -> bytes:
    name = _JSON_FIELDS[field]
    value = sp.get(name)
    if value is None or value == "":
        snake = _PB_FIELDS[field]
        if snake in sp:
            raise _Bad(f".{name}", f"missing; OTLP/JSON field names are lowerCamelCase: {name}, not {snake}", "names")
        return b""  # reported as missing by _span_problem
    if type(value) is not str:
        raise _Bad(f".{name}", f"expected {size * 2} hex characters, got {_kind(value)}", f"{name}:type")
    if len(value) != size * 2:
        hint = " (OTLP/JSON ids are hex, not base64)" if len(value) == (size + 2) // 3 * 4 else ""
        raise _Bad(f".{name}", f"expected {size * 2} hex characters, got {len(value)}{hint}", f"{name}:length")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != size:  # not hex, or whitespace that fromhex skips
        raise _Bad(f".{name}", f"expected {size * 2} hex characters, got {value[:40]!r}", f"{name}:hex")
    return raw


def _json_time(value: Any, where: str) -> int:
    """Nanoseconds since the epoch as a string or a number; 0 when absent."""
    t = type(value)
    if t is int:
        n: int = value
    elif t is str and value.isascii() and value.isdigit():
        n = int(value) if len(value) < 30 else _END_OF_TIME
    elif t is float and value.is_integer():
        n = int(value)
    elif value is None:
        return 0
    else:
        raise _Bad(where, f"expected nanoseconds since the epoch as an integer, got {_kind(value)}", f"{where}:type")
    if n < 0:
        raise _Bad(where, f"expected nanoseconds since the epoch, got {n}", f"{where}:range")
    return n


def _json_enum(value: Any, names: dict[str, int], where: str, top: int) -> int:
    """An OTLP enum as its number (or, leniently, its name); unknown values read as 0."""
    if value is None:
        return 0
    t = type(value)
    if t is int:
        return value if 0 <= value <= top else 0
    if t is str:
        if value.isascii() and value.isdigit() and len(value) < 4:
            n = int(value)
            return n if n <= top else 0
        return names.get(value, 0)
    raise _Bad(where, f"expected an enum number, got {_kind(value)}", f"{where}:type")


_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_DOUBLE_NAMES = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _json_attributes(kvs: Any, lim: int, problems: Problems) -> dict[str, Any]:
    if kvs is None:
        return {}
    if type(kvs) is not list:
        raise _Bad("", f"expected an array of {{key, value}} objects, got {_kind(kvs)}", "attributes:type")
    if len(kvs) > _MAX_ATTRIBUTES:
        problems.add("attributes", f"kept the first {_MAX_ATTRIBUTES} attributes of a span, event or resource")
        kvs = kvs[:_MAX_ATTRIBUTES]
    out: dict[str, Any] = {}
    for kv in kvs:
        if type(kv) is not dict:
            raise _Bad(f"[{_index(kvs, kv)}]", f"expected a {{key, value}} object, got {_kind(kv)}", "attribute:type")
        key = kv.get("key")
        if type(key) is not str:
            if key is not None:
                raise _Bad(f"[{_index(kvs, kv)}].key", f"expected a string, got {_kind(key)}", "key:type")
            key = ""
        v = kv.get("value")
        if type(v) is dict:
            s = v.get("stringValue")
            if type(s) is str:  # the common case
                out[key] = s if len(s) <= lim else truncate(s, lim)
                continue
        try:
            out[key] = _json_value(v, lim, 0)
        except _Bad as exc:
            raise _Bad(f"[{_index(kvs, kv)}] ({key[:100]!r}).value{exc.where}", exc.what, exc.key) from None
    return out


def _index(items: list[Any], item: object) -> int:
    # Error path only: the hot loops do not pay for enumerate().
    return next(i for i, x in enumerate(items) if x is item)


def _json_value(v: Any, lim: int, depth: int) -> Any:
    """An OTLP/JSON ``AnyValue`` as a plain value (bytes stay base64 text); None when empty."""
    if type(v) is not dict:
        if v is None:
            return None
        raise _Bad("", f'expected an AnyValue object such as {{"stringValue": "..."}}, got {_kind(v)}', "value:type")
    x = v.get("stringValue")
    if x is not None:
        if type(x) is not str:
            raise _Bad(".stringValue", f"expected a string, got {_kind(x)}", "stringValue:type")
        return x if len(x) <= lim else truncate(x, lim)
    x = v.get("intValue")
    if x is not None:
        t = type(x)
        if (t is str and x.isascii() and x.lstrip("-").isdigit() and len(x) < 30) or (t is float and x.is_integer()):
            x = int(x)
        elif t is not int:
            raise _Bad(".intValue", f"expected an integer (as a string or number), got {_kind(x)}", "intValue:type")
        if not _INT64_MIN <= x <= _INT64_MAX:
            raise _Bad(".intValue", f"{x} does not fit in 64 bits", "intValue:range")
        return x
    x = v.get("doubleValue")
    if x is not None:
        t = type(x)
        if t is float or t is int:
            return float(x)
        if t is str:
            named = _DOUBLE_NAMES.get(x)
            if named is not None:
                return named
            try:
                return float(x)
            except ValueError:
                pass
        raise _Bad(".doubleValue", f"expected a number, got {_kind(x)}", "doubleValue:type")
    x = v.get("boolValue")
    if x is not None:
        if type(x) is not bool:
            raise _Bad(".boolValue", f"expected true or false, got {_kind(x)}", "boolValue:type")
        return x
    x = v.get("arrayValue")
    if x is not None:
        values = _json_values(x, ".arrayValue")
        if depth >= _MAX_DEPTH:
            return _TOO_DEEP
        items = []
        for k, item in enumerate(values[:_MAX_ITEMS]):
            try:
                items.append(_json_value(item, lim, depth + 1))
            except _Bad as exc:
                raise _Bad(f".arrayValue.values[{k}]{exc.where}", exc.what, exc.key) from None
        if len(values) > _MAX_ITEMS:
            items.append(f"…[truncated {len(values) - _MAX_ITEMS} items]")
        return items
    x = v.get("kvlistValue")
    if x is not None:
        entries = _json_values(x, ".kvlistValue")
        if depth >= _MAX_DEPTH:
            return _TOO_DEEP
        out: dict[str, Any] = {}
        for k, kv in enumerate(entries[:_MAX_ITEMS]):
            key = kv.get("key") if type(kv) is dict else None
            if type(key) is not str:
                raise _Bad(f".kvlistValue.values[{k}]", "expected a {key, value} object", "kvlist:type")
            try:
                out[key] = _json_value(kv.get("value"), lim, depth + 1)
            except _Bad as exc:
                raise _Bad(f".kvlistValue.values[{k}].value{exc.where}", exc.what, exc.key) from None
        if len(entries) > _MAX_ITEMS:
            out["…"] = f"[truncated {len(entries) - _MAX_ITEMS} entries]"
        return out
    x = v.get("bytesValue")
    if x is not None:
        if type(x) is not str:
            raise _Bad(".bytesValue", f"expected base64 text, got {_kind(x)}", "bytesValue:type")
        return x if len(x) <= lim else truncate(x, lim)
    return None


def _json_values(container: Any, where: str) -> list[Any]:
    if type(container) is not dict:
        raise _Bad(where, f'expected an object with "values", got {_kind(container)}', f"{where}:type")
    values = container.get("values")
    if values is None:
        return []
    if type(values) is not list:
        raise _Bad(f"{where}.values", f"expected an array, got {_kind(values)}", f"{where}:type")
    return values
