"""agent_openai answering through the real app and the real openai client (fake server)."""

# ruff: noqa: RUF001  (Russian test texts)
from __future__ import annotations

import json

from core.contract.agent import Tool, ToolResult
from core.contract.events import Message
from core.plugins import hookimpl
from core.testing import ask, gateway_of
from tests.support.openai_server import FakeResponse, FakeToolCall
from tests.support.shop import SYSTEM


async def stream(gateway, text, conversation_id="c1"):
    handle = await gateway.publish(Message(conversation_id, "test", text, stream=True))
    chunks = [chunk async for chunk in handle.chunks()]
    return chunks, await handle.reply()


async def test_non_streaming_reply_with_usage(agent_app, fake_openai):
    fake_openai.script(
        FakeResponse(text="Hello there!", usage={"prompt_tokens": 12, "completion_tokens": 3})
    )
    client = await agent_app()
    reply = await ask(gateway_of(client), "hi")
    assert reply.success
    assert reply.text == "Hello there!"
    assert reply.usage == {"prompt_tokens": 12, "completion_tokens": 3}
    body = fake_openai.requests[0]
    assert body["model"] == "fake-model"
    assert not body.get("stream")
    assert fake_openai.headers[0]["Authorization"] == "Bearer sk-test-secret-key"


async def test_streaming_reply_is_chunked_and_concatenated(agent_app, fake_openai):
    fake_openai.script(FakeResponse(text="Streaming works fine.", chunk_chars=3))
    client = await agent_app()
    chunks, reply = await stream(gateway_of(client), "hi")
    assert len(chunks) == 7
    assert "".join(chunks) == reply.text == "Streaming works fine."
    assert reply.success
    assert reply.usage and reply.usage["completion_tokens"] > 0
    body = fake_openai.requests[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_exact_messages_on_turn_one_and_turn_three(agent_app, fake_openai):
    fake_openai.script(
        FakeResponse(text="answer one"), FakeResponse(text="answer two"), FakeResponse(text="three")
    )
    client = await agent_app()
    gateway = gateway_of(client)
    await ask(gateway, "first question")
    await ask(gateway, "second question")
    await ask(gateway, "third question")
    assert fake_openai.requests[0]["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "first question"},
    ]
    assert fake_openai.requests[2]["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "answer two"},
        {"role": "user", "content": "third question"},
    ]
    # Conversations do not see each other's history.
    await ask(gateway, "other", conversation_id="c2")
    assert fake_openai.requests[3]["messages"][1:] == [{"role": "user", "content": "other"}]


async def test_a_failed_reply_is_not_remembered(agent_app, fake_openai):
    fake_openai.script(FakeResponse(status=500), FakeResponse(text="ok now"))
    client = await agent_app()
    gateway = gateway_of(client)
    failed = await ask(gateway, "first")
    assert not failed.success
    await ask(gateway, "second")
    assert [m["role"] for m in fake_openai.requests[1]["messages"]] == ["system", "user", "user"]


async def test_system_prompt_from_file(agent_app, fake_openai, tmp_path):
    prompt = tmp_path / "prompt.md"
    prompt.write_text("Prompt from the file.\n", encoding="utf-8")
    client = await agent_app(system_prompt=None, system_prompt_file=str(prompt))
    await ask(gateway_of(client), "hi")
    assert fake_openai.requests[0]["messages"][0] == {
        "role": "system",
        "content": "Prompt from the file.",
    }


def _knowledge_round(body):
    """The fake model: search first, then answer from what the tool returned."""
    messages = body["messages"]
    if messages[-1]["role"] != "tool":
        return FakeResponse(
            text="", tool_calls=[FakeToolCall("search_knowledge_base", {"query": "доставки"})]
        )
    return FakeResponse(text="Курьер привезёт за 1–2 дня.")


async def _check_knowledge_rounds(fake_openai):
    first, second = fake_openai.requests
    names = [tool["function"]["name"] for tool in first["tools"]]
    assert names == ["search_knowledge_base"]
    assistant, tool = second["messages"][-2:]
    assert assistant["tool_calls"][0]["function"] == {
        "name": "search_knowledge_base",
        "arguments": json.dumps({"query": "доставки"}, ensure_ascii=False),
    }
    assert tool["role"] == "tool"
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert "Курьерская доставка по Москве" in tool["content"]
    assert "delivery.ru.md" in tool["content"]


async def test_knowledge_tool_call_and_second_round(agent_app, fake_openai):
    fake_openai.default = _knowledge_round
    client = await agent_app()
    reply = await ask(gateway_of(client), "Сколько идёт доставка?")
    assert reply.success and reply.text == "Курьер привезёт за 1–2 дня."
    await _check_knowledge_rounds(fake_openai)


async def test_knowledge_tool_call_streamed_with_split_arguments(agent_app, fake_openai):
    fake_openai.default = lambda body: FakeResponse(
        **{**_knowledge_round(body).__dict__, "argument_pieces": 5}
    )
    client = await agent_app()
    chunks, reply = await stream(gateway_of(client), "Сколько идёт доставка?")
    assert reply.success and reply.text == "Курьер привезёт за 1–2 дня."
    assert "".join(chunks) == reply.text
    await _check_knowledge_rounds(fake_openai)
    assert reply.usage and reply.usage["prompt_tokens"] > 0


async def test_tool_rounds_are_limited(agent_app, fake_openai):
    fake_openai.default = lambda body: (
        FakeResponse(text="gave up searching")
        if "tools" not in body
        else FakeResponse(
            text="", tool_calls=[FakeToolCall("search_knowledge_base", {"query": "x"})]
        )
    )
    client = await agent_app(agent_max_tool_rounds=2)
    reply = await ask(gateway_of(client), "loop forever")
    assert reply.text == "gave up searching"
    assert ["tools" in body for body in fake_openai.requests] == [True, True, False]


class _OperatorTool:
    """A channel plugin offering a tool through the real ``agent_tools`` hook."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def agent_tools(self, message):
        async def handler(arguments, msg):
            self.calls.append((dict(arguments), msg.text))
            return ToolResult("An operator will join shortly.", action="handover")

        return [
            Tool(
                "transfer_to_operator",
                "Hand the conversation to a human",
                {"type": "object", "properties": {"reason": {"type": "string"}}},
                handler,
            )
        ]


async def test_other_plugins_tools_are_offered_and_their_actions_returned(
    eneca_app, fake_openai, docs
):
    operator = _OperatorTool()
    fake_openai.default = lambda body: (
        FakeResponse(text="Connecting you to a person.")
        if body["messages"][-1]["role"] == "tool"
        else FakeResponse(
            text="", tool_calls=[FakeToolCall("transfer_to_operator", {"reason": "asked"})]
        )
    )
    settings = {
        "openai_base_url": fake_openai.base_url,
        "openai_max_retries": 0,
        "knowledge_dir": str(docs),
    }
    client = await eneca_app(
        plugins=["agent_openai"], extra={"operator": operator}, settings={"agent_openai": settings}
    )
    for streamed in (False, True):
        message = Message(f"c-{streamed}", "test", "give me a human", stream=streamed)
        reply = await (await gateway_of(client).publish(message)).reply()
        assert reply.success
        assert reply.text == "Connecting you to a person."
        assert reply.actions == ("handover",)
    names = {tool["function"]["name"] for tool in fake_openai.requests[0]["tools"]}
    assert names == {"search_knowledge_base", "transfer_to_operator"}
    assert operator.calls == [({"reason": "asked"}, "give me a human")] * 2
    # No key configured but a base URL: a local server (Ollama...) is used.
    assert fake_openai.headers[0]["Authorization"] == "Bearer not-needed"


async def test_context_mode_puts_passages_in_the_prompt(agent_app, fake_openai):
    client = await agent_app(knowledge_mode="context")
    await ask(gateway_of(client), "How do refunds work?")
    body = fake_openai.requests[0]
    assert "tools" not in body
    system = body["messages"][0]["content"]
    assert system.startswith(SYSTEM)
    assert "Refunds are paid to the original card" in system


async def test_off_mode_offers_no_knowledge_tool(agent_app, fake_openai):
    client = await agent_app(knowledge_mode="off")
    reply = await ask(gateway_of(client), "hi")
    assert reply.success
    assert "tools" not in fake_openai.requests[0]
    assert fake_openai.requests[0]["messages"][0]["content"] == SYSTEM


async def test_settings_reach_the_request(agent_app, fake_openai):
    client = await agent_app(openai_temperature=0.2, openai_max_tokens=55)
    await ask(gateway_of(client), "hi")
    assert fake_openai.requests[0]["temperature"] == 0.2
    assert fake_openai.requests[0]["max_tokens"] == 55


async def test_health_reports_model_and_documents_without_calling_the_model(agent_app, fake_openai):
    client = await agent_app()
    resp = await client.get("/health")
    body = await resp.json()
    check = body["plugins"]["agent_openai"]
    assert check["ok"] is True
    assert check["configured"] is True
    assert check["model"] == "fake-model"
    assert check["knowledge_documents"] == 3
    assert fake_openai.requests == []
    assert "sk-test-secret-key" not in json.dumps(body)


async def test_a_server_without_stream_options_still_streams(agent_app, fake_openai):
    fake_openai.script(
        FakeResponse(status=400, error_message="Unrecognized request argument: stream_options"),
        FakeResponse(text="streamed anyway"),
        FakeResponse(text="and again"),
    )
    client = await agent_app()
    _, reply = await stream(gateway_of(client), "hi")
    assert reply.success and reply.text == "streamed anyway"
    _, reply = await stream(gateway_of(client), "hi")
    assert reply.text == "and again"
    assert ["stream_options" in body for body in fake_openai.requests] == [True, False, False]


def test_credentials_in_the_base_url_are_not_shown():
    from plugins.agent_openai.model import public_url

    assert public_url("http://bob:s3cret@llm.local:8080/v1") == "http://llm.local:8080/v1"
    assert public_url("https://api.openai.com/v1/") == "https://api.openai.com/v1/"
