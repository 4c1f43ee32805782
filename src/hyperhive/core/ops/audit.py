"""The operator's audit ops (core/audit.py): ``audit`` lists entries, ``audit_verify``
walks the chain; :func:`record` is how other ops append what the operator did."""

from __future__ import annotations

from typing import Any, Final

from hyperhive.core.audit import MAX_ENTRIES, AuditLog
from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args
from hyperhive.errors import HiveError
from hyperhive.names import validate_agent_name

DEFAULT_LIMIT: Final = 100


class AuditOff(HiveError):
    code = "audit_off"


def _audit(s: Services) -> AuditLog:
    if s.audit is None:
        raise AuditOff("this hive-c0re keeps no audit log")
    return s.audit


def record(
    s: Services, caller: Caller, action: str, agent: str | None, detail: dict[str, Any]
) -> None:
    """Append what ``caller`` just did (nothing without an audit log)."""
    if s.audit is not None:
        s.audit.append(caller.name, caller.via, action, agent, detail)


async def audit(s: Services, caller: Caller, args: Args) -> Any:
    # Epoch seconds; the CLI turns "2h" or an ISO time into them.
    since = None if args.raw("since") is None else args.number("since", 0.0, 0.0, 2.0**40)
    agent = args.opt_text("agent")
    limit = args.integer("limit", DEFAULT_LIMIT, 1, MAX_ENTRIES)
    args.finish()
    if agent is not None:
        agent = validate_agent_name(agent)  # a gone agent's entries stay: no registry check
    log = _audit(s)
    return {
        "entries": [e.to_wire() for e in log.entries(since, agent, limit)],
        "count": log.head.count,
    }


async def audit_verify(s: Services, caller: Caller, args: Args) -> Any:
    args.finish()
    return (await _audit(s).verify()).to_wire()
