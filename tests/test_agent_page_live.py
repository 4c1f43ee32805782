"""The agent page in real headless Chromium over the real harness (scripted
engine), a real in-process core and real sockets: what the operator sees is
what the harness does."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from playwright.async_api import async_playwright, expect

from hyperhive.agent.engine import EngineEvent
from hyperhive.agent.fake_engine import Hang, ScriptedEngine, Step
from hyperhive.agent.harness import Harness
from hyperhive.agent.history import History
from hyperhive.agent.login import Credentials
from hyperhive.agent.settings import AgentSettings
from hyperhive.client import Client
from hyperhive.core.hive import Hive
from hyperhive.web import create_agent_app
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.stub_control import PAGE_CHECK, PAGE_KEY, serving

WAIT_MS = 30_000  # a bound, not a target: chromium on a loaded 2-core machine takes seconds


async def test_an_operator_watches_and_steers_a_live_harness(hive: Hive, short_dir: Path) -> None:
    await hive.add_agent("alice", None)
    hang = Hang()

    def script(prompt: str) -> list[Step]:
        if "long job" in prompt:
            return [EngineEvent("assistant", {"text": "starting the long job"}), hang]
        return [EngineEvent("assistant", {"text": "hello operator, I read you"})]

    settings = AgentSettings(
        name="alice",
        role="agent",
        socket=hive.socket_path(hive.registry.get("alice")),
        state_dir=short_dir / "alice",
        claude_dir=short_dir / "alice-claude",
        listen="127.0.0.1",
        port=0,
        model_file=short_dir / "alice" / "hyperhive-model",
    )
    credentials = Credentials(settings.claude_dir, {"ANTHROPIC_API_KEY": "sk-ant-live-page-key"})
    history = History(settings.history_db, secrets=credentials.secrets)
    engine = ScriptedEngine(script)
    harness = Harness(settings, engine, history, credentials)
    turns = asyncio.create_task(harness.run())
    errors: list[str] = []
    try:
        app = create_agent_app(harness, check=PAGE_CHECK)
        async with serving(app) as server, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"http://127.0.0.1:{server.port}/?token={PAGE_KEY}")
            badge, log = page.locator("#badge"), page.locator("#log")
            await expect(badge).to_have_text(re.compile(r"^idle \d+s$"))

            async with await Client.connect(hive.config.host_socket) as op:
                await op.call("send", to="alice", body="are you there?")
            await expect(log).to_contain_text("hello operator, I read you")

            box = page.locator("#prompt")
            await box.fill("a long job")
            await box.press("Enter")
            await expect(badge).to_have_text(re.compile(r"^thinking \d+s$"))
            await expect(log).to_contain_text("starting the long job")
            await asyncio.wait_for(hang.started.wait(), WAIT_MS / 1000)
            await page.locator("#cancel").click()
            await expect(badge).to_have_text(re.compile(r"^idle \d+s$"))
            await expect(page.locator("#cancel")).to_be_hidden()

            await box.fill("/model claude-live")
            await box.press("Enter")
            await expect(log).to_contain_text("model set to claude-live")
            assert "sk-ant-live-page-key" not in await page.content()
            await browser.close()
    finally:
        harness.stop()
        await asyncio.wait_for(turns, 10)
        history.close()
    assert errors == []
    assert engine.interrupts == 1
    assert settings.model_file.read_text() == "claude-live\n"
