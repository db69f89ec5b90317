"""The pipeline uses a store's optional ``append_and_history`` (one step instead of two)
and works the same with a store that lacks it."""

from core.engine.memory import InMemoryConversationStore
from core.testing import ScriptedAgent, ask, gateway_of


class PlainStore(InMemoryConversationStore):
    """A third-party store with only the protocol's methods."""

    def __getattribute__(self, name: str):
        if name == "append_and_history":
            raise AttributeError(name)
        return super().__getattribute__(name)


class CountingStore(InMemoryConversationStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def append(self, conversation_id, turn):
        self.calls.append(f"append {turn.role}")
        return await super().append(conversation_id, turn)

    async def history(self, conversation_id, limit=None, max_chars=None):
        self.calls.append("history")
        return await super().history(conversation_id, limit, max_chars)

    async def append_and_history(self, conversation_id, turn, limit=None, max_chars=None):
        self.calls.append(f"append_and_history {turn.role}")
        await InMemoryConversationStore.append(self, conversation_id, turn)
        return await InMemoryConversationStore.history(self, conversation_id, limit, max_chars)


def seen(agent: ScriptedAgent) -> list[list[str]]:
    return [[t.text for t in request.history] for request in agent.requests]


async def test_a_store_without_the_fast_path_gives_the_agent_the_same_history(eneca_app):
    store = PlainStore()
    assert not hasattr(store, "append_and_history")
    agent = ScriptedAgent()
    client = await eneca_app(agent=agent, store=store)
    await ask(gateway_of(client), "hi")
    await ask(gateway_of(client), "again")
    assert seen(agent) == [["hi"], ["hi", "echo: hi", "again"]]
    assert [t.text for t in await store.history("c1")] == ["hi", "echo: hi", "again", "echo: again"]


async def test_a_store_with_the_fast_path_is_asked_once_before_the_agent(eneca_app):
    store = CountingStore()
    agent = ScriptedAgent()
    client = await eneca_app(agent=agent, store=store)
    await ask(gateway_of(client), "hi")
    await ask(gateway_of(client), "again")
    assert seen(agent) == [["hi"], ["hi", "echo: hi", "again"]]
    assert store.calls == ["append_and_history user", "append assistant"] * 2
