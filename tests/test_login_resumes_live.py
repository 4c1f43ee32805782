"""The story of issue 11 on the agent's page, in real headless Chromium over the real
harness (scripted engine, which wants a key as Claude Code does), a real in-process core
and real sockets: the first message to an agent that is not logged in waits, the page
says ``offline (login)``, and the key saved there gets that same message handled."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from playwright.async_api import async_playwright, expect

from hyperhive.agent.engine import EngineEvent, NotLoggedIn
from hyperhive.agent.fake_engine import Raise, ScriptedEngine, Step
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


async def test_a_message_sent_before_the_login_is_answered_once_the_key_is_saved_on_the_page(
    hive: Hive, short_dir: Path
) -> None:
    await hive.add_agent("hm1nd", None)
    settings = AgentSettings(
        name="hm1nd",
        role="manager",
        socket=hive.socket_path(hive.registry.get("hm1nd")),
        state_dir=short_dir / "m" / "state",
        claude_dir=short_dir / "m" / "claude",
        listen="127.0.0.1",
        port=0,
        model_file=short_dir / "m" / "state" / "hyperhive-model",
    )
    credentials = Credentials(settings.claude_dir, {})  # a fresh agent: no key anywhere

    def script(prompt: str) -> list[Step]:
        if not credentials.available():
            return [Raise(NotLoggedIn("Not logged in · Please run /login"))]
        return [EngineEvent("assistant", {"text": "hello, operator: now I can answer"})]

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
            await expect(badge).to_have_text(re.compile(r"^offline \(login\) \d+s$"))

            async with await Client.connect(hive.config.host_socket) as op:
                sent = await op.call("send", to="hm1nd", body="my first words to you")
            await expect(log).to_contain_text(f"message #{sent['id']} is back in the queue")
            await expect(badge).to_have_text(re.compile(r"^offline \(login\) \d+s$"))
            await expect(page.locator("#login")).to_be_visible()

            await page.locator("#key").fill("sk-ant-api03-pasted-on-the-page")
            await page.locator("#key-form button").click()
            await expect(log).to_contain_text("hello, operator: now I can answer")
            await expect(badge).to_have_text(re.compile(r"^idle \d+s$"))
            await expect(page.locator("#login")).to_be_hidden()
            await browser.close()
    finally:
        harness.stop()
        await asyncio.wait_for(turns, 10)
        history.close()
    assert errors == []
    assert len(engine.prompts) == 2 and "my first words to you" in engine.prompts[1]
    row = hive.conn.execute(
        "SELECT delivered_at, attempts FROM messages WHERE id = ?", (sent["id"],)
    ).fetchone()
    assert row[0] is not None and row[1] == 0
