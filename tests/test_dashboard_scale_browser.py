"""The dashboard with 200 agents, in a real headless Chromium against a real in-process core
(the fake backend: 200 "containers" cost nothing) behind real uvicorn: the filter finds one
agent, folded groups stay folded, a state change (one agent's, or every agent's at once)
reaches its row within a second, and a flood of messages leaves the flow bounded and the page
responsive. The numbers seen are printed (``pytest -s``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from playwright.async_api import Page, async_playwright, expect

from hyperhive.client import Client
from hyperhive.config import Config
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.scale_hive import BigHive, big_hive

AGENTS = 200
WAIT_MS = 60_000  # a bound for loading 200 rows on a loaded 2-core machine, not a target
STATE_BOUND_S = 1.0  # a state change shows in its row within this, from the action
FLOW_BOUND = 300  # the flow's rows in the DOM, at most
FLOOD = 2_000
FLOOD_TO = 5  # agents the flood is spread over
SAMPLE_EVERY = 50  # messages sent between two looks at the page
# 200 state changes at once, all drawn: measured 0.8-0.93 s after the core's last one
# before issue 15 (so a 1 s bound failed now and then on a loaded machine) and 0.5-1.3 s
# since; a page that re-rendered per event would take many seconds.
BURST_BOUND_S = 2.0
RESPONSIVE_S = 2.0  # a round trip into the page (and a frame drawn) during the flood

ROWS = "document.querySelectorAll('article.agent').length"
FLOW_ROWS = "document.querySelectorAll('#flow-log .fl').length"
FIRST_ID = "Number(document.querySelector('#flow-log .fl .mid').textContent.slice(2))"
# A round trip that also waits for the page to draw a frame: a page busy re-rendering for
# every event would answer late.
FRAME_THEN_COUNT = f"() => new Promise((done) => requestAnimationFrame(() => done({FLOW_ROWS})))"


@dataclass
class Opened:
    big: BigHive
    page: Page
    errors: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def open_big_dashboard(config: Config) -> AsyncIterator[Opened]:
    """200 agents spawned, the dashboard loaded and live with every row; no page error."""
    async with big_hive(config, AGENTS) as big, async_playwright() as pw:
        print(f"\nspawned {AGENTS} agents in {big.setup_seconds:.1f}s")
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            opened = Opened(big, page)
            page.on("pageerror", lambda exc: opened.errors.append(str(exc)))
            began = time.monotonic()
            await page.goto(big.login_url)
            await expect(page.locator("#link")).to_have_text("● live")
            await page.wait_for_function(f"() => {ROWS} === {AGENTS + 1}")
            print(f"dashboard showed {AGENTS + 1} rows {time.monotonic() - began:.2f}s after load")
            yield opened
        finally:
            await browser.close()
    assert opened.errors == []


@pytest.fixture
async def opened(config: Config) -> AsyncIterator[Opened]:
    async with open_big_dashboard(config) as it:
        yield it


async def rows_visible(page: Page) -> int:
    count: int = await page.evaluate(
        "() => [...document.querySelectorAll('article.agent')]"
        ".filter((r) => r.checkVisibility()).length"
    )
    return count


@pytest.mark.timeout(600)
async def test_the_filter_box_finds_one_agent_among_two_hundred(opened: Opened) -> None:
    page = opened.page
    await expect(page.locator("#n-agents")).to_have_text(str(AGENTS + 1))
    await expect(page.locator("#agent-states [data-state=running] b")).to_have_text(str(AGENTS))
    await page.locator("body").press("/")  # from anywhere on the page
    box = page.locator("#agent-filter")
    await expect(box).to_be_focused()
    await box.press_sequentially("ag137")
    await expect(page.locator('[data-agent="ag137"]')).to_be_visible()
    await page.wait_for_function(
        "() => [...document.querySelectorAll('article.agent')]"
        ".filter((r) => r.checkVisibility()).length === 1"
    )
    assert await rows_visible(page) == 1
    await box.press("Escape")
    await expect(box).to_have_value("")
    await expect(page.locator('[data-agent="ag000"]')).to_be_visible()
    assert await rows_visible(page) == AGENTS + 1


@pytest.mark.timeout(600)
async def test_a_folded_group_stays_folded_across_a_reload(opened: Opened) -> None:
    page = opened.page
    fold = page.locator('[data-group="idle"] .fold-group')
    await expect(fold).to_have_attribute("aria-expanded", "true")
    await fold.click()
    await expect(page.locator('[data-agent="ag100"]')).to_be_hidden()
    await page.reload()
    await expect(page.locator("#link")).to_have_text("● live")
    await page.wait_for_function(f"() => {ROWS} === {AGENTS + 1}")
    await expect(fold).to_have_attribute("aria-expanded", "false")
    await expect(page.locator('[data-group="idle"] .count')).to_have_text(str(AGENTS))
    await expect(page.locator('[data-agent="ag100"]')).to_be_hidden()
    await expect(page.locator('[data-agent="hm1nd"]')).to_be_visible()  # another group
    await fold.click()
    await expect(page.locator('[data-agent="ag100"]')).to_be_visible()


async def seconds_until(page: Page, condition: str, began: float) -> float:
    """From ``began`` until ``condition`` holds in the page (looked at every frame), bounded."""
    await page.wait_for_function(condition, polling="raf", timeout=STATE_BOUND_S * 1000)
    return time.monotonic() - began


def badge_starts(name: str, state: str) -> str:
    return (
        f"() => (document.querySelector('[data-agent=\"{name}\"] .badge')?.textContent ?? '')"
        f".startsWith('{state}')"
    )


@pytest.mark.timeout(600)
async def test_a_crash_and_a_stop_show_in_their_rows_within_a_second(opened: Opened) -> None:
    page, big = opened.page, opened.big
    crashed, stopped = "ag042", "ag171"
    await expect(page.locator(f'[data-group="idle"] [data-agent="{crashed}"]')).to_be_visible()
    began = time.monotonic()
    big.backend.crash(crashed)  # the lifecycle gives up at once: failed
    crash_latency = await seconds_until(page, badge_starts(crashed, "failed"), began)
    await expect(page.locator(f'[data-group="failed"] [data-agent="{crashed}"]')).to_be_visible()

    async with await Client.connect(big.hive.config.host_socket) as host:
        began = time.monotonic()
        stopping = asyncio.create_task(host.call("stop", name=stopped))
        stop_latency = await seconds_until(page, badge_starts(stopped, "stopped"), began)
        await stopping
    await expect(page.locator(f'[data-group="stopped"] [data-agent="{stopped}"]')).to_be_visible()
    await expect(page.locator("#agent-states [data-state=failed] b")).to_have_text("1")
    print(
        f"crash -> failed in its row: {crash_latency * 1000:.0f} ms; "
        f"stop -> stopped: {stop_latency * 1000:.0f} ms"
    )
    assert crash_latency <= STATE_BOUND_S and stop_latency <= STATE_BOUND_S


@pytest.mark.timeout(600)
async def test_every_agent_stopping_at_once_is_drawn_quickly(opened: Opened) -> None:
    page, big = opened.page, opened.big
    all_stopped = (
        f"() => document.querySelectorAll('article.agent[data-state=stopped]').length === {AGENTS}"
    )
    began = time.monotonic()
    async with asyncio.TaskGroup() as group:  # 200 agent_state events in a burst
        for name in big.names:
            group.create_task(big.hive.lifecycle.stop(name))
    stopped_in = time.monotonic() - began
    await page.wait_for_function(all_stopped, polling="raf", timeout=WAIT_MS)
    drawn_in = time.monotonic() - began
    asked = time.monotonic()
    await page.evaluate(FRAME_THEN_COUNT)
    trip = time.monotonic() - asked
    await expect(page.locator('[data-group="stopped"] .count')).to_have_text(str(AGENTS + 1))
    await expect(page.locator("#agent-states [data-state=running] b")).to_have_text("0")
    print(
        f"{AGENTS} stops took {stopped_in * 1000:.0f} ms in the core; every row showed it "
        f"after {drawn_in * 1000:.0f} ms; a round trip then {trip * 1000:.0f} ms"
    )
    assert drawn_in - stopped_in <= BURST_BOUND_S and trip <= RESPONSIVE_S


async def flood(big: BigHive, sent: asyncio.Queue[int]) -> None:
    """FLOOD messages from the operator, spread over a few agents; ``sent`` hears progress."""
    to = big.names[:FLOOD_TO]
    async with await Client.connect(big.hive.config.host_socket) as host:
        for i in range(FLOOD):
            await host.call("send", to=to[i % FLOOD_TO], body=f"flood {i}")
            if (i + 1) % SAMPLE_EVERY == 0:
                sent.put_nowait(i + 1)


@pytest.mark.timeout(600)
async def test_a_flood_of_messages_keeps_the_flow_bounded_and_the_page_responsive(
    opened: Opened,
) -> None:
    page, big = opened.page, opened.big
    sent: asyncio.Queue[int] = asyncio.Queue()
    began = time.monotonic()
    sending = asyncio.create_task(flood(big, sent))
    rows: list[int] = []
    trips: list[float] = []
    done = 0
    while done < FLOOD:
        done = await asyncio.wait_for(sent.get(), WAIT_MS / 1000)
        asked = time.monotonic()
        rows.append(await page.evaluate(FRAME_THEN_COUNT))
        trips.append(time.monotonic() - asked)
    await sending
    sent_in = time.monotonic() - began
    last = page.locator("#flow-log .fl", has_text=f"flood {FLOOD - 1}")
    await expect(last).to_be_visible(timeout=WAIT_MS)
    shown_in = time.monotonic() - began
    rows.append(await page.evaluate(FLOW_ROWS))
    print(
        f"{FLOOD} messages sent in {sent_in:.1f}s, the last shown after {shown_in:.1f}s; "
        f"flow rows in the DOM at most {max(rows)} over {len(rows)} looks; "
        f"round trip into the page at most {max(trips) * 1000:.0f} ms, "
        f"median {sorted(trips)[len(trips) // 2] * 1000:.0f} ms"
    )
    assert max(rows) <= FLOW_BOUND
    assert rows[-1] == FLOW_BOUND  # bounded, not emptied
    assert max(trips) <= RESPONSIVE_S
    # After a reload only the latest page is in the browser: older lines page in through the
    # messages API, still within the bound, and the live end waits behind "back to the latest".
    await page.reload()
    await expect(last).to_be_visible(timeout=WAIT_MS)
    for _ in range(3):
        first = await page.evaluate(f"() => {FIRST_ID}")
        await page.locator("#flow-older").click()
        await page.wait_for_function(f"() => {FIRST_ID} < {first}")
        assert await page.evaluate(FLOW_ROWS) <= FLOW_BOUND
    await expect(last).to_have_count(0)
    await page.locator("#flow-latest").click()
    await expect(last).to_be_visible()
    assert await page.evaluate(FLOW_ROWS) <= FLOW_BOUND
    # Its rows live on: the inbox counts moved in place.
    inbox = page.locator(f'[data-agent="{big.names[0]}"] .brief')
    await expect(inbox).to_contain_text(f"inbox {FLOOD // FLOOD_TO}", timeout=WAIT_MS)
