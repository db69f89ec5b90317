"""W3C trace context (``traceparent``) as text: what a client sends, what the inbox and
outbox rows keep so a message's trace goes on after the webhook returned, or a restart.

Pure Python, no OpenTelemetry: parsing a header must cost nothing when tracing is off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: ``version-traceid-spanid-flags``; version ff is invalid, higher versions may append
#: fields after a dash (W3C Trace Context, "versioning of traceparent").
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    """One span's place in a trace: the parent of whatever continues it."""

    trace_id: int
    span_id: int
    sampled: bool = True

    def header(self) -> str:
        """The ``traceparent`` header / stored form: ``00-<trace>-<span>-<flags>``."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"

    @property
    def trace_hex(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def span_hex(self) -> str:
        return f"{self.span_id:016x}"


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The trace context in a ``traceparent`` value, or ``None`` for anything invalid
    (which starts a new trace, as the specification asks)."""
    if not value or len(value) > 512:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    version = match["version"]
    if version == "ff" or (version == "00" and match["rest"]):
        return None
    if match["trace"] == _ZERO_TRACE or match["span"] == _ZERO_SPAN:
        return None
    return TraceParent(
        int(match["trace"], 16), int(match["span"], 16), bool(int(match["flags"], 16) & 1)
    )
