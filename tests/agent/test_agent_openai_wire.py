"""Reading the model's JSON without the SDK's models: odd shapes are a bad response, not
a crash, and split tool calls are put back together."""

import pytest

from plugins.agent_openai.fallback import EmptyReplyError, MalformedResponseError, classify
from plugins.agent_openai.wire import StreamReader, completion_result


def test_a_completion_with_tool_calls_and_usage():
    result = completion_result(
        {
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [
                            {"id": "a", "function": {"name": "f", "arguments": "{}"}},
                            {"function": {"name": "g", "arguments": None}},
                        ],
                    }
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )
    assert result.text == ""
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("a", "f", "{}"),
        ("call_1", "g", ""),
    ]
    assert result.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_no_choices_is_an_empty_reply():
    with pytest.raises(EmptyReplyError):
        completion_result({"choices": []})


@pytest.mark.parametrize(
    "body",
    [
        "just text",
        None,
        {"choices": "nope"},
        {"choices": [7]},
        {"choices": [{"message": None}]},
        {"choices": [{"message": {"content": ["parts"]}}]},
        {"choices": [{"message": {"content": "x", "tool_calls": [{"function": 1}]}}]},
        {"choices": [{"message": {"content": "x"}}], "usage": 12},
    ],
)
def test_a_completion_of_the_wrong_shape_is_a_bad_response(body):
    with pytest.raises(MalformedResponseError) as caught:
        completion_result(body)
    assert classify(caught.value).code == "llm_bad_response"


def test_stream_chunks_add_up_to_the_reply_with_split_tool_arguments():
    reader = StreamReader()
    chunks = [
        {"choices": [{"delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"delta": {"content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo"}}]},
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"q'}}
                        ]
                    }
                }
            ]
        },
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}}
            ]
        },
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 1, "function": {"arguments": '": 1}'}}]}}
            ]
        },
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6}},
    ]
    texts = [reader.feed(chunk) for chunk in chunks]
    assert texts == ["", "Hel", "lo", "", "", "", "", ""]
    assert reader.finished
    result = reader.result()
    assert result.text == "Hello"
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("a", "f", ""),
        ("b", "g", '{"q": 1}'),
    ]
    assert result.usage == {"prompt_tokens": 4, "completion_tokens": 6}


def test_a_stream_without_a_finish_reason_is_not_finished():
    reader = StreamReader()
    reader.feed({"choices": [{"delta": {"content": "cut"}, "finish_reason": None}]})
    assert not reader.finished


@pytest.mark.parametrize(
    "chunk",
    [
        "text",
        [1],
        {"choices": {"0": {}}},
        {"choices": ["x"]},
        {"choices": [{"delta": "x"}]},
        {"choices": [{"delta": {"content": 5}}]},
        {"choices": [{"delta": {"tool_calls": {"index": 0}}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 3}}]}}]},
        {"choices": [], "usage": "many"},
    ],
)
def test_a_chunk_of_the_wrong_shape_is_a_bad_response(chunk):
    with pytest.raises(MalformedResponseError) as caught:
        StreamReader().feed(chunk)
    assert classify(caught.value).code == "llm_bad_response"


async def test_a_message_with_half_an_emoji_still_reaches_the_model(agent_app, fake_openai):
    from core.testing import ask, gateway_of
    from tests.support.openai_server import FakeResponse

    fake_openai.default = FakeResponse(text="fine")
    client = await agent_app()
    reply = await ask(gateway_of(client), "broken \ud83d client")
    assert reply.success and reply.text == "fine"
    assert fake_openai.requests[-1]["messages"][-1]["content"] == "broken \ud83d client"
