"""One listening unix socket speaking the JSON-lines protocol for one identity.

Requests on a connection are answered one at a time, in order. A malformed
line gets an error answer and the connection stays usable; a line over the
limit, or one left unfinished for ``line_timeout``, gets an error and that
connection (only) is closed. Whatever a client sends, the error stays inside
its connection, and what it can make the core hold is bounded: connections
per socket and hive-wide (a reserve kept for ``host.sock``), read-ahead per
connection (core/line_reader.py), idle time. A client that hangs up ends its
long-poll at once; ops that change state run to their end regardless, so a
hangup never leaves one half done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from hyperhive.core import protocol
from hyperhive.core.caller import Caller
from hyperhive.core.connections import ConnectionBudget
from hyperhive.core.line_reader import End, LineReader
from hyperhive.core.protocol import Args
from hyperhive.errors import Busy, HiveError, ShuttingDown

log = logging.getLogger(__name__)
DRAIN_SECONDS: Final = 10.0
# Ops that only wait and read: cancelled when their client hangs up. Anything
# that changes state is left to finish; a half-done approve would be worse.
CANCEL_ON_HANGUP: Final = frozenset({"recv"})
_HUNG_UP: Final = object()
REFUSE_READ_CHUNKS: Final = 4  # of 64 KiB: a refused client's first request, and then some


class Dispatch(Protocol):
    """What a socket's requests are answered by (the op tables)."""

    def stream(
        self, caller: Caller, op: str, args: Args, /
    ) -> AsyncIterator[dict[str, Any]] | None:
        """The events of stream op ``op``; None when ``op`` is not a stream."""
        ...

    def call(self, caller: Caller, op: str, args: Args, /) -> Awaitable[Any]:
        """The answer to ``op``; raises the HiveError tree (Forbidden, UnknownOp, ...)."""
        ...


class LeaseHook(Protocol):
    """The leases a connection holds (the broker): kept alive by them, released after it."""

    def holds_lease(self, name: str, holder: object, /) -> bool: ...

    def release_holder(self, name: str, holder: object, /) -> object: ...


@dataclass(frozen=True, slots=True)
class SocketLimits:
    connections: int  # this socket's own cap
    max_line: int
    line_timeout: float
    idle_timeout: float


@dataclass(slots=True)
class _Connection:
    writer: asyncio.StreamWriter
    lines: LineReader
    busy: bool = False  # a request is being answered


class SocketInUse(HiveError):
    code = "socket_in_use"


class SocketServer:
    def __init__(
        self,
        path: Path,
        caller: Caller,
        dispatch: Dispatch,
        limits: SocketLimits,
        budget: ConnectionBudget,
        leases: LeaseHook,
        *,
        owner: int | None = None,
    ) -> None:
        """``budget``: shared by every socket of the hive. ``owner``: a uid given the
        socket and its directory (which must be the socket's own, like ``agents/<n>/``)
        once bound; both stay private to it."""
        self.path = path
        self.caller = caller
        self._dispatch = dispatch
        self._limits = limits
        self._budget = budget
        self._leases = leases
        self._owner = owner
        self._host = caller.role == "operator"
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._closing = False

    @property
    def name(self) -> str:
        return self.caller.name

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        if self.path.exists() or self.path.is_symlink():
            if await _is_live(self.path):
                raise SocketInUse(f"{self.path} is in use: is another hive-c0re running?")
            self.path.unlink()
        # The backlog is also how many connections asyncio accepts in one go,
        # before any of them is counted: keep that burst within the cap.
        backlog = self._limits.connections
        sock = _bind_private(self.path, backlog)
        # asyncio listens again with its own backlog: give it the same one.
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=self._limits.max_line, backlog=backlog
        )
        if self._owner is not None:
            # For an agent running as its own uid: the socket and its directory are its.
            os.chown(self.path, self._owner, self._owner)
            os.chown(self.path.parent, self._owner, self._owner)

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def close(self, grace: float = DRAIN_SECONDS) -> None:
        """Stop accepting, let requests in flight finish (bounded), then hang up."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections.values()):
            if not conn.busy and conn.lines.quiet:
                conn.writer.close()
        await finish(list(self._connections), grace)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _admit(self) -> bool:
        if len(self._connections) >= self._limits.connections:
            return False
        return self._budget.admit(host=self._host)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._admit():
            await _refuse(writer, Busy(f"too many connections to {self.path.name}; retry later"))
            return
        task = asyncio.current_task()
        assert task is not None
        # One holder per connection: its leases are its own, released when it goes.
        caller = Caller(self.caller.name, self.caller.role, self.caller.via)
        sock = writer.get_extra_info("socket")
        lines = LineReader(
            reader,
            sock.fileno,
            max_line=self._limits.max_line,
            line_timeout=self._limits.line_timeout,
            idle_timeout=self._limits.idle_timeout,
            # A connection holding a lease is not idle: its harness is running the
            # turn the message started, and closing would hand the message out again.
            may_idle_out=lambda: not self._leases.holds_lease(caller.name, caller),
        )
        conn = self._connections[task] = _Connection(writer, lines)
        try:
            await self._converse(caller, conn)
        except (ConnectionError, BrokenPipeError):
            pass  # the client went away; its leases are released below
        finally:
            # Bookkeeping first: a second cancel during the awaits below must not leak it.
            self._connections.pop(task, None)
            self._budget.release(host=self._host)
            self._leases.release_holder(caller.name, caller)
            lines.stop()
            writer.close()
            with contextlib.suppress(ConnectionError, BrokenPipeError):
                await writer.wait_closed()

    async def _converse(self, caller: Caller, conn: _Connection) -> None:
        lines, writer = conn.lines, conn.writer
        while not self._closing:
            item = await lines.next()
            if isinstance(item, End):
                if item.error is not None and not item.hung_up:
                    writer.write(protocol.error(None, item.error))
                    await writer.drain()
                return
            conn.busy = True
            try:
                done = await self._answer(caller, item, lines, writer)
            finally:
                conn.busy = False
            if done:
                return

    async def _answer(
        self, caller: Caller, line: bytes, lines: LineReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one line; True when the connection is finished (a stream, a hangup)."""
        request_id: protocol.RequestId = None
        try:
            request = protocol.parse_request(line)
            request_id = request.id
            if self._closing:
                raise ShuttingDown("hive-c0re is shutting down")
            events = self._dispatch.stream(caller, request.op, request.args)
            if events is not None:
                await _pump(request_id, events, lines, writer)
                return True
            if request.op not in CANCEL_ON_HANGUP:
                result = await self._dispatch.call(caller, request.op, request.args)
            elif lines.hangup.done():
                return True  # not even started: a recv must not pop what nobody reads
            else:
                work = self._dispatch.call(caller, request.op, request.args)
                result = await _unless_hangup(work, lines)
                if result is _HUNG_UP:
                    return True
            answer = protocol.ok(request_id, result)
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


async def _unless_hangup(work: Awaitable[Any], lines: LineReader) -> Any:
    """``work``'s result, or ``_HUNG_UP`` (``work`` cancelled) if the client hangs up first."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait((task, lines.hangup), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))
    return _HUNG_UP if task.cancelled() else task.result()


async def _pump(
    request_id: protocol.RequestId,
    stream: AsyncIterator[dict[str, Any]],
    lines: LineReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Forward a stream's events until it ends or the client stops sending or hangs up."""

    async def forward() -> None:
        async for event in stream:
            writer.write(protocol.stream_item(request_id, event))
            await writer.drain()

    async def until_end() -> None:
        # Input after a stream request is read and dropped so it cannot pile up.
        while not isinstance(await lines.next(), End):
            pass

    tasks = {asyncio.create_task(forward()), asyncio.create_task(until_end())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _refuse(writer: asyncio.StreamWriter, error: HiveError) -> None:
    """One error line, then hang up: a connection over a cap costs the core nothing more."""
    writer.write(protocol.error(None, error))
    # What the client already sent is read and dropped: closing with it unread
    # would reset the connection, and the client could lose the line to ECONNRESET.
    with contextlib.suppress(OSError):  # BlockingIOError: nothing more has arrived
        fd = writer.get_extra_info("socket").fileno()
        for _ in range(REFUSE_READ_CHUNKS):
            if not os.read(fd, 65536):
                break
    writer.close()
    with contextlib.suppress(ConnectionError, BrokenPipeError):
        await writer.wait_closed()


def _bind_private(path: Path, backlog: int) -> socket.socket:
    """A listening socket at ``path``, 0600 from birth: the umask makes its mode, so there
    is no window where another user could connect before a chmod. Bound without an await
    between setting the umask and restoring it: the umask is the whole process's, and
    sockets opened concurrently (spawns) would otherwise restore each other's 0177."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        sock.bind(os.fspath(path))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old)
    return sock


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


async def finish(tasks: list[asyncio.Task[None]], grace: float) -> None:
    """Give connection tasks ``grace`` seconds to end, then cancel the late ones (and wait
    a bounded second for them to unwind)."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=grace)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=1.0)
