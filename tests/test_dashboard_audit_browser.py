"""The dashboard's audit section in a real headless Chromium: it shows the chain's state on
load, and a decision a policy rule takes appears as its rule, live, without a reload."""

from __future__ import annotations

import re

from playwright.async_api import async_playwright, expect

from hyperhive.config import Config
from hyperhive.settings import PolicyRule, Settings
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.dashboard import live_swarm

WAIT_MS = 30_000  # a bound, not a target: chromium on a loaded 2-core machine takes seconds


async def test_the_audit_section_shows_a_policy_decision_live_and_the_chain_ok(
    config: Config,
) -> None:
    errors: list[str] = []
    async with live_swarm(config) as swarm, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(swarm.login_url)
            await expect(page.locator("#link")).to_have_text("● live")
            await expect(page.locator("#audit-verify")).to_have_text(re.compile(r"^chain ok"))
            rule = PolicyRule("no-x", "spawn", "deny", agent="x*")
            swarm.hive.settings.replace(Settings(policies=(rule,)))
            asked = await swarm.manager("request_spawn", name="xavier", reason="please")
            row = page.locator("#audit-rows tr.policy").last
            await expect(row).to_contain_text("policy:no-x")
            await expect(row).to_contain_text("approval_denied")
            history = page.locator(f'#approval-history [data-approval="{asked["id"]}"]')
            await expect(history).to_contain_text("by policy:no-x")
        finally:
            await browser.close()
    assert errors == []
