"""The dashboard in a real headless Chromium, against a real in-process core (bwrap backend,
fake engine) behind real uvicorn. The test speaks as hm1nd on the manager socket."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse
from starlette.routing import Route

from hyperhive.config import Config
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.dashboard import Swarm, live_swarm
from support.stub_control import serving

WAIT_MS = 30_000  # a bound, not a target: chromium on a loaded 2-core machine takes seconds
SLOW_MS = 60_000  # approving a Spawn creates and starts a container
RUNNING = re.compile(r"^running \d+[smhd]$")


@dataclass
class Browsed:
    swarm: Swarm
    page: Page
    browser: Browser


@contextlib.asynccontextmanager
async def open_dashboard(
    config: Config, viewport: tuple[int, int] = (1280, 900)
) -> AsyncIterator[Browsed]:
    """The dashboard loaded and live; fails the test on any uncaught page error."""
    errors: list[str] = []
    async with live_swarm(config) as swarm, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            width, height = viewport
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(swarm.login_url)  # the URL `hive dashboard-url` prints
            await expect(page.locator("#link")).to_have_text("● live", timeout=WAIT_MS)
            await expect(page.locator('[data-agent="hm1nd"]')).to_be_visible(timeout=WAIT_MS)
            yield Browsed(swarm, page, browser)
        finally:
            await browser.close()
    assert errors == []


@pytest.fixture
async def browsed(config: Config) -> AsyncIterator[Browsed]:
    async with open_dashboard(config) as opened:
        yield opened


async def mark_page(page: Page) -> None:
    """Leave a mark that a reload would wipe, to prove the page updated itself."""
    await page.evaluate("() => { window.hiveMark = 42; }")


async def assert_not_reloaded(page: Page) -> None:
    assert await page.evaluate("() => window.hiveMark") == 42


async def test_approving_a_spawn_from_the_page_brings_the_agent_up_running(
    browsed: Browsed,
) -> None:
    page, swarm = browsed.page, browsed.swarm
    await mark_page(page)
    asked = await swarm.manager("request_spawn", name="carol", reason="needs a tester")
    card = page.locator(f'#approval-list [data-approval="{asked["id"]}"]')
    await expect(card).to_contain_text("needs a tester")
    await expect(card.locator(".kind")).to_have_text("Spawn")
    await expect(page.locator("#n-approvals")).to_have_text("1")
    await card.get_by_role("button", name="◆ APPR0VE").click()
    await expect(page.locator("#approvals-msg")).to_have_text(
        f"approval #{asked['id']} approved → applied", timeout=SLOW_MS
    )
    await expect(page.locator('[data-agent="carol"] .badge')).to_have_text(RUNNING)
    await expect(card).to_have_count(0)
    history = page.locator(f'#approval-history [data-approval="{asked["id"]}"]')
    await expect(history).to_contain_text("applied by operator")
    await expect(page.locator("#flow-log")).to_contain_text("+ carol joined the hive")
    await assert_not_reloaded(page)


async def test_denying_an_apply_commit_with_a_reason_lands_it_in_history(
    browsed: Browsed,
) -> None:
    page, swarm = browsed.page, browsed.swarm
    await swarm.host("spawn", name="bob")
    sha = await swarm.propose("bob", 'role = "reviewer"\nmodel = "opus"\n', "bob reviews")
    asked = await swarm.manager("request_apply_commit", name="bob", sha=sha, reason="reviews")
    card = page.locator(f'#approval-list [data-approval="{asked["id"]}"]')
    await expect(card.locator(".kind")).to_have_text("ApplyCommit")
    added = card.locator("pre.diff .add", has_text='+role = "reviewer"')
    await expect(added).to_be_visible()
    assert await added.evaluate("e => getComputedStyle(e).color") == "rgb(57, 255, 20)"
    await expect(card.locator("pre.diff .del").first).to_be_visible()  # the old lines, in red
    deny = card.get_by_role("button", name="✖ deny")
    await deny.click()  # no reason yet: refused inline, nothing decided
    await expect(card.locator(".msg")).to_have_text("a deny reason must be a non-empty string")
    await card.get_by_placeholder("reason to deny").fill("not before the release")
    await deny.click()
    history = page.locator(f'#approval-history [data-approval="{asked["id"]}"]')
    await expect(history).to_contain_text("denied by operator: not before the release")
    await expect(card).to_have_count(0)
    event = await swarm.manager_event()
    assert event["payload"]["decision_reason"] == "not before the release"


async def test_radio_checkbox_and_free_text_answers_reach_the_managers_inbox(
    browsed: Browsed,
) -> None:
    page, swarm = browsed.page, browsed.swarm
    radio = await swarm.manager("ask_operator", question="which colour?", options=["red", "blue"])
    boxes = await swarm.manager(
        "ask_operator", question="which checks?", options=["lint", "types", "tests"], multi=True
    )
    free = await swarm.manager("ask_operator", question="anything else?")
    await expect(page.locator("#n-questions")).to_have_text("3")

    card = page.locator(f'#question-list [data-question="{radio["id"]}"]')
    await card.get_by_label("blue").check()
    await card.get_by_role("button", name="answer").click()
    event = await swarm.manager_event()
    assert event["body"] == "operator_answered" and event["payload"]["answer"] == "blue"

    card = page.locator(f'#question-list [data-question="{boxes["id"]}"]')
    await card.get_by_label("tests").check()
    await card.get_by_label("lint").check()
    await card.get_by_role("button", name="answer (pick any)").click()
    event = await swarm.manager_event()
    assert event["payload"]["answer"] == ["lint", "tests"]

    card = page.locator(f'#question-list [data-question="{free["id"]}"]')
    await card.get_by_role("button", name="answer").click()  # empty: refused inline
    await expect(card.locator(".msg")).to_contain_text("wants a non-empty text answer")
    await card.get_by_label(f"answer to #{free['id']}").fill("ship it\non friday")
    await card.get_by_role("button", name="answer").click()
    event = await swarm.manager_event()
    assert event["payload"]["answer"] == "ship it\non friday"

    await expect(page.locator("#question-list article")).to_have_count(0)
    await expect(page.locator("#question-history li")).to_have_count(3)
    await expect(page.locator("#question-history")).to_contain_text("which checks? → lint, tests")


async def test_a_message_from_the_send_box_shows_in_the_flow_and_reaches_the_agent(
    browsed: Browsed,
) -> None:
    page, swarm = browsed.page, browsed.swarm
    await page.locator("#send-to").select_option("hm1nd")
    box = page.locator("#send-body")
    await box.fill("hello <b>hm1nd</b>")
    await box.press("Shift+Enter")
    await box.press_sequentially("second line")
    await box.press("Enter")
    await expect(page.locator("#send-msg")).to_have_text(re.compile(r"^sent #\d+ to hm1nd$"))
    await expect(box).to_have_value("")
    row = page.locator("#flow-log .k-message").last
    await expect(row).to_contain_text("operator → hm1nd")
    await expect(row.locator(".body")).to_have_text("hello <b>hm1nd</b>\nsecond line")
    got = await swarm.manager("recv", wait=10)
    assert got["message"]["body"] == "hello <b>hm1nd</b>\nsecond line"
    await box.fill("   ")
    await box.press("Enter")
    await expect(page.locator("#send-msg")).to_have_text("message body is empty")


async def test_the_flow_filter_shows_only_the_chosen_agents_traffic(browsed: Browsed) -> None:
    page, swarm = browsed.page, browsed.swarm
    await swarm.host("spawn", name="bob")
    await swarm.host("send", to="hm1nd", body="for the manager")
    await swarm.host("send", to="bob", body="for bob")
    flow = page.locator("#flow-log")
    await expect(flow).to_contain_text("for bob")
    await page.locator("#filter").select_option("hm1nd")
    await expect(flow.locator(".fl", has_text="for bob")).to_be_hidden()
    await expect(flow.locator(".fl", has_text="for the manager")).to_be_visible()
    await page.locator("#filter").select_option("")
    await expect(flow.locator(".fl", has_text="for bob")).to_be_visible()


async def test_an_approval_made_with_the_cli_shows_up_without_a_reload(browsed: Browsed) -> None:
    page, swarm = browsed.page, browsed.swarm
    await mark_page(page)
    asked = await swarm.manager("request_spawn", name="dave", reason="from the cli")
    card = page.locator(f'#approval-list [data-approval="{asked["id"]}"]')
    await expect(card).to_be_visible()
    await swarm.cli("approve", str(asked["id"]))
    await expect(card).to_have_count(0)
    history = page.locator(f'#approval-history [data-approval="{asked["id"]}"]')
    await expect(history).to_contain_text("applied")
    await expect(page.locator('[data-agent="dave"] .badge')).to_have_text(RUNNING)
    await assert_not_reloaded(page)


async def test_stop_start_and_a_confirmed_destroy_from_the_agent_row(browsed: Browsed) -> None:
    page, swarm = browsed.page, browsed.swarm
    await swarm.host("spawn", name="bob")
    row = page.locator('[data-agent="bob"]')
    badge = row.locator(".badge")
    await expect(badge).to_have_text(RUNNING)
    await expect(row.locator(".name")).to_have_attribute("href", "agents/bob/")  # front door
    await row.get_by_role("button", name="■ stop").click()
    await expect(badge).to_have_text(re.compile(r"^stopped \d+s$"))
    await expect(row.get_by_role("button", name="■ stop")).to_be_disabled()
    await row.get_by_role("button", name="▶ start").click()
    await expect(badge).to_have_text(RUNNING)
    await row.get_by_role("button", name="✖ destroy").click()
    confirm = row.get_by_label("type bob to confirm")
    await confirm.fill("bo")
    await row.get_by_role("button", name="destroy for good").click()
    await expect(row.locator(".msg")).to_contain_text("type the agent's name (bob)")
    assert "bob" in swarm.hive.registry
    await confirm.fill("bob")
    await row.get_by_role("button", name="destroy for good").click()
    await expect(page.locator("#agents-msg")).to_have_text("bob: destroyed (state kept)")
    await expect(row).to_have_count(0)
    assert "bob" not in swarm.hive.registry


async def test_a_bwrap_agents_own_port_is_relayed_by_the_core_and_its_page_opens_there_too(
    browsed: Browsed,
) -> None:
    page, swarm = browsed.page, browsed.swarm
    await swarm.host("spawn", name="pia")  # a real harness in a network namespace of its own
    row = page.locator('[data-agent="pia"]')
    await expect(row.locator(".badge")).to_have_text(RUNNING, timeout=SLOW_MS)
    # The front door, at the dashboard's own origin.
    async with page.context.expect_page() as opened:
        await row.locator("a.name").click()
    agent = await opened.value
    await expect(agent).to_have_title("pia · hyperhive", timeout=SLOW_MS)
    await expect(agent.locator("#link")).to_have_text("● live", timeout=SLOW_MS)
    # And its own port on the host's loopback, which the core relays into the sandbox:
    # the page key in the link logs the browser in there.
    direct = row.locator(".direct")
    await expect(direct).to_be_visible(timeout=SLOW_MS)
    async with page.context.expect_page() as opened:
        await direct.click()
    own = await opened.value
    await expect(own).to_have_title("pia · hyperhive", timeout=SLOW_MS)
    await expect(own.locator("#link")).to_have_text("● live", timeout=SLOW_MS)
    [shown] = await swarm.host("agents", name="pia")
    assert own.url.startswith(f"http://localhost:{shown['port']}/")


def forging_site(target: str) -> Starlette:
    """Another site whose page auto-submits a form to the dashboard, as an attacker would."""

    async def page(request: StarletteRequest) -> HTMLResponse:
        return HTMLResponse(
            f"<form id=f method=post action='{target}api/send'>"
            "<input name=to value=hm1nd><input name=body value=forged></form>"
            "<script>document.getElementById('f').submit()</script>"
        )

    return Starlette(routes=[Route("/", page)])


@pytest.mark.parametrize(
    ("evil_host", "status", "says"),
    [
        # Another site: the SameSite=Strict session cookie stays home, so no session.
        ("localhost", 401, "operator token required"),
        # Another port of the dashboard's own host name (where an agent could listen):
        # the cookie goes along, and the CSRF check refuses it.
        ("127.0.0.1", 403, "refused (Sec-Fetch-Site: same-site)"),
    ],
)
async def test_a_forged_cross_site_post_is_refused(
    browsed: Browsed, evil_host: str, status: int, says: str
) -> None:
    page, swarm = browsed.page, browsed.swarm
    async with serving(forging_site(swarm.base)) as evil:
        async with page.expect_response(lambda r: r.url.endswith("/api/send")) as answer:
            await page.goto(f"http://{evil_host}:{evil.port}/")
        response = await answer.value
        assert response.status == status
        assert says in (await response.json())["message"]
    assert swarm.hive.broker.history("hm1nd", 10) == []


async def test_the_page_fits_a_phone_screen(config: Config) -> None:
    async with open_dashboard(config, viewport=(390, 844)) as b:
        await b.swarm.manager("request_spawn", name="erin", reason="a long reason " * 20)
        await expect(b.page.locator("#approval-list article")).to_have_count(1)
        overflow = await b.page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        await expect(b.page.locator("#send-body")).to_be_visible()
