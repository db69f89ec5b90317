"""One message's trace, from a real ``eneca-bot serve`` to the test OTLP receiver: the span
tree of a chat with its GenAI attributes, a tool round, time to first token on a stream,
and a TalkMe message whose trace goes on through two delivery attempts and a restart."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.support.clients import HEADERS, eventually, webhook
from tests.support.openai_server import FakeOpenAI, FakeResponse, FakeToolCall
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.serve_process import ServeProcess
from tests.support.talkme_fake_api import FakeTalkMe, Scripted
from tests.tracing.test_serve_tracing import post_chat, traced_env

USAGE = {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25}


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, [span.name for span in spans])
    return found[0]


def is_hash(value: object) -> bool:
    return isinstance(value, str) and len(value) == 16 and int(value, 16) >= 0


async def test_a_chat_gives_one_trace_with_the_expected_tree(
    tmp_path: Path, llm: FakeOpenAI, otlp_receiver: OtlpReceiver
) -> None:
    llm.script(FakeResponse(text="Delivery takes two days.", usage=USAGE))
    server = ServeProcess(tmp_path, traced_env(tmp_path, llm, otlp_receiver))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            status, body, headers = await post_chat(
                session, server.url, "how long is delivery?", thread="thread-9"
            )
        assert (status, body["response"]) == (200, "Delivery takes two days.")
        trace_id = headers["X-Trace-ID"]
        spans = await otlp_receiver.wait_for(
            lambda spans: (
                {"POST /api/chat", "store.append"}
                <= {s.name for s in spans if s.trace_id == trace_id}
            )
        )
    finally:
        await server.stop()
    spans = [span for span in spans if span.trace_id == trace_id]
    request = one(spans, "POST /api/chat")
    answer = one(spans, "bus.answer")
    stored = one(spans, "store.append_history")
    agent = one(spans, "invoke_agent eneca-bot")
    model = one(spans, "chat fake")
    reply_stored = one(spans, "store.append")
    assert request.parent_span_id == ""
    assert answer.parent_span_id == request.span_id
    assert stored.parent_span_id == answer.span_id
    assert agent.parent_span_id == answer.span_id
    assert model.parent_span_id == agent.span_id
    assert reply_stored.parent_span_id == answer.span_id
    # The message in the bus: its channel, its conversation hashed, how long it waited.
    assert answer.attributes["eneca.channel"] == "http_api"
    assert is_hash(answer.attributes["eneca.conversation.id"])
    assert answer.attributes["eneca.bus.lane_wait_s"] >= 0
    assert answer.attributes["eneca.message.durable"] is False
    assert stored.attributes["eneca.store.turns"] == 1
    # The model call, after the GenAI conventions, with what the model server reported.
    assert model.kind == "client"
    assert model.attributes["gen_ai.operation.name"] == "chat"
    assert model.attributes["gen_ai.request.model"] == "fake"
    assert model.attributes["gen_ai.response.model"] == "fake"
    assert model.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert model.attributes["gen_ai.usage.input_tokens"] == USAGE["prompt_tokens"]
    assert model.attributes["gen_ai.usage.output_tokens"] == USAGE["completion_tokens"]
    assert model.attributes["server.address"] == "127.0.0.1"
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    # No visitor text anywhere.
    for span in spans:
        assert "delivery?" not in span.text() and "two days" not in span.text()
        assert "thread-9" not in span.text()


async def test_a_tool_round_shows_the_search_between_two_model_calls(
    tmp_path: Path, llm: FakeOpenAI, otlp_receiver: OtlpReceiver
) -> None:
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "delivery.md").write_text(
        "# Delivery\n\nParcels are delivered within two working days anywhere in the city.\n"
    )
    llm.script(
        FakeResponse(
            text="", tool_calls=[FakeToolCall("search_knowledge_base", {"query": "delivery"})]
        ),
        FakeResponse(text="Two working days.", usage=USAGE),
    )
    env = traced_env(
        tmp_path, llm, otlp_receiver, KNOWLEDGE_MODE="tool", KNOWLEDGE_DIR=str(knowledge)
    )
    server = ServeProcess(tmp_path, env)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            status, body, headers = await post_chat(session, server.url, "delivery time?")
        assert (status, body["response"]) == (200, "Two working days.")
        trace_id = headers["X-Trace-ID"]
        spans = await otlp_receiver.wait_for(
            lambda spans: (
                sum(s.name == "chat fake" and s.trace_id == trace_id for s in spans) == 2
                and any(s.name == "store.append" and s.trace_id == trace_id for s in spans)
            )
        )
    finally:
        await server.stop()
    spans = [span for span in spans if span.trace_id == trace_id]
    agent = one(spans, "invoke_agent eneca-bot")
    tool = one(spans, "execute_tool search_knowledge_base")
    search = one(spans, "knowledge.search")
    first, second = sorted(
        (s for s in spans if s.name == "chat fake"), key=lambda span: span.start_ns
    )
    assert tool.parent_span_id == agent.span_id
    assert search.parent_span_id == tool.span_id
    assert first.parent_span_id == second.parent_span_id == agent.span_id
    assert first.end_ns <= tool.start_ns and tool.end_ns <= second.start_ns
    assert first.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert tool.attributes["gen_ai.tool.name"] == "search_knowledge_base"
    assert search.attributes["eneca.knowledge.passages"] >= 1
    assert isinstance(search.attributes["eneca.knowledge.top_score"], float)
    assert second.attributes["gen_ai.usage.input_tokens"] == USAGE["prompt_tokens"]


async def test_a_streamed_reply_has_its_time_to_first_token(
    tmp_path: Path, llm: FakeOpenAI, otlp_receiver: OtlpReceiver
) -> None:
    llm.script(FakeResponse(text="one two three four", ttft_s=0.05, usage=USAGE))
    server = ServeProcess(tmp_path, traced_env(tmp_path, llm, otlp_receiver))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{server.url}/api/chat/stream",
                json={"message": "count", "thread_id": "s-1"},
                headers=HEADERS,
            ) as response:
                assert response.status == 200
                trace_id = response.headers["X-Trace-ID"]
                streamed = (await response.read()).decode()
        assert "four" in streamed
        spans = await otlp_receiver.wait_for(
            lambda spans: (
                any(s.name == "chat fake" and s.trace_id == trace_id for s in spans)
                and any(s.name == "POST /api/chat/stream" for s in spans)
            )
        )
    finally:
        await server.stop()
    spans = [span for span in spans if span.trace_id == trace_id]
    model = one(spans, "chat fake")
    request = one(spans, "POST /api/chat/stream")
    ttft = model.attributes["gen_ai.response.time_to_first_chunk"]
    assert 0 < ttft <= (model.end_ns - model.start_ns) / 1e9
    assert model.attributes["gen_ai.request.stream"] is True
    assert model.attributes["gen_ai.usage.output_tokens"] == USAGE["completion_tokens"]
    assert one(spans, "bus.answer").parent_span_id == request.span_id
    assert one(spans, "bus.answer").attributes["eneca.message.stream"] is True


async def test_a_talkme_message_is_one_trace_through_two_delivery_attempts(
    tmp_path: Path, llm: FakeOpenAI, talkme: FakeTalkMe, otlp_receiver: OtlpReceiver
) -> None:
    talkme.script("send", Scripted(503))  # the first attempt fails, the second goes through
    env = traced_env(tmp_path, llm, otlp_receiver, TALKME_API_URL=talkme.url)
    server = ServeProcess(tmp_path, env)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            outcome = await webhook(session, server.url, "visitor-5", 501, "where is my order")
            assert outcome.status == 200
        trace_id = outcome.headers["X-Trace-ID"]
        spans = await otlp_receiver.wait_for(
            lambda spans: sum(s.name == "delivery talkme" for s in spans) >= 2
        )
    finally:
        await server.stop()
    assert talkme.sent_texts() == ["re: where is my order"]
    webhook_span = next(s for s in spans if s.name.startswith("POST /webhook/talkme"))
    answer = one(spans, "bus.answer")
    attempts = sorted(
        (s for s in spans if s.name == "delivery talkme"),
        key=lambda span: span.attributes["eneca.delivery.attempt"],
    )
    assert webhook_span.trace_id == trace_id
    assert answer.trace_id == trace_id and answer.parent_span_id == webhook_span.span_id
    assert answer.attributes["eneca.message.durable"] is True
    assert [a.trace_id for a in attempts] == [trace_id, trace_id]
    assert [a.parent_span_id for a in attempts] == [answer.span_id, answer.span_id]
    assert [a.attributes["eneca.delivery.attempt"] for a in attempts] == [1, 2]
    assert [a.attributes["eneca.delivery.outcome"] for a in attempts] == ["retry", "delivered"]
    assert attempts[0].attributes["eneca.delivery.retry_delay_s"] > 0
    assert attempts[0].status_code == 2 and attempts[1].status_code != 2
    for span in spans:
        assert "where is my order" not in span.text()


async def test_after_a_restart_the_answer_continues_the_webhook_trace(
    tmp_path: Path, llm: FakeOpenAI, talkme: FakeTalkMe, otlp_receiver: OtlpReceiver
) -> None:
    llm.script(FakeResponse(text="late", stall_s=15))  # no answer before the crash
    env = traced_env(tmp_path, llm, otlp_receiver, TALKME_API_URL=talkme.url)
    server = ServeProcess(tmp_path, env)
    await server.start()
    async with aiohttp.ClientSession() as session:
        outcome = await webhook(session, server.url, "visitor-7", 701, "hello before the crash")
        assert outcome.status == 200
    trace_id = outcome.headers["X-Trace-ID"]
    webhook_span = await otlp_receiver.wait_for_span("POST /webhook/talkme")
    await eventually(lambda: len(llm.requests) == 1, 20, "the model was asked")
    await server.kill()  # SIGKILL: the message is kept in the inbox, unanswered
    restarted = ServeProcess(tmp_path, env)
    await restarted.start()
    try:
        await eventually(lambda: talkme.sent_texts() != [], 30, "the reply is delivered")
        spans = await otlp_receiver.wait_for(
            lambda spans: any(s.name == "delivery talkme" for s in spans)
        )
    finally:
        await restarted.stop()
    assert talkme.sent_texts() == ["re: hello before the crash"]
    answers = [s for s in spans if s.name == "bus.answer" and s.trace_id == trace_id]
    assert answers, "the answer after the restart is in the webhook's trace"
    assert answers[-1].parent_span_id == webhook_span.span_id
    delivery = one(spans, "delivery talkme")
    assert delivery.trace_id == trace_id and delivery.parent_span_id == answers[-1].span_id
