"""The texts a visitor gets when there is no answer: neutral, in their language, an operator
offered only on a channel that can hand over, every one of them a setting."""

# ruff: noqa: RUF001  (Russian texts)
from __future__ import annotations

from core import Tool, ToolResult, hookimpl
from core.testing import ask, gateway_of
from tests.support.openai_server import FakeResponse

NOT_FOUND_RU = (
    "В базе знаний нет ответа на этот вопрос. Попробуйте, пожалуйста, сформулировать его иначе."
)
NOT_FOUND_EN = (
    "I couldn't find an answer to this in the knowledge base. Please try asking in other words."
)
SORRY_RU = "Извините, сейчас не получается ответить. Пожалуйста, попробуйте чуть позже."
SORRY_EN = "Sorry, I can't answer right now. Please try again a little later."


class _HandoverChannel:
    """A channel that offers TalkMe's hand-over tool through the real ``agent_tools`` hook."""

    @hookimpl
    def agent_tools(self, message):
        async def handler(arguments, msg):
            return ToolResult("ok", action="handover")

        return [Tool("transfer_to_operator", "Hand over", {"type": "object"}, handler)]


async def _knowledge_only(eneca_app, docs, extra=None, **settings):
    values = {"knowledge_dir": str(docs), **settings}
    return await eneca_app(
        plugins=["agent_openai"], extra=extra or {}, settings={"agent_openai": values}
    )


async def test_not_found_is_neutral_and_in_the_visitors_language(eneca_app, docs):
    gateway = gateway_of(await _knowledge_only(eneca_app, docs))
    assert (await ask(gateway, "Как приготовить борщ?")).text == NOT_FOUND_RU
    assert (await ask(gateway, "how do I cook borscht?")).text == NOT_FOUND_EN


async def test_an_operator_is_offered_only_where_a_channel_can_hand_over(eneca_app, docs):
    extra = {"handover": _HandoverChannel()}
    gateway = gateway_of(await _knowledge_only(eneca_app, docs, extra))
    assert (await ask(gateway, "Как приготовить борщ?")).text == (
        f"{NOT_FOUND_RU} Также можно попросить соединить вас с оператором."
    )
    assert (await ask(gateway, "how do I cook borscht?")).text == (
        f"{NOT_FOUND_EN} You can also ask to talk to an operator."
    )


async def test_not_found_texts_are_settings(eneca_app, docs):
    gateway = gateway_of(
        await _knowledge_only(
            eneca_app,
            docs,
            knowledge_not_found_text_ru="Не нашёл.",
            knowledge_not_found_text_en="Not found.",
        )
    )
    assert (await ask(gateway, "борщ")).text == "Не нашёл."
    assert (await ask(gateway, "borscht")).text == "Not found."


async def test_model_failure_apology_by_language_and_its_settings(agent_app, fake_openai):
    fake_openai.default = FakeResponse(status=500)
    gateway = gateway_of(await agent_app())
    russian = await ask(gateway, "Как приготовить борщ?")
    assert (russian.text, russian.error.code) == (SORRY_RU, "llm_unavailable")
    assert (await ask(gateway, "how do I cook borscht?")).text == SORRY_EN

    custom = gateway_of(
        await agent_app(agent_fallback_text_ru="Ошибка.", agent_fallback_text_en="Error.")
    )
    assert (await ask(custom, "борщ")).text == "Ошибка."
    assert (await ask(custom, "borscht")).text == "Error."
    one = gateway_of(await agent_app(agent_fallback_text="One text for all."))
    assert (await ask(one, "борщ")).text == "One text for all."
