"""Forwarding one request to the upstream Messages API, with the hive's credential.

An HTTP/1.1 client of its own (h11 on asyncio streams; one LIFO pool of keep-alive
connections for every agent): httpx/httpcore cost most of the gateway's added latency
(a poll per idle connection per request, pool bookkeeping, a request's head and body as
two writes, so two wakeups upstream). Here a request is one write, and a pooled
connection is known stale from the EOF the loop already saw.

A stream has no overall deadline (a long answer is a long answer) but connecting and
the first byte are bounded, and so is a stall between two chunks. The upstream is
asked for ``identity`` encoding so the bytes passing through can be metered as they
are. Headers: hop-by-hop ones are dropped both ways, and whatever the client sent to
authenticate is dropped before the credential's own headers go on.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Iterable
from typing import Final
from urllib.parse import urlsplit

import h11
import httpx

from hyperhive.core.gateway.seams import OAUTH_BETA, Credential
from hyperhive.errors import HiveError

CONNECT_TIMEOUT: Final = 10.0
# The API answers a non-streamed request only when it is done: minutes, for a long one.
FIRST_BYTE_TIMEOUT: Final = 600.0
STALL_TIMEOUT: Final = 600.0  # between two chunks (a stream sends pings far more often)
WRITE_TIMEOUT: Final = 60.0
POOL_SIZE: Final = 64
KEEPALIVE_EXPIRY: Final = 5.0  # an idle connection older than this is not reused (httpcore's)
READ_CHUNK: Final = 65536
MAX_HEAD: Final = 100 * 1024  # the upstream's response head (httpcore's bound)
# RFC 9110 §7.6.1, plus what is only ever this hop's business.
HOP_BY_HOP: Final = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
})  # fmt: skip
# Never forwarded from the client: its own (placeholder) auth, and what is set here.
CLIENT_DROPPED: Final = frozenset(
    {"x-api-key", "authorization", "cookie", "host", "content-length", "accept-encoding"}
)

_NEVER_SENT: Final = HOP_BY_HOP | CLIENT_DROPPED

Headers = list[tuple[str, str]]


class UpstreamUnreachable(HiveError):
    code = "upstream_unreachable"


class UpstreamBroke(Exception):
    """The upstream broke off an answer already under way."""


def _connection_named(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Headers a ``connection`` header names as this hop's own."""
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named.update(part.strip().lower() for part in value.split(","))
    return named


def request_headers(client: Iterable[tuple[str, str]], credential: Credential) -> Headers:
    """What goes upstream: the client's headers without hop-by-hop or auth ones, the
    credential's, ``identity`` encoding, and for a token the OAuth beta."""
    client = list(client)
    named = _connection_named(client)
    dropped = _NEVER_SENT | named if named else _NEVER_SENT
    out: Headers = []
    betas: list[str] = []
    for name, value in client:
        lower = name.lower()
        if lower in dropped:
            continue
        if lower == "anthropic-beta":
            betas += [b.strip() for b in value.split(",") if b.strip()]
            continue
        out.append((lower, value))
    if credential.kind == "oauth_token" and OAUTH_BETA not in betas:
        betas.append(OAUTH_BETA)
    if betas:
        out.append(("anthropic-beta", ",".join(betas)))
    out += credential.headers()
    out.append(("accept-encoding", "identity"))
    return out


def response_headers(upstream: Iterable[tuple[str, str]]) -> Headers:
    """What goes back to the client: everything but hop-by-hop headers."""
    upstream = list(upstream)
    named = _connection_named(upstream)
    dropped = HOP_BY_HOP | named if named else HOP_BY_HOP
    return [(name, value) for name, value in upstream if name.lower() not in dropped]


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.idle_since = 0.0
        self.reused = False
        self.received = 0  # bytes of the current answer read so far

    def event_now(self) -> h11.Event | type[h11.NEED_DATA]:
        """The next event from what has been read (no read)."""
        try:
            event = self.h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise UpstreamBroke(f"a broken answer ({exc})") from None
        assert event is not h11.PAUSED  # an answer is read only to its end
        return event  # type: ignore[return-value]

    async def next_event(self, stall: float) -> h11.Event:
        while True:
            event = self.event_now()
            if event is not h11.NEED_DATA:
                assert isinstance(event, h11.Event)
                return event
            try:
                async with asyncio.timeout(stall):
                    data = await self.reader.read(READ_CHUNK)
            except TimeoutError:
                raise UpstreamBroke("the upstream stalled") from None
            except OSError as exc:
                raise UpstreamBroke(f"the connection failed: {exc}") from None
            if not data and self.h11.their_state is h11.SEND_RESPONSE:
                raise UpstreamBroke("the upstream hung up without an answer")
            self.received += len(data)
            self.h11.receive_data(data)

    def close(self) -> None:
        self.writer.close()


class UpstreamResponse:
    """An answer whose head is in and whose body is read with :meth:`aiter_raw` (as it
    comes, chunk framing undone); :meth:`aclose` must follow."""

    def __init__(self, pool: Upstream, conn: _Conn, head: h11.Response) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn
        self.status_code = head.status_code
        self.reason_phrase = head.reason.decode("latin-1")
        self.ended = False  # the whole body has been read
        raw = head.headers
        self.headers: Headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        conn = self._conn
        assert conn is not None
        event: h11.Event | type[h11.NEED_DATA]
        while True:
            event = await conn.next_event(STALL_TIMEOUT)
            if isinstance(event, h11.Data):
                chunk = bytes(event.data)
                # What else arrived in the same read goes as one chunk: one write fewer.
                while True:
                    more = conn.event_now()
                    if not isinstance(more, h11.Data):
                        break
                    chunk += more.data
                if isinstance(more, h11.EndOfMessage):
                    self._release()  # known before the last chunk goes: one write ends it
                if chunk:
                    yield chunk
                if more is h11.NEED_DATA:
                    continue
                event = more
            if isinstance(event, h11.EndOfMessage):
                self._release()
                return
            if isinstance(event, h11.ConnectionClosed):
                raise UpstreamBroke("the upstream hung up mid-answer")

    def _release(self) -> None:
        self.ended = True
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._put(conn)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # its answer not read to the end: the connection cannot go on


class Upstream:
    """The upstream at ``base_url`` (``http(s)://host[:port][/path]``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise HiveError(f"the upstream URL must be http(s)://host[:port]: {base_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        default = url.port is None or url.port == (443 if url.scheme == "https" else 80)
        netloc = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = netloc if default else f"{netloc}:{self._port}"
        self._prefix = url.path
        self._ssl: ssl.SSLContext | None = None
        if url.scheme == "https":
            # httpx's own trust settings (certifi, SSL_CERT_FILE), HTTP/1.1 by ALPN.
            self._ssl = httpx.create_ssl_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        self._idle: list[_Conn] = []

    async def open(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> UpstreamResponse:
        """The upstream's response to one request, its head read and its body not yet:
        the caller reads it with ``aiter_raw`` and must ``aclose`` it."""
        head = [("host", self._authority), ("content-length", str(len(body))), *headers]
        request = h11.Request(method=method, target=self._prefix + target, headers=head)
        try:
            async with asyncio.timeout(FIRST_BYTE_TIMEOUT):
                while True:
                    try:
                        conn = await self._get()
                    except OSError as exc:
                        raise UpstreamUnreachable(f"the upstream is unreachable: {exc}") from exc
                    try:
                        return await self._exchange(conn, request, body)
                    except (UpstreamBroke, OSError) as exc:
                        conn.close()
                        # A kept-alive connection the upstream had just let go (nothing
                        # of an answer came): once more, on a new one.
                        if not (conn.reused and conn.received == 0):
                            raise UpstreamUnreachable(
                                f"the upstream is unreachable: {exc}"
                            ) from exc
                    except BaseException:  # cancelled (a hangup, the deadline): not pooled
                        conn.close()
                        raise
        except TimeoutError as exc:
            raise UpstreamUnreachable("the upstream sent nothing in time") from exc

    async def _exchange(self, conn: _Conn, request: h11.Request, body: bytes) -> UpstreamResponse:
        # Head and body in one write: the upstream wakes once for the request.
        data = conn.h11.send(request) or b""
        data += (conn.h11.send(h11.Data(data=body)) or b"") if body else b""
        conn.writer.write(data + (conn.h11.send(h11.EndOfMessage()) or b""))
        if conn.writer.transport.get_write_buffer_size():
            async with asyncio.timeout(WRITE_TIMEOUT):
                await conn.writer.drain()
        while True:
            event = await conn.next_event(FIRST_BYTE_TIMEOUT)
            if isinstance(event, h11.Response):
                return UpstreamResponse(self, conn, event)
            if isinstance(event, h11.ConnectionClosed):
                raise UpstreamBroke("the upstream hung up without an answer")
            # An InformationalResponse (1xx) is this hop's: wait for the real one.

    async def _get(self) -> _Conn:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            stale = conn.reader.at_eof() or conn.writer.transport.is_closing()
            if not stale and now - conn.idle_since < KEEPALIVE_EXPIRY:
                conn.reused = True
                return conn
            conn.close()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl, limit=READ_CHUNK
                )
        except TimeoutError:
            raise OSError("connecting timed out") from None
        return _Conn(reader, writer)

    def _put(self, conn: _Conn) -> None:
        done = conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
        if done and len(self._idle) < POOL_SIZE:
            conn.h11.start_next_cycle()
            conn.idle_since = time.monotonic()
            conn.reused = False
            conn.received = 0
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
