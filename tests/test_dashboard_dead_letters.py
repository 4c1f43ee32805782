"""Dead letters on the dashboard: its JSON and actions over real uvicorn, and the page in a
real headless Chromium, against an in-process core (bwrap backend). ``alice`` is an
external participant: the test leases and fails her messages on her own socket, as her
harness would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.web.security import CSRF_HEADER
from support.dashboard import Swarm, live_swarm, operator_client
from test_dashboard_browser import assert_not_reloaded, mark_page, open_dashboard

WAIT = 10.0


async def dead_letter(swarm: Swarm, body: str, reason: str) -> int:
    """A message to alice that fails three times: a dead letter; its id."""
    if "alice" not in swarm.hive.registry:
        await swarm.hive.add_agent("alice", None)
    mid = int((await swarm.host("send", to="alice", body=body))["id"])
    socket = swarm.hive.socket_path(swarm.hive.registry.get("alice"))
    async with await Client.connect(socket) as alice:
        for _ in range(3):
            got = await alice.call("recv", wait=WAIT, lease=True)
            assert got["message"]["id"] == mid
            await alice.call("fail", lease=got["lease"], reason=reason)
    return mid


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        yield running


async def test_the_dead_letter_actions_check_csrf_and_their_input(swarm: Swarm) -> None:
    mid = await dead_letter(swarm, "poison", "it broke")
    async with operator_client(swarm) as http:
        view = (await http.get("/api/dead")).json()
        assert [(d["id"], d["to"], d["attempts"], d["dead_reason"]) for d in view["dead"]] == [
            (mid, "alice", 3, "it broke")
        ]
        forged = await http.post(f"/api/dead/{mid}/retry", json={})
        assert forged.status_code == 403
        csrf = {CSRF_HEADER: swarm.csrf}
        for path, fields, status in [
            (f"/api/dead/{mid}/revive", {}, 400),
            (f"/api/dead/{mid}/retry", {"by": "mallory"}, 400),
            ("/api/dead/abc/retry", {}, 400),
            (f"/api/dead/{mid + 1}/drop", {}, 400),
        ]:
            answer = await http.post(path, json=fields, headers=csrf)
            assert answer.status_code == status and answer.json()["ok"] is False, path
        assert [d["id"] for d in (await http.get("/api/dead")).json()["dead"]] == [mid]
        dropped = await http.post(f"/api/dead/{mid}/drop", json={}, headers=csrf)
        assert dropped.json() == {
            "ok": True,
            "message": f"#{mid} dropped for good",
            "result": {"id": mid, "to": "alice", "dropped_by": "operator"},
        }
        again = await http.post(f"/api/dead/{mid}/drop", json={}, headers=csrf)
        assert (again.status_code, again.json()["code"]) == (400, "not_dead")
        assert (await http.get("/api/dead")).json()["dead"] == []


async def test_the_dashboard_shows_dead_letters_live_and_its_retry_delivers_one_again(
    config: Config,
) -> None:
    async with open_dashboard(config) as browsed:
        page, swarm = browsed.page, browsed.swarm
        await mark_page(page)
        await expect(page.locator("#dead-empty")).to_be_visible()
        keep = await dead_letter(swarm, "please <b>parse</b> this", "the parser choked")
        toss = await dead_letter(swarm, "and this one", "no use")
        kept = page.locator(f'#dead-list [data-dead="{keep}"]')
        await expect(kept).to_contain_text("alice")
        await expect(kept).to_contain_text("from operator · 3 tries")
        await expect(kept).to_contain_text("the parser choked")
        await expect(kept.locator(".dead-body")).to_have_text("please <b>parse</b> this")
        await expect(page.locator("#n-dead")).to_have_text("2")
        await expect(page.locator("#flow-log")).to_contain_text(
            f"#{keep} to alice is a dead letter after 3 tries: the parser choked"
        )

        await kept.locator('[data-action="retry"]').click()
        await expect(page.locator("#dead-msg")).to_have_text(f"#{keep} is back in alice's queue")
        await expect(kept).to_have_count(0)
        socket = swarm.hive.socket_path(swarm.hive.registry.get("alice"))
        async with await Client.connect(socket) as alice:
            got = await alice.call("recv", wait=WAIT, lease=True)
            assert (got["message"]["id"], got["message"]["body"]) == (
                keep,
                "please <b>parse</b> this",
            )
            await alice.call("ack", lease=got["lease"])

        tossed = page.locator(f'#dead-list [data-dead="{toss}"]')
        await tossed.locator('[data-action="drop"]').click()
        await expect(page.locator("#dead-msg")).to_have_text(f"#{toss} dropped for good")
        await expect(tossed).to_have_count(0)
        await expect(page.locator("#dead-empty")).to_be_visible()
        await expect(page.locator("#n-dead")).to_have_text("0")
        await assert_not_reloaded(page)
