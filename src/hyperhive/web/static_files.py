"""The pages' static files, shipped as package data and served read-only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from importlib.resources import files
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from hyperhive.web.security import SECURITY_HEADERS

CSS = "text/css; charset=utf-8"
JS = "text/javascript; charset=utf-8"

# What each page may load, by name; anything else under /static/ is a 404. The scripts
# are ES modules: each page's entry (dashboard.js, agent.js) and what it imports.
DASHBOARD_STATIC: Final[Mapping[str, str]] = {
    "hive.css": CSS,
    "dashboard.css": CSS,
    "common.js": JS,
    "dashboard.js": JS,
    "dash-agents.js": JS,
    "dash-agent-row.js": JS,
    "dash-agent-filter.js": JS,
    "dash-groups.js": JS,
    "dash-work.js": JS,
    "dash-diff.js": JS,
    "dash-approvals.js": JS,
    "dash-questions.js": JS,
    "dash-dead.js": JS,
    "dash-audit.js": JS,
    "dash-flow.js": JS,
    "dash-flow-text.js": JS,
    "dash-live.js": JS,
    "dash-spend.js": JS,
    "dash-plot.js": JS,
    "spend-form.js": JS,
}
AGENT_STATIC: Final[Mapping[str, str]] = {
    "hive.css": CSS,
    "common.js": JS,
    "agent.js": JS,
    "agent-log.js": JS,
    "agent-waits.js": JS,
    "agent-login.js": JS,
    "agent-spend.js": JS,
    "spend-form.js": JS,
}


@cache
def static_text(name: str) -> str:
    return files("hyperhive.web").joinpath("static", name).read_text(encoding="utf-8")


def static_route(types: Mapping[str, str]) -> Callable[[Request], Awaitable[Response]]:
    """A ``/static/{name}`` handler serving exactly the files named in ``types``."""

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in types:
            return Response("not found", status_code=404, media_type="text/plain")
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
        return Response(static_text(name), media_type=types[name], headers=headers)

    return static
