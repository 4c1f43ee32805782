"""ToolUse approvals: an agent asks to run one tool with one exact input; the operator decides.

The harness asks (op ``tool_use``) each time the model calls a tool its policy says ``ask``
and denies the call at once unless the answer is ``allow``; the operator may decide hours
later, after either side restarted, and the agent, woken by ``approval_decided``, calls
again. So everything lives in sqlite, and each question is answered in one write
transaction (``BEGIN IMMEDIATE``), in this order:

1. an unrevoked rule for (agent, tool, input) — the operator approved it "always" — allows;
2. an approved, unused approval for exactly that call allows, and is used up (applied);
3. the newest approval for that call, if denied and not yet told, denies with the
   operator's reason, once: the next identical call is a new request;
4. a pending one for that call is still pending (no duplicate is queued);
5. else a new pending approval is queued, within the requester's pending cap.

"Exactly that call" is the tool's name and the canonical JSON of its input (sorted keys,
no spaces, UTF-8): one byte of difference is another request. Nothing here fails open: a
question that cannot be answered is an error, and the harness denies on any error.
Approvals and rules made before the agent (this incarnation of its name) was registered
never count, so a name used again does not inherit what the old agent was granted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from hyperhive.core.approval_queue import COLUMNS, from_row, refuse_over_quota
from hyperhive.core.approvals import (
    Applied,
    Approval,
    Approve,
    IllegalTransition,
    already_decided,
    transition,
)
from hyperhive.core.db import Database, returned_id
from hyperhive.errors import BadRequest, ClientError, TooLarge

MAX_TOOL: Final = 128
MAX_INPUT: Final = 64 * 1024
MAX_RULES: Final = 1000
# Real tool inputs nest a few levels; a bound keeps every reader (and indenting) cheap.
MAX_DEPTH: Final = 32
# A decided tool use in a listing shows this much of its input; the approval op shows all.
PREVIEW: Final = 4096
Decision = Literal["allow", "pending", "deny"]
RULE_COLUMNS: Final = "id, agent, tool, input, approval_id, created_at, revoked_at"
_SAME_CALL: Final = (
    f"SELECT {COLUMNS} FROM approvals WHERE kind = 'tool_use' AND agent = ? AND tool = ? "
    "AND input = ? AND created_at > ?"
)


class UnknownRule(ClientError):
    code = "unknown_rule"


class AlreadyRevoked(ClientError):
    code = "already_revoked"


@dataclass(frozen=True, slots=True)
class ToolRule:
    """The operator's "always" for one agent, one tool, one exact input."""

    id: int
    agent: str
    tool: str
    input: str
    approval_id: int | None
    created_at: float
    revoked_at: float | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "tool": self.tool,
            "input": json.loads(self.input),
            "input_json": self.input,
            "approval_id": self.approval_id,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "active": self.revoked_at is None,
        }


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    decision: Decision
    approval: Approval | None
    rule: int | None
    message: str
    created: bool = False  # a new request: the operator must hear of it

    def to_wire(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "approval": None if self.approval is None else self.approval.id,
            "rule": self.rule,
            "message": self.message,
        }


def validate_tool(tool: object) -> str:
    if not isinstance(tool, str) or not 1 <= len(tool) <= MAX_TOOL:
        raise BadRequest(f"argument 'tool' must be a tool's name of 1-{MAX_TOOL} characters")
    if not tool.isprintable() or not tool.strip():
        raise BadRequest("argument 'tool' must be printable text (no control characters)")
    return tool


def canonical_input(given: object) -> str:
    """The one text of a tool's input that approvals and rules are matched on."""
    if not isinstance(given, dict):
        raise BadRequest("argument 'input' must be an object: the tool's input")
    if _depth(given) > MAX_DEPTH:
        raise BadRequest(f"argument 'input' nests deeper than {MAX_DEPTH} levels")
    try:
        text = json.dumps(
            given, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        size = len(text.encode())
    except (ValueError, TypeError, RecursionError) as exc:
        # Lone surrogates, NaN, nesting deeper than Python recurses: not one exact text.
        raise BadRequest(f"argument 'input' has no canonical JSON form: {exc}") from None
    if size > MAX_INPUT:
        raise TooLarge(f"the tool's input is {size} bytes as JSON; the limit is {MAX_INPUT}")
    return text


def _depth(value: object) -> int:
    """How deeply ``value`` nests, without recursing (stops counting past the limit)."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict | list) and depth <= MAX_DEPTH:
            deepest = max(deepest, depth)
            level.extend(
                (v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)
            )
        elif isinstance(item, dict | list):
            return depth
    return deepest


def preview(wire: dict[str, Any]) -> dict[str, Any]:
    """A tool use as a history listing shows it: an input over :data:`PREVIEW` characters
    is cut (``input`` None, ``input_truncated``); ``approval ID`` still has it whole."""
    text = wire.get("input_json")
    if wire.get("kind") != "tool_use" or not isinstance(text, str) or len(text) <= PREVIEW:
        return wire
    return {**wire, "input": None, "input_json": text[:PREVIEW], "input_truncated": True}


def waiting(approval_id: int) -> str:
    return f"waiting for the operator (approval #{approval_id})"


class ToolApprovals:
    def __init__(
        self, conn: Database, clock: Callable[[], float] = time.time, *, host: str | None = None
    ) -> None:
        """``host``: this core's, which runs every agent that asks it (their sockets are
        its), recorded with each approval."""
        self._conn = conn
        self._clock = clock
        self._host = host

    def ask(self, agent: str, since: float, tool: object, given: object) -> ToolAnswer:
        """May ``agent`` (registered at ``since``) call ``tool`` with ``given`` now?"""
        tool, text = validate_tool(tool), canonical_input(given)
        with self._conn.transaction():
            return self._answer(agent, since, tool, text, self._clock())

    def _answer(self, agent: str, since: float, tool: str, text: str, now: float) -> ToolAnswer:
        call = (agent, tool, text, since)
        rule = self._conn.execute(
            "SELECT id FROM tool_rules WHERE agent = ? AND tool = ? AND input = ? "
            "AND created_at > ? AND revoked_at IS NULL ORDER BY id LIMIT 1",
            call,
        ).fetchone()
        if rule is not None:
            return ToolAnswer("allow", None, rule[0], f"allowed by the operator's rule #{rule[0]}")
        row = self._conn.execute(f"{_SAME_CALL} AND state = 'approved' ORDER BY id", call)
        approved = row.fetchone()
        if approved is not None:
            return self._use(from_row(approved), now)
        newest_row = self._conn.execute(f"{_SAME_CALL} ORDER BY id DESC LIMIT 1", call).fetchone()
        newest = None if newest_row is None else from_row(newest_row)
        if newest is not None and newest.state == "denied" and newest.answered_at is None:
            self._conn.execute(
                "UPDATE approvals SET answered_at = ? WHERE id = ?", (now, newest.id)
            )
            # The operator's words, verbatim: the model reads them as the reason.
            why = newest.decision_reason or "denied by the operator"
            return ToolAnswer("deny", replace(newest, answered_at=now), None, why)
        if newest is not None and newest.state == "pending":
            return ToolAnswer("pending", newest, None, waiting(newest.id))
        created = self._insert(agent, tool, text, now)
        return ToolAnswer("pending", created, None, waiting(created.id), created=True)

    def _use(self, approved: Approval, now: float) -> ToolAnswer:
        used = replace(transition(approved, Applied(), now), answered_at=now)
        # Compare-and-set: of two calls racing for one approval, exactly one uses it.
        cursor = self._conn.execute(
            "UPDATE approvals SET state = ?, finished_at = ?, answered_at = ? "
            "WHERE id = ? AND state = 'approved'",
            (used.state, used.finished_at, now, used.id),
        )
        if cursor.rowcount != 1:
            raise IllegalTransition(f"approval {used.id} was used by another call")
        why = f"approved by {used.decided_by} (approval #{used.id}); allowed this once"
        return ToolAnswer("allow", used, None, why)

    def _insert(self, agent: str, tool: str, text: str, now: float) -> Approval:
        refuse_over_quota(self._conn, agent)
        cursor = self._conn.execute(
            "INSERT INTO approvals (kind, agent, requester, reason, state, created_at, tool, "
            "input, host) VALUES ('tool_use', ?, ?, ?, 'pending', ?, ?, ?, ?) RETURNING id",
            (agent, agent, f"{agent} asks to use {tool}", now, tool, text, self._host),
        )
        return self._get(returned_id(cursor))

    def _get(self, approval_id: int | None) -> Approval:
        row = self._conn.execute(
            f"SELECT {COLUMNS} FROM approvals WHERE id = ?", (approval_id,)
        ).fetchone()
        return from_row(row)

    def approve(self, pending: Approval, by: str, always: bool) -> tuple[Approval, ToolRule | None]:
        """Approve once (usable by one identical call), or always: a rule for every identical
        call from now on, and the approval counts as used."""
        now = self._clock()
        done = transition(pending, Approve(by, always), now)
        if always:
            done = transition(done, Applied(), now)
        with self._conn.transaction():
            cursor = self._conn.execute(
                "UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, "
                "finished_at = ?, always = ? WHERE id = ? AND state = 'pending'",
                (done.state, done.decided_by, now, done.finished_at, int(always), done.id),
            )
            if cursor.rowcount != 1:
                raise already_decided(self._get(done.id))
            if not always:
                return done, None
            assert done.tool is not None and done.input is not None
            cursor = self._conn.execute(
                "INSERT INTO tool_rules (agent, tool, input, approval_id, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (done.agent, done.tool, done.input, done.id, now),
            )
            return done, self.rule(returned_id(cursor))

    def rule(self, rule_id: object) -> ToolRule:
        if not isinstance(rule_id, int) or isinstance(rule_id, bool):
            raise BadRequest(f"rule id must be an integer (got {rule_id!r})")
        row = self._conn.execute(
            f"SELECT {RULE_COLUMNS} FROM tool_rules WHERE id = ?", (rule_id,)
        ).fetchone()
        if row is None:
            raise UnknownRule(f"no tool rule with id {rule_id}")
        return ToolRule(*row)

    def rules(self, agent: str | None, limit: int = MAX_RULES) -> list[ToolRule]:
        """Rules newest first, revoked ones too (they say who was allowed what, and when)."""
        rows = self._conn.execute(
            f"SELECT {RULE_COLUMNS} FROM tool_rules WHERE ? IS NULL OR agent = ? "
            "ORDER BY id DESC LIMIT ?",
            (agent, agent, min(limit, MAX_RULES)),
        )
        return [ToolRule(*r) for r in rows]

    def revoke(self, rule_id: object) -> ToolRule:
        rule = self.rule(rule_id)
        cursor = self._conn.execute(
            "UPDATE tool_rules SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (self._clock(), rule.id),
        )
        if cursor.rowcount != 1:
            raise AlreadyRevoked(f"tool rule {rule.id} is already revoked")
        return self.rule(rule.id)
