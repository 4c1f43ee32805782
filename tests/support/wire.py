"""A raw line-level connection for tests that speak broken protocol on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperhive.client import Client

ANSWER_TIMEOUT = 10.0


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


async def until_status(host_socket: Path, check: Callable[[dict[str, Any]], bool]) -> None:
    """Ask the core for its status until ``check`` holds; bounded by ``ANSWER_TIMEOUT``.

    Each try is a real round trip to the core, so this waits on the core's
    own account of itself (who is long-polling, who is subscribed).
    """
    async with await Client.connect(host_socket) as op, asyncio.timeout(ANSWER_TIMEOUT):
        while not check(await op.call("status")):
            pass
