"""The agent web app over real HTTP (uvicorn on an ephemeral port), behind a stub control."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from hyperhive.agent.control import CommandResult
from hyperhive.errors import ConfigError
from hyperhive.web import check_listen, create_agent_app, is_loopback
from support.stub_control import PAGE_CHECK, PAGE_KEY, StubControl, page_client, serving

WAIT = 30.0  # a bound on every wait: a loaded 2-core machine is slow, not this slow
TOKEN = "op-token-0123456789abcdef"
SECRET = "sk-ant-api03-SECRET-do-not-echo"


@dataclass
class Site:
    control: StubControl
    client: httpx.AsyncClient
    csrf: str

    async def act(self, path: str, fields: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(path, json=fields or {}, headers={"X-Hive-CSRF": self.csrf})


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    control = StubControl("alice")
    app = create_agent_app(control, check=PAGE_CHECK, heartbeat=0.2)
    async with serving(app) as server, page_client(server) as client:
        yield Site(control, client, app.state.csrf)


class Frames:
    """Reads SSE frames off one streamed response (comments become {"comment": ...})."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, count: int) -> list[dict[str, str]]:
        frames: list[dict[str, str]] = []
        frame: dict[str, str] = {}
        async with asyncio.timeout(WAIT):
            async for line in self.lines:
                if line == "":
                    if frame:
                        frames.append(frame)
                        frame = {}
                        if len(frames) == count:
                            return frames
                    continue
                key, _, value = line.partition(":")
                frame[key or "comment"] = value.removeprefix(" ")
        raise AssertionError(f"stream ended after {frames}")


def event_ids(frames: list[dict[str, str]]) -> list[int]:
    return [int(f["id"]) for f in frames if "id" in f]


async def test_the_page_names_the_agent_and_carries_a_csrf_token(site: Site) -> None:
    page = await site.client.get("/")
    assert page.status_code == 200
    assert "<title>alice · hyperhive</title>" in page.text
    assert f'content="{site.csrf}"' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    for asset in ("/static/agent.js", "/static/hive.css"):
        assert (await site.client.get(asset)).status_code == 200
    assert (await site.client.get("/static/../agent_app.py")).status_code == 404


async def test_status_and_history_answer_json(site: Site) -> None:
    for n in range(5):
        site.control.publish("assistant", text=f"line {n}")
    status = (await site.client.get("/api/status")).json()
    assert status["name"] == "alice"
    assert status["state"] == "idle"
    assert status["needs_login"] is False
    newest = (await site.client.get("/api/history", params={"limit": 2})).json()
    assert [e["id"] for e in newest] == [4, 5]
    after = (await site.client.get("/api/history", params={"after": 3})).json()
    assert [e["data"]["text"] for e in after] == ["line 3", "line 4"]


@pytest.mark.parametrize("query", ["after=-1", "after=x", "limit=0", "limit=100000", "limit=1.5"])
async def test_history_refuses_bad_parameters(site: Site, query: str) -> None:
    answer = await site.client.get(f"/api/history?{query}")
    assert answer.status_code == 400
    assert answer.json()["ok"] is False


async def test_events_backfill_history_then_tail_live_events(site: Site) -> None:
    for n in range(3):
        site.control.publish("assistant", text=f"old {n}")
    async with site.client.stream("GET", "/events") as response:
        frames = Frames(response)
        assert response.headers["content-type"].startswith("text/event-stream")
        first = await frames.next(5)  # retry, status, 3 events
        assert first[0]["retry"].isdigit()
        assert first[1]["event"] == "status"
        assert json.loads(first[1]["data"])["name"] == "alice"
        assert event_ids(first) == [1, 2, 3]
        site.control.publish("notice", level="warning", text="live one")
        (live,) = await frames.next(1)
        assert live["id"] == "4"
        assert json.loads(live["data"])["data"]["text"] == "live one"


async def test_events_resume_after_last_event_id_without_repeating(site: Site) -> None:
    for n in range(6):
        site.control.publish("assistant", text=f"e{n}")
    headers = {"Last-Event-ID": "4"}
    # The header (what a reconnecting browser sends) wins over the page's ?after=.
    async with site.client.stream("GET", "/events?after=1", headers=headers) as response:
        assert event_ids(await Frames(response).next(4)) == [5, 6]
    async with site.client.stream("GET", "/events?after=5") as response:
        assert event_ids(await Frames(response).next(3)) == [6]


async def test_events_refuse_a_malformed_last_event_id(site: Site) -> None:
    answer = await site.client.get("/events", headers={"Last-Event-ID": "nope"})
    assert answer.status_code == 400


async def test_a_state_event_is_followed_by_the_new_status(site: Site) -> None:
    async with site.client.stream("GET", "/events") as response:
        frames = Frames(response)
        await frames.next(2)
        site.control.set_state("thinking")
        state, status = await frames.next(2)
        assert json.loads(state["data"])["kind"] == "state"
        assert status["event"] == "status"
        assert json.loads(status["data"])["state"] == "thinking"


async def test_an_idle_stream_sends_heartbeat_comments(site: Site) -> None:
    async with site.client.stream("GET", "/events") as response:
        assert (await Frames(response).next(3))[2] == {"comment": "ping"}


async def test_a_client_disconnect_ends_its_subscription(site: Site) -> None:
    async with site.client.stream("GET", "/events") as response:
        frames = Frames(response)
        await frames.next(2)
        assert site.control.subscribers == 1
    await asyncio.wait_for(site.control.unsubscribed.wait(), WAIT)
    assert site.control.subscribers == 0


async def test_server_shutdown_ends_open_streams_promptly() -> None:
    control = StubControl()
    app = create_agent_app(control, check=PAGE_CHECK)
    async with (
        serving(app) as server,
        page_client(server) as client,
        client.stream("GET", "/events") as response,
    ):
        frames = Frames(response)
        await frames.next(2)
        # uvicorn would cut the stream only after its graceful timeout: made far longer
        # than our bound, a stream that ends within it was ended by the app itself.
        server.config.timeout_graceful_shutdown = int(WAIT * 10)
        server.should_exit = True
        async with asyncio.timeout(WAIT):
            rest = [line async for line in frames.lines]
        assert rest == []
    assert control.subscribers == 0


async def test_a_prompt_and_a_slash_command_reach_the_control(site: Site) -> None:
    answer = await site.act("/api/prompt", {"text": "hello there"})
    assert answer.json() == {"ok": True, "message": "queued"}
    answer = await site.act("/api/prompt", {"text": "/model opus"})
    assert answer.json() == {"ok": True, "message": "model set to opus"}
    form = await site.client.post(
        "/api/prompt", data={"text": "/help"}, headers={"X-Hive-CSRF": site.csrf}
    )
    assert form.json()["ok"] is True
    assert site.control.called("prompt") == ["hello there", "/model opus", "/help"]


async def test_actions_without_fields_call_the_control(site: Site) -> None:
    site.control.set_state("thinking")
    assert (await site.act("/api/cancel")).json() == {"ok": True, "message": "turn cancelled"}
    start = (await site.act("/api/login/setup-token/start")).json()
    assert "https://claude.ai/oauth/authorize" in start["message"]
    assert [c.name for c in site.control.calls] == ["cancel", "start_setup_token"]


BAD_BODIES: list[tuple[str, Any]] = [
    ("missing field", {}),
    ("empty", {"F": ""}),
    ("blank", {"F": "  \n "}),
    ("too big", {"F": "x" * (256 * 1024 + 1)}),
    ("not a string", {"F": 42}),
    ("null", {"F": None}),
    ("a list body", ["F"]),
]


@pytest.mark.parametrize(("why", "body"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/prompt", "text"), ("/api/login/key", "key"), ("/api/login/setup-token/finish", "code")],
)
async def test_bad_input_is_refused_with_400_and_calls_nothing(
    site: Site, path: str, field: str, why: str, body: Any
) -> None:
    fixed = json.loads(json.dumps(body).replace('"F"', json.dumps(field)))
    answer = await site.client.post(path, json=fixed, headers={"X-Hive-CSRF": site.csrf})
    assert answer.status_code == 400, why
    assert answer.json()["ok"] is False
    assert answer.json()["message"]
    assert site.control.calls == []


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"{not json", "application/json"), (b"text=hi", "text/plain"), (b"\xff\xfe", "")],
)
async def test_unreadable_bodies_are_refused_with_400(
    site: Site, content: bytes, content_type: str
) -> None:
    headers = {"X-Hive-CSRF": site.csrf, "Content-Type": content_type}
    answer = await site.client.post("/api/prompt", content=content, headers=headers)
    assert answer.status_code == 400
    assert site.control.calls == []


async def test_a_forged_cross_site_form_post_is_refused(site: Site) -> None:
    forged = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    answer = await site.client.post("/api/prompt", data={"text": "rm -rf /"}, headers=forged)
    assert answer.status_code == 403
    no_header = await site.client.post("/api/prompt", json={"text": "hi"})
    assert no_header.status_code == 403
    wrong = await site.client.post(
        "/api/cancel", json={}, headers={"X-Hive-CSRF": "guess", "Origin": "http://evil.example"}
    )
    assert wrong.status_code == 403
    assert site.control.calls == []


async def test_on_loopback_a_foreign_host_header_is_refused_even_with_a_session(
    site: Site,
) -> None:
    # A DNS-rebinding page reaches 127.0.0.1 under its own name; it must not get the page.
    answer = await site.client.get("/", headers={"Host": "evil.example"})
    assert answer.status_code == 403
    assert site.csrf not in answer.text


async def test_the_page_key_buys_a_session_cookie_once_and_guards_every_request() -> None:
    control = StubControl()
    app = create_agent_app(control, check=PAGE_CHECK)
    async with serving(app) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
            gate = await client.get("/")
            assert gate.status_code == 401
            assert "name=token" in gate.text and app.state.csrf not in gate.text
            assert (await client.get("/api/status")).status_code == 401
            assert (await client.get("/events")).status_code == 401
            assert (await client.get("/?token=wrong")).status_code == 401
            login = await client.get(f"/?token={PAGE_KEY}")
            assert login.status_code == 303
            assert login.headers["location"] == "/"
            cookie = login.headers["set-cookie"]
            # Named per agent, so it never overwrites the dashboard's on the same host.
            assert cookie.startswith("hive_page_alice=") and PAGE_KEY not in cookie
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            assert (await client.get("/")).status_code == 200  # the cookie now
            assert (await client.get("/api/status")).status_code == 200
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as script:
            bearer = {"Authorization": f"Bearer {PAGE_KEY}"}
            assert (await script.get("/api/status", headers=bearer)).status_code == 200


async def test_a_login_followed_from_another_site_refreshes_instead_of_redirecting() -> None:
    # The dashboard links to agent pages under the other loopback name; a redirect would
    # stay that site's navigation and the browser would withhold the Strict cookie.
    app = create_agent_app(StubControl(), check=PAGE_CHECK)
    async with serving(app) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as client:
            headers = {"Sec-Fetch-Site": "cross-site"}
            login = await client.get(f"/?token={PAGE_KEY}&after=3", headers=headers)
            assert login.status_code == 200 and "set-cookie" in login.headers
            assert "http-equiv=refresh content='0;url=/?after=3'" in login.text
            assert PAGE_KEY not in login.text
            assert (await client.get("/api/status")).status_code == 200


class EchoingControl(StubControl):
    """A careless harness that echoes the secret back, or raises with it."""

    async def save_api_key(self, key: str) -> CommandResult:
        await super().save_api_key(key)
        return CommandResult(True, f"saved {key}")

    async def finish_setup_token(self, code: str) -> CommandResult:
        raise RuntimeError(f"bad code {code}")


async def test_secrets_are_never_echoed_in_answers_events_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    control = EchoingControl(needs_login=True)
    app = create_agent_app(control, check=PAGE_CHECK)
    async with serving(app) as server:
        headers = {"X-Hive-CSRF": app.state.csrf}
        async with page_client(server, headers=headers) as client:
            saved = await client.post("/api/login/key", json={"key": f" {SECRET}\n"})
            assert saved.json() == {"ok": True, "message": "saved [redacted]"}
            finish = await client.post("/api/login/setup-token/finish", json={"code": SECRET})
            assert finish.status_code == 500
            assert SECRET not in finish.text
            history = await client.get("/api/history")
            async with client.stream("GET", "/events") as response:
                seen = await Frames(response).next(2 + len(control.events) + 1)
    assert control.called("save_api_key") == [SECRET]
    assert SECRET not in history.text
    assert SECRET not in json.dumps(seen)
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback_knows_which_addresses_stay_on_this_machine(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_check_listen_refuses_a_short_token_anywhere_and_no_token_off_loopback() -> None:
    check_listen("127.0.0.1", TOKEN)
    check_listen("0.0.0.0", TOKEN)
    with pytest.raises(ConfigError, match="operator token"):
        check_listen("0.0.0.0", None)
    for host in ("0.0.0.0", "127.0.0.1"):
        with pytest.raises(ConfigError, match="too short"):
            check_listen(host, "abc")
