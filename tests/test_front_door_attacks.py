"""The front door against a hostile agent: it owns its socket directory and its harness, so
its ``web.sock`` may lead elsewhere and whatever answers on it may lie, stall or flood."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from hyperhive.config import Config
from hyperhive.web import front_door
from support.dashboard import Swarm, live_swarm, operator_client
from support.front_door import WAIT, fake_harness, web_sock


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        for name in ("alice", "bob"):
            await running.hive.add_agent(name, None)
        yield running


@pytest.fixture
async def client(swarm: Swarm) -> AsyncIterator[httpx.AsyncClient]:
    async with operator_client(swarm) as logged_in:
        yield logged_in


@pytest.mark.parametrize("target", ["bob", "host.sock"])
async def test_a_web_sock_symlinked_elsewhere_is_refused_and_reaches_nothing(
    swarm: Swarm, client: httpx.AsyncClient, target: str
) -> None:
    async with fake_harness(web_sock(swarm, "bob")) as bob:
        leads_to = web_sock(swarm, "bob") if target == "bob" else swarm.hive.config.host_socket
        os.symlink(leads_to, web_sock(swarm, "alice"))
        got = await client.get("agents/alice/api/status")
        assert got.status_code == 502
        assert got.json() == {
            "ok": False,
            "message": "alice's harness is not answering (web.sock is not a socket)",
        }
        posted = await client.post(
            "agents/alice/api/prompt", json={"text": "hi"}, headers={"X-Hive-CSRF": swarm.csrf}
        )
        assert posted.status_code == 502
        assert bob.seen == []
        assert (await client.get("agents/bob/api/status")).status_code == 200  # bob is fine


async def test_an_upstream_answering_html_is_a_bad_answer(
    swarm: Swarm, client: httpx.AsyncClient
) -> None:
    async with fake_harness(web_sock(swarm, "alice"), "html") as alice:
        got = await client.get("agents/alice/api/status")
        assert got.status_code == 502
        assert got.json()["message"] == "bad answer from alice's harness (not application/json)"
        assert "<script>" not in got.text
        assert len(alice.seen) == 1


async def test_an_upstream_cookie_never_reaches_the_browser(
    swarm: Swarm, client: httpx.AsyncClient
) -> None:
    async with fake_harness(web_sock(swarm, "alice"), "cookie"):
        got = await client.get("agents/alice/api/status")
        assert got.status_code == 200
        assert "set-cookie" not in got.headers
        assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["cache-control"] == "no-store"
        assert got.headers["content-type"] == "application/json"


async def test_an_answer_over_the_bound_is_refused(swarm: Swarm, client: httpx.AsyncClient) -> None:
    async with fake_harness(web_sock(swarm, "alice"), "big"):
        got = await client.get("agents/alice/api/history")
        assert got.status_code == 502
        assert "over 8 MiB" in got.json()["message"]


async def test_an_upstream_that_never_answers_is_a_502_within_the_bound(
    swarm: Swarm, client: httpx.AsyncClient
) -> None:
    assert swarm.app is not None
    swarm.app.state.front_door.first_byte = 1.0
    async with fake_harness(web_sock(swarm, "alice"), "silent"):
        started = time.monotonic()
        got = await client.get("agents/alice/api/status")
        assert got.status_code == 502
        assert got.json()["message"] == "alice's harness is not answering (no answer within 1s)"
        assert time.monotonic() - started < WAIT


async def test_the_browser_closing_a_stream_hangs_up_on_the_harness(
    swarm: Swarm, client: httpx.AsyncClient
) -> None:
    async with fake_harness(web_sock(swarm, "alice"), "sse") as alice:
        async with client.stream(
            "GET", "agents/alice/events", headers={"Last-Event-ID": "41"}
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert "set-cookie" not in stream.headers
            first = await anext(stream.aiter_bytes())
            assert first.startswith(b"id: 1\n")
        await asyncio.wait_for(alice.hung_up.wait(), WAIT)
        assert alice.seen[0].headers["last-event-id"] == "41"
        assert "cookie" not in alice.seen[0].headers
        assert "authorization" not in alice.seen[0].headers


async def test_streams_over_the_cap_are_refused_and_the_core_stays_responsive(
    swarm: Swarm, client: httpx.AsyncClient
) -> None:
    cap = front_door.CONNECTIONS_PER_AGENT
    async with fake_harness(web_sock(swarm, "alice"), "sse") as alice:
        streams = [client.stream("GET", "agents/alice/events") for _ in range(cap)]
        opened = [await stream.__aenter__() for stream in streams]
        try:
            await alice.wait_streams(cap)
            over = await client.get("agents/alice/events")
            assert over.status_code == 503
            assert over.json()["message"] == "too many open connections to alice's page"
            assert (await client.get("api/agents")).status_code == 200
            assert len(alice.seen) == cap
        finally:
            for stream in streams:
                await stream.__aexit__(None, None, None)
        assert all(answer.status_code == 200 for answer in opened)


async def test_a_post_without_the_hives_csrf_token_reaches_no_harness(
    swarm: Swarm, client: httpx.AsyncClient
) -> None:
    async with fake_harness(web_sock(swarm, "alice")) as alice:
        for headers in ({}, {"X-Hive-CSRF": "wrong"}, {"Sec-Fetch-Site": "same-site"}):
            got = await client.post("agents/alice/api/prompt", json={"text": "x"}, headers=headers)
            assert got.status_code == 403
        assert alice.seen == []


async def test_only_the_pages_data_endpoints_are_relayed(
    swarm: Swarm, client: httpx.AsyncClient
) -> None:
    async with fake_harness(web_sock(swarm, "alice")) as alice:
        for path in ("", "static/agent.js", "api/status"):
            assert (await client.get(f"agents/alice/{path}")).status_code == 200
        assert alice.seen[0].target == "/api/status"
        for method, path in (("GET", "api/secret"), ("POST", "api/status"), ("GET", "x/../..")):
            got = await client.request(method, f"agents/alice/{path}")
            assert got.status_code in (404, 405)
        assert [seen.target for seen in alice.seen] == ["/api/status"]
        await client.get("agents/alice/api/history", params={"after": "3", "evil": "1"})
        assert alice.seen[-1].target == "/api/history?after=3"
