"""A live swarm whose gateway forwards to the fake Messages API, the dashboard and an
agent's page open in Chromium, and an agent's traffic: a plain HTTP client on its api.sock.

The agents are external participants (no container): the test itself is their harness,
and what it sends on ``api.sock`` is their traffic, metered as any agent's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.async_api import Browser, Page, async_playwright, expect

from hyperhive.backends.registry import choose
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.web.dashboard_app import create_dashboard_app
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.dashboard import ENV, TOKEN, Swarm
from support.fake_anthropic import FakeAnthropic
from support.stub_control import serving

WAIT = 30.0
WAIT_MS = 30_000  # a bound, not a target: chromium on a loaded 2-core machine takes seconds
MODEL = "claude-sonnet-4-5"
# What the fake upstream's every answer used (10 in, 5 out) at sonnet 4.5's list prices.
REQUEST_USD = (10 * 3 + 5 * 15) / 1e6


@contextlib.asynccontextmanager
async def metered_swarm(config: Config, *agents: str) -> AsyncIterator[tuple[Swarm, FakeAnthropic]]:
    """A started hive forwarding to a fake upstream, with ``agents`` (and an external
    hm1nd) registered, and its dashboard on an ephemeral port."""
    async with FakeAnthropic() as api:
        backend = choose(
            "bwrap", work_dir=config.state_dir / "backend", hide=(config.state_dir, config.run_dir)
        )
        hive = Hive(config, backend, env={**ENV, **api.env()}, operator_token=TOKEN)
        await hive.start(manager=False)
        try:
            for name in ("hm1nd", *agents):
                await hive.add_agent(name, None)
            app = create_dashboard_app(hive.operator_desk(), token=TOKEN)
            async with serving(app) as server:
                base = f"http://127.0.0.1:{server.port}/"
                yield Swarm(hive, base, app.state.csrf, TOKEN, app), api
        finally:
            await hive.shutdown(grace=2)


async def ask_model(swarm: Swarm, agent: str, text: str = "hello") -> httpx.Response:
    """One Messages API request as ``agent``: on its own api.sock, with no key of its own."""
    path = swarm.hive.config.agent_socket(agent, manager=agent == "hm1nd").parent / "api.sock"
    transport = httpx.AsyncHTTPTransport(uds=str(path))
    async with httpx.AsyncClient(transport=transport, timeout=WAIT) as client:
        body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
        headers = {"x-api-key": "hyperhive-gateway", "anthropic-version": "2023-06-01"}
        return await client.post("http://gateway/v1/messages", json=body, headers=headers)


@dataclass
class Pages:
    browser: Browser
    errors: list[str]

    async def dashboard(self, swarm: Swarm) -> Page:
        """The dashboard, logged in and live."""
        page = await self._login(swarm, "dashboard")
        await expect(page.locator("#link")).to_have_text("● live", timeout=WAIT_MS)
        return page

    async def agent(self, swarm: Swarm, name: str) -> Page:
        """``name``'s page at the front door, its spend shown. (An external agent has no
        harness behind its page: only what the core answers itself works there.)"""
        page = await self._login(swarm, name)
        await page.goto(f"{swarm.base}agents/{name}/")
        await expect(page.locator("#spend")).to_be_visible(timeout=WAIT_MS)
        return page

    async def _login(self, swarm: Swarm, what: str) -> Page:
        page = await self.browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda exc: self.errors.append(f"{what}: {exc}"))
        await page.goto(swarm.login_url)
        return page


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Pages]:
    """Chromium for the test; fails it on any uncaught page error."""
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield Pages(browser, errors)
        finally:
            await browser.close()
    assert errors == []


def usd(x: float) -> str:
    """Money as the pages show it (spend-form.js)."""
    return f"${x:.2f}" if x >= 0.01 else f"${x:.4f}"


def series_of(answer: dict[str, Any], agent: str) -> list[list[float]]:
    found: list[list[float]] = answer["series"].get(agent, [])
    return found


async def mark(page: Page) -> None:
    """Leave a mark that a reload would wipe, to prove the page updated itself."""
    await page.evaluate("() => { window.hiveMark = 42; }")


async def assert_not_reloaded(page: Page) -> None:
    assert await page.evaluate("() => window.hiveMark") == 42
