"""The CLI's way to the core's model gateway: a loopback TCP port in the container, each
connection piped to ``/run/hive/api.sock``.

Claude Code speaks HTTP to ``ANTHROPIC_BASE_URL`` and knows no unix sockets; the gateway
listens on one (the socket is the caller's identity). The forwarder understands nothing of
HTTP: bytes go both ways as they come, an end of one direction is passed on as a
half-close, and a few connections at most are open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)
MAX_CONNECTIONS: Final = 32
CHUNK: Final = 64 * 1024
LOOPBACK: Final = "127.0.0.1"


class ApiForwarder:
    def __init__(self, socket: Path, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.socket = socket
        self._max = max_connections
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the forwarder is not started")  # a wiring bug
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> int:
        """Listen on an ephemeral loopback port (once); that port."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, LOOPBACK, 0)
        return self.port

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._open):
            task.cancel()
        if self._open:
            await asyncio.gather(*self._open, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    @property
    def connections(self) -> int:
        return len(self._open)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._open) >= self._max:
            writer.close()  # the CLI retries a refused connection like any other
            return
        self._open.add(task)
        try:
            await self._pipe_both(reader, writer)
        finally:
            self._open.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _pipe_both(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket)
        except OSError as exc:
            log.warning("cannot reach the gateway on %s: %s", self.socket, exc.strerror)
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await up_writer.wait_closed()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until ``source`` ends, then half-close ``sink``; a reset ends both ways."""
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except OSError:
        # One side went away: so does the other, and the gather's partner sees EOF.
        sink.close()
