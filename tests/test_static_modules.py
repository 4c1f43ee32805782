"""The pages' scripts are ES modules served from a fixed list: read as plain text, every
import names a file the same page may load, no script writes markup, and each page loads
only served module scripts. Then both pages in a real headless Chromium load every module
of theirs with no console error, page error or failed request."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Page, Request, Response, async_playwright, expect

from hyperhive.config import Config
from hyperhive.web import create_agent_app
from hyperhive.web.static_files import AGENT_STATIC, DASHBOARD_STATIC, JS
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.dashboard import live_swarm
from support.stub_control import PAGE_CHECK, PAGE_KEY, StubControl, serving

WAIT_MS = 30_000  # a bound, not a target: chromium on a loaded 2-core machine takes seconds
STATIC = Path(str(files("hyperhive.web").joinpath("static")))
PAGES: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "dashboard": ("dashboard.html", DASHBOARD_STATIC),
    "agent": ("agent.html", AGENT_STATIC),
}
# `import … from "x"`, `import "x"`, `export … from "x"` and `import("x")`.
IMPORT = re.compile(
    r"""^\s*(?:import|export)\b[^"';]*?\bfrom\s*["']([^"']+)["']"""
    r"""|^\s*import\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']""",
    re.MULTILINE,
)
MARKUP_SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write")
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def attributes(tag: str) -> dict[str, str]:
    return {k.lower(): v for k, v in re.findall(r'([\w-]+)\s*=\s*"([^"]*)"', tag)}


def imports(name: str) -> list[str]:
    text = (STATIC / name).read_text(encoding="utf-8")
    return [next(g for g in m.groups() if g) for m in IMPORT.finditer(text)]


def entries(page: str) -> list[str]:
    """The scripts the page's HTML loads, each checked to be a served module."""
    html, served = PAGES[page]
    found = []
    for attrs, body in SCRIPT_TAG.findall((STATIC / html).read_text(encoding="utf-8")):
        tag = attributes(attrs)
        assert body.strip() == "", f"{html}: an inline script"
        assert tag.get("type") == "module", f"{html}: {attrs.strip()} is not a module script"
        src = tag.get("src", "")
        assert src.startswith("static/"), f"{html}: {src!r} is not under static/"
        name = src.removeprefix("static/")
        assert served.get(name) == JS, f"{html}: {name} is not served as a script"
        found.append(name)
    return found


def reachable(page: str) -> set[str]:
    """Every module the page ends up loading: its entries and all they import."""
    seen: set[str] = set()
    todo = entries(page)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(resolve(name, spec, page) for spec in imports(name))
    return seen


def resolve(importer: str, spec: str, page: str) -> str:
    """The file a relative import names, checked to exist and to be served to ``page``."""
    assert spec.startswith("./"), f"{importer}: import {spec!r} is not a relative URL"
    name = spec.removeprefix("./")
    assert "/" not in name, f"{importer}: {spec!r} is not a flat /static/ name"
    assert (STATIC / name).is_file(), f"{importer}: imports {name}, which does not exist"
    served = PAGES[page][1]
    assert served.get(name) == JS, f"{importer}: imports {name}, not served to the {page} page"
    return name


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_import_of_a_pages_modules_names_a_file_that_page_is_served(page: str) -> None:
    assert reachable(page)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_script_a_page_is_served_is_one_of_its_modules(page: str) -> None:
    served = {name for name, kind in PAGES[page][1].items() if kind == JS}
    assert served == reachable(page)


def test_no_script_writes_markup() -> None:
    scripts = sorted(STATIC.glob("*.js"))
    assert scripts
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        for sink in MARKUP_SINKS:
            assert sink not in text, f"{script.name} uses {sink}"


def test_no_page_or_script_carries_an_inline_style() -> None:
    # The pages' CSP is style-src 'self': an inline style would be refused, so none is written.
    for html in ("dashboard.html", "agent.html"):
        text = (STATIC / html).read_text(encoding="utf-8")
        assert "<style" not in text and " style=" not in text, html
    for script in STATIC.glob("*.js"):
        text = script.read_text(encoding="utf-8")
        assert ".style" not in text and '"style"' not in text, script.name


def test_every_script_in_the_static_directory_is_served_to_some_page() -> None:
    served = set(DASHBOARD_STATIC) | set(AGENT_STATIC)
    assert {p.name for p in STATIC.glob("*.js")} <= served
    for name in served:
        assert (STATIC / name).is_file(), f"{name} is served but missing"


@dataclass
class Trouble:
    """What a page did wrong while it loaded and ran, and which scripts it fetched."""

    problems: list[str] = field(default_factory=list)
    scripts: set[str] = field(default_factory=set)

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text} at {message.location}")

    def _failed(self, request: Request) -> None:
        # The live feed is cut when the test leaves the page; every other failure counts.
        if not request.url.endswith("/events"):
            self.problems.append(f"failed request: {request.url} ({request.failure})")

    def _response(self, response: Response) -> None:
        if "/static/" in response.url and response.url.endswith(".js"):
            self.scripts.add(response.url.rsplit("/", 1)[1])
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")


async def loaded(page: Page, url: str, ready: Callable[[Page], Awaitable[None]]) -> Trouble:
    """Open ``url`` watched, wait until it is live and ``ready``; what went wrong on the way."""
    trouble = Trouble()
    trouble.watch(page)
    await page.goto(url)
    await expect(page.locator("#link")).to_have_text("● live", timeout=WAIT_MS)
    await ready(page)
    return trouble


async def dashboard_ready(page: Page) -> None:
    await expect(page.locator('[data-agent="hm1nd"]')).to_be_visible(timeout=WAIT_MS)


async def dashboard_followed(page: Page) -> None:
    """Live events reached the sections' modules and were drawn."""
    await expect(page.locator("#approval-list article")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#question-list article")).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#flow-log .t-question_asked")).to_be_attached(timeout=WAIT_MS)


async def agent_ready(page: Page) -> None:
    await expect(page.locator("#log")).to_contain_text("hello from a module", timeout=WAIT_MS)
    await expect(page.locator("#tool-waits")).to_contain_text("#3 Bash", timeout=WAIT_MS)
    idle = re.compile(r"^idle \d+s$")
    await expect(page.locator("#badge")).to_have_text(idle, timeout=WAIT_MS)


async def test_both_pages_load_all_their_modules_with_no_console_error_or_failed_load(
    config: Config,
) -> None:
    control = StubControl("alice")
    control.publish("assistant", text="hello from a module")
    control.publish("tool_approval", approval=3, tool="Bash", input={}, decision="pending")
    seen: dict[str, Trouble] = {}
    async with live_swarm(config) as swarm, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(WAIT_MS)
            seen["dashboard"] = await loaded(page, swarm.login_url, dashboard_ready)
            await swarm.manager("request_spawn", name="carol", reason="a card to render")
            await swarm.manager("ask_operator", question="a form to render?")
            await dashboard_followed(page)
            async with serving(create_agent_app(control, check=PAGE_CHECK)) as server:
                agent_url = f"http://127.0.0.1:{server.port}/?token={PAGE_KEY}"
                page = await browser.new_page()
                page.set_default_timeout(WAIT_MS)
                seen["agent"] = await loaded(page, agent_url, agent_ready)
                # What counts is what happened while the pages ran, not their teardown.
                problems = {name: list(t.problems) for name, t in seen.items()}
        finally:
            await browser.close()
    assert problems == {"dashboard": [], "agent": []}
    for name, (_, served) in PAGES.items():
        assert seen[name].scripts == {n for n, kind in served.items() if kind == JS}
