"""The real ``@n8n/chat`` widget (its npm tarball's ``dist/``, from ``npm pack``) talking to
``/api/n8n/chat`` with a public key, in real Chromium, in both of its modes.

Plain mode reads one JSON ``{"output"}``; streaming mode (``enableStreaming: true``) reads
newline-delimited JSON chunks as the model writes. After a reload the widget's
``loadPreviousSession`` shows the conversation again.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from core.testing import ScriptedAgent
from tests.examples.browser import PageServer, n8n_chat_dist, page_server

KEY = "pk-n8n-1"
FIRST = "The n8n widget shows this reply, streamed piece by piece when asked to."

RECORD_BOT_TEXTS = """() => {
  window.seen = [];
  new MutationObserver(() => {
    // The typing indicator is a bot message too: leave it out.
    const bots = document.querySelectorAll('.chat-message-from-bot:not(.chat-message-typing)');
    if (bots.length) window.seen.push(bots[bots.length - 1].textContent.trim());
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""


def widget_page(gateway: str, streaming: bool) -> str:
    options = {
        "webhookUrl": f"{gateway}/api/n8n/chat",
        "webhookConfig": {"method": "POST", "headers": {"X-API-Key": KEY}},
        "target": "#chat",
        "mode": "fullscreen",
        "loadPreviousSession": True,
        "showWelcomeScreen": False,
        "initialMessages": [],
        "enableStreaming": streaming,
    }
    return (
        '<!doctype html><html><head><link rel="stylesheet" href="/n8n/style.css"></head>'
        '<body><div id="chat" style="height: 640px"></div><script type="module">'
        'import { createChat } from "/n8n/chat.bundle.es.js";'
        f"createChat({json.dumps(options)});"
        "</script></body></html>"
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return n8n_chat_dist(tmp_path_factory.mktemp("n8n-chat"))


@pytest.fixture
async def site(dist: Path) -> AsyncIterator[PageServer]:
    async for server in page_server({"/": ""}, {"/n8n": dist}):
        yield server


async def ask(page: Page, text: str) -> None:
    box = page.locator('textarea[data-test-id="chat-input"]')
    await box.fill(text)
    await box.press("Enter")


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "streaming"])
async def test_the_n8n_widget_chats_and_reloads_its_session(
    eneca_app: Any, chromium: Browser, site: PageServer, streaming: bool
) -> None:
    agent = ScriptedAgent(
        [FIRST, lambda r: f"Second reply; {len(r.history)} turns so far."],
        chunk_size=6,
        chunk_delay=0.05,
    )
    client = await eneca_app(
        ["http_api"],
        agent=agent,
        settings={"core": {"public_keys": KEY, "public_origins": site.origin}},
    )
    site.pages["/"] = widget_page(str(client.make_url("")).rstrip("/"), streaming)
    page = await chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(site.url("/"))
    await expect(page.locator('textarea[data-test-id="chat-input"]')).to_be_visible()
    await page.evaluate(RECORD_BOT_TEXTS)

    await ask(page, "Hello from n8n")
    bot = page.locator(".chat-message-from-bot:not(.chat-message-typing)")
    await expect(bot.last).to_have_text(FIRST)
    seen: list[str] = await page.evaluate("window.seen")
    partial = {text for text in seen if text and text != FIRST and FIRST.startswith(text)}
    if streaming:
        assert len(partial) >= 3, f"the streamed reply did not grow: {seen}"
        assert agent.requests[-1].message.stream is True
    else:
        assert not partial, seen
        assert agent.requests[-1].message.stream is False
    session = await page.evaluate("localStorage.getItem('n8n-chat/sessionId')")
    assert session and agent.requests[-1].message.conversation_id == session

    await page.reload()
    await expect(page.locator(".chat-message-from-user")).to_have_text(["Hello from n8n"])
    await expect(bot).to_have_text([FIRST])
    await ask(page, "once more")
    await expect(bot.last).to_have_text("Second reply; 3 turns so far.")
    assert errors == []
