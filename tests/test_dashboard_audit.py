"""The dashboard's audit view against real uvicorn and an in-process core: a decision taken
on the page is recorded via "dashboard", a policy's as its rule, and the chain's state is
shown on request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hyperhive.config import Config
from hyperhive.settings import PolicyRule, Settings
from hyperhive.web.security import CSRF_HEADER
from support.dashboard import Swarm, live_swarm, operator_client


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        yield running


@pytest.fixture
async def http(swarm: Swarm) -> AsyncIterator[httpx.AsyncClient]:
    async with operator_client(swarm) as client:
        yield client


async def audit(http: httpx.AsyncClient, query: str = "") -> dict[str, Any]:
    got = await http.get(f"/api/audit{query}")
    assert got.status_code == 200, got.text
    shown: dict[str, Any] = got.json()
    return shown


async def test_a_denial_on_the_page_is_recorded_via_the_dashboard(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    asked = await swarm.manager("request_spawn", name="carol", reason="needs a tester")
    denied = await http.post(
        f"/api/approvals/{asked['id']}/deny",
        json={"reason": "not today"},
        headers={CSRF_HEADER: swarm.csrf},
    )
    assert denied.status_code == 200, denied.text
    shown = await audit(http, "?verify=1")
    last = shown["entries"][-1]
    assert (last["actor"], last["via"], last["action"], last["agent"]) == (
        "operator",
        "dashboard",
        "approval_denied",
        "carol",
    )
    assert last["detail"]["reason"] == "not today"
    assert shown["verify"] == {
        "ok": True,
        "count": shown["count"],
        "first_bad": None,
        "reason": None,
    }
    assert "verify" not in await audit(http)  # the walk only when asked for


async def test_a_policy_decision_names_its_rule_in_the_history_and_the_log(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    rule = PolicyRule("no-spawn", "spawn", "deny", agent="x*")
    swarm.hive.settings.replace(Settings(policies=(rule,)))
    asked = await swarm.manager("request_spawn", name="xavier", reason="please")
    assert asked["decided_by"] == "policy:no-spawn"
    history = (await http.get("/api/approvals")).json()["decided"]
    assert history[0]["decided_by"] == "policy:no-spawn"
    last = (await audit(http, "?agent=xavier"))["entries"][-1]
    assert (last["actor"], last["via"]) == ("policy:no-spawn", "policy")


async def test_bad_audit_queries_are_refused(http: httpx.AsyncClient) -> None:
    for query in ("?limit=0", "?limit=x", "?agent=..%2Fx"):
        assert (await http.get(f"/api/audit{query}")).status_code == 400
