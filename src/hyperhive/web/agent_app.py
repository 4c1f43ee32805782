"""One agent's live web page (DESIGN §6), built only on :class:`AgentControl`.

``create_agent_app(control, check=...)`` gives a Starlette app behind the agent's page key:
the page, its static files, a status and history API, an SSE tail, and the operator's
actions (prompt, cancel, login). The harness serves it with
:class:`hyperhive.web.server.WebServer`, which ends the SSE streams on shutdown.

``create_agent_app(control, behind_core=True)`` is the same data endpoints without a page,
a gate or a CSRF check of its own, for the harness's ``web.sock``: only the core (whose
front door, :mod:`.front_door`, does both) and the agent itself can connect to it.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hyperhive.agent.control import AgentControl, CommandResult
from hyperhive.errors import ClientError
from hyperhive.tokens import KeyCheck
from hyperhive.web.request_args import bounded_text, int_param, read_fields
from hyperhive.web.security import (
    PAGE_CSP,
    SECURITY_HEADERS,
    TokenGate,
    csrf_refusal,
    new_csrf_token,
    page_cookie,
)
from hyperhive.web.sessions import SessionStore
from hyperhive.web.sse import HEARTBEAT_S, StreamHub, event_stream, status_wire
from hyperhive.web.static_files import AGENT_STATIC, static_route, static_text

MAX_FIELD_BYTES: Final = 256 * 1024
MAX_BODY_BYTES: Final = 4 * MAX_FIELD_BYTES  # JSON escaping can quadruple a field on the wire
BACKFILL_LIMIT: Final = 500
HISTORY_MAX_LIMIT: Final = 1000
NO_STORE: Final = {"Cache-Control": "no-store"}

Call = Callable[[AgentControl, str], Awaitable[CommandResult]]
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PageState:
    """What the page's endpoints depend on, kept on ``app.state.page``."""

    control: AgentControl
    csrf: str | None  # None: behind the core, whose front door checks its own
    hub: StreamHub
    heartbeat: float


def _state(request: Request) -> PageState:
    found = request.app.state.page
    if not isinstance(found, PageState):
        raise TypeError("not an agent page app")  # a wiring bug, not a request's fault
    return found


async def page(request: Request) -> Response:
    state = _state(request)
    name = html.escape(state.control.status().name)
    body = static_text("agent.html").replace("{{name}}", name)
    # No dashboard address: on its own port the page finds the dashboard by itself.
    body = body.replace("{{csrf}}", state.csrf or "").replace("{{dashboard}}", "")
    headers = {**SECURITY_HEADERS, **NO_STORE, "Content-Security-Policy": PAGE_CSP}
    return HTMLResponse(body, headers=headers)


async def status(request: Request) -> Response:
    return JSONResponse(status_wire(_state(request).control.status()), headers=NO_STORE)


async def history(request: Request) -> Response:
    control = _state(request).control
    try:
        after = int_param(request.query_params.get("after"), "after", 0)
        limit = int_param(request.query_params.get("limit"), "limit", 1, HISTORY_MAX_LIMIT)
    except ClientError as exc:
        return _answer(False, exc.message, 400)
    events = control.history(after, limit if limit is not None else BACKFILL_LIMIT)
    return JSONResponse([event.to_wire() for event in events])


async def events(request: Request) -> Response:
    state = _state(request)
    try:
        after = int_param(request.headers.get("last-event-id"), "Last-Event-ID", 0)
        if after is None:
            after = int_param(request.query_params.get("after"), "after", 0)
    except ClientError as exc:
        return _answer(False, exc.message, 400)
    if after is None:
        # A fresh page: start just before the newest events, so the tail is backfilled
        # and subscribe() always gets an explicit position.
        recent = state.control.history(None, BACKFILL_LIMIT)
        after = recent[0].id - 1 if recent else 0
    headers = {**NO_STORE, "X-Accel-Buffering": "no"}
    stream = event_stream(state.control, after, state.hub, state.heartbeat)
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


async def prompt(request: Request) -> Response:
    return await _act(request, "text", lambda control, text: control.prompt(text))


async def cancel(request: Request) -> Response:
    return await _act(request, None, lambda control, _: control.cancel())


async def login_key(request: Request) -> Response:
    return await _act(request, "key", lambda c, key: c.save_api_key(key), secret=True)


async def setup_start(request: Request) -> Response:
    return await _act(request, None, lambda control, _: control.start_setup_token())


async def setup_finish(request: Request) -> Response:
    return await _act(request, "code", lambda c, code: c.finish_setup_token(code), secret=True)


DATA_ROUTES: Final = (
    Route("/api/status", status, methods=["GET"]),
    Route("/api/history", history, methods=["GET"]),
    Route("/events", events, methods=["GET"]),
    Route("/api/prompt", prompt, methods=["POST"]),
    Route("/api/cancel", cancel, methods=["POST"]),
    Route("/api/login/key", login_key, methods=["POST"]),
    Route("/api/login/setup-token/start", setup_start, methods=["POST"]),
    Route("/api/login/setup-token/finish", setup_finish, methods=["POST"]),
)
ROUTES: Final = (
    Route("/", page, methods=["GET"]),
    Route("/static/{name}", static_route(AGENT_STATIC), methods=["GET"]),
    *DATA_ROUTES,
)


def create_agent_app(
    control: AgentControl,
    *,
    check: KeyCheck | None = None,
    loopback: bool = True,
    heartbeat: float = HEARTBEAT_S,
    sessions: SessionStore | None = None,
    behind_core: bool = False,
) -> Starlette:
    """The agent page app. ``check`` recognises the agent's page key (the harness holds
    only its digest); ``loopback``: it listens on loopback (so Host must name loopback);
    ``behind_core``: the data endpoints alone, ungated, for the core's front door."""
    if behind_core:
        return _app(PageState(control, None, StreamHub(), heartbeat), DATA_ROUTES, [])
    if check is None:
        raise TypeError("an agent page app needs its page key's check")  # a wiring bug
    state = PageState(control, new_csrf_token(), StreamHub(), heartbeat)
    gate = Middleware(
        TokenGate,
        check=check,
        sessions=sessions or SessionStore(),
        cookie=page_cookie(control.status().name),
        loopback=loopback,
        label="page key",
    )
    return _app(state, ROUTES, [gate])


def _app(state: PageState, routes: tuple[Route, ...], middleware: list[Middleware]) -> Starlette:
    app = Starlette(routes=list(routes), middleware=middleware)
    app.state.page = state
    app.state.streams = state.hub
    app.state.csrf = state.csrf
    return app


async def _act(
    request: Request, field: str | None, call: Call, *, secret: bool = False
) -> Response:
    """Check CSRF and input, then make one control call and answer ``{ok, message}``."""
    state = _state(request)
    refusal = None if state.csrf is None else csrf_refusal(request, state.csrf)
    if refusal is not None:
        return _answer(False, refusal, 403)
    value = ""
    try:
        if field is not None:
            fields = await read_fields(request, MAX_BODY_BYTES)
            value = bounded_text(fields, field, MAX_FIELD_BYTES, strip=secret)
        result = await call(state.control, value)
    except ClientError as exc:
        return _answer(False, _redact(exc.message, value if secret else None), 400)
    except Exception as exc:  # noqa: BLE001  (the message may hold the secret: log the type)
        logger.error("%s failed: %s", request.url.path, type(exc).__name__)
        return _answer(False, "internal error (see the harness log)", 500)
    message = _redact(result.message, value if secret else None)
    return _answer(result.ok, message, 200)


def _redact(message: str, secret: str | None) -> str:
    # The harness promises never to echo a secret; this makes sure the web layer doesn't.
    if secret:
        return message.replace(secret, "[redacted]")
    return message


def _answer(ok: bool, message: str, status: int) -> JSONResponse:
    return JSONResponse({"ok": ok, "message": message}, status_code=status)
