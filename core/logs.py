"""Logging with loguru: console and ``logs/app.log`` (rotated), optional JSON lines.

JSON lines are flat, for Loki/ELK: ``time``, ``level``, ``message``, ``request_id``,
``conversation_id`` at the top level (the ids ``null`` outside a request), then the other
bound values, the logger's ``module``/``function``/``line`` and an ``exception`` object.

Secrets are masked in every line: the gateway registers each secret it knows (API keys,
the OpenAI key, webhook secrets, provider tokens as they are seen) with the
:class:`Redactor`. Tracebacks are logged without variable values for the same reason.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger

from core.tracing import annotate_log_record

MASK = "***"
#: Shorter values are not masked: a four-letter "secret" such as INFO would mask log text.
_MIN_SECRET_LEN = 8
#: Up to this many secrets are matched with one compiled regex; past it, by a scan.
_REGEX_LIMIT = 64


class Redactor:
    """Replaces every registered secret with ``***`` (the longest one first where they
    overlap).

    A few secrets (keys from the settings) are matched with one regex. Channels also add
    a token per visitor, thousands of them: recompiling an alternation of all of them on
    each add costs tens of milliseconds and matching it grows with their number, so past
    :data:`_REGEX_LIMIT` secrets the text is scanned once, looking each position's first
    characters up in a dict: adding is O(1), masking costs the same for any number.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        #: Secrets by their first ``_MIN_SECRET_LEN`` characters, longest first.
        self._by_head: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def add(self, *secrets: str | None) -> None:
        fresh = {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN} - self._secrets
        if fresh:
            with self._lock:
                self._secrets |= fresh
                for secret in fresh:  # copy on write: a reader never sees a list half-built
                    same = self._by_head.get(secret[:_MIN_SECRET_LEN], [])
                    ordered = sorted([*same, secret], key=len, reverse=True)
                    self._by_head[secret[:_MIN_SECRET_LEN]] = ordered
                if len(self._secrets) <= _REGEX_LIMIT:
                    ordered = sorted(self._secrets, key=len, reverse=True)
                    self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
                else:
                    self._pattern = None

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            return pattern.sub(MASK, text)
        by_head = self._by_head
        if not by_head:
            return text
        pieces: list[str] = []
        start = position = 0
        last = len(text) - _MIN_SECRET_LEN
        while position <= last:
            for secret in by_head.get(text[position : position + _MIN_SECRET_LEN], ()):
                if text.startswith(secret, position):
                    pieces += (text[start:position], MASK)
                    position = start = position + len(secret)
                    break
            else:
                position += 1
        return "".join([*pieces, text[start:]]) if pieces else text

    def patch(self, record: Any) -> None:
        record["message"] = self(record["message"])
        if record["extra"]:
            for key, value in record["extra"].items():
                if isinstance(value, str):
                    record["extra"][key] = self(value)
        exception = record["exception"]
        if exception is not None and exception.value is not None and self._secrets:
            clean = self.sanitized(exception.value)
            if clean is not exception.value:
                record["exception"] = exception._replace(type=type(clean), value=clean)

    def sanitized(self, exc: BaseException, depth: int = 0) -> BaseException:
        """``exc`` itself when no message in its chain holds a secret; else a stand-in of
        the same name and traceback whose messages are masked (a URL with a bot token in
        a client error, a key echoed by a server...)."""
        text = str(exc)
        clean = self(text)
        cause = exc.__cause__
        context = exc.__context__
        if depth < 8:
            cause = cause if cause is None else self.sanitized(cause, depth + 1)
            context = context if context is None else self.sanitized(context, depth + 1)
        if clean == text and cause is exc.__cause__ and context is exc.__context__:
            return exc
        kind = type(exc)
        stand_in = type(
            kind.__name__,
            (Exception,),
            {"__module__": kind.__module__, "__qualname__": kind.__qualname__},
        )
        masked = stand_in(clean).with_traceback(exc.__traceback__)
        masked.__cause__ = cause
        masked.__context__ = context
        masked.__suppress_context__ = exc.__suppress_context__
        return masked


def _console_format(record: Any) -> str:
    context = ""
    if record["extra"].get("request_id"):
        context = " [{extra[request_id]}]"
    if record["extra"].get("conversation_id"):
        context += " conv={extra[conversation_id]}"
    if record["extra"].get("trace_id"):
        context += " trace={extra[trace_id]}"
    return (
        "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level>"
        + context
        + " {message}\n{exception}"
    )


def _exception(record: Any) -> dict[str, Any] | None:
    exception = record["exception"]
    if exception is None or exception.type is None:
        return None
    lines = traceback.format_exception(exception.type, exception.value, exception.traceback)
    return {
        "type": exception.type.__name__,
        "value": str(exception.value),
        "traceback": "".join(lines),
    }


def _json_format(record: Any) -> str:
    """One flat JSON object per line (the text goes through ``extra`` so that loguru does
    not read the braces of the JSON as its own format fields)."""
    extra = record["extra"]
    line: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "message": record["message"],
        "request_id": extra.get("request_id"),
        "conversation_id": extra.get("conversation_id"),
    }
    for key, value in extra.items():
        if key not in line and key != APP and not key.startswith("_"):
            line[key] = value if isinstance(value, str | int | float | bool) else str(value)
    line.update(module=record["name"], function=record["function"], line=record["line"])
    exception = _exception(record)
    if exception is not None:
        line["exception"] = exception
    extra["_json"] = json.dumps(line, ensure_ascii=False, default=str)
    return "{extra[_json]}\n"


def _format(json_lines: bool) -> Any:
    return _json_format if json_lines else _console_format


#: The key in a record's ``extra`` naming the app it was logged for (see ``app_filter``).
APP = "app"


def app_filter(redactor: Redactor, app: str | None = None) -> Callable[[Any], bool]:
    """A sink filter: masks the record's secrets with ``redactor`` and, with ``app``, keeps
    only records of that app (tagged ``extra["app"]``) or of none (start-up, background
    work). Masking in the filter instead of a process-wide patcher lets two apps in one
    process each mask their own secrets in their own sinks."""

    def accept(record: Any) -> bool:
        tag = record["extra"].get(APP)
        if app is not None and tag is not None and tag != app:
            return False
        annotate_log_record(record)  # trace_id, span_id when tracing is on
        redactor.patch(record)
        return True

    return accept


def add_console_sink(level: str, json_lines: bool, redactor: Redactor) -> None:
    """Process-wide (``eneca-bot serve`` only): loguru's default handler is replaced by
    one on stderr at ``level`` that masks ``redactor``'s secrets."""
    logger.remove()
    logger.add(
        sys.stderr,
        level=level,
        format=_format(json_lines),
        filter=app_filter(redactor),
        backtrace=False,
        diagnose=False,
        colorize=False if json_lines else None,
    )


def add_file_sink(
    log_dir: Path,
    level: str,
    json_lines: bool,
    rotation: str,
    retention: str,
    redactor: Redactor,
    app: str | None = None,
    log_file: str = "app.log",
) -> int | None:
    """Add ``log_dir/log_file`` for one app (see :func:`app_filter`); returns the handler
    id to remove at shut-down, or ``None`` when the folder cannot be written or
    ``log_file`` is empty (console only)."""
    path = log_file_path(log_dir, log_file)
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return logger.add(
            path,
            level=level,
            format=_format(json_lines),
            filter=app_filter(redactor, app),
            rotation=rotation,
            retention=retention,
            backtrace=False,
            diagnose=False,
            colorize=False,
            encoding="utf-8",
            enqueue=False,
        )
    except OSError as exc:
        logger.error("cannot write logs to {}: {}; logging to the console only", path, exc)
        return None


def log_file_path(log_dir: Path, log_file: str) -> Path | None:
    """Where ``LOG_FILE`` writes: under ``log_dir`` unless absolute; None when empty."""
    return log_dir / log_file.strip() if log_file.strip() else None


def setup_logging(
    log_dir: Path,
    level: str,
    json_lines: bool,
    rotation: str,
    retention: str,
    redactor: Redactor,
    log_file: str = "app.log",
) -> Path | None:
    """(Re)configure loguru for this process: stderr plus ``log_dir/log_file`` (none when
    ``log_file`` is empty). Returns the log file's path, or None (console only)."""
    add_console_sink(level, json_lines, redactor)
    sink = add_file_sink(log_dir, level, json_lines, rotation, retention, redactor, None, log_file)
    return log_file_path(log_dir, log_file) if sink is not None else None
