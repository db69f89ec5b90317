"""The README's "Streaming" table names every event type and every field the stream sends:
a client written from the README reads everything the gateway says."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core import AgentRequest, ChunkSink, Reply
from core.testing import ScriptedAgent
from tests.http_api.test_stream import stream_events

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(\w+)` \| ([^|]*) \| [^|]* \|$", re.MULTILINE)


def documented_events() -> dict[str, set[str]]:
    section = README.read_text(encoding="utf-8").split("### Streaming", 1)[1].split("\n## ", 1)[0]
    return {
        match[1]: {"type", *re.findall(r"`(\w+)`", match[2])}
        for match in ROW.finditer(section)
        if match[1] != "type"  # the header row
    }


class CountingAgent:
    """Streams its reply and reports token usage, as a model-backed agent does."""

    async def respond(self, request: AgentRequest, on_chunk: ChunkSink) -> Reply:
        for piece in ("Delivery takes ", "1-2 days."):
            await on_chunk(piece)
        message = request.message
        usage = {"prompt_tokens": 12, "completion_tokens": 6}
        return Reply(message.conversation_id, message.channel, "Delivery", message, usage=usage)

    def status(self) -> Mapping[str, Any]:
        return {"configured": True}


async def _events(start_api, agent) -> list[dict[str, Any]]:
    client = await start_api(agent)
    _, events = await stream_events(client, {"message": "hi"})
    return events


async def test_every_event_and_field_sent_is_in_the_readme(start_api):
    documented = documented_events()
    assert set(documented) == {"metadata", "chunk", "done", "error"}
    seen: list[dict[str, Any]] = []
    seen += await _events(start_api, CountingAgent())
    seen += await _events(start_api, ScriptedAgent(RuntimeError("boom")))
    assert {event["type"] for event in seen} == set(documented)
    for event in seen:
        undocumented = set(event) - documented[event["type"]]
        assert not undocumented, f"{event['type']} sends {undocumented}, not in the README"
    done = next(event for event in seen if event["type"] == "done")
    assert set(done) == documented["done"]  # usage included when the model reports it
