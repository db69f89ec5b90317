"""The webhook: secret check, parsing, dedup on update_id, 200 at once, typing."""

from importlib import metadata

from eneca_telegram import TelegramPlugin

from core.testing import wait_delivered


async def test_a_text_update_is_answered_through_send_message(tg):
    tg.answer_typing()
    tg.answer_send()
    await tg.start()
    response = await tg.post(tg.update(1, "hello"))
    assert response.status == 200
    assert await response.json() == {"ok": True, "ignored": None, "duplicate": False}
    await wait_delivered(tg.gateway, channel="telegram")
    assert tg.sent() == [{"chat_id": 42, "text": "echo: hello"}]
    request = tg.agent.requests[0]
    assert request.message.conversation_id == "telegram:42"
    assert (request.message.user_id, request.message.message_id) == ("7", "1")


async def test_the_plugin_is_found_through_its_entry_point(tg):
    await tg.start()
    assert "telegram" in tg.gateway.plugin_names
    (entry,) = [ep for ep in metadata.entry_points(group="eneca_bot.plugins", name="telegram")]
    assert entry.dist is not None and entry.dist.name == "eneca-telegram"
    assert entry.load() is TelegramPlugin


async def test_a_missing_secret_is_401_and_a_wrong_one_403_in_json(tg):
    await tg.start()
    missing = await tg.post(tg.update(1), secret=None)
    assert missing.status == 401
    body = await missing.json()
    assert body["success"] is False and body["error"]["code"] == "unauthorized"
    wrong = await tg.post(tg.update(2), secret="not-the-secret")
    assert wrong.status == 403
    assert (await wrong.json())["error"]["code"] == "forbidden"
    assert tg.agent.requests == []
    assert (await tg.gateway.delivery_stats("telegram"))["received"] == 0


async def test_without_a_configured_secret_updates_are_taken_without_the_header(tg):
    tg.answer_typing()
    tg.answer_send()
    await tg.start(webhook_secret="")
    assert (await tg.post(tg.update(1), secret=None)).status == 200
    await wait_delivered(tg.gateway, channel="telegram")
    assert [body["text"] for body in tg.sent()] == ["echo: hello"]


async def test_updates_that_are_not_text_messages_are_acknowledged_and_ignored(tg):
    await tg.start()
    edited = {"update_id": 5, "edited_message": tg.update(5)["message"]}
    callback = {"update_id": 6, "callback_query": {"id": "1", "data": "x"}}
    photo = tg.update(7, text=None)
    for body in (edited, callback, photo):
        response = await tg.post(body)
        assert response.status == 200
        assert (await response.json())["ignored"]
    assert tg.agent.requests == []
    assert tg.sent() == []


async def test_a_redelivered_update_id_is_answered_once(tg):
    tg.answer_typing()
    tg.answer_send(repeat=True)
    await tg.start()
    first = await tg.post(tg.update(9, "once"))
    second = await tg.post(tg.update(9, "once"))
    assert (first.status, second.status) == (200, 200)
    assert (await second.json())["duplicate"] is True
    stats = await wait_delivered(tg.gateway, channel="telegram")
    assert [body["text"] for body in tg.sent()] == ["echo: once"]
    assert len(tg.agent.requests) == 1
    assert stats["duplicates"] == 1


async def test_typing_is_shown_in_the_chat_while_the_agent_works(tg):
    tg.answer_typing()
    tg.answer_send()
    await tg.start()
    await tg.post(tg.update(1, chat_id=77))
    await wait_delivered(tg.gateway, channel="telegram")
    assert tg.typing() == [{"chat_id": 77, "action": "typing"}]


async def test_a_failing_typing_call_does_not_stop_the_reply(tg):
    tg.http.post(tg.typing_url, status=500, payload={"ok": False, "description": "boom"})
    tg.answer_send()
    await tg.start()
    await tg.post(tg.update(1))
    await wait_delivered(tg.gateway, channel="telegram")
    assert [body["text"] for body in tg.sent()] == ["echo: hello"]


async def test_bad_bodies_are_json_errors_not_500(tg):
    await tg.start()
    assert tg.client is not None
    not_json = await tg.client.post(
        "/webhook/telegram",
        data=b"{nope",
        headers={"X-Telegram-Bot-Api-Secret-Token": tg.secret},
    )
    assert not_json.status == 400
    assert (await not_json.json())["error"]["code"] == "invalid_json"
    no_id = await tg.post({"message": {"text": "hi"}})
    assert no_id.status == 422
    assert (await no_id.json())["error"]["code"] == "validation_error"


async def test_the_webhook_is_described_in_openapi(tg):
    await tg.start()
    assert tg.client is not None
    document = await (await tg.client.get("/openapi.json")).json()
    assert "post" in document["paths"]["/webhook/telegram"]
