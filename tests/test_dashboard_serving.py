"""Serving the dashboard: the resumable event stream, the operator token, the listen rules,
and a core without a container backend; real uvicorn, in-process core."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hyperhive.config import Config
from hyperhive.core.dashboard import serve_dashboard, stop_dashboard
from hyperhive.core.hive import Hive
from hyperhive.errors import ConfigError
from hyperhive.web.security import CSRF_HEADER
from support.dashboard import Swarm, live_swarm

WAIT = 30.0
TOKEN = "operator-token-0123456789"


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        yield running


@pytest.fixture
async def http(swarm: Swarm) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=swarm.base, timeout=WAIT) as client:
        yield client


async def sse_frames(answer: httpx.Response) -> AsyncIterator[str]:
    """The frames of an open /events answer (comments and ``retry:`` skipped), raw."""
    assert answer.headers["content-type"].startswith("text/event-stream")
    lines: list[str] = []
    async for line in answer.aiter_lines():
        if line:
            lines.append(line)
            continue
        if lines and not lines[0].startswith((":", "retry:")):
            yield "\n".join(lines)
        lines = []


def frame_id(frame: str) -> str:
    return next(line[4:] for line in frame.splitlines() if line.startswith("id: "))


def frame_data(frame: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(frame.splitlines()[-1].removeprefix("data: "))
    return data


async def test_the_event_stream_resumes_after_the_last_event_id(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    async with asyncio.timeout(WAIT):
        async with http.stream("GET", "/events") as answer:
            frames = sse_frames(answer)
            hello = frame_data(await anext(frames))
            assert hello["resumed"] is False  # a fresh page fetches everything itself
            await swarm.host("send", to="hm1nd", body="one")
            one = await anext(frames)
        assert frame_data(one)["message"]["body"] == "one"
        await swarm.host("send", to="hm1nd", body="two")
        await swarm.host("send", to="hm1nd", body="three")
        # The browser reconnects with the id of the last frame it saw: exactly the rest.
        headers = {"Last-Event-ID": frame_id(one)}
        async with http.stream("GET", "/events", headers=headers) as answer:
            frames = sse_frames(answer)
            assert frame_data(await anext(frames))["resumed"] is True
            missed = [frame_data(await anext(frames)) for _ in range(2)]
        assert [m["message"]["body"] for m in missed] == ["two", "three"]
        for stale in (f"other:{hello['seq']}", f"{hello['epoch']}:999999", "garbage"):
            async with http.stream("GET", "/events", headers={"Last-Event-ID": stale}) as answer:
                assert frame_data(await anext(sse_frames(answer)))["resumed"] is False


async def test_with_a_token_every_request_needs_it_and_a_cookie_remembers_it(
    config: Config,
) -> None:
    async with (
        live_swarm(config, token=TOKEN) as swarm,
        httpx.AsyncClient(base_url=swarm.base, timeout=WAIT) as http,
    ):
        assert (await http.get("/api/agents")).status_code == 401
        assert (await http.get("/")).status_code == 401  # the token form
        entered = await http.get("/", params={"token": TOKEN})
        assert entered.status_code == 303 and "HttpOnly" in entered.headers["set-cookie"]
        assert (await http.get("/api/agents")).status_code == 200  # the cookie
        assert (await http.get("/", params={"token": "wrong"})).status_code == 401


async def test_a_non_loopback_listen_without_a_token_refuses_to_start(hive: Hive) -> None:
    with pytest.raises(ConfigError, match="without an operator token"):
        await serve_dashboard(hive, "0.0.0.0", 0, None)
    with pytest.raises(ConfigError, match="too short"):
        await serve_dashboard(hive, "0.0.0.0", 0, "short")


async def test_serve_dashboard_listens_and_a_taken_port_is_a_clear_error(hive: Hive) -> None:
    server = await serve_dashboard(hive, "127.0.0.1", 0, None)
    try:
        async with httpx.AsyncClient(timeout=WAIT) as http:
            page = await http.get(f"http://127.0.0.1:{server.port}/")
            assert page.status_code == 200 and "hyperhive" in page.text
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{server.port}"):
            await serve_dashboard(hive, "127.0.0.1", server.port, None)
    finally:
        await stop_dashboard(server)


async def test_without_a_backend_agent_actions_say_so(hive: Hive) -> None:
    await hive.add_agent("bob", None)
    server = await serve_dashboard(hive, "127.0.0.1", 0, None)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            view = (await http.get("/api/agents")).json()
            assert view["containers"] is False and view["agents"][0]["container"] is None
            page = (await http.get("/")).text
            csrf = re.search(r'name="hive-csrf" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            answer = await http.post("/api/agents/bob/stop", json={}, headers={CSRF_HEADER: csrf})
            assert answer.status_code == 409 and answer.json()["code"] == "no_containers"
    finally:
        await stop_dashboard(server)
