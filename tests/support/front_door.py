"""Helpers for the front door's tests: a real harness's ready line, and a tiny fake harness
that listens on an agent's ``web.sock`` and answers as badly as a test asks it to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import h11

from support.dashboard import Swarm

Mode = Literal["json", "html", "cookie", "silent", "sse", "big"]
WAIT = 30.0


def web_sock(swarm: Swarm, name: str) -> Path:
    """Where ``name``'s harness listens for the front door (on the host)."""
    return swarm.hive.config.agent_socket(name, manager=name == "hm1nd").parent / "web.sock"


class _ReadyLine(logging.Handler):
    def __init__(self, ready: asyncio.Event) -> None:
        super().__init__(logging.INFO)
        self.ready = ready

    def emit(self, record: logging.LogRecord) -> None:
        if " ready: " in record.getMessage():
            self.ready.set()


@contextlib.contextmanager
def ready_line(name: str) -> Iterator[asyncio.Event]:
    """Set once ``name``'s container prints its harness's ready line (the core logs every
    line a container prints under ``hyperhive.agent.<name>``)."""
    ready = asyncio.Event()
    logger = logging.getLogger(f"hyperhive.agent.{name}")
    handler, level = _ReadyLine(ready), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield ready
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def spawn_ready(swarm: Swarm, name: str) -> None:
    """Spawn ``name`` (a real harness in bwrap, fake engine); back once its page listens."""
    with ready_line(name) as ready:
        await swarm.host("spawn", name=name)
        await asyncio.wait_for(ready.wait(), WAIT)


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeHarness:
    """Answers every request on ``path`` by ``mode``; records what reached it."""

    path: Path
    mode: Mode = "json"
    seen: list[Seen] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    streams: int = 0  # SSE answers open right now
    opened: asyncio.Condition = field(default_factory=asyncio.Condition)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def hang_up(self) -> None:
        for writer in self._writers:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            seen = await _request(reader)
            self.seen.append(seen)
            self.arrived.set()
            await self._answer(reader, writer)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "silent":
            await reader.read()  # holds the connection until the client hangs up
            return
        if self.mode == "sse":
            writer.write(_head("text/event-stream") + b"id: 1\ndata: {}\n\n")
            await writer.drain()
            async with self.opened:
                self.streams += 1
                self.opened.notify_all()
            await reader.read()  # EOF: the front door hung up on us
            self.streams -= 1
            self.hung_up.set()
            return
        kind, body, extra = {
            "json": ("application/json", b'{"name":"fake"}', b""),
            "html": ("text/html", b"<script>alert(document.cookie)</script>", b""),
            "cookie": ("application/json", b"{}", b"set-cookie: hive_session=evil; Path=/\r\n"),
            "big": ("application/json", b'"' + b"x" * (9 * 1024 * 1024) + b'"', b""),
        }[self.mode]
        writer.write(_head(kind, len(body), extra) + body)
        await writer.drain()

    async def wait_streams(self, count: int) -> None:
        async with self.opened:
            await asyncio.wait_for(self.opened.wait_for(lambda: self.streams >= count), WAIT)


def _head(kind: str, length: int | None = None, extra: bytes = b"") -> bytes:
    size = b"" if length is None else f"content-length: {length}\r\n".encode()
    return b"HTTP/1.1 200 OK\r\ncontent-type: " + kind.encode() + b"\r\n" + size + extra + b"\r\n"


async def _request(reader: asyncio.StreamReader) -> Seen:
    conn = h11.Connection(h11.SERVER)
    head: h11.Request | None = None
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    assert head is not None
    headers = {k.decode(): v.decode() for k, v in head.headers}
    return Seen(head.method.decode(), head.target.decode(), headers, body)


@contextlib.asynccontextmanager
async def fake_harness(path: Path, mode: Mode = "json") -> AsyncIterator[FakeHarness]:
    fake = FakeHarness(path, mode)
    _remove(path)
    server = await asyncio.start_unix_server(fake._serve, path=os.fspath(path))
    try:
        yield fake
    finally:
        server.close()
        fake.hang_up()
        _remove(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def gone(path: Path) -> bool:
    return not os.path.lexists(path)
