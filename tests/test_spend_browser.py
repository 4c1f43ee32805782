"""Spend in a real headless Chromium: as an agent's requests go through its api.sock to the
fake upstream, the dashboard's spend view and the agent's own page show the gateway's count
at once, from the live feeds, and the plot has one point per bucket with traffic."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from playwright.async_api import expect

from hyperhive.config import Config
from hyperhive.core.gateway.meter import utc_day
from hyperhive.core.gateway.seams import Usage
from support.dashboard import operator_client
from support.spend import (
    REQUEST_USD,
    ask_model,
    assert_not_reloaded,
    chromium,
    mark,
    metered_swarm,
    series_of,
    usd,
)

HOUR = 3600
EARLIER = Usage(input_tokens=1000, output_tokens=200, cache_creation_input_tokens=50)
EARLIER_NUSD = 1000 * 3000 + 200 * 15000 + 50 * 3750  # sonnet 4.5, nano-USD per token


async def test_spend_shows_live_on_the_dashboard_and_the_agents_page_as_responses_are_recorded(
    config: Config,
) -> None:
    async with metered_swarm(config, "amy", "bo") as (swarm, api), chromium() as pages:
        dashboard = await pages.dashboard(swarm)
        page = await pages.agent(swarm, "amy")
        row = dashboard.locator('#spend-rows [data-spend="amy"]')
        await expect(row.locator(".c-requests")).to_have_text("0")
        await expect(row.locator(".c-state")).to_have_text("ok")
        await expect(page.locator("#spend-cost")).to_have_text("$0.0000")
        await expect(dashboard.locator("#spend-plot-empty")).to_be_visible()
        await mark(dashboard)
        await mark(page)
        for n in (1, 2, 3):
            answer = await ask_model(swarm, "amy", f"turn {n}")
            assert answer.status_code == 200, answer.text
            await expect(row.locator(".c-requests")).to_have_text(str(n))
            await expect(page.locator("#spend-tokens")).to_contain_text(f"{n} requests")
        spent = usd(3 * REQUEST_USD)
        await expect(row.locator(".c-cost")).to_have_text(spent)
        await expect(row.locator(".c-tokens")).to_have_text("in 30 · out 15 · cache 0")
        await expect(page.locator("#spend-cost")).to_have_text(spent)
        await expect(page.locator("#spend-tokens")).to_have_text(
            "in 30 · out 15 · cache 0 · 3 requests"
        )
        await expect(dashboard.locator("#spend-hive .hive-total")).to_have_text(
            f"hive today {spent}"
        )
        await expect(dashboard.locator("#n-spend")).to_have_text(spent)
        bo = dashboard.locator('#spend-rows [data-spend="bo"]')
        await expect(bo.locator(".c-requests")).to_have_text("0")  # its own, not amy's
        assert len([r for r in api.requests if r.path == "/v1/messages"]) == 3
        await assert_not_reloaded(dashboard)
        await assert_not_reloaded(page)


async def test_the_plot_draws_a_point_per_bucket_with_traffic_and_follows_new_ones(
    config: Config,
) -> None:
    async with metered_swarm(config, "amy", "bo") as (swarm, _), chromium() as pages:
        # Earlier hours of the day as the ledger holds them: amy in two buckets, bo in one.
        now = time.time()
        ledger = swarm.hive.meter.ledger
        for agent, hours in (("amy", 3), ("amy", 2), ("bo", 1)):
            at = now - hours * HOUR
            ledger.add(agent, utc_day(at), at, EARLIER, EARLIER_NUSD, unpriced=False)
        dashboard = await pages.dashboard(swarm)
        plot = dashboard.locator("#spend-plot")
        await expect(plot.locator('circle[data-agent="amy"]')).to_have_count(2)
        await expect(plot.locator('circle[data-agent="bo"]')).to_have_count(1)
        await expect(dashboard.locator("#spend-plot-empty")).to_be_hidden()
        await mark(dashboard)
        assert (await ask_model(swarm, "amy")).status_code == 200
        await expect(plot.locator('circle[data-agent="amy"]')).to_have_count(3)
        async with operator_client(swarm) as http:
            params = {"bucket": 300, "since": int(now) - 24 * HOUR}
            found = (await http.get(f"/api/usage/series?{urlencode(params)}")).json()
        amy = series_of(found, "amy")
        assert len(amy) == 3
        drawn = await plot.locator('circle[data-agent="amy"]').evaluate_all(
            "dots => dots.map(d => [Number(d.dataset.ts), Number(d.dataset.cost)])"
        )
        assert drawn == [[start, cost] for start, cost, _ in amy]
        # Each point says its bucket; the line climbs through the running total.
        last = plot.locator('circle[data-agent="amy"]').last
        await expect(last.locator("title")).to_contain_text(usd(REQUEST_USD))
        legend = dashboard.locator('#spend-legend [data-agent="amy"]')
        await expect(legend).to_contain_text(usd(2 * EARLIER_NUSD / 1e9 + REQUEST_USD))
        await assert_not_reloaded(dashboard)
