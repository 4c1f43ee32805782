"""The agent page in a real headless Chromium, against a stub control behind real uvicorn."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Page, async_playwright, expect

from hyperhive.web import create_agent_app
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.stub_control import PAGE_CHECK, PAGE_KEY, SETUP_URL, StubControl, serving

WAIT_MS = 30_000  # a bound, not a target: chromium on a loaded 2-core machine takes seconds


@dataclass
class Browsed:
    control: StubControl
    page: Page


@contextlib.asynccontextmanager
async def open_page(control: StubControl) -> AsyncIterator[Browsed]:
    """The page loaded and live; fails the test on any uncaught page error."""
    app = create_agent_app(control, check=PAGE_CHECK)
    errors: list[str] = []
    async with serving(app) as server, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 600})
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"http://127.0.0.1:{server.port}/?token={PAGE_KEY}")
            await expect(page.locator("#link")).to_have_text("● live", timeout=WAIT_MS)
            yield Browsed(control, page)
        finally:
            await browser.close()
    assert errors == []


@pytest.fixture
async def browsed() -> AsyncIterator[Browsed]:
    async with open_page(StubControl("alice")) as opened:
        yield opened


async def test_history_is_backfilled_when_the_page_loads() -> None:
    control = StubControl("alice")
    control.publish(
        "turn_start",
        turn=1,
        trigger="message",
        message_id=7,
        **{"from": "bob"},
        prompt="bob says hi",
    )
    control.publish("assistant", text="hello <b>bob</b>")
    control.publish("tool_use", id="t1", name="mcp__hive__send", input={"to": "bob"})
    control.publish("tool_result", tool_use_id="t1", content="x" * 2000, is_error=False)
    control.publish(
        "turn_end",
        turn=1,
        ok=True,
        error=None,
        cost_usd=0.0123,
        input_tokens=1500,
        output_tokens=300,
        duration_ms=4200,
        session_id="s1",
    )
    async with open_page(control) as b:
        log = b.page.locator("#log")
        await expect(b.page).to_have_title("alice · hyperhive")
        await expect(log).to_contain_text("turn 1 · from bob · msg #7")
        await expect(log).to_contain_text("hello <b>bob</b>")  # shown as text, not markup
        await expect(log).to_contain_text("⚙ mcp__hive__send")
        await expect(log).to_contain_text("$0.0123 · 1.5k in / 300 out · 4.2s")
        more = log.locator(".k-tool_result .more")
        await expect(more).to_have_text("▸ show all (2000 chars)")
        await more.click()
        await expect(log.locator(".k-tool_result pre")).to_have_text("x" * 2000)


async def test_live_events_appear_as_they_happen(browsed: Browsed) -> None:
    log = browsed.page.locator("#log")
    browsed.control.publish("notice", level="warning", text="disk almost full")
    browsed.control.publish("assistant", text="still here")
    await expect(log.locator(".k-notice.warning")).to_have_text(re.compile("disk almost full"))
    await expect(log).to_contain_text("still here")


async def test_the_files_a_turn_changed_in_the_workspace_are_listed(browsed: Browsed) -> None:
    browsed.control.publish(
        "files_changed",
        added=["proof.txt"],
        modified=["notes.txt"],
        removed=[],
        counts={"added": 1, "modified": 1, "removed": 0},
        complete=True,
    )
    row = browsed.page.locator("#log .k-files_changed")
    await expect(row).to_contain_text("✎ /work: +1 added · ~1 modified")
    await expect(row).to_contain_text("+ proof.txt")


async def test_the_badge_goes_idle_thinking_idle_with_a_running_age(browsed: Browsed) -> None:
    badge = browsed.page.locator("#badge")
    await expect(badge).to_have_text(re.compile(r"^idle \d+s$"))
    browsed.control.set_state("thinking")
    await expect(badge).to_have_text(re.compile(r"^thinking \d+s$"))
    first = await badge.text_content()
    assert first is not None
    await expect(badge).not_to_have_text(first, timeout=WAIT_MS)  # the timer counts
    await expect(badge).to_have_text(re.compile(r"^thinking [1-9]\d*s$"))
    browsed.control.set_state("idle")
    await expect(badge).to_have_text(re.compile(r"^idle \d+s$"))


async def test_prompts_and_slash_commands_reach_the_control(browsed: Browsed) -> None:
    box = browsed.page.locator("#prompt")
    log = browsed.page.locator("#log")
    await box.fill("first line")
    await box.press("Shift+Enter")
    await box.press_sequentially("second line")
    await box.press("Enter")
    await expect(log).to_contain_text("operator> first line\nsecond line")
    await expect(box).to_have_value("")
    await box.fill("/model opus")
    await box.press("Enter")
    await expect(log.locator(".k-local").last).to_have_text(
        re.compile("/model opus → ok: model set to opus")
    )
    assert browsed.control.called("prompt") == ["first line\nsecond line", "/model opus"]


async def test_cancel_shows_only_while_thinking_and_cancels(browsed: Browsed) -> None:
    cancel = browsed.page.locator("#cancel")
    await expect(cancel).to_be_hidden()
    browsed.control.set_state("thinking")
    await expect(cancel).to_be_visible()
    await cancel.click()
    await expect(cancel).to_be_hidden()
    await expect(browsed.page.locator("#badge")).to_have_text(re.compile("^idle"))
    assert browsed.control.called("cancel") == [None]


async def test_new_events_while_scrolled_up_raise_a_pill_that_jumps_down(
    browsed: Browsed,
) -> None:
    page, log, pill = browsed.page, browsed.page.locator("#log"), browsed.page.locator("#pill")
    for n in range(80):
        browsed.control.publish("assistant", text=f"filler {n}")
    await expect(log.locator(".ev")).to_have_count(80)
    await expect(pill).to_be_hidden()  # at the bottom, new events just scroll in
    await log.evaluate("el => { el.scrollTop = 0; }")
    for n in range(3):
        browsed.control.publish("assistant", text=f"unseen {n}")
    await expect(log.locator(".ev")).to_have_count(83)
    await expect(pill).to_have_text("↓ 3 new")
    assert await log.evaluate("el => el.scrollTop") == 0  # did not yank the reader down
    await pill.click()
    await expect(pill).to_be_hidden()
    await page.wait_for_function(
        "() => { const l = document.getElementById('log');"
        " return l.scrollHeight - l.scrollTop - l.clientHeight < 2; }",
        timeout=WAIT_MS,
    )


async def test_the_login_panel_takes_a_key_without_keeping_it() -> None:
    control = StubControl("alice", needs_login=True)
    secret = "sk-ant-api03-page-secret"
    async with open_page(control) as b:
        panel = b.page.locator("#login")
        await expect(panel).to_be_visible()
        await b.page.locator("#key").fill(secret)
        await b.page.locator("#key-form button").click()
        await expect(b.page.locator("#login-msg")).to_have_text("API key saved")
        await expect(panel).to_be_hidden()
        await expect(b.page.locator("#key")).to_have_value("")
        assert control.called("save_api_key") == [secret]
        assert secret not in await b.page.content()
        assert secret not in await b.page.evaluate("() => document.body.innerText")


async def test_the_setup_token_flow_shows_the_link_then_takes_the_code() -> None:
    control = StubControl("alice", needs_login=True)
    async with open_page(control) as b:
        await b.page.locator("#setup-start").click()
        link = b.page.locator("#setup-url")
        await expect(link).to_have_attribute("href", SETUP_URL)
        await b.page.locator("#code").fill("the-code-123")
        await b.page.locator("#code-form button").click()
        await expect(b.page.locator("#login")).to_be_hidden()
        assert control.called("finish_setup_token") == ["the-code-123"]
        assert "the-code-123" not in await b.page.content()


async def test_the_badge_says_why_an_agent_holds_off_or_is_offline(browsed: Browsed) -> None:
    badge = browsed.page.locator("#badge")
    reason = "upstream: API Error: 529 Overloaded"
    browsed.control.set_state("backoff", reason)
    await expect(badge).to_have_text(re.compile(r"^backoff \(upstream\) \d+s$"))
    await expect(badge).to_have_attribute("title", f"reason: {reason}")
    await expect(badge).to_have_class(re.compile(r"\bbackoff\b"))
    browsed.control.set_needs_login(True)
    await expect(badge).to_have_text(re.compile(r"^offline \(login\) \d+s$"))
    await expect(browsed.page.locator("#login")).to_be_visible()
    browsed.control.set_needs_login(False)
    await expect(badge).to_have_text(re.compile(r"^idle \d+s$"))
