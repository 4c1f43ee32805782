"""One front door for every agent page (DESIGN §10): ``/agents/<name>/`` on the dashboard.

The page itself (``agent.html`` and its scripts) is served by the core from the package:
the agent controls its harness, and any document or script it served at the hive's origin
would run with the operator's session. Only the page's data endpoints (:data:`RELAYED`) are
relayed to the harness's ``web.sock``, behind the dashboard's own token gate, sessions and
CSRF token; the harness's answers are hostile input (:mod:`.upstream`): only the status and
an expected content type survive, and the body is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hyperhive.core.operator_desk import OperatorDesk
from hyperhive.errors import BadRequest, HiveError, UnknownAgent
from hyperhive.web.agent_app import MAX_BODY_BYTES
from hyperhive.web.answers import answer, refused
from hyperhive.web.dashboard_state import dashboard_of
from hyperhive.web.request_args import media_type, read_body
from hyperhive.web.security import PAGE_CSP, RELAY_CSP, SECURITY_HEADERS, csrf_refusal
from hyperhive.web.sse import StreamHub
from hyperhive.web.static_files import AGENT_STATIC, static_text
from hyperhive.web.upstream import FIRST_BYTE_S, Answer, UpstreamError, exchange

JSON: Final = "application/json"
SSE: Final = "text/event-stream"
WEB_SOCKET: Final = "web.sock"
# (method, path below /agents/<name>/) → the content type its answer must have; the
# query parameters each may pass on. Nothing else reaches a harness.
RELAYED: Final[Mapping[tuple[str, str], tuple[str, tuple[str, ...]]]] = {
    ("GET", "api/status"): (JSON, ()),
    ("GET", "api/history"): (JSON, ("after", "limit")),
    ("GET", "events"): (SSE, ("after",)),
    ("POST", "api/prompt"): (JSON, ()),
    ("POST", "api/cancel"): (JSON, ()),
}
# Never relayed: the login endpoints are the core's own (.page_login), so no key or token
# ever reaches a harness.
FORWARDED_HEADERS: Final = ("content-type", "last-event-id", "accept")
MAX_ANSWER_BYTES: Final = 8 * 1024 * 1024
MAX_HEADER_VALUE: Final = 1024
CONNECTIONS_PER_AGENT: Final = 16
KNOWN_FOR_S: Final = 5.0
RELAY_HEADERS: Final = {
    **SECURITY_HEADERS,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": RELAY_CSP,
}


@dataclass
class FrontDoor:
    """Where each agent's harness listens, and what the relays to it hold open."""

    desk: OperatorDesk
    cap: int = CONNECTIONS_PER_AGENT
    first_byte: float = FIRST_BYTE_S  # and the whole of a non-streaming answer
    clock: Callable[[], float] = time.monotonic
    _open: dict[str, int] = field(default_factory=dict)
    _known: dict[str, tuple[float, Path]] = field(default_factory=dict)
    _streams: set[Answer] = field(default_factory=set)

    async def socket_dir(self, name: str) -> Path:
        """``name``'s socket directory (the core's; the agent owns only what is in it);
        :class:`UnknownAgent` when no such agent is registered."""
        now = self.clock()
        known = self._known.get(name)
        if known is not None and known[0] > now:
            return known[1]
        rows = await self.desk.call("agents", name=name)
        directory = Path(rows[0]["socket"]).parent
        self._known[name] = (now + KNOWN_FOR_S, directory)
        return directory

    def take(self, name: str) -> bool:
        if self._open.get(name, 0) >= self.cap:
            return False
        self._open[name] = self._open.get(name, 0) + 1
        return True

    def give_back(self, name: str) -> None:
        left = self._open.get(name, 0) - 1
        if left > 0:
            self._open[name] = left
        else:
            self._open.pop(name, None)

    def held(self, name: str) -> int:
        return self._open.get(name, 0)

    def close(self) -> None:
        """Hang up every open stream (the server is stopping)."""
        for stream in list(self._streams):
            stream.close()


def attach(app: Starlette, desk: OperatorDesk, hub: StreamHub) -> FrontDoor:
    """Give the dashboard ``app`` its front door; the relayed streams end when ``hub``
    (the app's own streams) closes."""
    door = FrontDoor(desk)
    hub.on_close(door.close)
    app.state.front_door = door
    return door


def _door(request: Request) -> FrontDoor:
    found = getattr(request.app.state, "front_door", None)
    if not isinstance(found, FrontDoor):
        raise TypeError("no front door on this app")  # a wiring bug, not a request's fault
    return found


async def to_page(request: Request) -> Response:
    # The page's relative URLs (static/…, api/…) need the trailing slash.
    return RedirectResponse(f"{request.path_params['name']}/", status_code=308)


async def _unknown(request: Request) -> Response | None:
    """The answer for a name that is no registered agent, else None."""
    try:
        await _door(request).socket_dir(request.path_params["name"])
    except UnknownAgent as exc:
        return answer(False, exc.message, 404, exc.code)
    except HiveError as exc:
        return refused(exc)
    return None


async def shell(request: Request) -> Response:
    if (missing := await _unknown(request)) is not None:
        return missing
    name = request.path_params["name"]
    body = static_text("agent.html").replace("{{name}}", name)  # a registered name: plain
    body = body.replace("{{csrf}}", dashboard_of(request).csrf).replace("{{dashboard}}", "../../")
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP}
    return HTMLResponse(body, headers=headers)


async def static(request: Request) -> Response:
    if (missing := await _unknown(request)) is not None:
        return missing
    file = request.path_params["file"]
    if file not in AGENT_STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return Response(static_text(file), media_type=AGENT_STATIC[file], headers=headers)


async def relay(request: Request) -> Response:
    name, path = request.path_params["name"], request.path_params["path"]
    found = RELAYED.get((request.method, path))
    if found is None:
        return answer(False, f"no such page endpoint: {path}", 404)
    kind, params = found
    if request.method == "POST":
        refusal = csrf_refusal(request, dashboard_of(request).csrf)
        if refusal is not None:
            return answer(False, refusal, 403)
    door = _door(request)
    try:
        directory = await door.socket_dir(name)
    except UnknownAgent as exc:
        return answer(False, exc.message, 404, exc.code)
    except HiveError as exc:
        return refused(exc)
    try:
        body = await read_body(request, MAX_BODY_BYTES) if request.method == "POST" else b""
    except BadRequest as exc:
        return answer(False, exc.message, 413)
    if not door.take(name):
        return answer(False, f"too many open connections to {name}'s page", 503)
    try:
        upstream = await exchange(
            directory,
            request.method,
            _target(path, request, params),
            _headers(request),
            body,
            name=WEB_SOCKET,
            first_byte=None if kind == SSE else door.first_byte,
        )
    except UpstreamError as exc:
        door.give_back(name)
        return _not_answering(name, exc)
    except BaseException:
        door.give_back(name)
        raise
    if media_type(upstream.content_type) != kind:
        upstream.close()
        door.give_back(name)
        return answer(False, f"bad answer from {name}'s harness (not {kind})", 502)
    if kind == SSE:
        return Relay(upstream, door, name)
    try:
        async with asyncio.timeout(door.first_byte):
            data = await upstream.read_all(MAX_ANSWER_BYTES)
    except TimeoutError:
        return _not_answering(name, UpstreamError(f"no whole answer within {door.first_byte:g}s"))
    except UpstreamError as exc:
        return _not_answering(name, exc)
    finally:
        upstream.close()
        door.give_back(name)
    return Response(data, upstream.status, headers=RELAY_HEADERS, media_type=JSON)


class Relay(Response):
    """An SSE answer relayed chunk by chunk as it comes; the browser going away (or the
    server stopping) hangs up on the harness at once."""

    def __init__(self, upstream: Answer, door: FrontDoor, name: str) -> None:
        # As StreamingResponse does: no body, so no Content-Length; the stream ends at EOF.
        self.status_code, self.media_type, self.background = upstream.status, SSE, None
        self.init_headers({**RELAY_HEADERS, "X-Accel-Buffering": "no"})
        self.upstream, self.door, self.agent = upstream, door, name
        door._streams.add(upstream)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pump = asyncio.create_task(self._pump(send))
        gone = asyncio.create_task(_until_disconnect(receive))
        try:
            await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.upstream.close()
            self.door._streams.discard(self.upstream)
            self.door.give_back(self.agent)
            for task in (pump, gone):
                task.cancel()
            # Whatever they died of (a browser that went away mid-send) is over now.
            await asyncio.gather(pump, gone, return_exceptions=True)

    async def _pump(self, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        try:
            async for chunk in self.upstream.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError:
            pass  # the harness went away or hung up: end the stream; the browser reconnects
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _target(path: str, request: Request, params: tuple[str, ...]) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k in params]
    return f"/{path}?{urlencode(query)}" if query else f"/{path}"


def _headers(request: Request) -> list[tuple[str, str]]:
    """Only what the harness needs: never the browser's cookies or the operator token."""
    sent = []
    for name in FORWARDED_HEADERS:
        value = request.headers.get(name)
        if value is not None and len(value) <= MAX_HEADER_VALUE and value.isprintable():
            sent.append((name, value))
    return sent


def _not_answering(name: str, exc: UpstreamError) -> Response:
    return answer(False, f"{name}'s harness is not answering ({exc.message})", 502)


ROUTES: Final = (
    Route("/agents/{name}", to_page, methods=["GET"]),
    Route("/agents/{name}/", shell, methods=["GET"]),
    Route("/agents/{name}/static/{file}", static, methods=["GET"]),
    Route("/agents/{name}/{path:path}", relay, methods=["GET", "POST"]),
)
