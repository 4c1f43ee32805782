"""ToolUse approvals on the dashboard: its API, and the page in a real headless Chromium,
against a real in-process core behind real uvicorn. ``alice`` is an external agent: the
test asks as her on her own socket and reads her inbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.web import create_agent_app
from hyperhive.web.dashboard_api import pretty_input
from hyperhive.web.security import CSRF_HEADER
from support.dashboard import Swarm, live_swarm, operator_client
from support.stub_control import PAGE_CHECK, PAGE_KEY, StubControl, serving
from test_dashboard_browser import open_dashboard

WAIT = 30.0
# Markup that must stay text, and an integer a browser's JSON.parse would round.
HOSTILE = {"command": "echo '<img src=x onerror=alert(1)>'", "n": 12345678901234567890}
PRETTY = json.dumps(HOSTILE, indent=2, sort_keys=True)


async def ask(swarm: Swarm, tool_input: dict[str, Any], agent: str = "alice") -> Any:
    path = swarm.hive.config.agent_socket(agent, manager=False)
    async with await Client.connect(path) as client:
        return await client.call("tool_use", tool="Bash", input=tool_input)


async def inbox(swarm: Swarm, agent: str = "alice") -> dict[str, Any]:
    path = swarm.hive.config.agent_socket(agent, manager=False)
    async with await Client.connect(path) as client:
        got = await client.call("recv", wait=WAIT)
    assert got is not None, f"nothing reached {agent}'s inbox"
    message: dict[str, Any] = got["message"]
    return message


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        await running.host("agent_add", name="alice")
        yield running


@pytest.fixture
async def http(swarm: Swarm) -> AsyncIterator[httpx.AsyncClient]:
    async with operator_client(swarm) as client:
        yield client


async def post(http: httpx.AsyncClient, swarm: Swarm, path: str, **fields: Any) -> httpx.Response:
    return await http.post(path, json=fields, headers={CSRF_HEADER: swarm.csrf})


async def waiting(http: httpx.AsyncClient, agent: str) -> int:
    rows = {a["name"]: a for a in (await http.get("/api/agents")).json()["agents"]}
    count: int = rows[agent]["waiting"]
    return count


async def test_the_api_shows_a_tool_use_exactly_and_approve_always_makes_a_revocable_rule(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    asked = await ask(swarm, HOSTILE)
    [card] = (await http.get("/api/approvals")).json()["pending"]
    assert (card["kind"], card["tool"], card["input_pretty"]) == ("tool_use", "Bash", PRETTY)
    assert await waiting(http, "alice") == 1 and await waiting(http, "hm1nd") == 0

    bad = await post(http, swarm, f"/api/approvals/{asked['approval']}/approve", always="yes")
    assert bad.status_code == 400 and "'always' must be true or false" in bad.json()["message"]
    done = await post(http, swarm, f"/api/approvals/{asked['approval']}/approve", always=True)
    assert done.status_code == 200, done.text
    assert done.json()["message"] == (
        f"approval #{asked['approval']} approved: alice may run every identical call from now on"
    )
    assert await waiting(http, "alice") == 0
    [rule] = (await http.get("/api/rules")).json()["rules"]
    assert (rule["agent"], rule["input_pretty"], rule["active"]) == ("alice", PRETTY, True)
    assert (await ask(swarm, HOSTILE))["decision"] == "allow"

    forged = await http.post(f"/api/rules/{rule['id']}/revoke", json={})
    assert forged.status_code == 403 and (await ask(swarm, HOSTILE))["decision"] == "allow"
    revoked = await post(http, swarm, f"/api/rules/{rule['id']}/revoke")
    assert revoked.json()["message"] == f"rule #{rule['id']} revoked: alice asks again"
    again = await post(http, swarm, f"/api/rules/{rule['id']}/revoke")
    assert (again.status_code, again.json()["code"]) == (400, "already_revoked")
    assert (await post(http, swarm, "/api/rules/x/revoke")).status_code == 400
    assert (await ask(swarm, HOSTILE))["decision"] == "pending"


@pytest.mark.parametrize(
    ("headers", "bounced"),
    [
        ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, True),
        ({"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate"}, True),
        ({"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}, False),
        ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}, False),
        ({}, False),
    ],
)
async def test_a_link_from_another_site_is_refreshed_from_here_so_the_session_goes_along(
    swarm: Swarm, headers: dict[str, str], bounced: bool
) -> None:
    async with httpx.AsyncClient(base_url=swarm.base, timeout=WAIT) as browser:
        got = await browser.get("/?approval=7&deny=1", headers=headers)
        api = await browser.get("/api/approvals", headers=headers)
    assert api.status_code == 401  # only the page is refreshed, never the API
    if bounced:
        assert got.status_code == 200
        assert "http-equiv=refresh content='0;url=/?approval=7&amp;deny=1'" in got.text
        assert got.headers["x-frame-options"] == "DENY"
    else:
        assert got.status_code == 401 and "operator token" in got.text


async def test_approve_always_from_the_card_shows_the_rule_and_revoke_asks_again(
    config: Config,
) -> None:
    async with open_dashboard(config) as b:
        page, swarm = b.page, b.swarm
        await swarm.host("agent_add", name="alice")
        row = page.locator('[data-agent="alice"]')
        await expect(row).to_be_visible()
        await expect(row.locator(".waiting")).to_be_hidden()
        asked = await ask(swarm, HOSTILE)
        card = page.locator(f'#approval-list [data-approval="{asked["approval"]}"]')
        await expect(card.locator(".kind")).to_have_text("ToolUse")
        await expect(card.locator(".tool-name")).to_have_text("Bash")
        await expect(card.locator("pre.tool-input")).to_have_text(PRETTY)  # text, not markup
        await expect(card.locator("img")).to_have_count(0)
        await expect(row.locator(".waiting")).to_have_text("◆ waiting for you")

        await card.get_by_role("button", name="approve always").click()
        await expect(page.locator("#approvals-msg")).to_contain_text("every identical call")
        await expect(card).to_have_count(0)
        await expect(row.locator(".waiting")).to_be_hidden()
        rule = page.locator("#rule-list .rule")
        await expect(rule).to_have_count(1)
        await expect(rule.locator("pre.tool-input")).to_have_text(PRETTY)
        assert (await ask(swarm, HOSTILE))["decision"] == "allow"

        await rule.get_by_role("button", name="revoke").click()
        await expect(page.locator("#rules-msg")).to_contain_text("revoked: alice asks again")
        await expect(rule).to_have_count(0)
        assert (await ask(swarm, HOSTILE))["decision"] == "pending"
        await expect(row.locator(".waiting")).to_be_visible()


async def test_a_denial_with_a_reason_from_the_card_reaches_the_agent(config: Config) -> None:
    async with open_dashboard(config) as b:
        page, swarm = b.page, b.swarm
        await swarm.host("agent_add", name="alice")
        asked = await ask(swarm, {"command": "rm -rf /work"})
        card = page.locator(f'#approval-list [data-approval="{asked["approval"]}"]')
        await card.get_by_placeholder("reason to deny").fill("keep the workspace")
        await card.get_by_role("button", name="✖ deny").click()
        history = page.locator(f'#approval-history [data-approval="{asked["approval"]}"]')
        await expect(history).to_contain_text("denied by operator: keep the workspace")
        told = await inbox(swarm)
        assert (told["body"], told["payload"]["kind"]) == ("approval_decided", "tool_use")
        assert told["payload"]["decision_reason"] == "keep the workspace"
        answer = await ask(swarm, {"command": "rm -rf /work"})
        assert (answer["decision"], answer["message"]) == ("deny", "keep the workspace")


async def test_an_agents_page_shows_its_waiting_tool_use_and_sends_the_operator_to_decide(
    config: Config,
) -> None:
    async with open_dashboard(config) as b:
        swarm = b.swarm
        await swarm.host("agent_add", name="alice")
        asked = await ask(swarm, HOSTILE)
        control = StubControl("alice")
        control.publish(
            "tool_approval",
            approval=asked["approval"],
            tool="Bash",
            input=HOSTILE,
            decision="pending",
            message=asked["message"],
            always=False,
            rule=None,
        )
        async with serving(create_agent_app(control, check=PAGE_CHECK)) as server:
            # The same browser, now on the agent's page under the other loopback name (as
            # the dashboard links it): another site than the dashboard.
            agent_page = b.page
            query = f"token={PAGE_KEY}&dashboard={swarm.base}"
            await agent_page.goto(f"http://localhost:{server.port}/?{query}")
            panel = agent_page.locator("#tool-waits")
            await expect(panel).to_contain_text(f"#{asked['approval']} Bash")
            await expect(panel.locator("pre.tool-input")).to_contain_text("onerror=alert(1)")
            approve = panel.get_by_role("link", name="◆ approve on the dashboard ↗")
            target = f"{swarm.base}?approval={asked['approval']}"
            await expect(approve).to_have_attribute("href", target)
            deny = panel.get_by_role("link", name="✖ deny on the dashboard ↗")
            await expect(deny).to_have_attribute("href", f"{target}&deny=1")

            async with b.page.context.expect_page() as opened:
                await deny.click()
            dashboard = await opened.value
            # Logged in by the operator's own session, on the card, ready for a reason.
            await expect(dashboard.locator("#link")).to_have_text("● live", timeout=WAIT * 1000)
            card = dashboard.locator(f'#approval-list [data-approval="{asked["approval"]}"]')
            await expect(card).to_have_class("approval kind-tool_use focus")
            await expect(card.get_by_placeholder("reason to deny")).to_be_focused()

            control.publish(
                "tool_approval",
                approval=asked["approval"],
                tool="Bash",
                input=HOSTILE,
                decision="denied",
                message="no",
                always=False,
                rule=None,
            )
            await expect(panel).to_be_hidden()
            await expect(agent_page.locator("#log")).to_contain_text(
                f"⚑ Bash #{asked['approval']} denied: no"
            )


def test_an_input_that_indenting_would_blow_up_is_shown_as_approved() -> None:
    deep: Any = [0] * 20_000
    for _ in range(30):
        deep = [deep]
    canonical = json.dumps({"a": deep}, separators=(",", ":"))
    assert pretty_input(canonical) == canonical  # 20 000 lines of 60 spaces, refused
    assert pretty_input('{"a":[1]}') == '{\n  "a": [\n    1\n  ]\n}'
