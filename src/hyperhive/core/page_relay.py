"""Each agent's own page port, kept on backends where the agent's 127.0.0.1 is its own.

Under bwrap (a network namespace per agent) and nixos (a private network) a port the
harness binds is inside the container, out of the host's reach, and the seed's bookmarks
(``http://localhost:8123/``) would all be dead. So the core listens on each agent's
assigned port on the host's loopback and relays the bytes to the harness's gated page on
``<run>/agents/<n>/page.sock``: the page exactly as it is on a port, behind its page key
and its CSRF checks. The relay parses nothing; web.sock, which has no gate of its own
(the front door is its gate), is never relayed.

A port the core cannot bind (another program holds it) is said once in the log and the
agent keeps its front-door page; a relay never stops an agent from running. Each port
takes a bounded number of connections; an agent whose page is down answers 502.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

LOOPBACK: Final = "127.0.0.1"  # where harnesses bind their ports elsewhere, too
MAX_CONNECTIONS: Final = 32  # per agent's port: tabs, SSE streams, a scraper
CONNECT_TIMEOUT: Final = 5.0
CHUNK: Final = 64 * 1024


def _answer(status: str, text: str) -> bytes:
    body = text.encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


DOWN: Final = _answer("502 Bad Gateway", "this agent's page is down (its harness is not running)\n")
BUSY: Final = _answer("503 Service Unavailable", "too many connections to this agent's page\n")


@dataclass
class _Relay:
    server: asyncio.Server
    target: Path
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class PageRelays:
    def __init__(self, host: str = LOOPBACK, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self._host = host
        self._max = max_connections
        self._relays: dict[str, _Relay] = {}

    def listening(self, name: str) -> bool:
        return name in self._relays

    def port(self, name: str) -> int | None:
        relay = self._relays.get(name)
        return relay.server.sockets[0].getsockname()[1] if relay is not None else None

    async def open(self, name: str, port: int, target: Path) -> None:
        """Relay ``port`` to ``target`` (the page.sock); a port that cannot be had is
        logged, never raised."""
        if name in self._relays:
            return
        tasks: set[asyncio.Task[None]] = set()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None  # a connection is always served by a task
            if len(tasks) >= self._max:
                await _refuse(writer, BUSY)
                return
            tasks.add(task)
            try:
                await _relay(reader, writer, target)
            finally:
                tasks.discard(task)

        try:
            server = await asyncio.start_server(serve, self._host, port, reuse_address=True)
        except OSError as exc:
            why = exc.strerror or str(exc)
            log.warning("%s's page port %s:%d cannot be opened (%s)", name, self._host, port, why)
            return
        self._relays[name] = _Relay(server, target, tasks)

    async def close(self, name: str) -> None:
        relay = self._relays.pop(name, None)
        if relay is None:
            return
        relay.server.close()
        for task in list(relay.tasks):  # open SSE streams would hold wait_closed forever
            task.cancel()
        await asyncio.gather(*relay.tasks, return_exceptions=True)
        await relay.server.wait_closed()

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(name) for name in list(self._relays)))


async def _refuse(writer: asyncio.StreamWriter, answer: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        writer.write(answer)
        await writer.drain()
    writer.close()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: Path) -> None:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            up_reader, up_writer = await asyncio.open_unix_connection(target)
    except (OSError, TimeoutError):
        await _refuse(writer, DOWN)
        return
    sending = asyncio.create_task(_pipe(reader, up_writer))
    try:
        # The harness's end closing ends the relay: a browser keeps its side open for
        # the next request, which would hold a connection of the cap for nothing.
        await _pipe(up_reader, writer)
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        for end in (up_writer, writer):
            end.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close: an HTTP client may end its side first."""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()  # a slow reader holds its sender back: nothing piles up
        if writer.can_write_eof():
            writer.write_eof()
