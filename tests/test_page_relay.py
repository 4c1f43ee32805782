"""Each agent's own page port on backends where its 127.0.0.1 is its own: the core listens
on the port and relays it to the harness's gated page.sock (core/page_relay.py). First the
relay on real sockets, then a real bwrap agent's page at its port, key and all."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hyperhive.config import Config
from hyperhive.core.page_relay import PageRelays
from hyperhive.tokens import page_key
from support.dashboard import Swarm, live_swarm
from support.front_door import spawn_ready

WAIT = 10.0


class Page:
    """A page on a unix socket: answers each request once, or streams until cut."""

    def __init__(self, stream: bool = False) -> None:
        self.stream = stream
        self.ended = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            head = await reader.readuntil(b"\r\n\r\n")
            if not self.stream:
                body = b"page says: " + head.split(b" ")[1]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                writer.close()
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            writer.write(b"data: first\n\n")
            await writer.drain()
            await reader.read()  # until the relay lets go of us
        self.ended.set()
        writer.close()


@contextlib.asynccontextmanager
async def page_on(path: Path, page: Page) -> AsyncIterator[Page]:
    server = await asyncio.start_unix_server(page.serve, path)
    try:
        yield page
    finally:
        server.close()


@pytest.fixture
async def relays() -> AsyncIterator[PageRelays]:
    relays = PageRelays(max_connections=2)
    yield relays
    await relays.close_all()


async def port_of(relays: PageRelays, name: str) -> int:
    port = relays.port(name)
    assert port is not None
    return port


async def test_a_request_on_the_port_reaches_the_page_socket_and_comes_back(
    relays: PageRelays, short_dir: Path
) -> None:
    sock = short_dir / "page.sock"
    async with page_on(sock, Page()):
        await relays.open("alice", 0, sock)
        assert relays.listening("alice")
        port = await port_of(relays, "alice")
        async with httpx.AsyncClient(timeout=WAIT) as client:
            got = await client.get(f"http://127.0.0.1:{port}/api/status")
        assert got.status_code == 200 and got.text == "page says: /api/status"


async def test_a_page_that_is_down_answers_a_clear_502(relays: PageRelays, short_dir: Path) -> None:
    await relays.open("alice", 0, short_dir / "nobody-listens.sock")
    port = await port_of(relays, "alice")
    async with httpx.AsyncClient(timeout=WAIT) as client:
        got = await client.get(f"http://127.0.0.1:{port}/")
    assert got.status_code == 502 and "page is down" in got.text


async def test_connections_past_the_cap_get_503_and_closing_ends_open_streams(
    relays: PageRelays, short_dir: Path
) -> None:
    sock = short_dir / "page.sock"
    page = Page(stream=True)
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    async with page_on(sock, page):
        await relays.open("alice", 0, sock)
        port = await port_of(relays, "alice")
        for _ in range(2):  # the cap: two SSE streams held open
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b"data: first\n\n"), WAIT)
            streams.append((reader, writer))
        async with httpx.AsyncClient(timeout=WAIT) as client:
            got = await client.get(f"http://127.0.0.1:{port}/")
        assert got.status_code == 503
        await asyncio.wait_for(relays.close("alice"), WAIT)
        for reader, writer in streams:
            assert await asyncio.wait_for(reader.read(), WAIT) == b""  # cut, not left hanging
            writer.close()
        await asyncio.wait_for(page.ended.wait(), WAIT)  # the page side let go too
    assert not relays.listening("alice")
    with pytest.raises(ConnectionRefusedError):  # the port is closed
        await asyncio.open_connection("127.0.0.1", port)


async def test_a_port_someone_else_holds_is_logged_and_the_agent_goes_on(
    relays: PageRelays, short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        await relays.open("alice", taken, short_dir / "page.sock")  # no exception
    assert not relays.listening("alice")
    assert f"alice's page port 127.0.0.1:{taken} cannot be opened" in caplog.text


# -- a real agent in bwrap ---------------------------------------------------------------


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        yield running


async def test_a_bwrap_agents_own_port_serves_its_page_behind_its_key(swarm: Swarm) -> None:
    await spawn_ready(swarm, "pia")
    [row] = await swarm.host("agents", name="pia")
    port = row["port"]
    assert row["port_relayed"] is True and port is not None
    sock = swarm.hive.config.agent_socket("pia", manager=False).parent / "page.sock"
    assert sock.is_socket()  # the harness serves its gated page there, not on its own port
    base = f"http://localhost:{port}/"
    async with httpx.AsyncClient(base_url=base, timeout=WAIT) as stranger:
        assert (await stranger.get("api/status")).status_code == 401
        assert (await stranger.get("", params={"token": "not-the-key"})).status_code == 401
    async with httpx.AsyncClient(base_url=base, timeout=WAIT) as operator:
        login = await operator.get("", params={"token": page_key(swarm.token, "pia")})
        assert login.status_code == 303
        assert (await operator.get("api/status")).json()["name"] == "pia"
        page = await operator.get("")
        assert page.status_code == 200 and "pia" in page.text
        # The page's own CSRF check holds through the relay: no token, no prompt.
        refused = await operator.post("api/prompt", json={"text": "hello"})
        assert refused.status_code in (400, 403)
    shown = await swarm.host("agents", name="pia")
    assert shown[0]["port_relayed"] is True
    await swarm.host("destroy", name="pia")
    async with httpx.AsyncClient(timeout=WAIT) as late:
        with pytest.raises(httpx.ConnectError):  # gone with its agent
            await late.get(base)
