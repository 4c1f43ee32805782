"""A unix socket in front of a real core that loses the first answer.

The first connection's request reaches the core whole and the core answers it; that
answer is dropped and the connection cut, as when the core is restarted or the
connection reset after a send was stored. Every later connection passes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any


class AnswerEater:
    def __init__(self, path: Path, target: Path) -> None:
        self.path = path
        self.target = target
        self.requests: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> AnswerEater:
        self._server = await asyncio.start_unix_server(self._serve, str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        eat = not self.requests
        up_reader, up_writer = await asyncio.open_unix_connection(str(self.target))
        try:
            line = await reader.readline()
            if not line:
                return
            self.requests.append(json.loads(line))
            up_writer.write(line)
            await up_writer.drain()
            answer = await up_reader.readline()  # the core has done the work by now
            if not eat:
                writer.write(answer)
                await writer.drain()
        finally:
            for w in (up_writer, writer):
                w.close()
                with contextlib.suppress(ConnectionError):
                    await w.wait_closed()
