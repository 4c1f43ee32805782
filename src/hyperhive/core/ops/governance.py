"""Approvals and questions: the manager (or, for a tool use, any agent) asks, the operator
decides."""

from __future__ import annotations

from typing import Any, Final

from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args

MAX_LIMIT: Final = 500


async def request_spawn(s: Services, caller: Caller, args: Args) -> Any:
    name, reason = args.raw("name"), args.text("reason", "")
    config = args.opt_text("config")
    host = args.opt_text("host")
    args.finish()
    approval = await s.governance.request_spawn(caller.name, name, reason, config, host)
    return approval.to_wire()


async def request_apply_commit(s: Services, caller: Caller, args: Args) -> Any:
    name, sha, reason = args.text("name"), args.text("sha"), args.text("reason", "")
    args.finish()
    approval = await s.governance.request_apply_commit(caller.name, name, sha, reason)
    return approval.to_wire()


async def ask_operator(s: Services, caller: Caller, args: Args) -> Any:
    question = args.raw("question")
    options = args.text_list("options")
    multi = args.flag("multi")
    args.finish()
    return s.governance.ask(caller.name, question, options, multi).to_wire()


async def approvals(s: Services, caller: Caller, args: Args) -> Any:
    limit = args.integer("limit", 50, 1, MAX_LIMIT)
    args.finish()
    return s.governance.approvals(limit)


async def approval(s: Services, caller: Caller, args: Args) -> Any:
    approval_id = args.integer("id", None, 1, 2**62)
    args.finish()
    return await s.governance.show(approval_id)


async def approve(s: Services, caller: Caller, args: Args) -> Any:
    approval_id = args.integer("id", None, 1, 2**62)
    always = args.flag("always")
    args.finish()
    done = await s.governance.approve(approval_id, caller.name, always, via=caller.via)
    return done.to_wire()


async def deny(s: Services, caller: Caller, args: Args) -> Any:
    approval_id = args.integer("id", None, 1, 2**62)
    reason = args.text("reason", "")
    args.finish()
    done = await s.governance.deny(approval_id, caller.name, reason, via=caller.via)
    return done.to_wire()


async def tool_use(s: Services, caller: Caller, args: Args) -> Any:
    """May the caller run this tool with exactly this input? allow, pending or deny."""
    tool, given = args.raw("tool"), args.raw("input")
    args.finish()
    return s.governance.tool_use(caller.name, tool, given).to_wire()


async def tool_rules(s: Services, caller: Caller, args: Args) -> Any:
    agent = args.opt_text("agent")
    limit = args.integer("limit", MAX_LIMIT, 1, MAX_LIMIT)
    args.finish()
    return [r.to_wire() for r in s.governance.tool_rules(agent, limit)]


async def revoke_rule(s: Services, caller: Caller, args: Args) -> Any:
    rule_id = args.integer("id", None, 1, 2**62)
    args.finish()
    return s.governance.revoke_rule(rule_id, caller.name, caller.via).to_wire()


async def questions(s: Services, caller: Caller, args: Args) -> Any:
    limit = args.integer("limit", 50, 1, MAX_LIMIT)
    args.finish()
    return s.governance.questions(limit)


async def answer(s: Services, caller: Caller, args: Args) -> Any:
    question_id = args.integer("id", None, 1, 2**62)
    given = args.raw("answer")
    args.finish()
    return s.governance.answer(question_id, given, caller.name, via=caller.via).to_wire()
