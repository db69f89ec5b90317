"""Tracing: OpenTelemetry spans when an OTLP endpoint is configured, nothing when not.

Code that wants a span writes::

    from core import tracing

    with tracing.span("telegram.send", kind="client", attributes={"telegram.chat": 5}) as span:
        ...
        span.set_attribute("http.response.status_code", 200)

Tracing is switched on by the standard variables ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (see docs/tracing.md) when ``eneca-bot serve``
starts. Off, this module imports no OpenTelemetry module: :func:`span` returns one shared
do-nothing object, so a call site costs a function call. On, :mod:`core.tracing.otel`
(the SDK, a batch processor, the OTLP/HTTP exporter) does the work.

Tracing is per process, like logging: the first gateway a process serves configures it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

from core.tracing.context import TraceParent, parse_traceparent

__all__ = [
    "NOOP_SPAN",
    "Span",
    "SpanKind",
    "SpanScope",
    "TraceParent",
    "Tracing",
    "active",
    "configure",
    "hashed",
    "parse_traceparent",
    "resume",
    "shutdown",
    "span",
    "traceparent",
]

AttributeValue = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float]
Attributes = Mapping[str, AttributeValue]
SpanKind = Literal["internal", "server", "client", "producer", "consumer"]

#: Variables that switch tracing on (either; the second wins for traces, as in the SDK).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: ``true``: prompts and completions (secrets masked) go into the model-call spans.
RECORD_CONTENT_VARIABLE = "OTEL_RECORD_CONTENT"
DEFAULT_SERVICE_NAME = "eneca-bot"


class Span(Protocol):
    """What a span offers the code inside ``with tracing.span(...) as span:``."""

    #: False when tracing is off or this trace is not sampled: skip costly attributes.
    recording: bool

    def set_attribute(self, key: str, value: AttributeValue) -> None: ...

    def set_attributes(self, attributes: Attributes) -> None: ...

    def add_event(self, name: str, attributes: Attributes | None = None) -> None: ...

    def set_error(self, description: str) -> None:
        """Mark the span failed (an exception leaving the ``with`` does this itself)."""
        ...

    @property
    def traceparent(self) -> str | None:
        """This span as a ``traceparent`` value (``None`` when tracing is off)."""
        ...


class _NoopSpan:
    """The span of switched-off tracing: its own context manager, every method empty."""

    __slots__ = ()
    recording = False
    traceparent = None

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None

    def set_attributes(self, attributes: Attributes) -> None:
        return None

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        return None

    def set_error(self, description: str) -> None:
        return None


NOOP_SPAN = _NoopSpan()
#: What :func:`span` returns: ``with span(...) as s:`` gives a :class:`Span`.
SpanScope = AbstractContextManager[Span]


class Tracing:
    """Tracing switched off. :class:`core.tracing.otel.OtelTracing` is the real one."""

    enabled = False
    #: ``OTEL_RECORD_CONTENT=true``: message text may go into spans (masked).
    record_content = False

    def span(
        self,
        name: str,
        *,
        kind: SpanKind = "internal",
        parent: str | None = None,
        attributes: Attributes | None = None,
    ) -> AbstractContextManager[Span]:
        """A span around a ``with`` block, child of the current span, or of ``parent``
        (a stored ``traceparent``) when given and valid."""
        return NOOP_SPAN

    def traceparent(self) -> str | None:
        """The current span as a ``traceparent`` value, to store with work that goes on
        later (an inbox or outbox row); ``None`` when off or outside any span."""
        return None

    def resume(self, traceparent: str | None) -> AbstractContextManager[object]:
        """Make a stored ``traceparent`` current, without a span of its own: spans started
        inside (or in tasks created inside) continue that trace."""
        return NOOP_SPAN

    def log_ids(self) -> tuple[str, str] | None:
        """``(trace_id, span_id)`` of the current span, in hex, for log lines."""
        return None

    def content(self, text: str) -> str | None:
        """``text`` with secrets masked when content is recorded; otherwise ``None``."""
        return None

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        return True

    def shutdown(self, timeout_s: float = 5.0) -> None:
        return None


OFF = Tracing()
_active: Tracing = OFF


def active() -> Tracing:
    """The process's tracing (``active().enabled`` is False when it is off)."""
    return _active


def span(
    name: str,
    *,
    kind: SpanKind = "internal",
    parent: str | None = None,
    attributes: Attributes | None = None,
) -> AbstractContextManager[Span]:
    """A span around a ``with`` block (see :meth:`Tracing.span`); free when tracing is off.

    Name spans ``<plugin>.<what>`` (``telegram.send``) and keep message text out of their
    attributes: ids, counts, statuses and durations only.
    """
    return _active.span(name, kind=kind, parent=parent, attributes=attributes)


def traceparent() -> str | None:
    """The current span as a ``traceparent`` value (``None`` when tracing is off)."""
    return _active.traceparent()


def resume(traceparent: str | None) -> AbstractContextManager[object]:
    """Continue a stored trace (see :meth:`Tracing.resume`); free when tracing is off."""
    return _active.resume(traceparent)


def endpoint_configured(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, exporter not ``none``,
    SDK not disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def configure(
    *,
    version: str,
    mask: Callable[[str], str] | None = None,
    add_secret: Callable[..., None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Tracing:
    """Switch tracing on from the standard ``OTEL_*`` environment variables, or leave it
    off (importing nothing). ``mask`` masks secrets in recorded content; ``add_secret``
    registers the exporter's headers (an API key...) so logs never show them.

    Raises :class:`~core.contract.errors.ConfigError` when an endpoint is set but the ``otel``
    extra is not installed, or a variable is invalid.
    """
    global _active
    environ = os.environ if environ is None else environ
    shutdown()
    if not endpoint_configured(environ):
        return _active
    try:
        from core.tracing.otel import OtelTracing
    except ImportError as exc:
        from core.contract.errors import ConfigError

        raise ConfigError(
            f"tracing is configured ({' or '.join(ENDPOINT_VARIABLES)}) but OpenTelemetry is "
            f"not installed ({exc.name}): pip install 'eneca-bot[otel]'"
        ) from None
    _active = OtelTracing.from_environ(environ, version=version, mask=mask, add_secret=add_secret)
    return _active


def shutdown(timeout_s: float = 5.0) -> None:
    """Export what is buffered and switch tracing off (end of ``serve``, tests)."""
    global _active
    current, _active = _active, OFF
    current.shutdown(timeout_s)


def annotate_log_record(record: Any) -> None:
    """A loguru patcher step: ``trace_id`` and ``span_id`` into the record's extra."""
    ids = _active.log_ids()
    if ids is not None:
        record["extra"]["trace_id"], record["extra"]["span_id"] = ids


def hashed(identifier: str) -> str:
    """A conversation or visitor id as it goes into spans: the same id gives the same
    value (a conversation's spans can be found together), the id itself is not recorded."""
    return hashlib.blake2b(identifier.encode("utf-8", "replace"), digest_size=8).hexdigest()
