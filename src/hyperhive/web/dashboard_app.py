"""The operator's dashboard (DESIGN §1, §4, §9): agents, approvals, questions, dead letters, flow.

``create_dashboard_app(desk, token=...)`` gives a Starlette app behind the operator token: a
server-rendered shell, its static files, JSON views under ``/api/`` (:mod:`.dashboard_api`),
the core's event bus as SSE on ``/events``, and the operator's actions as JSON posts
(:mod:`.dashboard_actions`). It reads and acts only through the :class:`OperatorDesk`, so
every action is exactly the same op on ``host.sock``, as ``operator``; bad input is a 400
that changed nothing, a cross-site request a 403.
"""

from __future__ import annotations

import html
from typing import Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from hyperhive.core.operator_desk import OperatorDesk
from hyperhive.tokens import KeyCheck, check_token
from hyperhive.web import dashboard_actions as posts
from hyperhive.web import dashboard_api as views
from hyperhive.web import dashboard_audit as audit
from hyperhive.web import dashboard_spend as spend
from hyperhive.web import front_door, page_login, page_spend
from hyperhive.web import metrics as scrape
from hyperhive.web.answers import NO_STORE
from hyperhive.web.cross_site import CrossSiteBounce
from hyperhive.web.dashboard_feed import BusFeed
from hyperhive.web.dashboard_state import DashboardState, dashboard_of
from hyperhive.web.security import PAGE_CSP, SECURITY_HEADERS, TokenGate, new_csrf_token
from hyperhive.web.sessions import SessionStore
from hyperhive.web.sse import HEARTBEAT_S
from hyperhive.web.static_files import DASHBOARD_STATIC, static_route, static_text


async def page(request: Request) -> Response:
    body = static_text("dashboard.html").replace("{{csrf}}", dashboard_of(request).csrf)
    body = body.replace("{{host}}", html.escape(request.url.hostname or "127.0.0.1"))
    headers = {**SECURITY_HEADERS, **NO_STORE, "Content-Security-Policy": PAGE_CSP}
    return HTMLResponse(body, headers=headers)


async def events(request: Request) -> Response:
    state = dashboard_of(request)
    stream = state.feed.stream(request.headers.get("last-event-id"), state.heartbeat)
    headers = {**NO_STORE, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


ROUTES: Final = (
    Route("/", page, methods=["GET"]),
    Route("/static/{name}", static_route(DASHBOARD_STATIC), methods=["GET"]),
    Route("/api/agents", views.agents, methods=["GET"]),
    Route("/api/approvals", views.approvals, methods=["GET"]),
    Route("/api/questions", views.questions, methods=["GET"]),
    Route("/api/rules", views.rules, methods=["GET"]),
    Route("/api/dead", views.dead, methods=["GET"]),
    Route("/api/audit", audit.audit, methods=["GET"]),
    Route("/api/messages", views.messages, methods=["GET"]),
    Route("/api/agents/{name}/work", views.work, methods=["GET"]),
    Route("/api/usage", spend.usage, methods=["GET"]),
    Route("/api/usage/series", spend.series, methods=["GET"]),
    Route("/events", events, methods=["GET"]),
    Route("/metrics", scrape.metrics, methods=["GET"]),  # Prometheus text, for a scraper
    Route("/api/budget", posts.hive_budget, methods=["POST"]),
    Route("/api/resume", posts.hive_resume, methods=["POST"]),
    # Before the agent actions' {action}, which would take these names.
    Route("/api/agents/{name}/budget", posts.agent_budget, methods=["POST"]),
    Route("/api/agents/{name}/resume", posts.agent_resume, methods=["POST"]),
    Route("/api/agents/{name}/{action}", posts.agent_action, methods=["POST"]),
    Route("/api/approvals/{id}/{action}", posts.approval_action, methods=["POST"]),
    Route("/api/questions/{id}/answer", posts.answer_question, methods=["POST"]),
    Route("/api/rules/{id}/revoke", posts.revoke, methods=["POST"]),
    Route("/api/dead/{id}/{action}", posts.dead_action, methods=["POST"]),
    Route("/api/send", posts.send, methods=["POST"]),
    # Every agent's page, behind this app's gate, sessions and CSRF token; its spend is
    # the core's to answer, so those routes come before the front door's relay.
    *page_spend.ROUTES,
    *page_login.ROUTES,  # a login's secret goes to the core, never to the harness
    *front_door.ROUTES,
)


def create_dashboard_app(
    desk: OperatorDesk,
    *,
    token: str,
    loopback: bool = True,
    heartbeat: float = HEARTBEAT_S,
    sessions: SessionStore | None = None,
) -> Starlette:
    """The dashboard app. ``token``: the operator token; ``loopback``: it listens on
    loopback (so Host must name loopback); ``sessions``: its browser sessions."""
    token = check_token(token)
    feed = BusFeed(desk.bus)
    state = DashboardState(desk, token, new_csrf_token(), feed, heartbeat)
    desk.bus.observe(state.listings.observe)  # a change of state drops a kept listing
    gate = Middleware(
        TokenGate,
        check=KeyCheck.of(token),
        sessions=sessions or SessionStore(),
        loopback=loopback,
    )
    # Outside the gate: a link from an agent's page must reach it with the session cookie.
    bounce = Middleware(CrossSiteBounce)
    app = Starlette(routes=list(ROUTES), middleware=[bounce, gate])
    app.state.dashboard = state
    app.state.streams = feed  # close_streams() ends the SSE streams on shutdown
    app.state.csrf = state.csrf
    front_door.attach(app, desk, feed)
    page_spend.attach(app, feed)
    return app
