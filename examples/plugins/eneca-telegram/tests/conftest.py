"""Fixtures of the Telegram plugin's tests: the real gateway with the plugin enabled by its
entry point name, a scripted agent, and the Bot API mocked with aioresponses (the kit's
``mock_http``). The kit itself is loaded by ``eneca_bot_kit = true`` in pytest's config.

Test modules cannot import this file (pytest's importlib mode), so the helpers are on the
``tg`` fixture.
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core import Gateway
from core.testing import FAST_DELIVERY, ScriptedAgent, gateway_of, sent_json


class TelegramHarness:
    """The gateway under test, the mocked Bot API and the helpers to drive them."""

    token = "123456:test-token-abcdefghijklmnop"
    secret = "webhook-secret_123"
    api = "http://telegram.test"

    def __init__(self, eneca_app: Any, mock_http: Any, agent: ScriptedAgent) -> None:
        self._eneca_app = eneca_app
        self.http = mock_http
        self.agent = agent
        self.client: TestClient | None = None
        bot = f"{self.api}/bot{self.token}"
        self.send_url = f"{bot}/sendMessage"
        self.typing_url = f"{bot}/sendChatAction"
        self.set_webhook_url = f"{bot}/setWebhook"

    async def start(self, **telegram_settings: Any) -> TestClient:
        """Serve the gateway with the plugin enabled by name (its entry point)."""
        settings = {
            "bot_token": self.token,
            "webhook_secret": self.secret,
            "api_url": self.api,
            **telegram_settings,
        }
        self.client = await self._eneca_app(
            plugins=["telegram"],
            agent=self.agent,
            settings={"core": FAST_DELIVERY, "telegram": settings},
        )
        return self.client

    @property
    def gateway(self) -> Gateway:
        assert self.client is not None, "call tg.start() first"
        return gateway_of(self.client)

    def answer_send(self, status: int = 200, repeat: bool = False, **body: Any) -> None:
        """Queue Telegram's answer to the next ``sendMessage`` (``ok`` unless told)."""
        payload = body or {"ok": True, "result": {"message_id": 1}}
        self.http.post(self.send_url, status=status, payload=payload, repeat=repeat)

    def answer_typing(self, repeat: bool = True) -> None:
        self.http.post(self.typing_url, payload={"ok": True, "result": True}, repeat=repeat)

    def sent(self) -> list[dict[str, Any]]:
        """The ``sendMessage`` bodies, oldest first."""
        return sent_json(self.http, self.send_url)

    def typing(self) -> list[dict[str, Any]]:
        return sent_json(self.http, self.typing_url)

    @staticmethod
    def update(update_id: int, text: str | None = "hello", chat_id: int = 42) -> dict[str, Any]:
        """A Telegram Update carrying a message from user 7 in chat ``chat_id``."""
        message: dict[str, Any] = {
            "message_id": update_id * 10,
            "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": 7, "is_bot": False, "first_name": "Ann", "username": "ann"},
        }
        if text is not None:
            message["text"] = text
        return {"update_id": update_id, "message": message}

    async def post(self, body: Any, secret: str | None = "default") -> Any:
        """POST ``body`` to the webhook with the secret header (``None``: without it)."""
        assert self.client is not None, "call tg.start() first"
        secret = self.secret if secret == "default" else secret
        headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
        return await self.client.post("/webhook/telegram", json=body, headers=headers)


@pytest.fixture
def tg(eneca_app, mock_http) -> TelegramHarness:
    return TelegramHarness(eneca_app, mock_http, ScriptedAgent())
