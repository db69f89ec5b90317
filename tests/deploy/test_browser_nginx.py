"""The vanilla-JS chat example served at ``/ai-webhook/examples/chat`` through the shipped
nginx file, in Debian's headless Chromium: the page calls the API under the prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.deploy.tools import CHROMIUM, require
from tests.support.serve_process import ADMIN_KEY

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


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    executable = require(CHROMIUM, "Debian's chromium (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_the_example_page_chats_under_the_prefix(gateway, nginx, browser) -> None:
    from playwright.async_api import expect

    server = await gateway(TRUSTED_PROXIES="127.0.0.1", SERVE_EXAMPLES="true")
    proxy = await nginx(server)
    page = await browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    requested: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{proxy.url}/ai-webhook/examples/chat")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await page.get_by_test_id("api-key").fill(ADMIN_KEY)
    await page.get_by_test_id("api-key").dispatch_event("change")

    await page.get_by_test_id("message-input").fill("hello from the browser")
    await page.get_by_test_id("send").click()

    reply = page.locator('[data-testid="message"][data-role="assistant"]').last
    await expect(reply).to_have_text("re: hello from the browser")
    await expect(reply).to_have_attribute("data-state", "done")
    await expect(page.get_by_test_id("error")).to_be_hidden()
    api_calls = [url for url in requested if "/api/" in url]
    assert api_calls and all(u.startswith(f"{proxy.url}/ai-webhook/api/") for u in api_calls)
    # A reload loads the thread's history through the prefix too.
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(page.get_by_test_id("message")).to_have_text(
        ["hello from the browser", "re: hello from the browser"]
    )
    assert errors == []
