"""Agent pages in a real headless Chromium through the front door of a real dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from hyperhive.config import Config
from hyperhive.core.gateway.seams import Credential
from hyperhive.web import WebServer, create_agent_app
from hyperhive.web.unix_listen import bind_unix
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.dashboard import ENV, Swarm, live_swarm
from support.front_door import spawn_ready, web_sock
from support.stub_control import StubControl

WAIT_MS = 30_000
FAKE_SETUP = str(Path(__file__).parent / "support" / "fake-claude-setup-token")
FAKE_URL = "https://claude.ai/oauth/authorize?code=true&client_id=fake&state=xyz"


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@contextlib.asynccontextmanager
async def agent_page(browser: Browser, swarm: Swarm, name: str) -> AsyncIterator[Page]:
    """``name``'s page at the front door, logged in through the dashboard's token link."""
    page = await browser.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(swarm.login_url)
    await page.goto(f"{swarm.base}agents/{name}/")
    await expect(page.locator("#link")).to_have_text("● live")
    yield page
    assert errors == []


@contextlib.asynccontextmanager
async def stub_behind_core(path: Path, control: StubControl) -> AsyncIterator[None]:
    """``control``'s page data on ``path``, as a harness serves it for the front door."""
    listener = bind_unix(path)
    server = WebServer.for_app(create_agent_app(control, behind_core=True), "localhost", 0)
    task = asyncio.create_task(server.serve(sockets=[listener.sock]))
    try:
        await asyncio.wait_for(server.ready.wait(), WAIT_MS / 1000)
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, WAIT_MS / 1000)
        listener.close()


async def test_an_operator_prompts_a_real_harness_through_the_front_door(
    swarm: Swarm, browser: Browser
) -> None:
    await spawn_ready(swarm, "pia")
    async with agent_page(browser, swarm, "pia") as page:
        await expect(page).to_have_title("pia · hyperhive")
        log, box = page.locator("#log"), page.locator("#prompt")
        await box.fill("hello pia")
        await box.press("Enter")
        await expect(log).to_contain_text("echo: hello pia")
        await box.fill("/model opus")
        await box.press("Enter")
        await expect(log.locator(".k-local").last).to_have_text(re.compile(r"/model opus → ok"))
        await box.fill("/help")
        await box.press("Enter")
        await expect(log.locator(".k-local").last).to_have_text(re.compile(r"/help → ok"))
        await page.reload()  # the backfill comes through the front door too
        await expect(page.locator("#link")).to_have_text("● live")
        await expect(log).to_contain_text("echo: hello pia")


async def test_login_is_the_cores_and_cancel_is_relayed_through_the_front_door(
    config: Config, browser: Browser
) -> None:
    async with live_swarm(config, env={**ENV, "HYPERHIVE_CLAUDE_CLI": FAKE_SETUP}) as swarm:
        await swarm.hive.add_agent("alice", None)
        control = StubControl("alice", needs_login=True)
        sock = web_sock(swarm, "alice")
        async with stub_behind_core(sock, control), agent_page(browser, swarm, "alice") as page:
            # The core runs claude setup-token (a stand-in here) and keeps the token.
            await page.locator("#setup-start").click()
            await expect(page.locator("#setup-url")).to_have_attribute("href", FAKE_URL)
            await page.locator("#code").fill("good-code#state")
            await page.locator("#code-form button").click()
            await expect(page.locator("#login-msg")).to_have_text(
                "logged in: the token is saved for alice"
            )
            token = Credential("oauth_token", "sk-ant-oat01-" + "A" * 40)
            assert swarm.hive.credentials.for_agent("alice") == token
            # A key for the whole hive: every agent without one of its own uses it.
            await page.locator("#login-hive").check()
            await page.locator("#key").fill("sk-ant-api03-front-door")
            await page.locator("#key-form button").click()
            await expect(page.locator("#login-msg")).to_have_text(
                "API key saved for the whole hive"
            )
            assert "sk-ant-api03-front-door" not in await page.content()
            assert "sk-ant-oat01-" not in await page.content()
            control.set_state("thinking")
            await page.locator("#cancel").click()
            await expect(page.locator("#cancel")).to_be_hidden()
        hive_key = Credential("api_key", "sk-ant-api03-front-door")
        assert swarm.hive.credentials.for_agent("bob") == hive_key
        assert swarm.hive.credentials.for_agent("alice") == token
    # Nothing of a login reached the harness.
    assert [c.name for c in control.calls if "login" in c.name or "token" in c.name] == []
    assert control.called("save_api_key") == [] and control.called("cancel") == [None]


async def test_a_tool_waits_link_goes_to_the_hive_root(swarm: Swarm, browser: Browser) -> None:
    await swarm.hive.add_agent("alice", None)
    control = StubControl("alice")
    sock = web_sock(swarm, "alice")
    async with stub_behind_core(sock, control), agent_page(browser, swarm, "alice") as page:
        control.publish("tool_approval", approval=7, decision="pending", tool="Bash", input={})
        approve = page.locator("#tool-waits a.approve")
        await expect(approve).to_have_attribute("href", f"{swarm.base}?approval=7")


async def test_without_a_session_the_page_is_the_gates_refusal(
    swarm: Swarm, browser: Browser
) -> None:
    await swarm.hive.add_agent("alice", None)
    control = StubControl("alice")
    async with stub_behind_core(web_sock(swarm, "alice"), control):
        page = await browser.new_page()
        answer = await page.goto(f"{swarm.base}agents/alice/")
        assert answer is not None and answer.status == 401
        await expect(page.locator("input[name=token]")).to_be_visible()
    assert control.calls == [] and control.subscribers == 0
