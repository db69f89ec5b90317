"""The visitor's token stays out of conversation memory; TALKME_DEBOUNCE_MS batches a
visitor's quick successive messages into one answer."""

import json

from core.testing import ScriptedAgent, gateway_of
from tests.support.talkme_helpers import TOKEN, webhook_body


async def test_the_token_is_used_to_reply_but_never_stored_in_memory(talkme_app, fake_talkme):
    client = await talkme_app(ScriptedAgent("hello back"))
    assert (await client.post("/webhook/talkme", json=webhook_body("hi"))).status == 200
    await fake_talkme.wait_until(lambda: len(fake_talkme.confirmed("send")) == 1)
    assert fake_talkme.confirmed("send")[0].headers["X-Token"] == TOKEN
    turns = await gateway_of(client).store.history("talkme:visitor-1")
    assert [t.role for t in turns] == ["user", "assistant"]
    assert TOKEN not in json.dumps([dict(t.metadata) for t in turns])
    assert turns[0].metadata["talkme"]["client"]["name"] == "Ann"


async def test_quick_successive_messages_are_answered_together(talkme_app, fake_talkme):
    agent = ScriptedAgent(lambda request: f"you said: {request.message.text}")
    client = await talkme_app(agent, talkme={"debounce_ms": 300})
    for i, text in enumerate(["Hi", "I have a question", "about delivery"], start=1):
        resp = await client.post("/webhook/talkme", json=webhook_body(text, message_id=i))
        assert resp.status == 200
    await fake_talkme.wait_until(lambda: len(fake_talkme.confirmed("send")) == 1)
    sends = fake_talkme.confirmed("send")
    assert sends[0].body == {"content": {"text": "you said: Hi\nI have a question\nabout delivery"}}
    assert len(agent.requests) == 1
    stats = await gateway_of(client).delivery_stats("talkme")
    assert (stats["received"], stats["unanswered"], stats["delivered"]) == (3, 0, 1)
