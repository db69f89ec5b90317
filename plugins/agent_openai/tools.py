"""The tools offered to the model and how their calls are carried out.

``search_knowledge_base`` is the agent's own tool; other plugins add theirs through the
``agent_tools`` hook (:class:`core.contract.agent.Tool`). A tool call never raises out of here: bad
arguments, an unknown tool or a failing handler become a short error the model reads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

from core import Message, Passage, Tool, ToolResult, tracing

KNOWLEDGE_TOOL = "search_knowledge_base"
SOURCE_REMINDER = "When you answer from these passages, name the document you used (its title)."

Search = Callable[[str, int], Awaitable[Sequence[Passage]]]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asked for (arguments still as the JSON text it sent)."""

    id: str
    name: str
    arguments: str


def format_passages(passages: Sequence[Passage]) -> str:
    """Passages as numbered text for the model (tool result or prompt context)."""
    if not passages:
        return "No matching passages in the knowledge base."
    blocks = []
    for number, passage in enumerate(passages, 1):
        blocks.append(f"[{number}] {passage.citation} (file: {passage.source})\n{passage.text}")
    blocks.append(SOURCE_REMINDER)
    return "\n\n".join(blocks)


def knowledge_tool(search: Search, limit: int) -> Tool:
    """The ``search_knowledge_base`` tool over ``search``."""

    async def handler(arguments: Mapping[str, Any], message: Message) -> ToolResult:
        query = str(arguments.get("query") or message.text)
        return ToolResult(format_passages(await search(query, limit)))

    return Tool(
        name=KNOWLEDGE_TOOL,
        description=(
            "Search the knowledge base (the organisation's documents: policies, FAQ, "
            "contacts...). Returns the most relevant passages, each with its document "
            "title, section and file, or says that nothing relevant was found."
        ),
        parameters={
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "What to look for, in the customer's language.",
                }
            },
            "required": ["query"],
        },
        handler=handler,
    )


def traced_search(search: Search) -> Search:
    """``search`` with a ``knowledge.search`` span: how many passages, the best score (no
    query text)."""

    async def run(query: str, limit: int) -> Sequence[Passage]:
        with tracing.span("knowledge.search", attributes={"eneca.knowledge.limit": limit}) as span:
            passages = await search(query, limit)
            if span.recording:
                span.set_attribute("eneca.knowledge.passages", len(passages))
                if passages:
                    span.set_attribute(
                        "eneca.knowledge.top_score", max(float(p.score) for p in passages)
                    )
            return passages

    return run


def tool_specs(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """The ``tools`` parameter of a chat completion request."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            },
        }
        for tool in tools
    ]


async def run_tool_call(call: ToolCall, tools: Mapping[str, Tool], message: Message) -> ToolResult:
    """Carry out one call; failures become a text the model can read."""
    tool = tools.get(call.name)
    if tool is None:
        return ToolResult(f"error: there is no tool named {call.name!r}")
    try:
        arguments = json.loads(call.arguments) if call.arguments.strip() else {}
    except json.JSONDecodeError:
        return ToolResult("error: the arguments were not valid JSON")
    if not isinstance(arguments, dict):
        return ToolResult("error: the arguments must be a JSON object")
    try:
        result = await tool.handler(arguments, message)
    except Exception as exc:
        logger.opt(exception=exc).error("tool {} failed: {}", call.name, exc)
        return ToolResult(f"error: the tool {call.name} failed")
    if not isinstance(result, ToolResult):
        return ToolResult(str(result))
    return result
