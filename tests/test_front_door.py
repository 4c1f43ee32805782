"""Every agent page behind the dashboard's server: ``/agents/<name>/`` relays the page's data
to real harnesses (bwrap, fake engine) on their ``web.sock``, behind the operator's gate."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator

import httpx
import pytest

from hyperhive.agent.settings import resolve
from hyperhive.config import Config
from hyperhive.web.front_door import RELAYED
from support.dashboard import Swarm, live_swarm, operator_client
from support.front_door import fake_harness, gone, spawn_ready, web_sock


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        yield running


def frames(text: str) -> list[dict[str, str]]:
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "id" in fields:
            found.append(fields)
    return found


async def events_until(client: httpx.AsyncClient, headers: dict[str, str], text: str) -> str:
    """The page's SSE stream through the front door, read until ``text`` shows up."""
    seen = ""
    async with client.stream("GET", "agents/pia/events", headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-security-policy"] == "default-src 'none'; sandbox"
        async for chunk in stream.aiter_text():
            seen += chunk
            if text in seen:
                return seen
    raise AssertionError(f"the stream ended before {text!r}")


async def test_a_real_harness_answers_through_the_front_door(swarm: Swarm) -> None:
    await spawn_ready(swarm, "pia")
    sock = web_sock(swarm, "pia")
    assert stat.S_ISSOCK(sock.lstat().st_mode) and stat.S_IMODE(sock.lstat().st_mode) == 0o600
    async with operator_client(swarm) as client:
        moved = await client.get("agents/pia", follow_redirects=False)
        assert moved.status_code == 308 and moved.headers["location"] == "pia/"
        shell = await client.get("agents/pia/")
        assert shell.status_code == 200
        assert "<title>pia · hyperhive</title>" in shell.text
        assert f'<meta name="hive-csrf" content="{swarm.csrf}">' in shell.text
        assert '<meta name="hive-dashboard" content="../../">' in shell.text
        assert (await client.get("agents/pia/static/agent.js")).status_code == 200
        assert (await client.get("agents/pia/api/status")).json()["name"] == "pia"
        csrf = {"X-Hive-CSRF": swarm.csrf}
        said = await client.post("agents/pia/api/prompt", json={"text": "hello"}, headers=csrf)
        assert said.json()["ok"] is True, said.text
        seen = await events_until(client, {}, "echo: ")
        last = int(frames(seen)[-1]["id"])
        history = (await client.get("agents/pia/api/history", params={"after": 0})).json()
        assert [e["id"] for e in history][-1] >= last
        said = await client.post("agents/pia/api/prompt", json={"text": "/help"}, headers=csrf)
        assert said.json()["ok"] is True
        resumed = await events_until(client, {"Last-Event-ID": str(last)}, '"kind":"command"')
        ids = [int(f["id"]) for f in frames(resumed)]
        assert ids == list(range(last + 1, last + 1 + len(ids)))  # no gap, no duplicate


async def test_without_a_session_nothing_reaches_the_harness(swarm: Swarm) -> None:
    await swarm.hive.add_agent("alice", None)
    async with fake_harness(web_sock(swarm, "alice")) as alice:
        async with httpx.AsyncClient(base_url=swarm.base) as stranger:
            assert (await stranger.get("agents/alice/")).status_code == 401
            for method, path in RELAYED:
                got = await stranger.request(method, f"agents/alice/{path}", json={})
                assert got.status_code == 401, path
            wrong = {"Authorization": "Bearer not-the-operator-token-at-all"}
            assert (await stranger.get("agents/alice/api/status", headers=wrong)).status_code == 401
        assert alice.seen == []


async def test_an_unknown_agent_is_a_404(swarm: Swarm) -> None:
    async with operator_client(swarm) as client:
        for path in ("agents/nobody/", "agents/nobody/api/status", "agents/nobody/static/agent.js"):
            got = await client.get(path)
            assert got.status_code == 404, path
            assert got.json()["message"] == "no agent named 'nobody'"


async def test_a_stopped_harness_is_a_clear_502_and_the_dashboard_stays_up(swarm: Swarm) -> None:
    await spawn_ready(swarm, "pia")
    async with operator_client(swarm) as client:
        assert (await client.get("agents/pia/api/status")).status_code == 200
        await swarm.host("stop", name="pia")
        assert gone(web_sock(swarm, "pia"))  # the harness took it away
        got = await client.get("agents/pia/api/status")
        assert got.status_code == 502
        assert got.json() == {
            "ok": False,
            "message": "pia's harness is not answering (no web.sock (ENOENT))",
        }
        assert (await client.get("agents/pia/")).status_code == 200  # the core's own shell
        assert (await client.get("api/agents")).status_code == 200


async def test_hm1nd_has_a_page_at_the_front_door_too(swarm: Swarm) -> None:
    async with fake_harness(web_sock(swarm, "hm1nd")) as manager:
        async with operator_client(swarm) as client:
            assert (await client.get("agents/hm1nd/")).status_code == 200
            got = await client.get("agents/hm1nd/api/status")
            assert got.status_code == 200 and json.loads(got.text) == {"name": "fake"}
        assert [seen.target for seen in manager.seen] == ["/api/status"]


def test_the_web_socket_sits_next_to_the_core_socket_unless_told() -> None:
    env = {"HYPERHIVE_AGENT_SOCKET": "/run/hive/mcp.sock"}
    assert str(resolve(name="alice", role="agent", env=env).web_socket) == "/run/hive/web.sock"
    env["HYPERHIVE_AGENT_WEB_SOCKET"] = "/elsewhere/page.sock"
    assert str(resolve(name="alice", role="agent", env=env).web_socket) == "/elsewhere/page.sock"
    assert resolve(name="alice", role="agent", env={"HYPERHIVE_AGENT_PORT": "none"}).port is None
