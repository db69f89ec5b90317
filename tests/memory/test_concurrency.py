"""Many conversations at once through the gateway: no lock errors, nothing lost or
reordered, each agent call sees exactly its own conversation so far."""

import asyncio

from core.testing import ScriptedAgent, ask, gateway_of

CONVERSATIONS = 200
TURNS = 10


async def test_200_conversations_of_10_turns_at_once(eneca_app):
    async def reply(request):
        await asyncio.sleep(0)  # let other conversations interleave mid-turn
        return f"echo: {request.message.text}"

    agent = ScriptedAgent(reply)
    client = await eneca_app(
        plugins=["memory_sqlite"],
        agent=agent,
        settings={"memory_sqlite": {"max_messages": 2 * TURNS}},
    )
    gateway = gateway_of(client)

    async def converse(n: int) -> None:
        for turn in range(TURNS):
            answer = await ask(gateway, f"c{n} t{turn}", f"c{n}", channel=f"ch{n % 3}")
            assert answer.success, answer.error

    results = await asyncio.gather(
        *(converse(n) for n in range(CONVERSATIONS)), return_exceptions=True
    )
    assert [r for r in results if r is not None] == []

    def conversation(n: int, turns: int) -> list[str]:
        texts: list[str] = []
        for turn in range(turns):
            texts += [f"c{n} t{turn}", f"echo: c{n} t{turn}"]
        return texts

    store = gateway.store
    for n in range(CONVERSATIONS):
        assert [t.text for t in await store.history(f"c{n}")] == conversation(n, TURNS)
    # Each agent call saw its own conversation, complete up to and including its message.
    assert len(agent.requests) == CONVERSATIONS * TURNS
    for request in agent.requests:
        n, turn = (int(part[1:]) for part in request.message.text.split())
        assert [t.text for t in request.history] == [
            *conversation(n, turn),
            request.message.text,
        ]
    stats = await store.stats()
    assert stats["conversations"] == CONVERSATIONS
    assert stats["turns"] == CONVERSATIONS * TURNS * 2
    assert await store.count_conversations("ch0") == len(range(0, CONVERSATIONS, 3))
