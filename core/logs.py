"""Logging with loguru: console and ``logs/app.log`` (rotated), optional JSON lines.

Secrets are masked in every line: the gateway registers each secret it knows (API keys,
the OpenAI key, webhook secrets, provider tokens as they are seen) with the
:class:`Redactor`. Tracebacks are logged without variable values for the same reason.
"""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path
from typing import Any

from loguru import logger

MASK = "***"
_MIN_SECRET_LEN = 4


class Redactor:
    """Replaces every registered secret with ``***``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, *secrets: str | None) -> None:
        fresh = {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN} - self._secrets
        if fresh:
            with self._lock:
                self._secrets |= fresh
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def patch(self, record: Any) -> None:
        record["message"] = self(record["message"])
        if record["extra"]:
            for key, value in record["extra"].items():
                if isinstance(value, str):
                    record["extra"][key] = self(value)


def _console_format(record: Any) -> str:
    context = ""
    if record["extra"].get("request_id"):
        context = " [{extra[request_id]}]"
    if record["extra"].get("conversation_id"):
        context += " conv={extra[conversation_id]}"
    return (
        "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level>"
        + context
        + " {message}\n{exception}"
    )


def setup_logging(
    log_dir: Path,
    level: str,
    json_lines: bool,
    rotation: str,
    retention: str,
    redactor: Redactor,
) -> None:
    """(Re)configure loguru for this process: stderr plus ``log_dir/app.log``."""
    logger.remove()
    logger.configure(patcher=redactor.patch)
    logger.add(
        sys.stderr,
        level=level,
        format=_console_format,
        serialize=json_lines,
        backtrace=False,
        diagnose=False,
        colorize=None,
    )
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        logger.add(
            log_dir / "app.log",
            level=level,
            format=_console_format,
            serialize=json_lines,
            rotation=rotation,
            retention=retention,
            backtrace=False,
            diagnose=False,
            colorize=False,
            encoding="utf-8",
            enqueue=False,
        )
    except OSError as exc:
        logger.error("cannot write logs to {}: {}; logging to the console only", log_dir, exc)
