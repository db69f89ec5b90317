"""``POST /webhook/telegram``: check the secret, keep the update, answer 200 at once."""

from __future__ import annotations

import hmac

from aiohttp import web
from loguru import logger

from core import ApiError, Gateway, endpoint, json_response, read_json, validate
from eneca_telegram.settings import TelegramSettings
from eneca_telegram.update import Update, WebhookAck, ignored_because, to_message

PATH = "/webhook/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookRoutes:
    """The webhook handler, bound to one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._settings = gateway.settings_for(TelegramSettings)

    def definitions(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.webhook)]

    def _check_secret(self, request: web.Request) -> None:
        expected = self._settings.webhook_secret
        if expected is None:
            return
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            raise ApiError(401, "unauthorized", f"the {SECRET_HEADER} header is missing")
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise ApiError(403, "forbidden", f"the {SECRET_HEADER} header is wrong")

    @endpoint(
        "Telegram webhook: keep one update and answer it through sendMessage",
        request=Update,
        responses={200: WebhookAck},
        auth="none",
        tags=("telegram",),
        description=(
            "Answers 200 once the update is durably kept, before the agent runs; the reply "
            "is sent with sendMessage. Updates other than text messages are answered 200 "
            "and ignored; a redelivered update_id is answered 200 with duplicate=true and "
            f"processed once. With TELEGRAM_WEBHOOK_SECRET set, {SECRET_HEADER} must carry "
            "it: 401 when absent, 403 when wrong."
        ),
    )
    async def webhook(self, request: web.Request) -> web.Response:
        self._check_secret(request)
        update = validate(Update, await read_json(request, require_json_type=False))
        reason = ignored_because(update)
        if reason is not None:
            logger.debug("telegram update {} ignored: {}", update.update_id, reason)
            return json_response(WebhookAck(ignored=reason).model_dump())
        # A full or closing bus propagates: the request middleware answers 503 with
        # Retry-After (core.web.errors). Telegram redelivers on any non-2xx: nothing is lost.
        handle = await self._gateway.publish(to_message(update), durable=True)
        return json_response(WebhookAck(duplicate=handle is None).model_dump())
