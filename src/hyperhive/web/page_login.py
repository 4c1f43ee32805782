"""An agent's login on its page at the front door, answered by the core itself.

``/agents/<name>/api/login/key`` and ``…/api/login/setup-token/start|finish`` are routes
of the dashboard app, listed before the front door's relay: a key or a token goes to the
core's credential store (core/gateway/credentials.py) through the operator's login ops,
for that agent or, when the form says so, for the whole hive, and never to the harness.
The harness learns of it without the secret: it waits on ``login_state`` over its own
socket, which answers as soon as the store changes (core/ops/logins.py).

Behind the same token gate, sessions and CSRF token as every dashboard action
(:func:`.dashboard_actions.run`); no answer holds the secret.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hyperhive.core.operator_desk import OperatorDesk
from hyperhive.web import dashboard_actions as posts
from hyperhive.web.request_args import bounded_text, flag_field, only

MAX_SECRET_BYTES: Final = 4096


def _whose(name: str, fields: dict[str, Any]) -> tuple[str | None, str]:
    """The agent the credential is for (None: the whole hive), and how to say so."""
    if flag_field(fields, "hive"):
        return None, "the whole hive"
    return name, name


async def login_key(request: Request) -> Response:
    name = request.path_params["name"]

    async def act(desk: OperatorDesk, fields: dict[str, Any]) -> posts.Done:
        only(fields, "key", "hive")
        key = bounded_text(fields, "key", MAX_SECRET_BYTES, strip=True)
        await desk.call("agents", name=name)  # a registered agent, even for the hive's
        agent, whose = _whose(name, fields)
        await desk.call("login_save", agent=agent, kind="api_key", value=key)
        return f"API key saved for {whose}", {"agent": agent}

    return await posts.run(request, act)


async def setup_start(request: Request) -> Response:
    name = request.path_params["name"]

    async def act(desk: OperatorDesk, fields: dict[str, Any]) -> posts.Done:
        only(fields)
        started = await desk.call("login_setup_start", agent=name)
        return str(started["url"]), None

    return await posts.run(request, act)


async def setup_finish(request: Request) -> Response:
    name = request.path_params["name"]

    async def act(desk: OperatorDesk, fields: dict[str, Any]) -> posts.Done:
        only(fields, "code", "hive")
        code = bounded_text(fields, "code", MAX_SECRET_BYTES, strip=True)
        agent, whose = _whose(name, fields)
        await desk.call("login_setup_finish", agent=name, code=code, hive=agent is None)
        return f"logged in: the token is saved for {whose}", {"agent": agent}

    return await posts.run(request, act)


# Listed before the front door's relay, which would otherwise take these paths.
ROUTES: Final = (
    Route("/agents/{name}/api/login/key", login_key, methods=["POST"]),
    Route("/agents/{name}/api/login/setup-token/start", setup_start, methods=["POST"]),
    Route("/agents/{name}/api/login/setup-token/finish", setup_finish, methods=["POST"]),
)
