"""Replies queued for a channel whose plugin is not enabled are held: not retried, not
failed, their attempts untouched; /health and the log say so by channel, and they are
delivered by the next start that enables the plugin."""

from __future__ import annotations

import asyncio

from core import DeliveryProgress, DeliveryResult, Gateway, Message, Reply, hookimpl
from core.testing import ScriptedAgent, gateway_of, wait_delivered, wait_until

CHANNEL = "pigeon"


class PigeonChannel:
    """A durable channel plugin that records what it delivers, and with which attempt."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, int]] = []

    @hookimpl
    async def deliver_reply(
        self, gateway: Gateway, reply: Reply, attempt: int, progress: DeliveryProgress
    ) -> DeliveryResult | None:
        if reply.channel != CHANNEL:
            return None
        self.delivered.append((reply.text, attempt))
        return DeliveryResult.delivered()


async def _health(client) -> dict:
    return await (await client.get("/health")).json()


async def test_a_disabled_channels_replies_are_held_then_sent_after_a_restart(eneca_app, tmp_path):
    data = tmp_path / "data"

    def held_lines() -> list[str]:
        log = tmp_path / "logs" / "app.log"
        return [line for line in log.read_text().splitlines() if "holding" in line]

    first = await eneca_app(agent=ScriptedAgent("coo"), data_dir=data)
    gateway = gateway_of(first)
    for visitor in ("v1", "v2"):
        await gateway.publish(Message(f"{CHANNEL}:{visitor}", CHANNEL, "hi"), durable=True)
    await wait_until(lambda: len(held_lines()) == 1)  # named once, by channel
    assert f"channel '{CHANNEL}'" in held_lines()[0]
    async with asyncio.timeout(5):  # both replies answered and waiting in the outbox
        while (await _health(first))["plugins"].get("outbox", {}).get("held") != {CHANNEL: 2}:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    health = await _health(first)
    assert health["status"] == "ok"
    stats = await gateway.delivery_stats(CHANNEL)
    assert (stats["pending_deliveries"], stats["failed"], stats["retries"]) == (2, 0, 0)
    await first.close()

    pigeon = PigeonChannel()
    second = await eneca_app(agent=ScriptedAgent("coo"), data_dir=data, extra={CHANNEL: pigeon})
    stats = await wait_delivered(gateway_of(second), 2, CHANNEL)
    assert stats["failed"] == 0
    assert pigeon.delivered == [("coo", 1), ("coo", 1)]  # no attempt was used while held
    assert "outbox" not in (await _health(second))["plugins"]
