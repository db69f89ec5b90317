"""The React example, built (``tests/examples/build_react.sh``; CI builds it), served from
another origin and driven in real Chromium with a public key: one streamed round trip,
the visitor token kept, a reload restoring the thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from core.testing import ScriptedAgent
from tests.examples.browser import ROOT, PageServer, missing, page_server

DIST = ROOT / "examples" / "react" / "dist"
KEY = "pk-react-1"
REPLY = "Hello from the gateway, streamed into React."


@pytest.fixture
async def site() -> AsyncIterator[PageServer]:
    if not (DIST / "index.html").is_file():
        missing("the React example is not built: run tests/examples/build_react.sh")
    async for server in page_server(
        {"/": (DIST / "index.html").read_text()}, {"/assets": DIST / "assets"}
    ):
        yield server


async def test_the_built_react_example_chats_with_a_public_key(
    eneca_app: Any, chromium: Browser, site: PageServer
) -> None:
    agent = ScriptedAgent([REPLY], chunk_size=5, chunk_delay=0.02)
    client = await eneca_app(
        ["http_api"],
        agent=agent,
        settings={"core": {"public_keys": KEY, "public_origins": site.origin}},
    )
    page = await chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(site.url("/"))
    await page.get_by_test_id("base-url").fill(str(client.make_url("")).rstrip("/"))
    await page.get_by_test_id("api-key").fill(KEY)
    await page.get_by_test_id("message-input").fill("Hi from React")
    await page.get_by_test_id("message-input").press("Enter")

    reply = page.locator('[data-testid="message"][data-role="assistant"]').last
    await expect(reply).to_have_text(REPLY)
    await expect(reply).to_have_attribute("data-state", "done")
    token = await page.evaluate("localStorage.getItem('eneca.visitorToken')")
    assert token and token.startswith("v1.")

    await page.reload()
    await expect(page.get_by_test_id("message")).to_have_text(["Hi from React", REPLY])
    await expect(page.get_by_test_id("error")).to_have_count(0)
    assert errors == []
