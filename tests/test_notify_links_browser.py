"""A notification's link lands on its item: the dashboard in headless Chromium has an
element with the id each kind of link names (an approval, a question, an agent's row)."""

from __future__ import annotations

from playwright.async_api import async_playwright, expect

from hyperhive.config import Config
from hyperhive.core.notify.events import Translator
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.dashboard import live_swarm

WAIT_MS = 30_000


async def test_each_link_a_notification_carries_names_an_element_on_the_dashboard(
    config: Config,
) -> None:
    async with live_swarm(config) as swarm, async_playwright() as pw:
        spawn = await swarm.manager("request_spawn", name="carol", reason="a tester")
        question = await swarm.manager("ask_operator", question="ship it?")
        translate = Translator().translate
        approval = await swarm.host("approval", id=spawn["id"])
        notes = [
            translate({"type": "approval_requested", "approval": approval}),
            translate({"type": "question_asked", "question": {**question, "asker": "hm1nd"}}),
            translate({"type": "agent_state", "agent": "hm1nd", "state": "failed"}),
        ]
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(swarm.login_url)
            await expect(page.locator("#link")).to_have_text("● live", timeout=WAIT_MS)
            for note in notes:
                assert note is not None and note.link.startswith("/#")
                await expect(page.locator(note.link[1:])).to_be_visible(timeout=WAIT_MS)
        finally:
            await browser.close()
