"""The dashboard's "stalled" marks in a real headless Chromium: an agent's row while its
turn hangs past the threshold, and a pending approval's card, both live from the event
stream (the page is never reloaded), and gone again when the stall clears."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from playwright.async_api import async_playwright, expect

from hyperhive.agent.fake_engine import Hang, ScriptedEngine
from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.settings import StallSettings
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.running import RunningAgent
from test_harness import make_settings
from test_stall_e2e import TOKEN, WAIT, stalling_hive

WAIT_MS = 30_000  # a bound, not a target: chromium on a loaded 2-core machine takes seconds


async def test_a_stalled_turn_and_a_stalled_approval_are_marked_live_and_unmarked_when_cleared(
    config: Config, short_dir: Path
) -> None:
    hang = Hang()
    stall = StallSettings(thinking=0.5, approval=0.5, lease=None)
    async with stalling_hive(config, stall) as s, async_playwright() as pw:
        for name in ("hm1nd", "alice"):
            await s.hive.add_agent(name, None)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        agent = RunningAgent(
            make_settings(s.hive, short_dir), ScriptedEngine(lambda _: [hang]), {"K": "x"}, WAIT
        )
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{s.http.base_url}/?{urlencode({'token': TOKEN})}")
            await expect(page.locator("#link")).to_have_text("● live", timeout=WAIT_MS)
            badge = page.locator('[data-agent="alice"] .stalled')
            await expect(badge).to_be_hidden(timeout=WAIT_MS)
            await page.evaluate("() => { window.hiveMark = 42; }")

            await s.host("send", to="alice", body="think hard")
            await expect(badge).to_have_text("stalled: thinking", timeout=WAIT_MS)
            assert "no engine event" in (await badge.get_attribute("title") or "")
            await agent.harness.cancel()
            await expect(badge).to_be_hidden(timeout=WAIT_MS)

            manager = s.hive.config.agent_socket("hm1nd", manager=True)
            async with await Client.connect(manager) as hm1nd:
                asked = await hm1nd.call("request_spawn", name="bob", reason="a helper")
            mark = page.locator(f'#approval-list [data-approval="{asked["id"]}"] .stalled')
            await expect(mark).to_have_text("stalled", timeout=WAIT_MS)
            assert await page.evaluate("() => window.hiveMark") == 42  # live, not reloaded
            assert errors == []
        finally:
            await agent.stop()
            await browser.close()
