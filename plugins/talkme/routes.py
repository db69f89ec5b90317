"""The TalkMe endpoints: the webhook, the channel's health and stats, clearing sessions."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from aiohttp import web
from loguru import logger
from pydantic import ValidationError

from core import (
    ApiError,
    ErrorResponse,
    Message,
    bind_conversation,
    describe_errors,
    endpoint,
    json_response,
    read_json,
    require_api_key,
)
from plugins.talkme.payload import (
    CHANNEL,
    TalkMeWebhook,
    conversation_id_for,
    describe_payload,
    token_of,
)
from plugins.talkme.schemas import SessionsCleared, TalkMeHealth, TalkMeStatsReport, WebhookAck
from plugins.talkme.stats import health_report, stats_report

if TYPE_CHECKING:
    from core import Gateway
    from plugins.talkme import TalkMePlugin

TAGS = ("talkme",)
SECRET_QUERY = {"secret": "the webhook secret, when it is not in the path"}


class TalkMeRoutes:
    """Handlers bound to one plugin instance and its gateway."""

    def __init__(self, plugin: TalkMePlugin, gateway: Gateway) -> None:
        self._plugin = plugin
        self._gateway = gateway

    def definitions(self) -> list[web.RouteDef]:
        return [
            web.get("/webhook/talkme/health", self.health),
            web.get("/webhook/talkme/stats", self.stats),
            web.delete("/webhook/talkme/sessions", self.clear_sessions),
            web.delete("/webhook/talkme/session/{user_id}", self.clear_session),
            web.post("/webhook/talkme", self.webhook),
            web.post("/webhook/talkme/{secret}", self.webhook_with_secret),
        ]

    # -- the webhook --------------------------------------------------------------------

    @endpoint(
        "TalkMe webhook: keep one visitor message and answer it through the TalkMe API",
        request=TalkMeWebhook,
        responses={200: WebhookAck},
        auth="none",
        tags=TAGS,
        query=SECRET_QUERY,
        description=(
            "Answers 200 once the message is durably recorded, before the agent runs. A "
            "redelivered message (same originalOnlineChatMessage.id) answers 200 with "
            "duplicate=true and is not processed again. Any content type; the body must be "
            "JSON. When TALKME_WEBHOOK_SECRET is set, pass it as ?secret= or use "
            "/webhook/talkme/{secret}; otherwise 403. A visitor over RATE_LIMIT_PER_MINUTE "
            "gets 429 with Retry-After."
        ),
    )
    async def webhook(self, request: web.Request) -> web.Response:
        self._check_secret(request)
        message = await self._parse(request)
        with bind_conversation(request, message.conversation_id):
            return await self._accept(message)

    async def _accept(self, message: Message) -> web.Response:
        self._gateway.mask_secrets(token_of(message))
        # TalkMe posts every visitor from the same servers: limit per visitor, not per IP.
        await self._gateway.check_rate(message.conversation_id, "messages")
        counters = self._plugin.stats.counters
        # A full or closing bus (or failing storage) propagates: the request middleware
        # answers 503 with Retry-After (core.web.errors), and TalkMe posts again.
        handle = await self._gateway.publish(
            message, durable=True, debounce_s=self._plugin.settings.debounce_ms / 1000
        )
        if handle is None:
            counters.duplicates_ignored += 1
            return json_response(WebhookAck(duplicate=True).model_dump())
        counters.received += 1
        return json_response(WebhookAck().model_dump())

    @endpoint(
        "TalkMe webhook with the secret in the path",
        request=TalkMeWebhook,
        responses={200: WebhookAck},
        auth="none",
        tags=TAGS,
    )
    async def webhook_with_secret(self, request: web.Request) -> web.Response:
        return await self.webhook(request)

    def _check_secret(self, request: web.Request) -> None:
        secret = self._plugin.settings.webhook_secret
        if secret is None:
            return
        presented = request.match_info.get("secret") or request.query.get("secret") or ""
        if not hmac.compare_digest(presented.encode(), secret.get_secret_value().encode()):
            self._plugin.stats.counters.forbidden += 1
            logger.warning("talkme webhook refused: missing or wrong secret")
            raise ApiError(403, "forbidden", "the webhook secret is missing or wrong")

    async def _parse(self, request: web.Request) -> Message:
        counters = self._plugin.stats.counters
        try:
            data = await read_json(request, require_json_type=False)
        except ApiError:
            counters.rejected += 1
            raise
        if not isinstance(data, dict):
            counters.rejected += 1
            raise ApiError(400, "invalid_payload", "the body must be a JSON object")
        try:
            return TalkMeWebhook.model_validate(data).to_message()
        except ValidationError as exc:
            summary, _ = describe_errors(exc)
            problem = summary
        except ValueError as exc:
            problem = str(exc)
        counters.rejected += 1
        logger.warning("talkme webhook rejected ({}): {}", describe_payload(data), problem)
        raise ApiError(400, "invalid_payload", problem)

    # -- channel state --------------------------------------------------------------------

    @endpoint(
        "TalkMe channel state: test mode, API reachable last time, queue depth",
        responses={200: TalkMeHealth},
        auth="none",
        tags=TAGS,
    )
    async def health(self, request: web.Request) -> web.Response:
        plugin = self._plugin
        report = await health_report(self._gateway, plugin.settings, plugin.stats)
        return json_response(report.model_dump())

    @endpoint(
        "TalkMe counters since start, totals, active sessions, delivery latency (admin)",
        responses={200: TalkMeStatsReport},
        auth="admin",
        tags=TAGS,
    )
    async def stats(self, request: web.Request) -> web.Response:
        self._admin(request)
        plugin = self._plugin
        report = await stats_report(self._gateway, plugin.settings, plugin.stats)
        return json_response(report.model_dump())

    # -- sessions -------------------------------------------------------------------------

    @endpoint(
        "Forget one TalkMe visitor's conversation and drop its undelivered replies (admin)",
        responses={200: SessionsCleared, 400: ErrorResponse},
        auth="admin",
        tags=TAGS,
        description="user_id is the visitor id (clientId, login or searchId) or talkme:<id>.",
    )
    async def clear_session(self, request: web.Request) -> web.Response:
        self._admin(request)
        user_id = request.match_info["user_id"].strip()
        if not user_id:
            raise ApiError(400, "invalid_user_id", "user_id must not be empty")
        conversation_id = conversation_id_for(user_id)
        with bind_conversation(request, conversation_id):
            removed = await self._gateway.clear_session(conversation_id, channel=CHANNEL)
            logger.info("talkme conversation {} cleared ({} turns)", conversation_id, removed)
        return json_response(
            SessionsCleared(conversation_id=conversation_id, removed=removed).model_dump()
        )

    @endpoint(
        "Forget every TalkMe conversation and drop their undelivered replies (admin)",
        responses={200: SessionsCleared},
        auth="admin",
        tags=TAGS,
    )
    async def clear_sessions(self, request: web.Request) -> web.Response:
        self._admin(request)
        removed = await self._gateway.clear_session(channel=CHANNEL)
        logger.info("all talkme conversations cleared ({})", removed)
        return json_response(SessionsCleared(conversation_id=None, removed=removed).model_dump())

    def _admin(self, request: web.Request) -> None:
        require_api_key(request, self._gateway.settings, admin=True)
