"""What the gateway logged during a block: ``with captured_log("WARNING") as lines:``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger


@contextmanager
def captured_log(level: str = "DEBUG") -> Iterator[list[str]]:
    """Each formatted log line at ``level`` or above, appended as it is written."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level=level)
    try:
        yield lines
    finally:
        logger.remove(sink)
