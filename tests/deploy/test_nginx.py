"""The shipped nginx file (deploy/nginx/eneca-bot.conf) in a real nginx, in front of the real
``eneca-bot serve``: everything a client reaches under ``/ai-webhook/``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.deploy.nginx import Nginx
from tests.support.openai_server import FakeOpenAI, FakeResponse
from tests.support.serve_process import ADMIN_KEY, ServeProcess
from tests.support.talkme_fake_api import FakeTalkMe
from tests.support.talkme_helpers import webhook_body

KEY = {"X-API-Key": ADMIN_KEY}
BEHIND_NGINX = {"TRUSTED_PROXIES": "127.0.0.1"}


def from_address(address: str) -> aiohttp.ClientSession:
    """A client whose connections come from ``address`` (any 127.x.y.z is this machine)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def test_health_chat_and_links_under_the_prefix(gateway, nginx) -> None:
    server: ServeProcess = await gateway(**BEHIND_NGINX)
    proxy: Nginx = await nginx(server)
    base = f"{proxy.url}/ai-webhook"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/health") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
        body = {"message": "hello through nginx", "thread_id": "ng-1"}
        async with session.post(f"{base}/api/chat", json=body, headers=KEY) as response:
            assert response.status == 200
            answer = await response.json()
        assert answer["response"] == "re: hello through nginx"
        assert answer["success"] is True
        async with session.get(f"{base}/") as response:
            paths = {link["path"] for link in (await response.json())["endpoints"]}
        assert {"/ai-webhook/api/chat", "/ai-webhook/livez", "/ai-webhook/health"} <= paths
        async with session.get(f"{base}/openapi.json") as response:
            assert (await response.json())["servers"] == [{"url": "/ai-webhook"}]
        async with session.get(f"{base}/livez") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})
        # The @n8n/chat widget's endpoint: a message, then the session it loads back.
        widget = {"action": "sendMessage", "sessionId": "ng-n8n", "chatInput": "from n8n"}
        async with session.post(f"{base}/api/n8n/chat", json=widget, headers=KEY) as response:
            assert (await response.json())["output"] == "re: from n8n"
        load = {"action": "loadPreviousSession", "sessionId": "ng-n8n"}
        async with session.post(f"{base}/api/n8n/chat", json=load, headers=KEY) as response:
            assert response.status == 200
            assert "re: from n8n" in json.dumps(await response.json())


async def test_a_stream_reaches_the_client_while_the_model_is_still_writing(
    gateway, nginx, llm: FakeOpenAI
) -> None:
    server = await gateway(**BEHIND_NGINX)
    proxy = await nginx(server)
    model_still_working = asyncio.Event()
    llm.script(
        FakeResponse(text="first, then the rest of it", chunk_chars=7, hold=model_still_working)
    )
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.post(
            f"{proxy.url}/ai-webhook/api/chat/stream",
            json={"message": "stream please", "thread_id": "ng-sse"},
            headers={**KEY, "Accept-Encoding": "gzip"},
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            # The surrounding http {} turns gzip on for event streams; the location does not.
            assert "Content-Encoding" not in response.headers
            async for line in response.content:
                if not line.startswith(b"data:"):
                    continue
                event = json.loads(line[5:])
                events.append(event)
                if event["type"] == "chunk" and not model_still_working.is_set():
                    # The model has sent one piece and waits: nginx passed it on at once.
                    assert event["content"] == "first, "
                    model_still_working.set()
                if event["type"] in ("done", "error"):
                    break
    assert model_still_working.is_set(), events
    assert events[-1] == {
        "type": "done",
        "response": "first, then the rest of it",
        "thread_id": "ng-sse",
        "usage": events[-1].get("usage"),
    }


async def test_the_talkme_webhook_works_through_nginx(gateway, nginx, talkme: FakeTalkMe) -> None:
    server = await gateway(TALKME_WEBHOOK_SECRET="hook-secret-123", **BEHIND_NGINX)
    proxy = await nginx(server)
    url = f"{proxy.url}/ai-webhook/webhook/talkme/hook-secret-123"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=webhook_body("are you there?")) as response:
            assert response.status == 200, await response.text()
        async with session.post(
            f"{proxy.url}/ai-webhook/webhook/talkme/wrong-secret", json=webhook_body("x")
        ) as refused:
            assert refused.status in (401, 403)
            assert (await refused.json())["success"] is False
    await talkme.wait_until(lambda: talkme.sent_texts() == ["re: are you there?"])


async def test_a_body_over_the_limit_gets_a_json_413_from_nginx(gateway, nginx) -> None:
    server = await gateway(**BEHIND_NGINX)
    proxy = await nginx(server)
    too_big = json.dumps({"message": "x" * (1024 * 1024)})  # MAX_BODY_BYTES is 1 MiB
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{proxy.url}/ai-webhook/api/chat",
            data=too_big,
            headers={**KEY, "Content-Type": "application/json"},
        ) as response:
            assert response.status == 413
            body = await response.json(content_type=None)
    assert body["error"]["code"] == "payload_too_large"
    assert "POST /api/chat" not in server.app_log()  # it never reached the gateway


async def test_the_rate_limiter_sees_the_client_nginx_forwards_and_ignores_forgeries(
    gateway, nginx
) -> None:
    server = await gateway(API_KEYS="", ADMIN_KEYS="", RATE_LIMIT_PER_MINUTE="2", **BEHIND_NGINX)
    proxy = await nginx(server)
    path = "/ai-webhook/api/threads/t-1/messages"

    async def status(client: aiohttp.ClientSession, url: str, **headers: str) -> int:
        async with client.get(url, headers=headers) as response:
            await response.read()
            return response.status

    async with from_address("127.0.0.2") as first, from_address("127.0.0.3") as second:
        assert [await status(first, proxy.url + path) for _ in range(3)] == [200, 200, 429]
        # Another client behind the same nginx has its own allowance: the limiter sees the
        # address nginx forwards, not nginx's.
        assert await status(second, proxy.url + path) == 200
        # A forged X-Forwarded-For through nginx: nginx appends the real peer, which wins.
        assert await status(first, proxy.url + path, **{"X-Forwarded-For": "198.51.100.7"}) == 429
        # Straight to the gateway from a peer that is not a trusted proxy: header ignored.
        direct = f"{server.url}/api/threads/t-1/messages"
        assert await status(first, direct, **{"X-Forwarded-For": "127.0.0.9"}) == 429


async def test_every_answer_is_json_with_its_code_even_with_the_gateway_down(
    gateway, nginx
) -> None:
    server = await gateway(**BEHIND_NGINX)
    proxy = await nginx(server)
    base = f"{proxy.url}/ai-webhook"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/no/such/route") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "not_found"
        headers = {**KEY, "Content-Type": "application/json"}
        async with session.post(f"{base}/api/chat", data="{not", headers=headers) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "invalid_json"
        await server.stop()
        async with session.get(f"{base}/health") as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
            body = await response.json(content_type=None)
    assert body["error"]["code"] == "gateway_unavailable"
