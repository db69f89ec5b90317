"""The nginx file's limits stay in step with the gateway's settings they mirror."""

from __future__ import annotations

import re
from pathlib import Path

from core.config.settings import CoreSettings

NGINX_FILE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "eneca-bot.conf"


def directive(name: str) -> str:
    match = re.search(rf"^\s*{name}\s+([^;]+);", NGINX_FILE.read_text(), re.MULTILINE)
    assert match, f"{name} is missing"
    return match.group(1).strip()


def seconds(value: str) -> float:
    units = {"s": 1, "m": 60}
    return float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value)


def test_the_body_limit_is_max_body_bytes() -> None:
    size = directive("client_max_body_size")
    factor = {"k": 1024, "m": 1024 * 1024}.get(size[-1].lower(), 1)
    number = int(size[:-1]) if factor != 1 else int(size)
    assert number * factor == CoreSettings.model_fields["max_body_bytes"].default


def test_nginx_waits_longer_for_a_reply_than_the_gateway_lets_one_take() -> None:
    assert (
        seconds(directive("proxy_read_timeout"))
        > CoreSettings.model_fields["reply_timeout_s"].default
    )
