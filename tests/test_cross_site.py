"""The bounce that lets a logged-in operator follow a link from another site into the hive."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from hyperhive.web.cross_site import CrossSiteBounce

ELSEWHERE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}


async def _inner(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=CrossSiteBounce(_inner))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


@pytest.mark.parametrize("path", ["/", "/agents/alice/", "/agents/hm1nd/"])
async def test_a_page_opened_from_another_site_is_refreshed_from_this_origin(path: str) -> None:
    async with _client() as client:
        answer = await client.get(f"{path}?approval=7", headers=ELSEWHERE)
    assert answer.status_code == 200
    assert f"http-equiv=refresh content='0;url={path}?approval=7'" in answer.text


@pytest.mark.parametrize(
    "path", ["/api/agents", "/agents/alice/api/status", "/agents/alice/events", "/agents/x/y/"]
)
async def test_data_paths_are_never_bounced(path: str) -> None:
    async with _client() as client:
        assert (await client.get(path, headers=ELSEWHERE)).status_code == 204


async def test_a_request_with_the_session_cookie_or_from_this_origin_passes() -> None:
    async with _client() as client:
        with_cookie = {**ELSEWHERE, "Cookie": "hive_session=abc"}
        assert (await client.get("/agents/alice/", headers=with_cookie)).status_code == 204
        same = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}
        assert (await client.get("/agents/alice/", headers=same)).status_code == 204
