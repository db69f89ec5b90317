"""Fixtures of the browser tests: one headless Chromium per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.examples.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium


@pytest.fixture
async def chromium() -> AsyncIterator[object]:
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
