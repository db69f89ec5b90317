"""RATE_LIMIT_PER_MINUTE on the TalkMe webhook is per visitor, end to end.

TalkMe posts every visitor from the same few servers, so one busy visitor must not block
the others sharing that IP, and X-Forwarded-For (trusted or not) must not let a visitor
dodge the limit. /api/* limits per IP and per key are tested in tests/http_api.
"""

from __future__ import annotations

from core.testing import ScriptedAgent


def webhook(visitor: str, message_id: int) -> dict:
    return {
        "token": "tok-rate",
        "message": {"text": f"m{message_id}"},
        "client": {"clientId": visitor},
        "originalOnlineChatMessage": {"id": message_id},
    }


async def test_one_busy_visitor_is_limited_and_the_others_are_not(eneca_app):
    client = await eneca_app(
        ["talkme"],
        agent=ScriptedAgent(),
        settings={
            "core": {"rate_limit_per_minute": 3, "trusted_proxies": "127.0.0.1"},
            "talkme": {"test_mode": True},
        },
    )
    statuses = []
    for n in range(5):  # a new forwarded address each time changes nothing
        response = await client.post(
            "/webhook/talkme", json=webhook("busy", n), headers={"X-Forwarded-For": f"10.0.0.{n}"}
        )
        statuses.append(response.status)
        if response.status == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert (await response.json())["error"]["code"] == "rate_limited"
    assert statuses == [200, 200, 200, 429, 429]
    others = [
        (await client.post("/webhook/talkme", json=webhook(f"v{n}", 100 + n))).status
        for n in range(5)
    ]
    assert others == [200] * 5
