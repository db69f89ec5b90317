"""TalkMe on the postgres backend: every webhook answered and delivered once, in order per
visitor, with a bounded number of database round trips per message."""

import asyncio

from core.testing import ScriptedAgent, gateway_of
from tests.support.talkme_helpers import webhook_body

VISITORS = 10
MESSAGES = 3


async def test_talkme_messages_are_delivered_once_in_order_within_six_round_trips(
    talkme_on_postgres, talkme
):
    agent = ScriptedAgent(lambda request: f"re {request.message.text}")
    client = await talkme_on_postgres(agent, pool_size=4)
    gateway = gateway_of(client)
    db = gateway._pm.get_plugin("postgres").db
    before = db.round_trips
    for turn in range(MESSAGES):
        for visitor in range(VISITORS):
            body = webhook_body(
                f"v{visitor} m{turn}", client_id=f"v{visitor}", message_id=turn * 100 + visitor
            )
            response = await client.post("/webhook/talkme", json=body)
            assert response.status == 200, await response.text()
    own = 0  # the test's own reads of the figures are not the gateway's cost

    async def figures() -> dict:
        nonlocal own
        before_read = db.round_trips
        stats = await gateway.delivery_stats("talkme")
        own += db.round_trips - before_read
        return stats

    async with asyncio.timeout(30):
        while True:
            stats = await figures()
            idle = gateway._bus.stats()["in_flight"] == 0 and gateway._outbox.in_progress == 0
            if idle and stats["unanswered"] == 0 and stats["pending_deliveries"] == 0:
                break
            await asyncio.sleep(0.01)
    used = db.round_trips - before - own
    assert (stats["received"], stats["delivered"], stats["duplicates"]) == (30, 30, 0)
    sent = [call.body["content"]["text"] for call in talkme.confirmed("send")]
    for visitor in range(VISITORS):
        assert [text for text in sent if text.startswith(f"re v{visitor} ")] == [
            f"re v{visitor} m{turn}" for turn in range(MESSAGES)
        ]
    # Per message: accept, the lane taken with the user turn stored and the history read
    # back, final commit (which claims the reply for this node's outbox) and the delivery
    # record (which claims the conversation's next reply): 4, plus the heartbeat and its
    # poll of the outbox once a second (issue 15 asks <= 6). Before the lane took the
    # turn with it: 5.0; before the outbox's claims were folded in: 6.3 to 6.6.
    print(f"\n{used} round trips for {VISITORS * MESSAGES} messages")
    assert used / (VISITORS * MESSAGES) <= 5, f"{used} round trips for 30 messages"
