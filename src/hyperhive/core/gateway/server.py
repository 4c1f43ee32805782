"""The Messages API on one agent's ``api.sock``: whoever connects is that agent.

Per request: the route (only ``POST /v1/messages`` and ``/v1/messages/count_tokens``
go anywhere; nothing else is sent out with the hive's credential), then metering
(a spent budget answers 402), the credential (none: 401), a slot from admission,
and the upstream's answer relayed chunk by chunk as it arrives. A 429/529 that
comes before any byte went to the client sets the shared hold-off and the request
is sent again, within the retry window; after it, or for any other status, the
upstream's answer reaches the client unchanged. A 2xx body is metered as it
passes. The client hanging up at any point ends the request, upstream included.

Never logged: a request's body, and any header (the credential is one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hyperhive.core.connections import ConnectionBudget
from hyperhive.core.gateway.admission import Admission
from hyperhive.core.gateway.http_conn import (
    ClientGone,
    HttpConnection,
    HttpLimits,
    Request,
    RequestFailed,
    error_json,
    watched_server,
)
from hyperhive.core.gateway.seams import CredentialSource, Metering
from hyperhive.core.gateway.upstream import (
    Upstream,
    UpstreamBroke,
    UpstreamResponse,
    UpstreamUnreachable,
    request_headers,
    response_headers,
)
from hyperhive.core.gateway.usage import UsageReader
from hyperhive.core.server import _bind_private, _is_live, finish
from hyperhive.errors import HiveError

log = logging.getLogger(__name__)
ROUTES: Final = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
THROTTLED: Final = frozenset({429, 529})


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    http: HttpLimits
    connections: int  # per socket
    retry_for: float  # seconds a request is retried through 429/529 answers


class Forwarder:
    """The pipeline every agent's requests go through (one per hive: admission and the
    upstream's connection pool are shared)."""

    def __init__(
        self,
        upstream: Upstream,
        admission: Admission,
        metering: Metering,
        credentials: CredentialSource,
        *,
        retry_for: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.admission = admission
        self._metering = metering
        self._credentials = credentials
        self._retry_for = retry_for
        self._clock = clock

    async def handle(self, agent: str, request: Request, http: HttpConnection) -> None:
        if request.method != "POST" or request.path not in ROUTES:
            body = error_json("not_found_error", f"hyperhive: no route {request.path}")
            # A HEAD answer has no body (h11 refuses to send one; the CLI sends HEADs).
            await http.answer(404, b"" if request.method == "HEAD" else body)
            return
        refusal = self._metering.refusal(agent)
        if refusal is not None:
            text = refusal if refusal.startswith("hyperhive:") else f"hyperhive: {refusal}"
            await http.answer(402, error_json("billing_error", text))
            return
        credential = self._credentials.for_agent(agent)
        if credential is None:
            message = f"hyperhive: no credential in the hive for {agent}: log in on its page"
            await http.answer(401, error_json("authentication_error", message))
            return
        headers = request_headers(request.headers, credential)
        deadline = self._clock() + self._retry_for
        while True:
            async with self.admission.slot(agent):
                try:
                    response = await self.upstream.open(
                        request.method, request.target, headers, request.body
                    )
                except UpstreamUnreachable as exc:
                    log.warning("gateway: %s for %s", exc.message, agent)
                    await http.answer(502, error_json("api_error", f"hyperhive: {exc.message}"))
                    return
                if response.status_code in THROTTLED:
                    hold = self.admission.throttled(response.header("retry-after"))
                    if self._clock() + hold < deadline:
                        log.info(
                            "gateway: upstream %d for %s; all hold off %.1f s",
                            response.status_code, agent, hold,
                        )  # fmt: skip
                        await response.aclose()
                        continue
                else:
                    self.admission.succeeded()
                await self._relay(agent, response, http)
                return

    async def _relay(self, agent: str, response: UpstreamResponse, http: HttpConnection) -> None:
        """The upstream's answer to the client as it comes; a 2xx one metered."""
        meter = None
        if 200 <= response.status_code < 300:
            streaming = (response.header("content-type") or "").startswith("text/event-stream")
            meter = UsageReader(streaming)
        try:
            headers = response_headers(response.headers)
            await http.respond(response.status_code, headers, response.reason_phrase)
            ended = False
            try:
                async for chunk in response.aiter_raw():
                    ended = response.ended  # then this chunk and the end: one write
                    try:
                        await http.send(chunk, end=ended)
                    finally:
                        # Read after it went: parsing the usage is not the client's wait.
                        if meter is not None:
                            meter.feed(chunk)
            except UpstreamBroke as exc:
                # Too late for a status: the client sees the answer cut short.
                log.warning("gateway: the upstream broke off an answer for %s: %s", agent, exc)
                raise ClientGone("the upstream broke off") from exc
            if not ended:
                await http.end()
        finally:
            await response.aclose()
            # Also for an answer cut short: what it reported was used (and billed).
            used = meter.result() if meter is not None else None
            if used is not None:
                self._metering.record(agent, used[0], used[1])


class GatewayServer:
    """One agent's ``api.sock``."""

    def __init__(
        self,
        path: Path,
        agent: str,
        forwarder: Forwarder,
        limits: GatewayLimits,
        budget: ConnectionBudget | None = None,
        *,
        owner: int | None = None,
    ) -> None:
        self.path = path
        self.agent = agent
        self._forwarder = forwarder
        self._limits = limits
        self._budget = budget
        self._owner = owner
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], HttpConnection] = {}
        self._busy: set[asyncio.Task[None]] = set()  # answering a request now
        self._closing = False

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Listen; the socket's directory (the agent's, made with its ``mcp.sock``)
        must exist. The socket is 0600 from birth, then the agent's uid's if it has one."""
        if self.path.exists() or self.path.is_symlink():
            if await _is_live(self.path):
                raise HiveError(f"{self.path} is in use: is another hive-c0re running?")
            self.path.unlink()
        backlog = self._limits.connections
        sock = _bind_private(self.path, backlog)
        loop = asyncio.get_running_loop()
        factory = watched_server(self._serve)
        self._server = await loop.create_unix_server(factory, sock=sock, backlog=backlog)
        if self._owner is not None:
            os.chown(self.path, self._owner, self._owner)

    async def close(self, grace: float) -> None:
        """Stop accepting; answers in flight get ``grace`` seconds, idle connections none."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        idle = [t for t in self._connections if t not in self._busy]
        for task in idle:
            task.cancel()
        await finish(list(self._connections), grace)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _admit(self) -> bool:
        if self._closing or len(self._connections) >= self._limits.connections:
            return False
        return self._budget is None or self._budget.admit(host=False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        http = HttpConnection(reader, writer, self._limits.http)
        if not self._admit():
            with contextlib.suppress(ClientGone):
                message = f"hyperhive: too many connections to {self.path.name}; retry later"
                await http.answer(429, error_json("rate_limit_error", message), close=True)
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = http
        try:
            await self._converse(task, http)
        except (ClientGone, ConnectionError):
            pass
        except Exception:  # a bug in one connection must not take the core down
            log.exception("gateway: a request of %s failed", self.agent)
        finally:
            self._connections.pop(task, None)
            self._busy.discard(task)
            if self._budget is not None:
                self._budget.release(host=False)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _converse(self, task: asyncio.Task[None], http: HttpConnection) -> None:
        while not self._closing:
            try:
                request = await http.next_request()
            except RequestFailed as exc:
                if exc.status is not None:
                    await http.answer(
                        exc.status, error_json(exc.error_type, exc.message), close=True
                    )
                return
            if request is None:
                return
            self._busy.add(task)
            try:
                if not await self._answer(request, http):
                    return
            finally:
                self._busy.discard(task)
            if not http.reusable:
                return
            http.next_cycle()

    async def _answer(self, request: Request, http: HttpConnection) -> bool:
        """Answer one request, cancelled if the client hangs up; False if it went.

        In this task, with the transport's own EOF/close callback as the watcher: a
        task of its own per request to read for a hangup cost a good part of the
        gateway's added latency."""
        task = asyncio.current_task()
        assert task is not None
        went = False

        def gone() -> None:
            nonlocal went
            went = True
            task.cancel()

        if not http.watch(gone):
            return False
        try:
            await self._forwarder.handle(self.agent, request, http)
        except asyncio.CancelledError:
            if not went:
                raise  # the server closing
            task.uncancel()
            return False
        finally:
            http.watch(None)
        return True  # ClientGone and bugs go to _serve
