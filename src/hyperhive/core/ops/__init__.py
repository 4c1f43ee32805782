"""What each socket can ask of the core, by role.

The caller's identity is the socket it came in on (DESIGN §2): the operator on
``host.sock``, an agent on its own ``mcp.sock``. No op takes a sender from
the request, and unknown arguments are refused, so nobody speaks for another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from hyperhive.core.ops import (
    agents,
    audit,
    dashboard,
    dead_letters,
    governance,
    hosts,
    logins,
    messaging,
    workspace,
)
from hyperhive.core.ops import config as config_ops
from hyperhive.core.ops import metrics as metrics_ops
from hyperhive.core.ops import notify as notify_ops
from hyperhive.core.ops import stall as stall_ops
from hyperhive.core.ops import usage as usage_ops
from hyperhive.core.ops.base import Caller, Handler, Role, Services, Streamer
from hyperhive.core.protocol import Args
from hyperhive.errors import Forbidden, HiveError, UnknownOp

__all__ = [
    "Caller",
    "Handler",
    "NotStarted",
    "OpTable",
    "Role",
    "Services",
    "Streamer",
    "handler",
    "streamer",
]

_AGENT: Final[dict[str, Handler]] = {
    "ping": messaging.ping,
    "whoami": messaging.whoami,
    "send": messaging.send,
    "recv": messaging.recv,
    "ack": messaging.ack,
    "nack": messaging.nack,
    "fail": dead_letters.fail,
    "login_state": logins.login_state,  # whether the core holds a credential for the caller
}
# Only agents run tools; the operator's socket has nothing to ask itself.
_TOOLS: Final[dict[str, Handler]] = {"tool_use": governance.tool_use}
# A harness's reports on its turns, for stall detection (core/ops/stall.py).
_REPORTS: Final[dict[str, Handler]] = {"activity": stall_ops.activity}
_MANAGER: Final[dict[str, Handler]] = {
    **_AGENT,
    **_TOOLS,
    **_REPORTS,
    "request_spawn": governance.request_spawn,
    "request_apply_commit": governance.request_apply_commit,
    "ask_operator": governance.ask_operator,
    "start": agents.start,
    "kill": agents.stop,
    "restart": agents.restart,
    "agents": agents.agents,
    "hosts": hosts.hosts,
}
_HOST: Final[dict[str, Handler]] = {
    **_AGENT,
    "status": messaging.status,
    "messages": messaging.messages,
    "message": messaging.message,
    "dead_letters": dead_letters.dead_letters,
    "retry": dead_letters.retry,
    "drop": dead_letters.drop,
    "agents": agents.agents,
    "hosts": hosts.hosts,
    "agent_add": agents.agent_add,
    "spawn": agents.spawn,
    "start": agents.start,
    "stop": agents.stop,
    "kill": agents.stop,
    "restart": agents.restart,
    "destroy": agents.destroy,
    "rebuild": agents.rebuild,
    "logs": agents.logs,
    "work": workspace.work,
    "work_fetch": workspace.work_fetch,
    "approvals": governance.approvals,
    "approval": governance.approval,
    "approve": governance.approve,
    "deny": governance.deny,
    "tool_rules": governance.tool_rules,
    "revoke_rule": governance.revoke_rule,
    "questions": governance.questions,
    "answer": governance.answer,
    "dashboard_url": dashboard.dashboard_url,  # the operator token: host.sock only
    "login_save": logins.login_save,
    "login_clear": logins.login_clear,
    "login_status": logins.login_status,
    "login_setup_start": logins.login_setup_start,
    "login_setup_finish": logins.login_setup_finish,
    "usage": usage_ops.usage,
    "usage_series": usage_ops.usage_series,
    "budget_set": usage_ops.budget_set,
    "budget_resume": usage_ops.budget_resume,
    "audit": audit.audit,
    "audit_verify": audit.audit_verify,
    "stalls": stall_ops.stalls,
    "metrics": metrics_ops.metrics,
    "notifications": notify_ops.notifications,
    "config_show": config_ops.config_show,  # hive.toml, in force: host.sock only
    "config_reload": config_ops.config_reload,
}
HANDLERS: Final[Mapping[Role, Mapping[str, Handler]]] = {
    "operator": _HOST,
    "agent": {**_AGENT, **_TOOLS, **_REPORTS},
    "manager": _MANAGER,
}
STREAMS: Final[Mapping[Role, Mapping[str, Streamer]]] = {
    "operator": {"tail": messaging.tail},
    "agent": {},
    "manager": {},
}
_ALL_OPS: Final = frozenset(op for table in (*HANDLERS.values(), *STREAMS.values()) for op in table)


def streamer(role: Role, op: str) -> Streamer | None:
    return STREAMS[role].get(op)


def handler(role: Role, op: str) -> Handler:
    found = HANDLERS[role].get(op)
    if found is not None:
        return found
    if op in _ALL_OPS:
        raise Forbidden(f"op {op!r} is not available on {role} sockets")
    raise UnknownOp(f"unknown op {op!r}")


class NotStarted(HiveError):
    code = "not_started"


class OpTable:
    """The role tables bound to the running hive's services: what every socket and the
    operator's desk answer requests with.

    Bound once, after it is made: the sockets that answer through it are made by the
    directory, which is one of the services it answers with.
    """

    def __init__(self, services: Services | None = None) -> None:
        self._services = services

    def bind(self, services: Services) -> None:
        if self._services is not None:
            raise HiveError("the op table is bound already")
        self._services = services

    @property
    def services(self) -> Services:
        if self._services is None:
            raise NotStarted("hive-c0re is not started yet")
        return self._services

    async def call(self, caller: Caller, op: str, args: Args | Mapping[str, Any]) -> Any:
        """Run ``op`` as ``caller``; Forbidden or UnknownOp when its role has no such op."""
        run = handler(caller.role, op)
        given = args if isinstance(args, Args) else Args(dict(args))
        return await run(self.services, caller, given)

    def stream(self, caller: Caller, op: str, args: Args) -> AsyncIterator[dict[str, Any]] | None:
        found = streamer(caller.role, op)
        return None if found is None else found(self.services, caller, args)
