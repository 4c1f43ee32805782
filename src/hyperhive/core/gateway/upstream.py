"""Forwarding one request to the upstream Messages API, with the hive's credential.

One shared :class:`httpx.AsyncClient` (its connection pool serves every agent). A
stream has no overall deadline (a long answer is a long answer) but connecting and
the first byte are bounded, and so is a stall between two chunks. The upstream is
asked for ``identity`` encoding so the bytes passing through can be metered as they
are. Headers: hop-by-hop ones are dropped both ways, and whatever the client sent to
authenticate is dropped before the credential's own headers go on.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from typing import Final

import httpx

from hyperhive.core.gateway.seams import OAUTH_BETA, Credential
from hyperhive.errors import HiveError

CONNECT_TIMEOUT: Final = 10.0
# The API answers a non-streamed request only when it is done: minutes, for a long one.
FIRST_BYTE_TIMEOUT: Final = 600.0
STALL_TIMEOUT: Final = 600.0  # between two chunks (a stream sends pings far more often)
WRITE_TIMEOUT: Final = 60.0
POOL_SIZE: Final = 64
# RFC 9110 §7.6.1, plus what is only ever this hop's business.
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded from the client: its own (placeholder) auth, and what httpx sets itself.
CLIENT_DROPPED: Final = frozenset(
    {"x-api-key", "authorization", "cookie", "host", "content-length", "accept-encoding"}
)

Headers = list[tuple[str, str]]


class UpstreamUnreachable(HiveError):
    code = "upstream_unreachable"


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
    dropped = HOP_BY_HOP | CLIENT_DROPPED | _connection_named(client)
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
    dropped = HOP_BY_HOP | _connection_named(upstream)
    return [(name, value) for name, value in upstream if name.lower() not in dropped]


class Upstream:
    """The upstream at ``base_url`` (``http(s)://host[:port][/path]``).

    Requests go straight to httpx's transport (its connection pool): the client layer
    above it (redirects, cookies, auth flows, env proxies) is nothing a relay wants,
    and costs a good part of the gateway's added latency."""

    def __init__(self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeouts = httpx.Timeout(
            connect=CONNECT_TIMEOUT, read=STALL_TIMEOUT, write=WRITE_TIMEOUT, pool=None
        ).as_dict()
        if transport is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=POOL_SIZE)
            # A request goes out as two writes (head, body): without NODELAY the body
            # may wait for the head's delayed ACK, 40 ms on Linux.
            nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=nodelay)
        self._transport = transport

    async def open(self, method: str, target: str, headers: Headers, body: bytes) -> httpx.Response:
        """The upstream's response to one request, its head read and its body not yet:
        the caller reads it with ``aiter_raw`` and must ``aclose`` it."""
        request = httpx.Request(
            method,
            self.base_url + target,
            headers=headers,
            content=body,
            extensions={"timeout": self._timeouts},
        )
        try:
            async with asyncio.timeout(FIRST_BYTE_TIMEOUT):
                response = await self._transport.handle_async_request(request)
        except TimeoutError as exc:
            raise UpstreamUnreachable("the upstream sent nothing in time") from exc
        except httpx.HTTPError as exc:
            # The exception's text names the cause, never a header.
            raise UpstreamUnreachable(f"the upstream is unreachable: {exc}") from exc
        response.request = request
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()
