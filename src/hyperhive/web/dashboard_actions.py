"""The operator's actions on the dashboard: each one post, one op through the desk.

A post maps its URL and JSON fields to the arguments of the op a ``hive`` user would send
on ``host.sock``, and the op's result to ``{ok, message, result}``. What only a browser
needs is checked here (destroy's "type the name to confirm"); everything else is the op's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hyperhive.core.operator_desk import OPERATOR_CALLER, OperatorDesk
from hyperhive.errors import BadRequest, HiveError
from hyperhive.web.answers import answer, refused
from hyperhive.web.dashboard_state import dashboard_of
from hyperhive.web.request_args import flag_field, only, path_id, read_json, text_field
from hyperhive.web.security import csrf_refusal
from hyperhive.web.spend import budget_args, described

AGENT_ACTIONS: Final = ("start", "stop", "restart", "destroy")
MAX_BODY_BYTES: Final = 1024 * 1024  # a 256 KiB message, JSON-escaped, with room to spare

Done = tuple[str, Any]  # what the page shows, and the op's result
Action = Callable[[OperatorDesk, dict[str, Any]], Awaitable[Done]]
logger = logging.getLogger(__name__)


async def agent_action(request: Request) -> Response:
    name, action = request.path_params["name"], request.path_params["action"]

    async def act(desk: OperatorDesk, fields: dict[str, Any]) -> Done:
        if action not in AGENT_ACTIONS:
            raise BadRequest(f"unknown action {action!r}: use one of {', '.join(AGENT_ACTIONS)}")
        if action == "destroy":
            return await _destroy(desk, name, fields)
        only(fields)
        result = await desk.call(action, name=name)
        return f"{name}: {action} → {result['state']}", result

    return await run(request, act)


async def _destroy(desk: OperatorDesk, name: str, fields: dict[str, Any]) -> Done:
    only(fields, "confirm", "purge")
    purge = flag_field(fields, "purge")
    if text_field(fields, "confirm", "") != name:
        raise BadRequest(f"type the agent's name ({name}) to confirm destroying it")
    result = await desk.call("destroy", name=name, purge=purge)
    done = "destroyed, state purged" if purge else "destroyed (state kept)"
    return f"{name}: {done}", result


async def approval_action(request: Request) -> Response:
    raw, action = request.path_params["id"], request.path_params["action"]

    async def act(desk: OperatorDesk, fields: dict[str, Any]) -> Done:
        approval_id = path_id(raw, "approval id")
        if action == "approve":
            return await _approve(desk, approval_id, fields)
        if action == "deny":
            only(fields, "reason")
            reason = text_field(fields, "reason", "")
            result = await desk.call("deny", id=approval_id, reason=reason)
            return f"approval #{result['id']} denied", result
        raise BadRequest(f"unknown action {action!r}: use approve or deny")

    return await run(request, act)


async def _approve(desk: OperatorDesk, approval_id: int, fields: dict[str, Any]) -> Done:
    only(fields, "always")
    always = flag_field(fields, "always")
    result = await desk.call("approve", id=approval_id, always=always)
    if result["state"] == "failed":
        raise HiveError(f"approval #{result['id']} approved, but it failed: {result['error']}")
    if result["kind"] == "tool_use":
        may = "every identical call from now on" if always else "its next identical call"
        return f"approval #{result['id']} approved: {result['agent']} may run {may}", result
    return f"approval #{result['id']} approved → {result['state']}", result


async def revoke(request: Request) -> Response:
    raw = request.path_params["id"]

    async def act(desk: OperatorDesk, fields: dict[str, Any]) -> Done:
        rule_id = path_id(raw, "rule id")
        only(fields)
        result = await desk.call("revoke_rule", id=rule_id)
        return f"rule #{result['id']} revoked: {result['agent']} asks again", result

    return await run(request, act)


async def dead_action(request: Request) -> Response:
    raw, action = request.path_params["id"], request.path_params["action"]

    async def act(desk: OperatorDesk, fields: dict[str, Any]) -> Done:
        message_id = path_id(raw, "message id")
        only(fields)
        if action == "retry":
            result = await desk.call("retry", id=message_id)
            return f"#{result['id']} is back in {result['to']}'s queue", result
        if action == "drop":
            return f"#{message_id} dropped for good", await desk.call("drop", id=message_id)
        raise BadRequest(f"unknown action {action!r}: use retry or drop")

    return await run(request, act)


async def answer_question(request: Request) -> Response:
    raw = request.path_params["id"]

    async def act(desk: OperatorDesk, fields: dict[str, Any]) -> Done:
        question_id = path_id(raw, "question id")
        only(fields, "answer")
        if "answer" not in fields:
            raise BadRequest("missing field 'answer'")
        result = await desk.call("answer", id=question_id, answer=fields["answer"])
        return f"question #{result['id']} answered", result

    return await run(request, act)


async def send(request: Request) -> Response:
    async def act(desk: OperatorDesk, fields: dict[str, Any]) -> Done:
        only(fields, "to", "body")
        to, body = text_field(fields, "to"), text_field(fields, "body")
        result = await desk.call("send", to=to, body=body)
        return f"sent #{result['id']} to {result['to']}", result

    return await run(request, act)


Scoped = Callable[[OperatorDesk, str | None, dict[str, Any]], Awaitable[Done]]


def _scoped(action: Scoped, *, per_agent: bool) -> Callable[[Request], Awaitable[Response]]:
    """A post of ``action`` for the hive, or for the agent its path names."""

    async def endpoint(request: Request) -> Response:
        name = request.path_params["name"] if per_agent else None

        async def act(desk: OperatorDesk, fields: dict[str, Any]) -> Done:
            return await action(desk, name, fields)

        return await run(request, act)

    return endpoint


async def set_budget(desk: OperatorDesk, agent: str | None, fields: dict[str, Any]) -> Done:
    """``budget_set`` for ``agent`` (None: the hive's) from the form's fields, checked
    first: a bad field is a 400 that changed nothing."""
    args: dict[str, Any] = {**budget_args(fields)}  # a None in it lifts that limit
    if agent is not None:
        args["agent"] = agent
    # Not desk.call: it leaves None out, and here None is the op's "no limit".
    result = await desk.dispatch(OPERATOR_CALLER, "budget_set", args)
    who = agent if agent is not None else "the hive"
    return f"{who}: budget {described(result['budget'])} → {result['state']}", result


async def resume(desk: OperatorDesk, agent: str | None, fields: dict[str, Any]) -> Done:
    """``budget_resume`` for ``agent`` (None: the hive): no budget pause for the rest of
    today."""
    only(fields)
    result = await desk.call("budget_resume", agent=agent)
    who = agent if agent is not None else "the hive"
    return f"{who}: resumed for today → {result['state']}", result


async def run(request: Request, call: Action) -> Response:
    """CSRF first, then the body, then one op; every outcome becomes ``{ok, message}``.
    (The agent pages' core-answered actions, :mod:`.page_spend`, run through it too.)"""
    state = dashboard_of(request)
    refusal = csrf_refusal(request, state.csrf)
    if refusal is not None:
        return answer(False, refusal, 403)
    try:
        message, result = await call(state.desk, await read_json(request, MAX_BODY_BYTES))
    except HiveError as exc:
        # A bad request, or one the hive could not do (no backend, a container that would
        # not start, …): either way the operator needs the reason, verbatim.
        return refused(exc)
    except Exception:
        logger.exception("dashboard action %s failed", request.url.path)
        return answer(False, "internal error (see the hive-c0re log)", 500, "internal")
    return JSONResponse({"ok": True, "message": message, "result": result})


hive_budget = _scoped(set_budget, per_agent=False)
agent_budget = _scoped(set_budget, per_agent=True)
hive_resume = _scoped(resume, per_agent=False)
agent_resume = _scoped(resume, per_agent=True)
