"""A raw line-level connection for tests that speak broken protocol on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperhive.client import Client

ANSWER_TIMEOUT = 10.0
# What until_status waits for can be a harness booting and running a turn (or the real
# Claude CLI) on a loaded 2-core machine: seconds there, never a minute.
STATUS_WAIT = 60.0


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: Path) -> RawConnection:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=16 * 1024 * 1024)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> dict[str, Any] | None:
        """The next answer line, or None when the core closed the connection."""
        line = await asyncio.wait_for(self.reader.readline(), ANSWER_TIMEOUT)
        if not line:
            return None
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            await self.writer.wait_closed()


class RawSocket:
    """A unix socket driven by plain syscalls. Unlike asyncio's streams, what the
    core sent stays readable after it hung up, whatever became of our own writes
    (a write after the core closed fails, and a stream then drops what it had)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def open(cls, path: Path, first: bytes = b"") -> RawSocket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, str(path))
        raw = cls(sock)
        if first:
            await raw.send(first)
        return raw

    async def send(self, data: bytes) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def answers(self) -> list[dict[str, Any]]:
        """Every answer line until the core hangs up."""
        loop, data = asyncio.get_running_loop(), b""
        while True:
            try:
                chunk = await loop.sock_recv(self.sock, 65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def close(self) -> None:
        self.sock.close()


async def until_status(
    host_socket: Path, check: Callable[[dict[str, Any]], bool], wait: float = STATUS_WAIT
) -> None:
    """Ask the core for its status until ``check`` holds; bounded by ``wait``.

    Each try is a real round trip to the core, so this waits on the core's
    own account of itself (who is long-polling, who is subscribed).
    """
    async with await Client.connect(host_socket) as op, asyncio.timeout(wait):
        while not check(await op.call("status")):
            pass
