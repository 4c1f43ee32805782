"""One listening unix socket speaking the JSON-lines protocol for one identity.

Requests on a connection are answered one at a time, in order. A malformed
line gets an error answer and the connection stays usable; a line over the
limit gets an error and that connection (only) is closed. Whatever a client
sends, the error stays inside its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hyperhive.core import ops, protocol
from hyperhive.core.ops import Caller, Role
from hyperhive.errors import HiveError, ShuttingDown, TooLarge

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

log = logging.getLogger(__name__)
DRAIN_SECONDS: Final = 10.0


class SocketInUse(HiveError):
    code = "socket_in_use"


class SocketServer:
    def __init__(self, hive: Hive, path: Path, name: str, role: Role) -> None:
        self._hive = hive
        self.path = path
        self.name = name
        self.role = role
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._busy: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        if self.path.exists() or self.path.is_symlink():
            if await _is_live(self.path):
                raise SocketInUse(f"{self.path} is in use: is another hive-c0re running?")
            self.path.unlink()
        # The umask makes the socket 0600 from birth: no window where another
        # user could connect before a chmod.
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, self.path, limit=self._hive.config.max_line
            )
        finally:
            os.umask(old)

    async def close(self, grace: float = DRAIN_SECONDS) -> None:
        """Stop accepting, let requests in flight finish (bounded), then hang up."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task, writer in list(self._connections.items()):
            if task not in self._busy:
                writer.close()
        tasks = list(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        caller = Caller(self.name, self.role)
        try:
            await self._converse(caller, reader, writer)
        except (ConnectionError, BrokenPipeError):
            pass  # the client went away; its leases are released below
        finally:
            self._connections.pop(task, None)
            self._busy.discard(task)
            self._hive.broker.release_holder(self.name, caller)
            writer.close()
            with contextlib.suppress(ConnectionError, BrokenPipeError):
                await writer.wait_closed()

    async def _converse(
        self, caller: Caller, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self._closing:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                line = exc.partial  # EOF: answer a last unterminated line, then stop
                if not line.strip():
                    return
            except asyncio.LimitOverrunError:
                limit = self._hive.config.max_line
                writer.write(protocol.error(None, TooLarge(f"line exceeds {limit} bytes")))
                await writer.drain()
                return
            if not line.strip():
                continue
            self._busy.add(task)
            try:
                done = await self._answer(caller, line, reader, writer)
            finally:
                self._busy.discard(task)
            if done:
                return

    async def _answer(
        self,
        caller: Caller,
        line: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer one line; True when the connection is finished (after a stream)."""
        request_id: protocol.RequestId = None
        try:
            request = protocol.parse_request(line)
            request_id = request.id
            if self._closing:
                raise ShuttingDown("hive-c0re is shutting down")
            streamer = ops.streamer(self.role, request.op)
            if streamer is not None:
                events = streamer(self._hive, caller, request.args)
                await _pump(request_id, events, reader, writer)
                return True
            handler = ops.handler(self.role, request.op)
            answer = protocol.ok(request_id, await handler(self._hive, caller, request.args))
        except protocol.RequestError as exc:
            answer = protocol.error(exc.request_id, exc.error)
        except HiveError as exc:
            answer = protocol.error(request_id, exc)
        except Exception:  # a handler bug must not take the daemon down
            log.exception("op failed on %s", self.path)
            answer = protocol.error(request_id, HiveError("internal error; see the core's log"))
        writer.write(answer)
        await writer.drain()
        return False


async def _pump(
    request_id: protocol.RequestId,
    stream: AsyncIterator[dict[str, Any]],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Forward a stream's events until it ends or the client hangs up."""

    async def forward() -> None:
        async for event in stream:
            writer.write(protocol.stream_item(request_id, event))
            await writer.drain()

    async def until_eof() -> None:
        # Input after a stream request is read and dropped so it cannot pile up.
        while await reader.read(65536):
            pass

    tasks = {asyncio.create_task(forward()), asyncio.create_task(until_eof())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _is_live(path: Path) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, str(path))
    except OSError:
        return False
    finally:
        sock.close()
    return True
