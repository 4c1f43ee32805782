"""One HTTP/1.1 connection on an agent's ``api.sock``, spoken with h11, bounded.

Reading: a request's head may be at most ``max_head`` bytes and its body
``max_body``; once its first byte is in, the whole request must arrive within
``request_timeout`` (a slowloris client is cut); between requests the connection may
sit ``idle_timeout``. Writing: every chunk is written as it comes (waiting only when
the client lets unsent bytes pile up); a client that stops reading for
``idle_timeout`` is cut. While an answer is being made, :meth:`HttpConnection.watch`
has the client's going away (EOF or a broken connection, as the transport sees it)
call back at once: no reader task per request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

import h11

READ_CHUNK: Final = 65536
_REASONS: Final = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
}
# Above this much unsent, a write waits for the client (asyncio's default high-water).
WRITE_HIGH: Final = 65536


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_head: int
    max_body: int
    request_timeout: float
    idle_timeout: float


class RequestFailed(Exception):
    """The request cannot be read; answer ``status`` (None: just hang up) and close."""

    def __init__(self, status: int | None, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class ClientGone(Exception):
    """The client hung up or stopped reading."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # path and query, as sent
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


class WatchedProtocol(asyncio.StreamReaderProtocol):
    """A stream's protocol that also tells :attr:`on_gone` when the client goes."""

    gone = False
    on_gone: Callable[[], object] | None = None

    def eof_received(self) -> bool:
        self._went()
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        self._went()
        super().connection_lost(exc)

    def _went(self) -> None:
        self.gone = True
        hook, self.on_gone = self.on_gone, None
        if hook is not None:
            hook()


def watched_server(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> Callable[[], WatchedProtocol]:
    """A protocol factory for ``loop.create_unix_server``: ``asyncio.start_unix_server``'s
    own, with :class:`WatchedProtocol`."""
    loop = asyncio.get_running_loop()

    def factory() -> WatchedProtocol:
        return WatchedProtocol(asyncio.StreamReader(limit=READ_CHUNK, loop=loop), serve, loop=loop)

    return factory


def error_json(error_type: str, message: str) -> bytes:
    """The Messages API's error shape (the CLI prints ``message``)."""
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()


class HttpConnection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: HttpLimits
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._limits = limits
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)
        self.eof = False
        self._deadline: float | None = None
        self._fed = 0  # bytes read since the current request began
        self._head = b""  # a response head not yet written

    @property
    def reusable(self) -> bool:
        """Both sides are done with one exchange and may start another."""
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def next_cycle(self) -> None:
        self._h11.start_next_cycle()

    async def next_request(self) -> Request | None:
        """The next whole request; None when the client is done (hung up, idle)."""
        started = bool(self._h11.trailing_data[0])
        self._fed = len(self._h11.trailing_data[0])
        deadline = time.monotonic() + self._limits.request_timeout if started else None
        head = await self._next_event(deadline, first=True)
        if head is None:
            return None
        if not isinstance(head, h11.Request):
            raise RequestFailed(400, "invalid_request_error", "hyperhive: malformed request")
        # h11 bounds a head still incomplete; one that came whole in a read may be longer.
        if self._fed - len(self._h11.trailing_data[0]) > self._limits.max_head:
            raise RequestFailed(
                431, "request_too_large", "hyperhive: the request head is too large"
            )
        declared = _content_length(head.headers)
        if declared is not None and declared > self._limits.max_body:
            raise _too_large(self._limits.max_body)
        deadline = self._deadline
        if self._h11.they_are_waiting_for_100_continue:
            await self._write(
                self._h11.send(h11.InformationalResponse(status_code=100, headers=[]))
            )
        body = bytearray()
        while True:
            event = await self._next_event(deadline, first=False)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > self._limits.max_body:
                    raise _too_large(self._limits.max_body)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise RequestFailed(None, "", "the client hung up mid-request")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
        return Request(
            head.method.decode("ascii"), head.target.decode("ascii"), headers, bytes(body)
        )

    async def _next_event(self, deadline: float | None, *, first: bool) -> h11.Event | None:
        """The next h11 event, reading as needed; None for a clean end before a request."""
        self._deadline = deadline
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                kind = "request_too_large" if status == 431 else "invalid_request_error"
                raise RequestFailed(status, kind, f"hyperhive: bad request ({exc})") from None
            if event is h11.NEED_DATA:
                if self.eof:
                    raise RequestFailed(None, "", "the client hung up mid-request")
                timeout = (
                    self._limits.idle_timeout if deadline is None else deadline - time.monotonic()
                )
                try:
                    async with asyncio.timeout(max(timeout, 0.0)):
                        data = await self._reader.read(READ_CHUNK)
                except TimeoutError:
                    if deadline is None:
                        return None  # idle: hang up quietly
                    raise RequestFailed(
                        408, "timeout_error", "hyperhive: the request did not arrive in time"
                    ) from None
                except ConnectionError:
                    data = b""
                if deadline is None:
                    deadline = self._deadline = time.monotonic() + self._limits.request_timeout
                self.eof = not data
                self._fed += len(data)
                self._h11.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                if first:
                    return None
                raise RequestFailed(None, "", "the client hung up mid-request")
            if event is h11.PAUSED:  # requests are read only between exchanges
                raise RequestFailed(None, "", "a request out of turn")
            assert isinstance(event, h11.Event)
            return event

    def watch(self, hook: Callable[[], object] | None) -> bool:
        """Have ``hook`` called when the client goes (None: no longer); False if it has
        gone already. What it sends meanwhile waits in the reader for the next request
        (past the reader's limit the transport stops reading, and watching, until then)."""
        protocol = self._writer.transport.get_protocol()
        assert isinstance(protocol, WatchedProtocol)
        protocol.on_gone = hook
        if protocol.gone and hook is not None:
            protocol.on_gone = None
            return False
        return True

    async def respond(self, status: int, headers: list[tuple[str, str]], reason: str = "") -> None:
        """A response's head: written with its first chunk (or its end), one write
        fewer per answer; a head alone is nothing a client can act on."""
        event = h11.Response(status_code=status, headers=headers, reason=reason.encode("latin-1"))
        self._head = self._h11.send(event) or b""

    async def send(self, chunk: bytes, *, end: bool = False) -> None:
        """One chunk of the body, written now; with ``end``, the body's end with it."""
        if not chunk and not end:
            return
        data = self._take_head()
        if chunk:
            data += self._h11.send(h11.Data(data=chunk)) or b""
        if end:
            data += self._h11.send(h11.EndOfMessage()) or b""
        await self._write(data)

    async def end(self) -> None:
        await self._write(self._take_head() + (self._h11.send(h11.EndOfMessage()) or b""))

    def _take_head(self) -> bytes:
        head, self._head = self._head, b""
        return head

    async def answer(self, status: int, body: bytes, *, close: bool = False) -> None:
        """A whole JSON answer of the gateway's own."""
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        if close:
            headers.append(("connection", "close"))
        if self._h11.our_state is not h11.SEND_RESPONSE:
            # No request was read (refused, or it never arrived whole): h11 answers only
            # a request, so this one is written by hand, and the connection ends with it.
            lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
            lines += [f"{name}: {value}" for name, value in headers]
            lines += ["connection: close"] * (not close)
            await self._write("\r\n".join([*lines, "", ""]).encode("latin-1") + body)
            return
        await self.respond(status, headers)
        await self.send(body, end=True)

    async def _write(self, data: bytes | None) -> None:
        if not data:
            return
        writer = self._writer
        if writer.transport.is_closing():
            raise ClientGone("the client went away")
        writer.write(data)
        if writer.transport.get_write_buffer_size() < WRITE_HIGH:
            return  # below the high-water mark drain() would not wait: skip the call
        try:
            async with asyncio.timeout(self._limits.idle_timeout):
                await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            raise ClientGone("the client went away or stopped reading") from exc


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # h11 has checked it is digits
    return None


def _too_large(limit: int) -> RequestFailed:
    return RequestFailed(
        413, "request_too_large", f"hyperhive: the request body is over {limit} bytes"
    )
