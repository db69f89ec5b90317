from core.testing import ScriptedAgent, ask, gateway_of


async def test_publish_and_reply_through_the_real_app(eneca_app):
    agent = ScriptedAgent()
    client = await eneca_app(agent=agent)
    gateway = gateway_of(client)
    reply = await ask(gateway, "hello")
    assert reply.text == "echo: hello"
    reply2 = await ask(gateway, "again")
    assert [t.text for t in agent.requests[1].history] == ["hello", "echo: hello", "again"]
    resp = await client.get("/health")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["status"] == "ok"
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    doc = await (await client.get("/openapi.json")).json()
    assert "/health" in doc["paths"]
    assert reply2.success
