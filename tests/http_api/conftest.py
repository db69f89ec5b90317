"""Fixtures for the HTTP API tests: the real gateway with the ``http_api`` plugin."""

from collections.abc import Mapping
from typing import Any

import pytest

from core.testing import ScriptedAgent

KEY = {"X-API-Key": "k1"}


@pytest.fixture
def start_api(eneca_app):
    """``client = await start_api(agent, core={...}, **http_api_settings)``: API keys
    k1,k2; admin keys adm1,adm2."""

    async def start(
        agent: ScriptedAgent | None = None,
        *,
        core: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        **http_api: Any,
    ):
        return await eneca_app(
            plugins=[] if extra else ["http_api"],
            extra=extra,
            agent=agent if agent is not None else ScriptedAgent(),
            settings={
                "core": {"api_keys": "k1,k2", "admin_keys": "adm1,adm2", **(core or {})},
                "http_api": http_api,
            },
        )

    return start


@pytest.fixture
def app_log(tmp_path):
    """The text the gateway has logged so far (the kit logs to ``tmp_path/logs``)."""

    def read() -> str:
        path = tmp_path / "logs" / "app.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    return read


class BrokenStore:
    """A conversation store whose writes fail: an unexpected server-side error."""

    async def append(self, conversation_id, turn):
        raise RuntimeError("disk on fire")

    async def history(self, conversation_id, limit=None, max_chars=None):
        return []

    async def ping(self):
        return True


@pytest.fixture
def broken_store():
    return BrokenStore()
