"""/openapi.json: a valid OpenAPI 3.1 document listing every route the app has."""

import re

from openapi_spec_validator import validate

from core.testing import ScriptedAgent


def app_operations(app):
    found = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*"):
            continue
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        found.add((re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path), route.method.lower()))
    return found


async def test_the_document_validates_and_lists_every_route(start_api):
    client = await start_api(ScriptedAgent(), debug_endpoint=True, serve_examples=True)
    resp = await client.get("/openapi.json")
    doc = await resp.json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    expected = app_operations(client.app)
    assert expected == documented
    assert {
        ("/api/chat", "post"),
        ("/api/chat/stream", "post"),
        ("/api/threads/{thread_id}/messages", "get"),
        ("/api/threads/{thread_id}", "delete"),
        ("/api/n8n/chat", "post"),
        ("/api/debug", "post"),
        ("/examples/chat", "get"),
    } <= documented


async def test_the_schemas_come_from_the_request_models(start_api):
    client = await start_api()
    doc = await (await client.get("/openapi.json")).json()
    chat = doc["paths"]["/api/chat"]["post"]
    ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert request["required"] == ["message"]
    assert set(request["properties"]) == {"message", "user_id", "chat_id", "thread_id", "metadata"}
    for status in ("200", "401", "403", "413", "415", "422", "503"):
        assert status in chat["responses"], status
    stream = doc["paths"]["/api/chat/stream"]["post"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert "security" in chat
    assert {"limit"} == {
        p["name"]
        for p in doc["paths"]["/api/threads/{thread_id}/messages"]["get"]["parameters"]
        if p["in"] == "query"
    }


async def test_disabled_routes_are_absent(start_api):
    client = await start_api()
    doc = await (await client.get("/openapi.json")).json()
    assert "/api/debug" not in doc["paths"]
    assert "/examples/chat" not in doc["paths"]


async def test_the_request_headers_a_client_sends_are_documented(start_api):
    doc = await (await (await start_api()).get("/openapi.json")).json()

    def headers(path: str, method: str) -> set[str]:
        operation = doc["paths"][path][method]
        return {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}

    assert headers("/api/chat", "post") == {"Idempotency-Key", "X-Visitor-Token"}
    assert headers("/api/chat/stream", "post") == {"X-Visitor-Token"}
    assert headers("/api/n8n/chat", "post") == {"Idempotency-Key"}
    assert headers("/api/threads", "get") == {"X-Visitor-Token"}
    assert headers("/api/threads/{thread_id}", "delete") == {"X-Visitor-Token"}
