"""At most one warning a minute about tracing trouble: a receiver that is down must not
fill the log (every batch would fail), and one line still tells the operator."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from loguru import logger

#: Seconds between two warnings about tracing.
EVERY_S = 60.0
#: The exporter's own lines (a retry, a failed batch): the exporter wrapper reports the
#: outcome of each batch itself, with the endpoint and what it means for answers.
QUIET_LOGGERS = ("opentelemetry.exporter",)


class Complaints:
    """Logs a tracing problem unless one was logged less than ``every_s`` ago; counts the
    ones it kept quiet and says so in the next warning."""

    def __init__(
        self, every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every_s = every_s
        self._clock = clock
        self._last: float | None = None
        self._quiet = 0
        self._lock = threading.Lock()
        #: Warnings logged (for tests and /health-like reports).
        self.logged = 0

    def __call__(self, problem: str) -> None:
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._every_s:
                self._quiet += 1
                return
            self._last, quiet, self._quiet = now, self._quiet, 0
            self.logged += 1
        more = f" ({quiet} more tracing problem(s) in the last minute not logged)" if quiet else ""
        logger.warning("tracing: {}{}", problem, more)


class ToComplaints(logging.Handler):
    """Routes the OpenTelemetry SDK's own ``logging`` warnings (export failed, queue full)
    into :class:`Complaints` instead of stderr, masked."""

    def __init__(self, complain: Complaints, mask: Callable[[str], str]) -> None:
        super().__init__(logging.WARNING)
        self._complain = complain
        self._mask = mask

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(QUIET_LOGGERS):
            return
        try:
            text = record.getMessage()
        except Exception:  # a malformed SDK log call must not raise here
            text = str(record.msg)
        self._complain(self._mask(text.splitlines()[0] if text else record.name))
