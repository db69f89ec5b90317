"""What ``eneca-bot serve`` says once it serves and when it stops: one start-up log line
(address, config file, data and log folders, all absolute) and systemd's notifications."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from loguru import logger

from core.systemd import notify


def listen_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def on_serving(
    host: str,
    port: int,
    config_file: Path | None,
    data_dir: Path,
    log_dir: Path,
    log_file: Path | None,
) -> Callable[..., None]:
    """The ``print`` callback of ``web.run_app``: aiohttp calls it once every socket
    listens, which is when systemd may send traffic (``READY=1``)."""

    def announce(*_: Any, **__: Any) -> None:
        logger.info(
            "listening on {}; config file: {}; data dir: {}; log dir: {} ({})",
            listen_url(host, port),
            config_file or "none",
            data_dir,
            log_dir,
            f"file {log_file}" if log_file else "console only",
        )
        notify("READY=1")

    return announce


async def notify_stopping(app: web.Application) -> None:
    """``on_shutdown``: the sockets are closed; tell systemd the stop is under way."""
    logger.info("shutting down")
    notify("STOPPING=1")
