"""The collector's HTTP API: OTLP ingest, feedback, queries and health, on FastAPI.

``create_app(settings)`` builds everything; the lifespan opens storage (running
migrations), the write-ahead log and the writer thread, and closes them in reverse order
on shutdown after the writer has drained what it can. A request is acknowledged only once
its rows are durable in the log.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from llmpulse._cost import PriceBook
from llmpulse._otlp import _varint as varint
from llmpulse._refusal import RefusalDetector
from llmpulse._version import __version__

from .auth import AuthMiddleware, KeyStore, TokenBucket
from .export.aggregate import Aggregator
from .export.datadog import DatadogExporter
from .export.health import Health
from .export.prometheus import WalGauges, build_registry, render
from .ingest import DecodeResult, Limits, PayloadError
from .ingest.otlp import decode_traces, encode_response
from .normalize import ModelNames
from .priority import favour_waiting_threads, has_cap_sys_nice, lower_thread_priority
from .settings import Settings
from .storage import StorageError, StorageUnavailable, Store, queries
from .storage.migrations import migrate
from .wal import WalError, WalFull, WriteAheadLog
from .writer import Columns, Native, Writer, encode_entry

__all__ = ["create_app"]

log = structlog.get_logger("llmpulse.collector")

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
GROUP_KEYS = ("service", "model", "provider", "prompt_name", "prompt_version", "environment", "operation")


class ApiError(Exception):
    """A client error with a readable message (400, 404, 413, ...)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Collector:
    """What the routes share: settings, storage, the log, the writer, pricing, metrics."""

    settings: Settings
    store: Store
    wal: WriteAheadLog
    writer: Writer
    limits: Limits
    prices: PriceBook
    refusals: RefusalDetector
    started_at: float
    aggregator: Aggregator
    health: Health
    wal_gauges: Callable[[], WalGauges]
    datadog: DatadogExporter | None = None
    # What each request model was last answered as, so failed calls get the same ``model``.
    models: ModelNames = field(default_factory=ModelNames)
    # Decoding OTLP bodies, at the ingest threads' priority (``Settings.ingest_nice``).
    decode_pool: ThreadPoolExecutor | None = None

    def insert(self, table: str, data: Columns | Native, token: str) -> None:
        if isinstance(data, Native):
            self.store.insert_native(table, data.names, data.data, rows=data.count, dedup_token=token)
        else:
            self.store.insert_columns(table, data.names, data.values, dedup_token=token)


def _status_body(code: int, message: str, json: bool) -> tuple[bytes, str]:
    """A google.rpc.Status, as OTLP/HTTP asks for error responses, in the request's encoding."""
    if json:
        import orjson

        return orjson.dumps({"code": code, "message": message}), "application/json"
    raw = message.encode("utf-8", "replace")
    return b"\x08" + varint(code) + b"\x12" + varint(len(raw)) + raw, "application/x-protobuf"


# gRPC status codes used in OTLP error bodies.
_GRPC = {400: 3, 413: 8, 415: 3, 429: 8, 503: 14}
# HTTP status of a refused request -> reason in llmpulse_collector_requests_rejected_total.
_REASONS = {400: "bad_request", 413: "too_large", 415: "unsupported_media_type"}


def _is_json(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";")[0].strip().lower() == "application/json"  # type: ignore[union-attr]


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) before reading past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"invalid Content-Length header: {declared!r}") from None
        if size > limit:
            raise ApiError(
                413, f"request body of {size} bytes is over the limit of {limit} bytes; send smaller batches"
            )
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes; send smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)


class FeedbackIn(BaseModel):
    """A product signal tied to a traced call."""

    trace_id: str | None = Field(None, description="32 hex characters")
    response_id: str | None = Field(None, max_length=256, description="a provider response id (chatcmpl-..., msg_...)")
    name: str = Field(min_length=1, max_length=200, description="e.g. thumbs_up, converted, rating")
    value: float = Field(description="1/0 for thumbs, any finite number for ratings")
    comment: str | None = Field(None, max_length=10_000)
    timestamp: float | None = Field(
        None, ge=0, le=4_102_444_800, description="seconds since the epoch, before 2100; default: now"
    )

    @field_validator("trace_id")
    @classmethod
    def _trace_id(cls, v: str | None) -> str | None:
        if v is not None:
            v = v.strip().lower()
            if not _HEX32.match(v):
                raise ValueError("trace_id must be 32 hexadecimal characters")
        return v

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v

    @model_validator(mode="after")
    def _one_id(self) -> FeedbackIn:
        if not self.trace_id and not self.response_id:
            raise ValueError("give trace_id or response_id")
        return self


def _csv(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or ():
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def get_collector(request: Request) -> Collector:
    collector: Collector = request.app.state.collector
    return collector


def project_of(request: Request) -> str:
    """The request's project: the API key's (set by ``AuthMiddleware``), or the default one without keys."""
    project: str = request.state.project
    return project


# Module level, so FastAPI can resolve them under `from __future__ import annotations`.
Dep = Annotated[Collector, Depends(get_collector)]
Project = Annotated[str, Depends(project_of)]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The collector as an ASGI app (storage, log and writer are opened by the lifespan)."""
    cfg = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        collector = await run_in_threadpool(_open, cfg)
        app.state.collector = collector
        app.state.demo = _start_demo(cfg) if cfg.demo else None
        log.info(
            "collector_started",
            storage=_safe_dsn(cfg.storage_dsn),
            wal=str(cfg.wal_path),
            pending=collector.wal.pending_entries,
        )
        try:
            yield
        finally:
            if app.state.demo is not None:  # stopped already on a signal by `llmpulse serve`; harmless twice
                await run_in_threadpool(stop_demo, app.state.demo)
            await run_in_threadpool(_close, collector)

    app = FastAPI(
        title="llmpulse collector",
        version=__version__,
        description="OTLP/HTTP ingest of LLM spans, durable log, ClickHouse storage and query API.",
        lifespan=lifespan,
    )
    limit = TokenBucket(cfg.rate_limit_rps, cfg.rate_limit_burst) if cfg.rate_limit_rps > 0 else None
    app.add_middleware(AuthMiddleware, keys=KeyStore(cfg.data_dir), default_project=cfg.project, limit=limit)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse({"error": "; ".join(problems) or "invalid request"}, status_code=400)

    @app.post(
        "/v1/traces",
        summary="OTLP/HTTP trace export (protobuf or JSON, optionally gzip)",
        responses={
            400: {"description": "undecodable payload"},
            413: {"description": "too large"},
            415: {"description": "unsupported content type"},
            503: {"description": "log full, retry"},
        },
    )
    async def v1_traces(request: Request, collector: Dep, project: Project) -> Response:
        content_type = request.headers.get("content-type")
        as_json = _is_json(content_type)
        protocol = "otlp_json" if as_json else "otlp_protobuf"
        health = collector.health
        try:
            body = await _read_body(request, collector.limits.max_body_bytes)
            result, payload = await asyncio.get_running_loop().run_in_executor(
                collector.decode_pool,
                _decode_and_encode,
                body,
                content_type,
                request.headers.get("content-encoding"),
                project,
                collector,
            )
        except (PayloadError, ApiError) as exc:
            health.inc("requests_rejected", protocol, _REASONS.get(exc.status, str(exc.status)))
            return _otlp_error(exc.status, exc.message, as_json)
        accepted = len(result.spans)
        health.inc("spans_received", protocol, n=accepted + result.rejected)
        health.inc("spans_rejected", protocol, "invalid", n=result.rejected)
        if payload is not None:
            record = collector.aggregator.record_spans
            refused = await _append(
                collector, "traces", payload, then=lambda: record(project, result.spans, result.assertions)
            )
            if refused is not None:
                reason, error = refused
                health.inc("requests_rejected", protocol, reason)
                health.inc("spans_rejected", protocol, reason, n=accepted)
                return _otlp_error(503, error, as_json, retry_after=cfg.retry_after_s)
            health.inc("spans_accepted", protocol, n=accepted)
        message = "; ".join(result.errors)[:2000]
        return Response(
            encode_response(result.rejected, message, json=as_json),
            media_type="application/json" if as_json else "application/x-protobuf",
        )

    @app.post("/v1/feedback", summary="Record a product signal (thumbs up, conversion, rating) for a trace")
    async def v1_feedback(item: FeedbackIn, collector: Dep, project: Project) -> dict[str, str]:
        now = time.time()
        row = {
            "project": project,
            "time": int((item.timestamp if item.timestamp is not None else now) * 1000),
            "trace_id": item.trace_id or "",
            "response_id": item.response_id or "",
            "name": item.name,
            "value": item.value,
            "comment": item.comment or "",
        }
        record = collector.aggregator.record_feedback
        refused = await _append(
            collector, "feedback", encode_entry({"feedback": [row]}), then=lambda: record(project, [row])
        )
        if refused is not None:
            collector.health.inc("requests_rejected", "feedback", refused[0])
            raise ApiError(503, refused[1], {"Retry-After": str(cfg.retry_after_s)})
        collector.health.inc("feedback_accepted")
        return {"status": "accepted"}

    @app.get("/api/stats", summary="Windowed LLM aggregates by service, model, prompt version ...")
    async def api_stats(
        collector: Dep,
        project: Project,
        window: Annotated[int, Query(ge=60, le=90 * 86400, description="seconds back from now")] = 3600,
        service: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        prompt_version: str | None = None,
        environment: str | None = None,
        group_by: Annotated[list[str] | None, Query(description="one or more of " + ", ".join(GROUP_KEYS))] = None,
    ) -> dict[str, Any]:
        keys = _csv(group_by) or ["service", "model"]
        bad = [k for k in keys if k not in GROUP_KEYS]
        if bad:
            raise ApiError(400, f"group_by: {', '.join(bad)} not allowed; use {', '.join(GROUP_KEYS)}")
        filters = {
            k: v
            for k, v in (
                ("service", service),
                ("model", model),
                ("provider", provider),
                ("prompt_version", prompt_version),
                ("environment", environment),
            )
            if v
        }
        groups = await _query(queries.stats, collector.store, project, window_s=window, filters=filters, group_by=keys)
        return {"window_s": window, "group_by": keys, "groups": groups}

    @app.get("/api/traces", summary="Recent traces, newest first (keyset pagination with `before`)")
    async def api_traces(
        collector: Dep,
        project: Project,
        service: str | None = None,
        model: str | None = None,
        refusal: bool | None = None,
        failed_assertion: str | None = None,
        since: Annotated[float | None, Query(ge=0, le=4_102_444_800, description="unix seconds")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[str | None, Query(description="cursor from the previous page's next_before")] = None,
    ) -> dict[str, Any]:
        cursor = None
        if before:
            try:
                start, tid = before.split(":", 1)
                cursor = (int(start), tid)
                if not _HEX32.match(tid) or not 0 <= cursor[0] < 1 << 63:
                    raise ValueError
            except ValueError:
                raise ApiError(400, "before: expected the next_before cursor of a previous page") from None
        rows = await _query(
            queries.traces,
            collector.store,
            project,
            service=service,
            model=model,
            refusal=refusal,
            failed_assertion=failed_assertion,
            since_ns=int(since * 1e9) if since is not None else None,
            limit=limit,
            before=cursor,
        )
        next_before = None
        if len(rows) == limit:
            last = rows[-1]
            next_before = f"{last['start']}:{last['trace_id']}"
        return {"traces": rows, "next_before": next_before}

    @app.get("/api/traces/{trace_id}", summary="Every span of one trace, with assertions and content")
    async def api_trace(
        trace_id: str,
        collector: Dep,
        project: Project,
        around: Annotated[
            int | None,
            Query(
                ge=1,
                le=2**63 - 1,
                description="a time inside the trace in unix ns (the listing's start): reads only spans "
                "within an hour of it, found by time instead of by searching every day",
            ),
        ] = None,
    ) -> dict[str, Any]:
        tid = trace_id.strip().lower()
        if not _HEX32.match(tid):
            raise ApiError(400, "trace_id must be 32 hexadecimal characters")
        trace = await _query(queries.trace, collector.store, project, tid, around_ns=around)
        if trace is None:
            raise ApiError(404, f"no trace {tid} in this project")
        result: dict[str, Any] = trace
        return result

    @app.get(
        "/metrics",
        summary="Prometheus exposition: LLM aggregates and the collector's health (see the README's table)",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics(request: Request, collector: Dep, project: Project) -> Response:
        registry = build_registry(
            collector.aggregator, collector.health, collector.wal_gauges, project=project, version=__version__
        )
        body, content_type = await run_in_threadpool(render, registry, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Storage reachable and the log writable")
    async def readyz(collector: Dep) -> Response:
        storage_ok = await run_in_threadpool(collector.store.ping)
        # Not ready once the log is 90% full: a load balancer should send traffic elsewhere
        # before this collector has to answer 503.
        wal_ok = collector.wal.bytes_used < cfg.wal_max_bytes * 0.9
        body = {
            "storage": storage_ok,
            "wal": wal_ok,
            "wal_pending": collector.wal.pending_entries,
            "wal_bytes": collector.wal.bytes_used,
            "wal_oldest_age_s": round(collector.wal.oldest_age_s(), 3),
        }
        return JSONResponse(body, status_code=200 if storage_ok and wal_ok else 503)

    return app


def _decode_and_encode(
    body: bytes, content_type: str | None, content_encoding: str | None, project: str, collector: Collector
) -> tuple[DecodeResult, bytes | None]:
    """A request's rows and their log payload (None when it has no rows), in one worker thread."""
    result = decode_traces(
        body,
        content_type=content_type,
        content_encoding=content_encoding,
        project=project,
        limits=collector.limits,
        prices=collector.prices,
        refusals=collector.refusals,
        models=collector.models,
    )
    if not result.spans and not result.assertions:
        return result, None
    return result, encode_entry({"spans": result.spans, "assertions": result.assertions})


def _otlp_error(status: int, message: str, as_json: bool, retry_after: int | None = None) -> Response:
    body, media = _status_body(_GRPC.get(status, 2), message, as_json)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(body, status_code=status, media_type=media, headers=headers)


async def _append(collector: Collector, kind: str, payload: bytes, then: Any = None) -> tuple[str, str] | None:
    """Append to the log, then (once durable) run ``then`` (the metrics), in one worker thread.

    None when acknowledged, else ``(reason, message)`` for a 503.
    """
    try:
        await run_in_threadpool(_append_sync, collector.wal, kind, payload, then)
    except WalFull:
        log.warning("wal_full", bytes=collector.wal.bytes_used)
        return "wal_full", "the collector's write-ahead log is full (storage is behind); retry later"
    except TimeoutError:
        return "wal_error", "the write-ahead log did not commit in time; retry later"
    except WalError as exc:  # closed during shutdown, or an I/O error: not acknowledged, the client retries
        log.warning("wal_append_failed", error=str(exc))
        return "wal_error", f"the write-ahead log could not take the request ({exc}); retry later"
    collector.writer.wake()
    return None


def _append_sync(wal: WriteAheadLog, kind: str, payload: bytes, then: Any) -> None:
    wal.append(kind, payload)
    if then is not None:
        try:
            then()
        except Exception:  # metrics must never turn an acknowledged request into an error
            log.exception("metrics_record_failed")


async def _query(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    except StorageUnavailable as exc:
        raise ApiError(503, f"storage unavailable: {exc}") from None
    except StorageError as exc:
        log.exception("query_failed")
        raise ApiError(503, f"storage error: {exc}") from None


def _safe_dsn(dsn: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", dsn)


def _check_engine_priorities(cfg: Settings, store: Store) -> None:
    """Say when the embedded engine's threads will not run at the nice values asked for."""
    if not store.embedded:
        return
    if store.merge_nice is not None and store.merge_nice != cfg.merge_nice:
        log.warning(
            "merge_priority_unchanged",
            asked=cfg.merge_nice,
            running=store.merge_nice,
            reason="the embedded engine was already running in this process",
        )
    elif (cfg.merge_nice or cfg.ingest_nice) and not has_cap_sys_nice():
        # A warning when asked for; the default merge priority not taking is only worth a note.
        asked = cfg.ingest_nice or "merge_nice" in cfg.model_fields_set
        (log.warning if asked else log.info)(
            "engine_priority_unchanged",
            merge_nice=cfg.merge_nice,
            ingest_nice=cfg.ingest_nice,
            reason="without CAP_SYS_NICE ClickHouse leaves its threads at nice 0 (merges, and inserts' own threads)",
        )


def _open(cfg: Settings) -> Collector:
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.connect(
        cfg.storage_dsn,
        database=cfg.database,
        retention_days=cfg.retention_days,
        cluster=cfg.cluster,
        readers=cfg.query_readers,
        insert_nice=cfg.ingest_nice,
        merge_nice=cfg.merge_nice,
    )
    _check_engine_priorities(cfg, store)
    try:
        migrate(store)
        wal = WriteAheadLog(cfg.wal_path, max_bytes=cfg.wal_max_bytes, fsync=cfg.wal_fsync)
    except BaseException:
        store.close()
        raise
    collector = Collector(
        settings=cfg,
        store=store,
        wal=wal,
        writer=None,  # type: ignore[arg-type]
        limits=Limits(
            max_body_bytes=cfg.max_body_bytes,
            max_decompressed_bytes=cfg.max_decompressed_bytes,
            max_spans_per_request=cfg.max_spans_per_request,
            max_attribute_chars=cfg.max_attribute_chars,
            max_content_chars=cfg.max_content_chars,
            retention_days=cfg.retention_days,
        ),
        prices=PriceBook(),
        refusals=RefusalDetector(),
        started_at=time.time(),
        aggregator=Aggregator(cfg.metrics_series_cap),
        health=Health(),
        wal_gauges=lambda: WalGauges(wal.bytes_used, wal.max_bytes, wal.pending_entries, wal.oldest_age_s()),
    )
    # What models were answered as in the last hour, so failures right after a restart are named
    # like their siblings. Best effort: without it they carry the request name until an answer.
    try:
        collector.models.seed(
            queries.model_answers(store, since_ns=time.time_ns() - 3600 * 10**9, limit=collector.models.capacity)
        )
    except StorageError as exc:
        log.warning("model_names_not_seeded", error=str(exc))
    wal_gauges = collector.wal_gauges
    collector.datadog = DatadogExporter.from_environment(
        collector.aggregator,
        collector.health,
        prefix=cfg.datadog_prefix,
        tags=[t.strip() for t in cfg.datadog_tags.split(",") if t.strip()],
        flush_interval=cfg.datadog_flush_interval,
        max_samples=cfg.datadog_max_samples,
        wal=wal_gauges,
    )
    if collector.datadog is not None:
        collector.aggregator.on_samples = collector.datadog.add_samples
        collector.datadog.start()
    health = collector.health

    def on_error(exc: BaseException) -> None:
        if isinstance(exc, StorageUnavailable):
            health.inc("storage_errors", "unavailable")
        elif isinstance(exc, StorageError):
            health.inc("storage_errors", "error")
        else:
            health.inc("storage_errors", "wal_read")

    collector.writer = Writer(
        wal,
        collector.insert,
        max_entries=cfg.writer_batch_entries,
        max_bytes=cfg.writer_batch_bytes,
        linger=cfg.writer_linger_s,
        quiet=cfg.writer_quiet_s,
        nice=cfg.ingest_nice,
        on_batch=health.insert_done,
        on_error=on_error,
        dead_letter=cfg.data_dir / "dead-letter.jsonl",
        on_dead_letter=lambda table, n: health.inc("dead_lettered_rows", table, n=n),
    )
    collector.writer.start()
    if cfg.ingest_nice:
        favour_waiting_threads()  # else a request thread waits for the GIL whatever its priority
    # Two threads: decoding holds the GIL, so more would only queue; bodies wait their turn here.
    collector.decode_pool = ThreadPoolExecutor(
        2, thread_name_prefix="llmpulse-decode", initializer=lower_thread_priority, initargs=(cfg.ingest_nice,)
    )
    return collector


def _close(collector: Collector) -> None:
    if collector.decode_pool is not None:
        collector.decode_pool.shutdown(wait=True)
    drained = collector.writer.stop(timeout=15.0)
    if not drained:
        log.warning("writer_not_drained", pending=collector.wal.pending_entries)
    if collector.datadog is not None:
        collector.datadog.stop()  # a last flush, with the writer's final counts, then close the socket
    collector.wal.close()
    collector.store.close()
    log.info("collector_stopped", drained=drained)


def _start_demo(cfg: Settings) -> Any:
    import llmpulse
    from llmpulse._demo import DemoApp

    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    llmpulse.init(
        service="demo-support-bot",
        endpoint=f"http://{host}:{cfg.port}",
        environment="demo",
        release=__version__,
        export_interval=0.5,
    )
    app = DemoApp(rate=cfg.demo_rate)
    app.start()
    return app


def stop_demo(app: Any) -> None:
    """Stop the demo's traffic and flush its SDK (idempotent)."""
    import llmpulse

    app.stop()
    llmpulse.shutdown(5.0)
