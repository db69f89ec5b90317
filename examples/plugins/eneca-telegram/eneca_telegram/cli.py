"""``eneca-bot telegram set-webhook --url https://...``: tell Telegram where to post."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import aiohttp

from core import Gateway
from eneca_telegram.api import SET_WEBHOOK, BotApi
from eneca_telegram.settings import TelegramSettings


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    telegram = subparsers.add_parser("telegram", help="Telegram channel commands")
    commands = telegram.add_subparsers(dest="telegram_command", metavar="COMMAND", required=True)
    set_webhook = commands.add_parser(
        "set-webhook",
        help="register this gateway's webhook URL (and TELEGRAM_WEBHOOK_SECRET) with Telegram",
    )
    set_webhook.add_argument(
        "--url", required=True, help="public HTTPS URL of POST /webhook/telegram"
    )
    set_webhook.add_argument(
        "--drop-pending-updates",
        action="store_true",
        help="discard the updates Telegram queued while no webhook answered",
    )
    set_webhook.set_defaults(func=set_webhook_command)


async def set_webhook_command(args: argparse.Namespace, gateway: Gateway) -> int:
    """Call ``setWebhook``. The gateway is loaded, not started: this opens and closes its
    own HTTP session."""
    if not args.url.startswith("https://"):
        print(
            "eneca-bot: error: --url must be an https:// URL (Telegram requires HTTPS)",
            file=sys.stderr,
        )
        return 2
    settings = gateway.settings_for(TelegramSettings)
    payload: dict[str, Any] = {
        "url": args.url,
        "allowed_updates": ["message"],
        "drop_pending_updates": args.drop_pending_updates,
    }
    if settings.webhook_secret is not None:
        payload["secret_token"] = settings.webhook_secret.get_secret_value()
    timeout = aiohttp.ClientTimeout(total=settings.request_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        api = BotApi(session, settings.api_url, settings.bot_token.get_secret_value())
        outcome = await api.call(SET_WEBHOOK, payload)
    if not outcome.ok:
        print(f"eneca-bot: error: {outcome.describe(SET_WEBHOOK)}", file=sys.stderr)
        return 1
    secret = "with" if settings.webhook_secret is not None else "WITHOUT"
    print(f"webhook set to {args.url} ({secret} a secret token)")
    return 0
