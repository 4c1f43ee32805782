"""One agent's live web page (DESIGN §6), built only on :class:`AgentControl`.

``create_agent_app(control, check=...)`` gives a Starlette app behind the agent's page key:
the page, its static files, a status and history API, an SSE tail, and the operator's
actions (prompt, cancel, login). The harness serves it with
:class:`hyperhive.web.server.WebServer`, which ends the SSE streams on shutdown.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hyperhive.agent.control import AgentControl, CommandResult
from hyperhive.errors import ClientError
from hyperhive.tokens import KeyCheck
from hyperhive.web.bodies import BadInput, content_kind, json_object, read_text
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
from hyperhive.web.static_files import CSS, JS, static_route, static_text

MAX_FIELD_BYTES = 256 * 1024
MAX_BODY_BYTES = 4 * MAX_FIELD_BYTES  # JSON escaping can quadruple a field on the wire
BACKFILL_LIMIT = 500
HISTORY_MAX_LIMIT = 1000
STATIC_TYPES = {"hive.css": CSS, "agent.js": JS}

logger = logging.getLogger(__name__)


def create_agent_app(
    control: AgentControl,
    *,
    check: KeyCheck,
    loopback: bool = True,
    heartbeat: float = HEARTBEAT_S,
    sessions: SessionStore | None = None,
) -> Starlette:
    """The agent page app. ``check`` recognises the agent's page key (the harness holds
    only its digest); ``loopback``: it listens on loopback (so Host must name loopback)."""
    csrf = new_csrf_token()
    hub = StreamHub()

    async def page(request: Request) -> Response:
        name = html.escape(control.status().name)
        body = static_text("agent.html").replace("{{name}}", name).replace("{{csrf}}", csrf)
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP}
        headers["Cache-Control"] = "no-store"
        return HTMLResponse(body, headers=headers)

    async def status(request: Request) -> Response:
        return JSONResponse(status_wire(control.status()), headers={"Cache-Control": "no-store"})

    async def history(request: Request) -> Response:
        try:
            after = _int_param(request.query_params.get("after"), "after", 0, None)
            limit = _int_param(request.query_params.get("limit"), "limit", 1, HISTORY_MAX_LIMIT)
        except BadInput as exc:
            return _answer(False, str(exc), 400)
        events = control.history(after, limit if limit is not None else BACKFILL_LIMIT)
        return JSONResponse([event.to_wire() for event in events])

    async def events(request: Request) -> Response:
        try:
            after = _int_param(request.headers.get("last-event-id"), "Last-Event-ID", 0, None)
            if after is None:
                after = _int_param(request.query_params.get("after"), "after", 0, None)
        except BadInput as exc:
            return _answer(False, str(exc), 400)
        if after is None:
            # A fresh page: start just before the newest events, so the tail is backfilled
            # and subscribe() always gets an explicit position.
            recent = control.history(None, BACKFILL_LIMIT)
            after = recent[0].id - 1 if recent else 0
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        stream = event_stream(control, after, hub, heartbeat)
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    async def prompt(request: Request) -> Response:
        return await _act(request, csrf, "text", lambda text: control.prompt(text))

    async def cancel(request: Request) -> Response:
        return await _act(request, csrf, None, lambda _: control.cancel())

    async def login_key(request: Request) -> Response:
        return await _act(request, csrf, "key", control.save_api_key, secret=True)

    async def setup_start(request: Request) -> Response:
        return await _act(request, csrf, None, lambda _: control.start_setup_token())

    async def setup_finish(request: Request) -> Response:
        return await _act(request, csrf, "code", control.finish_setup_token, secret=True)

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/static/{name}", static_route(STATIC_TYPES), methods=["GET"]),
        Route("/api/status", status, methods=["GET"]),
        Route("/api/history", history, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/api/prompt", prompt, methods=["POST"]),
        Route("/api/cancel", cancel, methods=["POST"]),
        Route("/api/login/key", login_key, methods=["POST"]),
        Route("/api/login/setup-token/start", setup_start, methods=["POST"]),
        Route("/api/login/setup-token/finish", setup_finish, methods=["POST"]),
    ]
    gate = Middleware(
        TokenGate,
        check=check,
        sessions=sessions or SessionStore(),
        cookie=page_cookie(control.status().name),
        loopback=loopback,
        label="page key",
    )
    app = Starlette(routes=routes, middleware=[gate])
    app.state.streams = hub
    app.state.csrf = csrf
    return app


async def _act(
    request: Request,
    csrf: str,
    field: str | None,
    call: Callable[[str], Awaitable[CommandResult]],
    *,
    secret: bool = False,
) -> Response:
    """Check CSRF and input, then make one control call and answer ``{ok, message}``."""
    refusal = csrf_refusal(request, csrf)
    if refusal is not None:
        return _answer(False, refusal, 403)
    value = ""
    try:
        if field is not None:
            value = _field(await _read_fields(request), field, strip=secret)
    except BadInput as exc:
        return _answer(False, str(exc), 400)
    try:
        result = await call(value)
    except ClientError as exc:
        return _answer(False, _redact(exc.message, value if secret else None), 400)
    except Exception as exc:  # noqa: BLE001  (the message may hold the secret: log the type)
        logger.error("%s failed: %s", request.url.path, type(exc).__name__)
        return _answer(False, "internal error (see the harness log)", 500)
    message = _redact(result.message, value if secret else None)
    return _answer(result.ok, message, 200)


async def _read_fields(request: Request) -> dict[str, Any]:
    body = await read_text(request, MAX_BODY_BYTES)
    kind = content_kind(request)
    if kind == "application/json":
        return json_object(body)
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body, keep_blank_values=True))
    raise BadInput("send application/json or application/x-www-form-urlencoded")


def _field(fields: dict[str, Any], name: str, *, strip: bool) -> str:
    if name not in fields:
        raise BadInput(f"missing field {name!r}")
    value = fields[name]
    if not isinstance(value, str):
        raise BadInput(f"field {name!r} must be a string")
    if strip:
        value = value.strip()  # pasted keys and codes often carry a newline
    if not value.strip():
        raise BadInput(f"field {name!r} is empty")
    if len(value.encode("utf-8")) > MAX_FIELD_BYTES:
        raise BadInput(f"field {name!r} is over {MAX_FIELD_BYTES // 1024} KiB")
    if "\x00" in value:
        raise BadInput(f"field {name!r} contains a NUL character")
    return value


def _int_param(raw: str | None, name: str, low: int, high: int | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise BadInput(f"{name} must be a non-negative integer")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadInput(f"{name} must be {bound}")
    return value


def _redact(message: str, secret: str | None) -> str:
    # The harness promises never to echo a secret; this makes sure the web layer doesn't.
    if secret:
        return message.replace(secret, "[redacted]")
    return message


def _answer(ok: bool, message: str, status: int) -> JSONResponse:
    return JSONResponse({"ok": ok, "message": message}, status_code=status)
