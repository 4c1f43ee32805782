"""Serving the dashboard: the resumable event stream, the operator token and sessions, the
listen rules, and a core without a container backend; real uvicorn, in-process core."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.daemons.dashboard import serve_dashboard, stop_dashboard
from hyperhive.errors import ConfigError
from hyperhive.tokens import page_key
from hyperhive.web.security import CSRF_HEADER
from support.dashboard import Swarm, live_swarm, operator_client

WAIT = 30.0
TOKEN = "operator-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        yield running


@pytest.fixture
async def http(swarm: Swarm) -> AsyncIterator[httpx.AsyncClient]:
    async with operator_client(swarm) as client:
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


async def test_without_a_session_nothing_is_served_not_even_the_csrf_token(
    swarm: Swarm,
) -> None:
    async with httpx.AsyncClient(base_url=swarm.base, timeout=WAIT) as http:
        page = await http.get("/")
        assert page.status_code == 401 and "name=token" in page.text  # the token form
        assert swarm.csrf not in page.text  # nothing to scrape for a forged post
        for path in ("/api/agents", "/api/approvals", "/events"):
            answer = await http.get(path)
            assert answer.status_code == 401 and answer.json()["ok"] is False
        post = await http.post("/api/send", json={"to": "hm1nd", "body": "x"})
        assert post.status_code == 401
    assert swarm.hive.broker.history("hm1nd", 10) == []


async def test_the_token_buys_a_session_cookie_that_is_never_the_token(config: Config) -> None:
    async with (
        live_swarm(config, token=TOKEN) as swarm,
        httpx.AsyncClient(base_url=swarm.base, timeout=WAIT) as http,
        httpx.AsyncClient(base_url=swarm.base, timeout=WAIT) as other,
    ):
        entered = await http.get("/", params={"token": TOKEN, "view": "flow"})
        assert entered.status_code == 303 and entered.headers["location"] == "/?view=flow"
        name, _, rest = entered.headers["set-cookie"].partition("=")
        session, *attributes = (part.strip() for part in rest.split(";"))
        assert name == "hive_session" and len(session) >= 32
        assert TOKEN not in entered.headers["set-cookie"]
        assert {"Path=/", "HttpOnly", "SameSite=Strict"} <= set(attributes)
        assert entered.headers["cache-control"] == "no-store"
        assert (await http.get("/api/agents")).status_code == 200  # the cookie
        assert swarm.csrf in (await http.get("/")).text
        other.cookies.set("hive_session", "made-up-session-id")
        stale = await other.get("/api/agents")
        assert stale.status_code == 401 and "log in again" in stale.json()["message"]
        other.cookies.set("hive_session", TOKEN)  # the token is no session either
        assert (await other.get("/api/agents")).status_code == 401


async def test_a_wrong_token_or_a_page_key_opens_nothing(swarm: Swarm) -> None:
    async with httpx.AsyncClient(base_url=swarm.base, timeout=WAIT) as http:
        for wrong in ("wrong", page_key(swarm.token, "hm1nd"), swarm.token + "x"):
            answer = await http.get("/", params={"token": wrong})
            assert answer.status_code == 401 and "set-cookie" not in answer.headers
            bearer = {"Authorization": f"Bearer {wrong}"}
            assert (await http.get("/api/agents", headers=bearer)).status_code == 401
        assert not http.cookies


async def test_scripts_use_a_bearer_header_and_logins_only_redirect_home(swarm: Swarm) -> None:
    bearer = {"Authorization": f"Bearer {swarm.token}"}
    async with httpx.AsyncClient(base_url=swarm.base, timeout=WAIT, headers=bearer) as script:
        assert (await script.get("/api/agents")).status_code == 200
        assert not script.cookies
    async with httpx.AsyncClient(base_url=swarm.base, timeout=WAIT) as http:
        posted = await http.post(f"/api/send?token={swarm.token}", json={})
        assert posted.status_code == 401 and "set-cookie" not in posted.headers
        # A login on a path like //evil.example/ must not redirect off this origin.
        request = http.build_request("GET", "/")
        request.url = request.url.copy_with(
            raw_path=f"//evil.example/?token={swarm.token}".encode()
        )
        login = await http.send(request)
        assert login.status_code == 303 and login.headers["location"] == "/evil.example/"


async def test_on_loopback_a_foreign_host_header_is_refused_even_with_a_session(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    # A DNS-rebinding page reaches 127.0.0.1 under its own name; it gets nothing.
    answer = await http.get("/", headers={"Host": "evil.example"})
    assert answer.status_code == 403 and swarm.csrf not in answer.text


async def test_a_short_token_refuses_to_start(hive: Hive) -> None:
    for host in ("127.0.0.1", "0.0.0.0"):
        with pytest.raises(ConfigError, match="too short"):
            await serve_dashboard(hive, host, 0, "short")


async def test_serve_dashboard_listens_and_a_taken_port_is_a_clear_error(hive: Hive) -> None:
    server = await serve_dashboard(hive, "127.0.0.1", 0, TOKEN)
    try:
        async with httpx.AsyncClient(timeout=WAIT, headers=BEARER) as http:
            page = await http.get(f"http://127.0.0.1:{server.port}/")
            assert page.status_code == 200 and "hyperhive" in page.text
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{server.port}"):
            await serve_dashboard(hive, "127.0.0.1", server.port, TOKEN)
    finally:
        await stop_dashboard(server)


async def test_without_a_backend_agent_actions_say_so(hive: Hive) -> None:
    await hive.add_agent("bob", None)
    server = await serve_dashboard(hive, "127.0.0.1", 0, TOKEN)
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, headers=BEARER) as http:
            view = (await http.get("/api/agents")).json()
            assert view["containers"] is False and view["agents"][0]["container"] is None
            page = (await http.get("/")).text
            csrf = re.search(r'name="hive-csrf" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            answer = await http.post("/api/agents/bob/stop", json={}, headers={CSRF_HEADER: csrf})
            assert answer.status_code == 409 and answer.json()["code"] == "no_containers"
    finally:
        await stop_dashboard(server)
