"""The vanilla JS chat example (examples/vanilla-js/index.html) in a real headless Chromium.

The real gateway runs in-process on a loopback port with the ``http_api`` plugin serving the
page at ``/examples/chat``; a ScriptedAgent streams its replies slowly enough that the page
can be seen mid-reply. Uses Debian's ``chromium`` through Playwright's ``executable_path``
(no browser download).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from core.testing import ScriptedAgent
from tests.examples.browser import ROOT, page_server, require_chromium

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


FIRST_REPLY = "Streaming works: this answer arrives a few characters at a time."

# Records every text the newest assistant bubble showed, so the test can tell a reply that
# grew token by token from one that appeared whole.
RECORD_ASSISTANT_TEXTS = """() => {
  window.seenTexts = [];
  const messages = document.getElementById("messages");
  new MutationObserver(() => {
    const bubbles = messages.querySelectorAll('[data-role="assistant"]');
    if (bubbles.length) window.seenTexts.push(bubbles[bubbles.length - 1].textContent);
  }).observe(messages, { subtree: true, childList: true, characterData: true });
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_chromium()  # skips locally, fails in CI
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_chat(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A fresh page on the chat, ready (history loaded); returns it and its script errors."""
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page, errors


async def send(page: Page, text: str) -> None:
    await page.get_by_test_id("message-input").fill(text)
    await page.get_by_test_id("send").click()


def assistant_bubbles(page: Page) -> Any:
    return page.locator('[data-testid="message"][data-role="assistant"]')


async def test_streams_a_reply_and_continues_the_thread_after_a_reload(
    eneca_app: Any, browser: Browser
) -> None:
    agent = ScriptedAgent(
        [FIRST_REPLY, lambda request: f"Second answer; I got {len(request.history)} turns."],
        chunk_size=3,
        chunk_delay=0.05,
    )
    client = await eneca_app(
        plugins=["http_api"], agent=agent, settings={"http_api": {"serve_examples": True}}
    )
    url = str(client.make_url("/examples/chat"))
    page, errors = await open_chat(browser, url)
    await page.evaluate(RECORD_ASSISTANT_TEXTS)

    await send(page, "Hello, bot")

    reply = assistant_bubbles(page).last
    await expect(reply).to_have_text(FIRST_REPLY)
    await expect(reply).to_have_attribute("data-state", "done")
    seen: list[str] = await page.evaluate("window.seenTexts")
    partial = [text for text in seen if text and text != FIRST_REPLY]
    assert partial, f"the reply never showed part-way: {seen}"
    assert all(FIRST_REPLY.startswith(text) for text in partial), seen
    thread_id = await page.evaluate("localStorage.getItem('eneca.threadId')")
    assert thread_id
    await expect(page.get_by_test_id("thread-id")).to_contain_text(thread_id)

    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(page.get_by_test_id("message")).to_have_text(["Hello, bot", FIRST_REPLY])

    await send(page, "And again")

    await expect(assistant_bubbles(page).last).to_have_text("Second answer; I got 3 turns.")
    assert [turn.text for turn in agent.requests[-1].history] == [
        "Hello, bot",
        FIRST_REPLY,
        "And again",
    ]
    assert await page.evaluate("localStorage.getItem('eneca.threadId')") == thread_id
    await expect(page.get_by_test_id("error")).to_be_hidden()
    assert errors == []


async def test_new_conversation_forgets_the_thread(eneca_app: Any, browser: Browser) -> None:
    agent = ScriptedAgent()  # echoes
    client = await eneca_app(
        plugins=["http_api"], agent=agent, settings={"http_api": {"serve_examples": True}}
    )
    page, errors = await open_chat(browser, str(client.make_url("/examples/chat")))
    await send(page, "remember me")
    await expect(assistant_bubbles(page).last).to_have_text("echo: remember me")
    old_thread = await page.evaluate("localStorage.getItem('eneca.threadId')")

    await page.get_by_test_id("new-conversation").click()

    await expect(page.get_by_test_id("message")).to_have_count(0)
    assert await page.evaluate("localStorage.getItem('eneca.threadId')") is None
    history = await client.get(f"/api/threads/{old_thread}/messages")
    assert (await history.json())["messages"] == []
    await send(page, "who am I?")
    await expect(assistant_bubbles(page).last).to_have_text("echo: who am I?")
    assert [turn.text for turn in agent.requests[-1].history] == ["who am I?"]
    assert errors == []


async def test_from_another_origin_with_a_public_key_and_the_servers_errors(
    eneca_app: Any, browser: Browser
) -> None:
    agent = ScriptedAgent([RuntimeError("model down"), lambda r: f"echo: {r.message.text}"])
    page_html = (ROOT / "examples" / "vanilla-js" / "index.html").read_text()
    async for site in page_server({"/": page_html}):
        client = await eneca_app(
            plugins=["http_api"],
            agent=agent,
            settings={"core": {"public_keys": "browser-key", "public_origins": site.origin}},
        )
        page, errors = await open_chat(browser, site.url("/"))
        await page.get_by_test_id("base-url").fill(str(client.make_url("")).rstrip("/"))
        await page.get_by_test_id("base-url").dispatch_event("change")

        await send(page, "no key yet")
        await expect(page.get_by_test_id("error")).to_contain_text("missing_api_key")
        await expect(assistant_bubbles(page)).to_have_count(0)

        await page.get_by_test_id("api-key").fill("wrong-key")
        await send(page, "a wrong key")
        await expect(page.get_by_test_id("error")).to_contain_text("invalid_api_key")

        await page.get_by_test_id("api-key").fill("browser-key")
        await page.get_by_test_id("api-key").dispatch_event("change")
        await send(page, "the model fails")  # an error event inside the stream
        await expect(page.get_by_test_id("error")).to_contain_text("agent_error")
        await expect(assistant_bubbles(page).last).to_have_attribute("data-state", "error")

        await send(page, "with the key")
        await expect(assistant_bubbles(page).last).to_have_text("echo: with the key")
        await expect(page.get_by_test_id("error")).to_be_hidden()
        assert await page.evaluate("localStorage.getItem('eneca.apiKey')") == "browser-key"
        token = await page.evaluate("localStorage.getItem('eneca.visitorToken')")
        assert token and token.startswith("v1.")

        await page.reload()  # the visitor's own thread comes back (its token is kept)
        await expect(page.locator("body")).to_have_attribute("data-ready", "true")
        await expect(page.get_by_test_id("message")).to_contain_text(["echo: with the key"])
        assert errors == []
