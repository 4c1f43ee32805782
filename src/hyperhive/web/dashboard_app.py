"""The operator's dashboard (DESIGN §1, §4, §9): agents, approvals, questions, dead letters, flow.

``create_dashboard_app(hive, token=...)`` gives a Starlette app behind the operator token: a
server-rendered shell, its static files, JSON views under ``/api/``, the core's event bus as
SSE on ``/events``, and the operator's actions as JSON posts. Every action acts as
``operator``, exactly as the same op on ``host.sock`` would, and answers
``{ok, message, result}``; bad input is a 400 that changed nothing, a cross-site request a
403.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hyperhive.errors import ClientError, HiveError
from hyperhive.names import OPERATOR
from hyperhive.tokens import KeyCheck, check_token
from hyperhive.web.bodies import BadInput
from hyperhive.web.cross_site import CrossSiteBounce
from hyperhive.web.dashboard_api import (
    FLOW_LIMIT,
    FLOW_MAX,
    StatsReader,
    agents_view,
    approvals_view,
    dead_view,
    int_param,
    mark_waiting,
    messages_view,
    only,
    path_id,
    questions_view,
    read_json,
    rules_view,
    text_field,
    work_view,
)
from hyperhive.web.dashboard_feed import BusFeed
from hyperhive.web.security import PAGE_CSP, SECURITY_HEADERS, TokenGate, csrf_refusal
from hyperhive.web.security import new_csrf_token as new_csrf
from hyperhive.web.sessions import SessionStore
from hyperhive.web.sse import HEARTBEAT_S
from hyperhive.web.static_files import CSS, JS, static_route, static_text

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

STATIC_TYPES: Final = {
    "hive.css": CSS,
    "dashboard.css": CSS,
    "dashboard.js": JS,
    "dead_letters.js": JS,
}
AGENT_ACTIONS: Final = ("start", "stop", "restart", "destroy")
NO_STORE: Final = {"Cache-Control": "no-store"}

Action = Callable[[dict[str, Any]], Awaitable[tuple[str, Any]]]
logger = logging.getLogger(__name__)


def create_dashboard_app(
    hive: Hive,
    *,
    token: str,
    loopback: bool = True,
    heartbeat: float = HEARTBEAT_S,
    sessions: SessionStore | None = None,
) -> Starlette:
    """The dashboard app. ``token``: the operator token; ``loopback``: it listens on
    loopback (so Host must name loopback); ``sessions``: its browser sessions."""
    token = check_token(token)
    csrf = new_csrf()
    feed = BusFeed(hive.bus)
    stats = StatsReader()

    async def page(request: Request) -> Response:
        body = static_text("dashboard.html").replace("{{csrf}}", csrf)
        body = body.replace("{{host}}", html.escape(request.url.hostname or "127.0.0.1"))
        headers = {**SECURITY_HEADERS, **NO_STORE, "Content-Security-Policy": PAGE_CSP}
        return HTMLResponse(body, headers=headers)

    async def agents(request: Request) -> Response:
        view = await agents_view(hive, request.url.hostname or "127.0.0.1", stats, token)
        mark_waiting(view, hive, str(request.base_url))
        return JSONResponse(view, headers=NO_STORE)

    async def approvals(request: Request) -> Response:
        return JSONResponse(await approvals_view(hive), headers=NO_STORE)

    async def questions(request: Request) -> Response:
        return JSONResponse(questions_view(hive), headers=NO_STORE)

    async def rules(request: Request) -> Response:
        return JSONResponse(rules_view(hive), headers=NO_STORE)

    async def dead(request: Request) -> Response:
        return JSONResponse(dead_view(hive), headers=NO_STORE)

    async def work(request: Request) -> Response:
        # ?diff=0: the line and the commits only, for a page refreshing a closed view.
        with_diff = request.query_params.get("diff") != "0"
        try:
            view = await work_view(hive, request.path_params["name"], with_diff)
        except ClientError as exc:
            return _answer(False, exc.message, 400, exc.code)
        except HiveError as exc:
            status = 409 if exc.code == "no_containers" else 500
            return _answer(False, exc.message, status, exc.code)
        return JSONResponse(view, headers=NO_STORE)

    async def messages(request: Request) -> Response:
        try:
            agent = request.query_params.get("agent") or None
            limit = int_param(request.query_params.get("limit"), "limit", 1, FLOW_MAX)
            before = int_param(request.query_params.get("before"), "before", 1, 2**62)
            if agent is not None and agent != OPERATOR:
                hive.registry.get(agent)
        except BadInput as exc:
            return _answer(False, str(exc), 400)
        except ClientError as exc:
            return _answer(False, exc.message, 400)
        view = messages_view(hive, agent, limit or FLOW_LIMIT, before)
        return JSONResponse(view, headers=NO_STORE)

    async def events(request: Request) -> Response:
        stream = feed.stream(request.headers.get("last-event-id"), heartbeat)
        headers = {**NO_STORE, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    async def agent_action(request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]

        async def act(fields: dict[str, Any]) -> tuple[str, Any]:
            if action not in AGENT_ACTIONS:
                raise BadInput(f"unknown action {action!r}: use one of {', '.join(AGENT_ACTIONS)}")
            if action != "destroy":
                only(fields)
                hive.registry.get(name)
                life = hive.lifecycle
                verb = {"start": life.start, "stop": life.stop, "restart": life.restart}[action]
                record = await verb(name)
                return f"{name}: {action} → {record.state}", {"name": name, **record.to_wire()}
            only(fields, "confirm", "purge")
            purge = fields.get("purge", False)
            if not isinstance(purge, bool):
                raise BadInput("field 'purge' must be true or false")
            if text_field(fields, "confirm", "") != name:
                raise BadInput(f"type the agent's name ({name}) to confirm destroying it")
            hive.registry.get(name)
            await hive.lifecycle.destroy(name, purge=purge)
            done = "destroyed, state purged" if purge else "destroyed (state kept)"
            return f"{name}: {done}", {"name": name, "destroyed": True, "purged": purge}

        return await _act(request, csrf, act)

    async def approval_action(request: Request) -> Response:
        raw, action = request.path_params["id"], request.path_params["action"]

        async def act(fields: dict[str, Any]) -> tuple[str, Any]:
            approval_id = path_id(raw, "approval id")
            if action == "approve":
                only(fields, "always")
                always = fields.get("always", False)
                if not isinstance(always, bool):
                    raise BadInput("field 'always' must be true or false")
                done = await hive.governance.approve(approval_id, OPERATOR, always)
                if done.state == "failed":
                    raise HiveError(f"approval #{done.id} approved, but it failed: {done.error}")
                if done.kind == "tool_use":
                    may = (
                        "every identical call from now on" if always else "its next identical call"
                    )
                    return (
                        f"approval #{done.id} approved: {done.agent} may run {may}",
                        done.to_wire(),
                    )
                return f"approval #{done.id} approved → {done.state}", done.to_wire()
            if action == "deny":
                only(fields, "reason")
                reason = text_field(fields, "reason", "")
                done = await hive.governance.deny(approval_id, OPERATOR, reason)
                return f"approval #{done.id} denied", done.to_wire()
            raise BadInput(f"unknown action {action!r}: use approve or deny")

        return await _act(request, csrf, act)

    async def revoke(request: Request) -> Response:
        raw = request.path_params["id"]

        async def act(fields: dict[str, Any]) -> tuple[str, Any]:
            rule_id = path_id(raw, "rule id")
            only(fields)
            done = hive.governance.revoke_rule(rule_id)
            return f"rule #{done.id} revoked: {done.agent} asks again", done.to_wire()

        return await _act(request, csrf, act)

    async def dead_action(request: Request) -> Response:
        raw, action = request.path_params["id"], request.path_params["action"]

        async def act(fields: dict[str, Any]) -> tuple[str, Any]:
            message_id = path_id(raw, "message id")
            only(fields)
            if action == "retry":
                message = hive.broker.retry_dead(message_id)
                return f"#{message.id} is back in {message.recipient}'s queue", message.to_wire()
            if action == "drop":
                done = hive.broker.drop_dead(message_id, OPERATOR)
                return f"#{message_id} dropped for good", done
            raise BadInput(f"unknown action {action!r}: use retry or drop")

        return await _act(request, csrf, act)

    async def answer(request: Request) -> Response:
        raw = request.path_params["id"]

        async def act(fields: dict[str, Any]) -> tuple[str, Any]:
            question_id = path_id(raw, "question id")
            only(fields, "answer")
            if "answer" not in fields:
                raise BadInput("missing field 'answer'")
            done = hive.governance.answer(question_id, fields["answer"], OPERATOR)
            return f"question #{done.id} answered", done.to_wire()

        return await _act(request, csrf, act)

    async def send(request: Request) -> Response:
        async def act(fields: dict[str, Any]) -> tuple[str, Any]:
            only(fields, "to", "body")
            to, body = text_field(fields, "to"), text_field(fields, "body")
            message = hive.broker.send(OPERATOR, to, body)
            return f"sent #{message.id} to {message.recipient}", message.to_wire()

        return await _act(request, csrf, act)

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/static/{name}", static_route(STATIC_TYPES), methods=["GET"]),
        Route("/api/agents", agents, methods=["GET"]),
        Route("/api/approvals", approvals, methods=["GET"]),
        Route("/api/questions", questions, methods=["GET"]),
        Route("/api/rules", rules, methods=["GET"]),
        Route("/api/dead", dead, methods=["GET"]),
        Route("/api/messages", messages, methods=["GET"]),
        Route("/api/agents/{name}/work", work, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
        Route("/api/agents/{name}/{action}", agent_action, methods=["POST"]),
        Route("/api/approvals/{id}/{action}", approval_action, methods=["POST"]),
        Route("/api/questions/{id}/answer", answer, methods=["POST"]),
        Route("/api/rules/{id}/revoke", revoke, methods=["POST"]),
        Route("/api/dead/{id}/{action}", dead_action, methods=["POST"]),
        Route("/api/send", send, methods=["POST"]),
    ]
    gate = Middleware(
        TokenGate,
        check=KeyCheck.of(token),
        sessions=sessions or SessionStore(),
        loopback=loopback,
    )
    # Outside the gate: a link from an agent's page must reach it with the session cookie.
    bounce = Middleware(CrossSiteBounce)
    app = Starlette(routes=routes, middleware=[bounce, gate])
    app.state.streams = feed  # close_streams() ends the SSE streams on shutdown
    app.state.csrf = csrf
    return app


async def _act(request: Request, csrf: str, call: Action) -> Response:
    """CSRF first, then the body, then one call; every outcome becomes ``{ok, message}``."""
    refusal = csrf_refusal(request, csrf)
    if refusal is not None:
        return _answer(False, refusal, 403)
    try:
        message, result = await call(await read_json(request))
    except BadInput as exc:
        return _answer(False, str(exc), 400)
    except ClientError as exc:
        return _answer(False, exc.message, 400, exc.code)
    except HiveError as exc:
        # The request was fine but the hive could not do it (no backend, a container that
        # would not start, …): the operator still needs the reason, verbatim.
        status = 409 if exc.code == "no_containers" else 500
        return _answer(False, exc.message, status, exc.code)
    except Exception:
        logger.exception("dashboard action %s failed", request.url.path)
        return _answer(False, "internal error (see the hive-c0re log)", 500, "internal")
    return JSONResponse({"ok": True, "message": message, "result": result})


def _answer(ok: bool, message: str, status: int, code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": ok, "message": message}
    if code is not None:
        body["code"] = code
    return JSONResponse(body, status_code=status, headers=NO_STORE)
