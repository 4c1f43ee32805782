"""The dashboard's audit view: the newest audit entries (op ``audit``), and on request
whether the whole chain verifies (op ``audit_verify``, a walk of every entry: asked for
on load and by the operator's button, not on every event)."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from hyperhive.errors import HiveError
from hyperhive.web.answers import refused, view
from hyperhive.web.dashboard_state import dashboard_of
from hyperhive.web.request_args import int_param

AUDIT_LIMIT: Final = 50
AUDIT_MAX: Final = 500


async def audit(request: Request) -> Response:
    desk = dashboard_of(request).desk
    query = request.query_params
    try:
        limit = int_param(query.get("limit"), "limit", 1, AUDIT_MAX) or AUDIT_LIMIT
        agent = query.get("agent") or None
        shown = await desk.call("audit", limit=limit, agent=agent)
        if query.get("verify") == "1":
            shown["verify"] = await desk.call("audit_verify")
    except HiveError as exc:
        return refused(exc)
    return view(shown)
