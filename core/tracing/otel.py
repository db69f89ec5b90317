"""Tracing switched on: the OpenTelemetry SDK, a batch processor and the OTLP/HTTP exporter.

Imported by :func:`core.tracing.configure` only when an OTLP endpoint is set. The SDK
reads its standard variables itself (endpoint, headers, timeout, ``OTEL_TRACES_SAMPLER``,
``OTEL_BSP_*``, ``OTEL_RESOURCE_ATTRIBUTES``...). Spans are exported from the batch
processor's thread, so a request never waits for the receiver; when the receiver is down
the batch is dropped and one warning a minute says so.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from loguru import logger
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from core.contract.errors import ConfigError
from core.tracing import (
    DEFAULT_SERVICE_NAME,
    ENDPOINT_VARIABLES,
    RECORD_CONTENT_VARIABLE,
    Attributes,
    AttributeValue,
    SpanKind,
    Tracing,
    parse_traceparent,
)
from core.tracing.complaints import Complaints, ToComplaints
from core.tracing.otlp_proto import encode_request

_KINDS: dict[str, trace.SpanKind] = {
    "internal": trace.SpanKind.INTERNAL,
    "server": trace.SpanKind.SERVER,
    "client": trace.SpanKind.CLIENT,
    "producer": trace.SpanKind.PRODUCER,
    "consumer": trace.SpanKind.CONSUMER,
}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def _header(span_context: SpanContext) -> str:
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
        f"-{int(span_context.trace_flags) & 1:02x}"
    )


_UNSET = Status(StatusCode.UNSET)


@dataclass(frozen=True, slots=True)
class _Recorder:
    """Where finished spans go: the provider's sampler and resource, the batch processor."""

    sampler: Sampler
    resource: Resource
    processor: SpanProcessor
    scope: InstrumentationScope
    mask: Callable[[str], str]


def _new_id(bits: int) -> int:
    while True:  # zero is the invalid id
        value = random.getrandbits(bits)
        if value:
            return value


class _Scope:
    """One span around a ``with`` block: current inside it, handed to the batch processor
    when it is left.

    Leaner than the SDK's ``Tracer.start_span``: a span keeps its attributes in a plain dict
    and becomes an SDK ``ReadableSpan`` (what processors and the OTLP exporter take) only
    when it ends. The SDK's span cost more CPU than the rest of a request's tracing (a
    lock, attribute cleaning and metrics per call); the export path is the SDK's own. The
    sampler decides for a root span and for a span continuing a remote parent; a local
    child takes its parent's decision (what the default ``parentbased_*`` samplers do).
    """

    __slots__ = (
        "_attributes",
        "_context",
        "_events",
        "_kind",
        "_name",
        "_parent",
        "_parent_span",
        "_recorder",
        "_start",
        "_status",
        "_token",
        "recording",
    )

    def __init__(
        self,
        recorder: _Recorder,
        name: str,
        kind: trace.SpanKind,
        parent: otel_context.Context | None,
        attributes: Attributes | None,
    ) -> None:
        self._recorder = recorder
        self._name = name
        self._kind = kind
        self._parent = parent
        self._attributes: Any = attributes
        self._context: SpanContext | None = None
        self._parent_span: SpanContext | None = None
        self._events: list[Event] | None = None
        self._status = _UNSET
        self._start = 0
        self._token: object = None
        self.recording = False

    def __enter__(self) -> _Scope:
        parent = self._parent
        current = trace.get_current_span(parent).get_span_context()
        if current.is_valid and not current.is_remote:
            trace_id = current.trace_id
            sampled = current.trace_flags.sampled
        else:
            trace_id = current.trace_id if current.is_valid else _new_id(128)
            decision = self._recorder.sampler.should_sample(
                parent, trace_id, self._name, self._kind, self._attributes
            ).decision
            sampled = decision.is_sampled()
        self._parent_span = current if current.is_valid else None
        self._context = context = SpanContext(
            trace_id,
            _new_id(64),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT),
        )
        self.recording = sampled
        self._attributes = dict(self._attributes) if sampled and self._attributes else {}
        self._start = time.time_ns()
        self._token = otel_context.attach(
            trace.set_span_in_context(NonRecordingSpan(context), parent)
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        except Exception:  # left in another context (an abandoned generator): harmless
            pass
        if not self.recording:
            return
        if exc is not None:
            if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                self._attributes["eneca.cancelled"] = True
            else:
                kind = type(exc)
                self.add_event(
                    "exception",
                    {
                        "exception.type": f"{kind.__module__}.{kind.__qualname__}",
                        "exception.message": self._recorder.mask(str(exc))[:500],
                    },
                )
                self._status = Status(StatusCode.ERROR, kind.__name__)
        recorder = self._recorder
        recorder.processor.on_end(
            ReadableSpan(
                self._name,
                self._context,
                parent=self._parent_span,
                resource=recorder.resource,
                attributes=self._attributes,
                events=self._events or (),
                kind=self._kind,
                status=self._status,
                start_time=self._start,
                end_time=time.time_ns(),
                instrumentation_scope=recorder.scope,
            )
        )

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self.recording:
            self._attributes[key] = value

    def set_attributes(self, attributes: Attributes) -> None:
        if self.recording:
            self._attributes.update(attributes)

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        if self.recording:
            if self._events is None:
                self._events = []
            self._events.append(Event(name, attributes))

    def set_error(self, description: str) -> None:
        self._status = Status(StatusCode.ERROR, description)

    @property
    def traceparent(self) -> str | None:
        return None if self._context is None else _header(self._context)


def _remote_context(traceparent: str) -> otel_context.Context | None:
    """A context whose current span is the stored one (``None`` when it is invalid)."""
    stored = parse_traceparent(traceparent)
    if stored is None:
        return None
    remote = SpanContext(
        stored.trace_id,
        stored.span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if stored.sampled else 0),
    )
    return trace.set_span_in_context(NonRecordingSpan(remote), otel_context.Context())


class _Attached:
    """A stored trace context made current for a ``with`` block."""

    __slots__ = ("_context", "_token")

    def __init__(self, context: otel_context.Context) -> None:
        self._context = context
        self._token: object = None

    def __enter__(self) -> _Attached:
        self._token = otel_context.attach(self._context)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        except Exception:
            pass


class _ReportingExporter(SpanExporter):
    """The OTLP exporter, whose failures become :class:`Complaints` (one a minute)."""

    def __init__(self, inner: SpanExporter, endpoint: str, complain: Complaints) -> None:
        self._inner = inner
        self._endpoint = endpoint
        self._complain = complain
        self.failed_batches = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        why = "unreachable, or it refused them"
        try:
            # The SDK exporter's HTTP client (endpoint, headers, compression, retries)
            # with our encoding (core.tracing.otlp_proto); the exporter's own way when a
            # future SDK has no such client.
            client = getattr(self._inner, "_client", None)
            if client is not None and callable(getattr(client, "export", None)):
                outcome = client.export(encode_request(spans))
                result = SpanExportResult.SUCCESS if outcome.success else SpanExportResult.FAILURE
                if not outcome.success and getattr(outcome, "status_code", None):
                    why = f"HTTP {outcome.status_code}"
            else:
                result = self._inner.export(spans)
        except Exception as exc:
            result = SpanExportResult.FAILURE
            why = f"{type(exc).__name__}: {exc}"
        if result is not SpanExportResult.SUCCESS:
            self.failed_batches += 1
            self._complain(
                f"could not export {len(spans)} span(s) to {self._endpoint} ({why}); "
                "they are dropped, answers are not affected"
            )
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _Resource(Resource):
    """The process's resource, hashed once. The OTLP encoder groups each batch's spans by
    resource, and ``Resource.__hash__`` JSON-dumps every attribute: per span, that was
    a sixth of the CPU tracing cost."""

    def __init__(self, attributes: Mapping[str, Any], schema_url: str | None = None) -> None:
        super().__init__(dict(attributes), schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)


def _resource(version: str) -> Resource:
    """``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` (the SDK reads them), with
    ``service.name`` defaulting to eneca-bot and ``service.version`` to ours."""
    detected = Resource.create()
    attributes: dict[str, Any] = dict(detected.attributes)
    if str(attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        attributes[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    attributes.setdefault(SERVICE_VERSION, version)
    return _Resource(attributes, detected.schema_url)


def _header_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values of the exporter's headers (``Authorization=Basic ...``): secrets to mask."""
    found: list[str] = []
    for name in ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
        for pair in environ.get(name, "").split(","):
            _, _, value = pair.partition("=")
            value = unquote(value).strip()
            if value:
                found += [value, *value.split()[1:]]  # "Basic abc": the token alone too
    return found


class OtelTracing(Tracing):
    """Tracing on: spans from one SDK ``TracerProvider`` of this process."""

    enabled = True

    def __init__(
        self,
        provider: TracerProvider,
        processor: SpanProcessor,
        exporter: _ReportingExporter,
        *,
        record_content: bool,
        mask: Callable[[str], str],
        complaints: Complaints,
    ) -> None:
        self.provider = provider
        self.exporter = exporter
        self.record_content = record_content
        self.complaints = complaints
        self._mask = mask
        version = provider.resource.attributes.get(SERVICE_VERSION)
        self._recorder = _Recorder(
            provider.sampler,
            provider.resource,
            processor,
            InstrumentationScope("eneca-bot", str(version) if version else None),
            mask,
        )
        self._log_bridge = ToComplaints(complaints, mask)
        sdk_logger = logging.getLogger("opentelemetry")
        self._sdk_propagate = sdk_logger.propagate
        sdk_logger.addHandler(self._log_bridge)
        sdk_logger.propagate = False

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str],
        *,
        version: str,
        mask: Callable[[str], str] | None = None,
        add_secret: Callable[..., None] | None = None,
    ) -> OtelTracing:
        record = environ.get(RECORD_CONTENT_VARIABLE, "").strip().lower()
        if record not in _TRUE + _FALSE:
            raise ConfigError(f"{RECORD_CONTENT_VARIABLE}: expected true or false, got {record!r}")
        if add_secret is not None:
            add_secret(*_header_secrets(environ))
        endpoint = next(
            environ[n].strip() for n in ENDPOINT_VARIABLES if environ.get(n, "").strip()
        )
        complaints = Complaints()
        inner = OTLPSpanExporter()
        # The exporter appends /v1/traces to the generic endpoint itself.
        shown = str(getattr(inner, "_endpoint", endpoint))
        exporter = _ReportingExporter(inner, shown, complaints)
        provider = TracerProvider(resource=_resource(version))
        processor = BatchSpanProcessor(exporter)
        provider.add_span_processor(processor)
        tracing = cls(
            provider,
            processor,
            exporter,
            record_content=record in _TRUE,
            mask=mask or (lambda text: text),
            complaints=complaints,
        )
        logger.info(
            "tracing: exporting spans to {} as service {} (sampler {}){}",
            shown,
            provider.resource.attributes.get(SERVICE_NAME),
            provider.sampler.get_description(),
            "; message content is recorded" if tracing.record_content else "",
        )
        return tracing

    def span(
        self,
        name: str,
        *,
        kind: SpanKind = "internal",
        parent: str | None = None,
        attributes: Attributes | None = None,
    ) -> _Scope:
        parent_context = None if parent is None else _remote_context(parent)
        return _Scope(self._recorder, name, _KINDS[kind], parent_context, attributes)

    def resume(self, traceparent: str | None) -> AbstractContextManager[object]:
        stored = None if traceparent is None else _remote_context(traceparent)
        return nullcontext() if stored is None else _Attached(stored)

    def traceparent(self) -> str | None:
        span_context = trace.get_current_span().get_span_context()
        return _header(span_context) if span_context.is_valid else None

    def log_ids(self) -> tuple[str, str] | None:
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid:
            return None
        return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"

    def content(self, text: str) -> str | None:
        return self._mask(text) if self.record_content else None

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self, timeout_s: float = 5.0) -> None:
        try:
            self.provider.force_flush(int(timeout_s * 1000))
            self.provider.shutdown()
        finally:
            sdk_logger = logging.getLogger("opentelemetry")
            sdk_logger.removeHandler(self._log_bridge)
            sdk_logger.propagate = self._sdk_propagate
