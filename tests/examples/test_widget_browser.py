"""``/widget.js`` embedded with one tag in a page on another origin, in real Chromium.

The gateway runs in-process with a public key whose ``PUBLIC_ORIGINS`` lists the page's
origin (another loopback port); a ScriptedAgent streams slowly enough that the reply can
be seen growing. Everything is read through the widget's (open) Shadow DOM.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from core.testing import ScriptedAgent
from tests.examples.browser import PageServer, page_server

KEY = "pk-widget-1"
FIRST = "Hello! This answer streams in, a few characters at a time."
HTML_REPLY = '<img src=x onerror="window.pwned=1"><b>bold</b> see https://example.com/a?b=1 now'

RECORD = """() => {
  window.seen = [];
  const root = document.querySelector('[data-eneca-widget]').shadowRoot;
  new MutationObserver(() => {
    const bubbles = root.querySelectorAll('[data-role="assistant"]');
    if (bubbles.length) window.seen.push(bubbles[bubbles.length - 1].textContent);
  }).observe(root.querySelector('.log'), { subtree: true, childList: true, characterData: true });
}"""


def embed(gateway: str, **data: str) -> str:
    attributes = " ".join(f'data-{name}="{value}"' for name, value in data.items())
    return (
        "<!doctype html><html><head><title>A shop</title>"
        "<style>div { color: red !important; font-size: 40px; }</style></head>"
        "<body><h1>A shop page</h1>"
        f'<script src="{gateway}/widget.js" data-key="{KEY}" {attributes} async></script>'
        "</body></html>"
    )


@pytest.fixture
async def site() -> AsyncIterator[PageServer]:
    async for server in page_server({"/": "", "/ru": ""}):
        yield server


@pytest.fixture
async def other_site() -> AsyncIterator[PageServer]:
    async for server in page_server({"/": ""}):
        yield server


async def start(eneca_app, site: PageServer, agent: ScriptedAgent, **core: Any) -> str:
    client = await eneca_app(
        ["http_api"],
        agent=agent,
        settings={"core": {"public_keys": KEY, "public_origins": site.origin, **core}},
    )
    gateway = str(client.make_url("")).rstrip("/")
    site.pages["/"] = embed(gateway, title="Shop help")
    site.pages["/ru"] = embed(gateway, lang="ru", position="left", accent="#0a7")
    return gateway


async def open_widget(page: Page, url: str) -> None:
    await page.goto(url)
    await page.get_by_test_id("launcher").click()
    await expect(page.get_by_test_id("panel")).to_have_attribute("data-ready", "true")


async def send(page: Page, text: str) -> None:
    await page.get_by_test_id("input").fill(text)
    await page.get_by_test_id("send").click()


def bubbles(page: Page, role: str | None = None) -> Any:
    selector = '[data-testid="message"]' + (f'[data-role="{role}"]' if role else "")
    return page.locator(selector)


async def test_a_visitor_chats_streams_reloads_and_another_visitor_sees_nothing(
    eneca_app: Any, chromium: Browser, site: PageServer
) -> None:
    agent = ScriptedAgent(
        [FIRST, lambda r: f"Second answer after {len(r.history)} turns."],
        chunk_size=4,
        chunk_delay=0.04,
    )
    await start(eneca_app, site, agent)
    context = await chromium.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await open_widget(page, site.url("/"))
    await expect(page.get_by_test_id("input")).to_be_focused()
    await expect(page.get_by_role("dialog", name="Shop help")).to_be_visible()
    await page.evaluate(RECORD)

    await send(page, "Hello, shop")
    reply = bubbles(page, "assistant").last
    await expect(reply).to_have_text(FIRST)
    await expect(reply).to_have_attribute("data-state", "done")
    seen: list[str] = await page.evaluate("window.seen")
    partial = {text for text in seen if text and text != FIRST}
    assert len(partial) >= 3, f"the reply did not grow in several steps: {seen}"
    assert all(FIRST.startswith(text) for text in partial)
    await expect(page.get_by_test_id("announce")).to_have_text(FIRST)  # for screen readers
    # The page's own styles do not leak into the widget.
    color = await reply.evaluate("e => getComputedStyle(e).color")
    assert color != "rgb(255, 0, 0)"

    await page.reload()
    await open_widget(page, site.url("/"))
    await expect(bubbles(page)).to_have_text(["Hello, shop", FIRST])
    await send(page, "And again")
    await expect(bubbles(page, "assistant").last).to_have_text("Second answer after 3 turns.")
    stored = await page.evaluate("JSON.stringify(localStorage)")
    assert "token" in stored and "thread" in stored

    # Another visitor (its own browser context) sees nothing of it, even when it plants
    # the first visitor's thread id in its own storage.
    first_state = await page.evaluate(
        "Object.entries(localStorage).find(([k]) => k.startsWith('eneca-widget'))"
    )
    other = await (await chromium.new_context()).new_page()
    await open_widget(other, site.url("/"))
    await expect(bubbles(other)).to_have_count(0)
    await send(other, "I am someone else")
    await expect(bubbles(other, "assistant").last).to_have_attribute("data-state", "done")
    await other.evaluate(
        """([key, value]) => {
            const mine = JSON.parse(localStorage.getItem(key));
            mine.thread = JSON.parse(value).thread;
            localStorage.setItem(key, JSON.stringify(mine));
        }""",
        first_state,
    )
    await other.reload()
    await open_widget(other, site.url("/"))
    await expect(bubbles(other)).to_have_count(0)
    assert "Hello, shop" not in await other.content()
    assert errors == []


async def test_new_conversation_escape_and_focus(
    eneca_app: Any, chromium: Browser, site: PageServer
) -> None:
    agent = ScriptedAgent()
    await start(eneca_app, site, agent)
    page = await chromium.new_page()
    await open_widget(page, site.url("/"))
    await send(page, "remember me")
    await expect(bubbles(page, "assistant").last).to_have_text("echo: remember me")
    await page.get_by_test_id("new-conversation").click()
    await expect(bubbles(page)).to_have_count(0)
    await send(page, "who am I?")
    await expect(bubbles(page, "assistant").last).to_have_text("echo: who am I?")
    assert [turn.text for turn in agent.requests[-1].history] == ["who am I?"]

    await page.keyboard.press("Escape")
    await expect(page.get_by_test_id("panel")).to_be_hidden()
    await expect(page.get_by_test_id("launcher")).to_be_focused()
    await expect(page.get_by_test_id("launcher")).to_have_attribute("aria-expanded", "false")


async def test_a_reply_with_html_is_shown_as_text_with_a_safe_link(
    eneca_app: Any, chromium: Browser, site: PageServer
) -> None:
    await start(eneca_app, site, ScriptedAgent([HTML_REPLY]))
    page = await chromium.new_page()
    await open_widget(page, site.url("/"))
    await send(page, "<script>window.pwned=2</script> hi")
    reply = bubbles(page, "assistant").last
    await expect(reply).to_have_text(HTML_REPLY)
    await expect(bubbles(page, "user").last).to_have_text("<script>window.pwned=2</script> hi")
    assert await reply.locator("img, b, script").count() == 0
    link = reply.locator("a")
    await expect(link).to_have_count(1)
    await expect(link).to_have_attribute("href", "https://example.com/a?b=1")
    await expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert await page.evaluate("window.pwned") is None


async def test_limits_and_refused_origins_are_explained_in_words(
    eneca_app: Any, chromium: Browser, site: PageServer, other_site: PageServer
) -> None:
    gateway = await start(eneca_app, site, ScriptedAgent(), public_visitor_per_minute=1)
    page = await chromium.new_page()
    await open_widget(page, site.url("/ru"))
    await send(page, "раз")
    await expect(bubbles(page, "assistant").last).to_have_text("echo: раз")
    await send(page, "два")
    await expect(page.get_by_test_id("error")).to_contain_text("Слишком много сообщений")
    await expect(page.get_by_test_id("retry")).to_be_visible()

    other_site.pages["/"] = embed(gateway)
    stranger = await chromium.new_page()
    await open_widget(stranger, other_site.url("/"))
    await send(stranger, "hello?")
    await expect(stranger.get_by_test_id("error")).to_contain_text(
        "This website is not allowed to use the chat."
    )
    await expect(bubbles(stranger, "assistant")).to_have_count(0)


async def test_on_a_phone_the_panel_fills_the_screen(
    eneca_app: Any, chromium: Browser, site: PageServer, tmp_path: Path
) -> None:
    await start(eneca_app, site, ScriptedAgent())
    context = await chromium.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await open_widget(page, site.url("/"))
    await send(page, "small screen")
    await expect(bubbles(page, "assistant").last).to_have_text("echo: small screen")
    box = await page.get_by_test_id("panel").bounding_box()
    assert box == {"x": 0, "y": 0, "width": 390, "height": 844}
    shot = tmp_path / "widget-390x844.png"
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 5000
    light = await page.get_by_test_id("panel").evaluate("e => getComputedStyle(e).backgroundColor")

    dark = await (await chromium.new_context(color_scheme="dark")).new_page()
    await open_widget(dark, site.url("/"))
    night = await dark.get_by_test_id("panel").evaluate("e => getComputedStyle(e).backgroundColor")
    assert (light, night) == ("rgb(255, 255, 255)", "rgb(17, 24, 39)")


async def test_a_gateway_that_is_down_is_explained_and_retry_works_once_it_is_back(
    eneca_app: Any, chromium: Browser, site: PageServer
) -> None:
    gateway = await start(eneca_app, site, ScriptedAgent())
    page = await chromium.new_page()
    await open_widget(page, site.url("/"))
    await page.route(f"{gateway}/**", lambda route: route.abort())  # the gateway is gone
    await send(page, "are you there?")
    await expect(page.get_by_test_id("error")).to_contain_text("cannot be reached")
    await page.unroute(f"{gateway}/**")
    await page.get_by_test_id("retry").click()
    await expect(bubbles(page, "assistant").last).to_have_text("echo: are you there?")
    await expect(page.get_by_test_id("error")).to_be_hidden()
