"""Fault: the LLM upstream slow, stalled, 429, 500, cut mid-stream, malformed JSON.

Every /api/chat and /api/chat/stream request ends in a reply or a clear fallback
(``success: false`` / an ``error`` event with a code) within ``REPLY_TIMEOUT_S``; nothing
hangs (the bus is empty afterwards) and the server's memory returns to its baseline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.clients import Outcome, chat, chat_stream, get_json, last_user_text
from tests.support.openai_server import FakeOpenAI, FakeResponse
from tests.support.serve_process import ServeProcess, base_env

REPLY_TIMEOUT_S = 3.0
#: A client waiting longer than this counts the request as hung.
CLIENT_TIMEOUT_S = REPLY_TIMEOUT_S + 4
LONG_TEXT = "This answer takes a while to arrive in full. " * 4

#: The fault a message asks for (its first word) -> how the fake OpenAI answers.
FAULTS: dict[str, Callable[[str], FakeResponse]] = {
    "ok": lambda text: FakeResponse(text=f"re: {text}"),
    # slower than usual, within every timeout: a normal reply
    "slow": lambda text: FakeResponse(text=f"re: {text}", stall_s=0.6, token_delay_s=0.02),
    # no byte for longer than OPENAI_TIMEOUT_S, on every attempt
    "stall": lambda text: FakeResponse(stall_s=30),
    # bytes keep coming but the whole reply takes longer than REPLY_TIMEOUT_S (streaming)
    "trickle": lambda text: FakeResponse(text=LONG_TEXT, ttft_s=0.5, token_delay_s=0.2),
    "429": lambda text: FakeResponse(status=429, retry_after_ms=50),
    "500": lambda text: FakeResponse(status=500, retry_after_ms=50),
    "cut": lambda text: FakeResponse(text=LONG_TEXT, cut_after=3),
    "malformed": lambda text: FakeResponse(malformed=True),
}
#: The error codes each fault may end in (a fault can also outlast REPLY_TIMEOUT_S).
EXPECTED: dict[str, set[str | None]] = {
    "ok": {None},
    "slow": {None},
    "stall": {"llm_timeout", "reply_timeout"},
    "trickle": {None, "reply_timeout"},
    "429": {"llm_rate_limited"},
    "500": {"llm_unavailable"},
    "cut": {"llm_bad_response", "llm_unavailable"},
    "malformed": {"llm_bad_response"},
}


def respond(body: dict[str, Any]) -> FakeResponse:
    text = last_user_text(body)
    return FAULTS[text.split()[0]](text)


def error_code(outcome: Outcome, stream: bool) -> str | None:
    """The reply's error code (None for a normal reply); fails on anything unclear."""
    assert outcome.error is None, f"request hung or broke: {outcome}"
    assert outcome.status == 200, outcome
    body = outcome.body
    if stream:
        assert body is not None and body["type"] in ("done", "error"), outcome.events
        return None if body["type"] == "done" else str(body["code"])
    assert isinstance(body, dict) and isinstance(body.get("response"), str), body
    if body["success"]:
        assert body["error"] is None
        return None
    assert body["error"]["code"] and body["error"]["message"], body
    return str(body["error"]["code"])


async def batch(
    session: aiohttp.ClientSession, url: str, kinds: list[str], per_kind: int, tag: str
) -> list[tuple[str, bool, Outcome]]:
    """``per_kind`` plain and ``per_kind`` streamed requests of each kind, all at once,
    each on its own thread."""
    jobs = []
    for kind in kinds:
        for n in range(per_kind):
            for stream in (False, True):
                # The same threads every round: the store does not grow with the rounds.
                thread = f"{kind}-{n}-{'s' if stream else 'p'}"
                call = chat_stream if stream else chat
                jobs.append((kind, stream, call(session, url, thread, f"{kind} {tag} {thread}",
                                                 CLIENT_TIMEOUT_S)))  # fmt: skip
    outcomes = await asyncio.gather(*(job for _, _, job in jobs))
    return [(kind, stream, o) for (kind, stream, _), o in zip(jobs, outcomes, strict=True)]


async def test_llm_faults_end_in_reply_or_fallback_and_memory_returns_to_baseline(
    tmp_path: Path, llm: FakeOpenAI
) -> None:
    llm.default = respond
    env = base_env(
        tmp_path,
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_TIMEOUT_S=1,
        OPENAI_MAX_RETRIES=1,
        REPLY_TIMEOUT_S=REPLY_TIMEOUT_S,
        LOG_LEVEL="WARNING",
    )
    server = ServeProcess(tmp_path, env)
    await server.start()
    figures: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            # Warm-up at the fault batches' concurrency: imports, caches, pools, buffers.
            for round_number in range(4):
                for outcome in await batch(session, server.url, ["ok"], 70, f"warm{round_number}"):
                    assert error_code(outcome[2], outcome[1]) is None
            baseline_kb = server.rss_kb()

            faults = [kind for kind in FAULTS if kind != "ok"]
            seen: dict[tuple[str, bool], set[str | None]] = {}
            slowest = 0.0
            for round_number in range(2):
                for kind, stream, outcome in await batch(
                    session, server.url, faults, 10, f"fault{round_number}"
                ):
                    code = error_code(outcome, stream)
                    assert code in EXPECTED[kind], (kind, stream, code, outcome)
                    seen.setdefault((kind, stream), set()).add(code)
                    slowest = max(slowest, outcome.seconds)
            fault_requests = 2 * len(faults) * 10 * 2

            for round_number in range(2):  # the same normal load as the warm-up
                for outcome in await batch(session, server.url, ["ok"], 70, f"after{round_number}"):
                    assert error_code(outcome[2], outcome[1]) is None
            await asyncio.sleep(0.5)
            after_kb = server.rss_kb()

            status, health = await get_json(session, f"{server.url}/health")
            assert status == 200, health
            bus = health["plugins"]["bus"]
            assert (bus["in_flight"], bus["lanes"]) == (0, 0), bus  # nothing left hanging
    finally:
        assert await server.stop() == 0, server.stderr()
    figures = {
        "baseline_kb": baseline_kb,
        "after_kb": after_kb,
        "growth_kb": after_kb - baseline_kb,
        "fault_requests": fault_requests,
        "slowest_s": round(slowest, 2),
        "codes": {
            f"{k}{'/stream' if s else ''}": sorted(map(str, v)) for (k, s), v in seen.items()
        },
    }
    print(f"\nLLM faults: {figures}")
    # Memory back to its baseline: allow allocator slack, not a leak per request
    # (a leak of even 50 KB per failed request would be 16 MB here).
    assert after_kb - baseline_kb < 8 * 1024, figures
