"""The budget, end to end in a real headless Chromium: an agent with a small ``usd_per_day``
sends requests through its api.sock (the fake Messages API upstream) until the gateway
refuses with 402; the dashboard and the agent's page show "paused: budget"; the operator
raises the budget (or resumes the agent) in the browser, and the next request goes through
with the state back to ok."""

from __future__ import annotations

from playwright.async_api import Locator, Page, expect

from hyperhive.config import Config
from support.dashboard import Swarm
from support.spend import REQUEST_USD, ask_model, assert_not_reloaded, chromium, mark, metered_swarm

# 80 % after two requests, spent by the third.
SMALL = 2.5 * REQUEST_USD
MAX_REQUESTS = 10  # a bound: the budget trips at the third


async def spend_until_refused(swarm: Swarm, agent: str) -> int:
    """Requests as ``agent`` until the gateway refuses one; how many went through."""
    for sent in range(MAX_REQUESTS):
        answer = await ask_model(swarm, agent, f"request {sent}")
        if answer.status_code == 402:
            error = answer.json()
            assert error["type"] == "error" and error["error"]["type"] == "billing_error"
            assert "paused: budget" in error["error"]["message"]
            return sent
        assert answer.status_code == 200, answer.text
    raise AssertionError(f"{agent} was never refused after {MAX_REQUESTS} requests")


def spend_row(dashboard: Page, agent: str) -> Locator:
    return dashboard.locator(f'#spend-rows [data-spend="{agent}"]')


async def assert_paused(dashboard: Page, page: Page, agent: str) -> None:
    """Both pages say so: its spend row and its agents-list row, and its own page."""
    await expect(spend_row(dashboard, agent).locator(".sp-state")).to_have_text("paused: budget")
    listed = dashboard.locator(f'#agent-list [data-agent="{agent}"] .paused')
    await expect(listed).to_have_text("paused: budget")
    await expect(dashboard.locator(f'[data-group="paused"] [data-agent="{agent}"]')).to_be_visible()
    notice = dashboard.locator(f'#spend-notices [data-notice="{agent}"]')
    await expect(notice).to_contain_text(f"{agent} is paused: budget")
    await expect(page.locator("#paused")).to_be_visible()
    await expect(page.locator("#paused h2")).to_have_text("paused: budget")
    await expect(page.locator("#spend-state")).to_have_text("paused: budget")


async def assert_ok(dashboard: Page, page: Page, agent: str) -> None:
    await expect(spend_row(dashboard, agent).locator(".sp-state")).to_have_text("ok")
    await expect(dashboard.locator(f'#agent-list [data-agent="{agent}"] .paused')).to_be_hidden()
    await expect(dashboard.locator(f'#spend-notices [data-notice="{agent}"]')).to_have_count(0)
    await expect(page.locator("#paused")).to_be_hidden()
    await expect(page.locator("#spend-state")).to_have_text("ok")


async def test_a_spent_agent_is_paused_on_both_pages_until_the_operator_raises_its_budget(
    config: Config,
) -> None:
    async with metered_swarm(config, "amy") as (swarm, _), chromium() as pages:
        await swarm.host("budget_set", agent="amy", usd_per_day=SMALL)
        dashboard = await pages.dashboard(swarm)
        page = await pages.agent(swarm, "amy")
        row = spend_row(dashboard, "amy")
        await expect(row.locator(".c-budget .limit")).to_have_text(f"${SMALL:.4f}/day")
        await mark(dashboard)
        await mark(page)
        # Two requests: 80 % of the budget, a warning on the dashboard.
        for _ in range(2):
            assert (await ask_model(swarm, "amy")).status_code == 200
        notice = dashboard.locator('#spend-notices [data-notice="amy"]')
        await expect(notice).to_contain_text("80 %")
        await expect(row.locator(".sp-state")).to_have_text("warn · 80 %")
        assert await spend_until_refused(swarm, "amy") == 1  # the third spent the rest
        await assert_paused(dashboard, page, "amy")

        # A bad raise changes nothing: it is refused with why, and amy stays paused.
        await row.locator(".raise summary").click()
        form = row.locator("form.budget-form")
        for typed, says in (("-1", "must be dollars"), ("lots", "must be dollars"),
                            ("5000000", "must be at most 1,000,000")):  # fmt: skip
            await form.get_by_label("usd/day").fill(typed)
            await form.get_by_role("button", name="set budget").click()
            await expect(form.locator(".msg")).to_contain_text(says)
        assert (await ask_model(swarm, "amy")).status_code == 402
        await assert_paused(dashboard, page, "amy")

        await form.get_by_label("usd/day").fill("1")
        await form.get_by_role("button", name="set budget").click()
        await expect(form.locator(".msg")).to_have_text("amy: budget $1.00/day → ok")
        await assert_ok(dashboard, page, "amy")
        assert (await ask_model(swarm, "amy")).status_code == 200
        await expect(row.locator(".c-requests")).to_have_text("4")
        await expect(page.locator("#spend-tokens")).to_contain_text("4 requests")
        await assert_ok(dashboard, page, "amy")
        await assert_not_reloaded(dashboard)
        await assert_not_reloaded(page)


async def test_an_agent_paused_by_its_budget_is_raised_or_resumed_from_its_own_page(
    config: Config,
) -> None:
    async with metered_swarm(config, "amy") as (swarm, _), chromium() as pages:
        await swarm.host("budget_set", agent="amy", usd_per_day=SMALL)
        dashboard = await pages.dashboard(swarm)
        page = await pages.agent(swarm, "amy")
        await spend_until_refused(swarm, "amy")
        await assert_paused(dashboard, page, "amy")
        banner = page.locator("#paused")
        await banner.get_by_label("tokens/day").fill("ten")
        await banner.get_by_role("button", name="set budget").click()
        await expect(banner.locator("form .msg")).to_contain_text("tokens_per_day must be")
        await expect(banner).to_be_visible()

        # Resumed for today: over budget it warns, but its requests go through.
        await banner.get_by_role("button", name="▶ resume for today").click()
        await expect(banner).to_be_hidden()
        await expect(page.locator("#spend-state")).to_have_text("warn · 80 %")
        await expect(spend_row(dashboard, "amy").locator(".sp-state")).to_have_text("warn · 80 %")
        assert (await ask_model(swarm, "amy")).status_code == 200
        await expect(page.locator("#spend-tokens")).to_contain_text("4 requests")

        # Raised from its page: back to ok.
        await page.locator("#spend-raise summary").click()
        raise_form = page.locator("#spend-raise form")
        await raise_form.get_by_label("usd/day").fill("2")
        await raise_form.get_by_role("button", name="set budget").click()
        await expect(raise_form.locator(".msg")).to_have_text("amy: budget $2.00/day → ok")
        await assert_ok(dashboard, page, "amy")
