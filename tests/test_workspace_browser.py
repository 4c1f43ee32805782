"""An agent's workspace on the dashboard, in a real headless Chromium, against a real
in-process core (bwrap backend, fake engine) behind real uvicorn: one compact line (branch,
commits ahead, totals), the commits and diffstat when opened, the diff behind another click."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import async_playwright, expect

from hyperhive.config import Config
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.dashboard import live_swarm
from support.workspace import agent_commit, make_host_repo, workspace_toml

WAIT_MS = 30_000  # a bound, not a target: chromium on a loaded 2-core machine takes seconds
MINUS = "\u2212"  # what the page prints for deletions


async def test_the_dashboard_shows_an_agents_branch_its_diffstat_and_its_diff(
    config: Config, short_dir: Path
) -> None:
    host = make_host_repo(short_dir / "host")
    errors: list[str] = []
    async with live_swarm(config) as swarm, async_playwright() as pw:
        await swarm.host("spawn", name="bob", config=workspace_toml(host))
        work = config.state_dir / "agents" / "bob" / "work"
        tip = agent_commit(
            work, {"src/app.py": "print('hello, hive')\n", "new.txt": "n\n"}, "hive hello"
        )
        (work / "link").symlink_to("/etc/shadow")
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(swarm.login_url)
            box = page.locator('[data-agent="bob"] [data-work="bob"]')
            summary = box.locator(":scope > summary")
            await expect(summary).to_have_text(
                f"⎇ hive/bob · 1 ahead of main · 2 files +2 {MINUS}1"
            )
            await expect(page.locator('[data-agent="hm1nd"] [data-work]')).to_be_hidden()
            commits = box.locator(".commits li")
            await expect(commits).to_be_hidden()  # compact until opened
            await summary.click()
            await expect(commits).to_have_count(1)
            await expect(commits.first).to_contain_text(f"{tip[:12]} hive hello · h-bob")
            await expect(box.locator("pre.diffstat")).to_contain_text("2 files changed")
            added = box.locator("pre.diff .add", has_text="+print('hello, hive')")
            await expect(added).to_be_hidden()
            await box.locator(".work-diff > summary").click()
            await expect(added).to_be_visible()
            await expect(
                box.locator("pre.diff .del", has_text="-print('hello, world')")
            ).to_be_visible()

            # A commit of the link: the page follows (any event refreshes the agents).
            agent_commit(work, {}, "a link")
            await swarm.host("send", to="bob", body="look at your work")
            await expect(summary).to_have_text(
                f"⎇ hive/bob · 2 ahead of main · 3 files +3 {MINUS}1"
            )
            await expect(box.locator("pre.diff .add", has_text="+/etc/shadow")).to_be_visible()
        finally:
            await browser.close()
    assert errors == []
