"""A fake durable channel for tests of the inbox/outbox and the pipeline."""

import asyncio

from core.contract.delivery import DeliveryResult
from core.plugins import hookimpl

FAST_RETRIES = {
    "delivery_base_delay_s": 0.01,
    "delivery_max_delay_s": 0.05,
    "delivery_max_attempts": 5,
    "shutdown_grace_s": 0.2,
}


class FakeChannel:
    """A durable channel: records deliveries; ``script`` gives outcomes per attempt."""

    def __init__(self, script=None):
        self.script = list(script or [])
        self.attempts: list[tuple[str, int]] = []
        self.delivered: list[str] = []
        self.arrived = asyncio.Event()

    @hookimpl
    def deliver_reply(self, reply, attempt):
        if reply.channel != "fake":
            return None
        self.attempts.append((reply.text, attempt))
        outcome = self.script.pop(0) if self.script else DeliveryResult.delivered()
        if outcome.outcome == "delivered":
            self.delivered.append(reply.text)
            self.arrived.set()
        return outcome
