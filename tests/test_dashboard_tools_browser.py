"""An agent's tool policy on the dashboard, in a real headless Chromium against a
real in-process core (bwrap backend, fake engine)."""

from __future__ import annotations

from playwright.async_api import expect

from hyperhive.config import Config
from hyperhive.tool_defaults import BUILTINS
from test_dashboard_browser import SLOW_MS, open_dashboard


async def test_each_agent_row_sums_up_its_tool_policy_and_shows_the_rules_on_demand(
    config: Config,
) -> None:
    async with open_dashboard(config) as browsed:
        page, swarm = browsed.page, browsed.swarm
        await swarm.host("spawn", name="bob", config='[tools]\ndeny = ["WebFetch"]\n')
        tools = page.locator('[data-agent="bob"] .tools')
        summary = f"tools: {len(BUILTINS)} free · 0 ask · 1 deny (custom deny)"
        await expect(tools.locator("summary")).to_have_text(summary, timeout=SLOW_MS)
        await expect(tools.locator(".tl-deny")).to_be_hidden()
        await tools.locator("summary").click()
        await expect(tools.locator(".tl-deny")).to_have_text("deny *: WebFetch")
        await expect(tools.locator(".tl-allow")).to_contain_text("free: Agent, Bash, ")
        # hm1nd is external here (no container): no policy of the core's to show.
        await expect(page.locator('[data-agent="hm1nd"] .tools')).to_be_hidden()
