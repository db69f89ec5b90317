"""API keys on /api/* (401/403, Bearer, open mode) and CORS for the public origins."""

import httpx
from httpx_sse import aconnect_sse

from core.testing import ScriptedAgent

BODY = {"message": "hi"}


async def test_a_missing_key_is_401_and_a_wrong_one_403(start_api):
    client = await start_api()
    resp = await client.post("/api/chat", json=BODY)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "missing_api_key"
    resp = await client.post("/api/chat", json=BODY, headers={"X-API-Key": "nope"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "invalid_api_key"
    for path in ("/api/threads/t/messages",):
        assert (await client.get(path)).status == 401
    assert (await client.delete("/api/threads/t")).status == 401
    resp = await client.post("/api/n8n/chat", json={"action": "loadPreviousSession"})
    assert resp.status == 401


async def test_either_key_in_the_header_or_as_bearer_is_accepted(start_api):
    client = await start_api()
    assert (await client.post("/api/chat", json=BODY, headers={"X-API-Key": "k2"})).status == 200
    resp = await client.post("/api/chat", json=BODY, headers={"Authorization": "Bearer k1"})
    assert resp.status == 200
    resp = await client.post("/api/chat", json=BODY, headers={"Authorization": "Bearer bad"})
    assert resp.status == 403


async def test_the_key_header_name_is_configurable(start_api):
    client = await start_api(core={"api_key_header": "X-Bot-Key"})
    assert (await client.post("/api/chat", json=BODY, headers={"X-Bot-Key": "k1"})).status == 200
    assert (await client.post("/api/chat", json=BODY, headers={"X-API-Key": "k1"})).status == 401


async def test_auth_is_checked_before_the_body(start_api):
    client = await start_api()
    resp = await client.post("/api/chat", data=b"{not json", headers={"X-API-Key": "bad"})
    assert resp.status == 403


async def test_health_index_and_openapi_stay_open(start_api):
    client = await start_api()
    for path in ("/", "/health", "/openapi.json"):
        assert (await client.get(path)).status == 200, path


async def test_without_keys_the_api_is_open_and_a_warning_is_logged(eneca_app, app_log):
    client = await eneca_app(plugins=["http_api"], agent=ScriptedAgent())
    assert (await client.post("/api/chat", json=BODY)).status == 200
    assert (await client.post("/api/chat", json=BODY)).status == 200
    assert app_log().count("no keys are set") == 1
    health = await (await client.get("/health")).json()
    assert health["plugins"]["http_api"]["auth"] == "open"


async def test_no_warning_when_keys_are_set(start_api, app_log):
    client = await start_api()
    assert (await client.post("/api/chat", json=BODY, headers={"X-API-Key": "k1"})).status == 200
    assert "no keys are set" not in app_log()


APP = "https://app.example.com"
PUBLIC_SITE = {"public_keys": "pk", "public_origins": APP}


async def test_preflight_from_an_allowed_origin(start_api):
    client = await start_api(
        core={"public_keys": "pk", "public_origins": f"{APP}, https://other.example.com"}
    )
    resp = await client.options(
        "/api/chat",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key",
        },
    )
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    allowed = resp.headers["Access-Control-Allow-Headers"].lower()
    assert "x-api-key" in allowed and "content-type" in allowed and "authorization" in allowed
    assert "Origin" in resp.headers["Vary"]


async def test_preflight_from_another_origin_is_refused(start_api):
    client = await start_api(core=PUBLIC_SITE)
    resp = await client.options(
        "/api/chat",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert resp.status == 403
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_responses_and_errors_carry_the_cors_headers(start_api):
    client = await start_api(core=PUBLIC_SITE)
    origin = {"Origin": APP}
    resp = await client.post("/api/chat", json=BODY, headers={**origin, "X-API-Key": "k1"})
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    assert "X-Request-ID" in resp.headers["Access-Control-Expose-Headers"]
    resp = await client.post("/api/chat", json=BODY, headers=origin)
    assert resp.status == 401
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    resp = await client.get("/api/nowhere", headers=origin)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    resp = await client.post("/api/chat", json=BODY, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_the_stream_carries_the_cors_headers(start_api):
    client = await start_api(core=PUBLIC_SITE)
    url = str(client.make_url("/api/chat/stream"))
    headers = {"Origin": APP, "X-API-Key": "k1"}
    async with (
        httpx.AsyncClient(timeout=10) as http,
        aconnect_sse(http, "POST", url, json=BODY, headers=headers) as source,
    ):
        assert source.response.headers["access-control-allow-origin"] == APP
        assert [e.json()["type"] async for e in source.aiter_sse()][-1] == "done"


async def test_without_public_origins_no_cors_headers(start_api):
    client = await start_api()
    resp = await client.get("/health", headers={"Origin": APP})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_a_rate_limited_browser_request_still_carries_cors_headers(eneca_app):
    client = await eneca_app(
        ["http_api"],
        agent=ScriptedAgent(),
        settings={
            "core": {
                "rate_limit_per_minute": 1,
                "public_keys": "pk",
                "public_origins": ["https://shop.example"],
            },
        },
    )
    headers = {"Origin": "https://shop.example", "X-API-Key": "pk"}
    assert (await client.post("/api/chat", json={"message": "a"}, headers=headers)).status == 200
    limited = await client.post("/api/chat", json={"message": "b"}, headers=headers)
    assert limited.status == 429
    assert (await limited.json())["error"]["code"] == "rate_limited"
    assert limited.headers["Access-Control-Allow-Origin"] == "https://shop.example"
