"""Approvals in sqlite: requests come in, decisions are stored, nothing is lost.

The queue validates requests and stores rows; *what* may happen to an approval
is decided by :mod:`hyperhive.core.approvals`. Every write of a transition is a
compare-and-set on the state it came from, so of two people deciding at once
exactly one wins and the other gets :class:`AlreadyDecided`.

Duplicates: while a request is pending, the same request again (a spawn of the
same agent, or the same commit for the same agent) is refused with code
``duplicate`` naming the pending approval, so the operator never sees the same
decision twice. Applying a *different* commit while one is pending is allowed:
the operator picks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from hyperhive.core.agent_config import parse_agent_toml
from hyperhive.core.approvals import (
    PREVIOUS_STATE,
    Approval,
    ApprovalState,
    IllegalTransition,
    Kind,
    UnknownApproval,
    already_decided,
    validate_reason,
)
from hyperhive.core.config_tree import normalise_sha
from hyperhive.core.db import Database, returned_id
from hyperhive.core.proposal import Staged
from hyperhive.errors import BadRequest, ClientError, QuotaExceeded
from hyperhive.names import OPERATOR, validate_agent_name

MAX_CONFIG: Final = 256 * 1024
MAX_RECENT: Final = 1000
# A requester that floods the queue buries the operator's real decisions.
MAX_PENDING_PER_REQUESTER: Final = 20
COLUMNS: Final = (
    "id, kind, agent, requester, reason, sha, config, state, decided_by, "
    "decision_reason, error, created_at, decided_at, finished_at, tree, digest, diff, "
    "tool, input, always, answered_at, host"
)


class DuplicateRequest(ClientError):
    code = "duplicate"


class ApprovalQueue:
    def __init__(self, conn: Database, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._clock = clock

    def request_spawn(
        self,
        agent: object,
        requester: object,
        reason: object,
        config: str | None,
        host: str | None = None,
    ) -> Approval:
        """Queue a spawn; ``config`` is the new agent's ``agent.toml`` (None: the default);
        ``host``: where it spawns (core/spawn_placement.py), stored in the same row."""
        agent = validate_agent_name(agent)
        if config is not None:
            if not isinstance(config, str):
                raise BadRequest("config must be the text of an agent.toml")
            if len(config.encode()) > MAX_CONFIG:
                raise BadRequest(f"config is over {MAX_CONFIG // 1024} KiB")
            parse_agent_toml(config)  # refused now, not when the operator approves
        return self._insert("spawn", agent, requester, reason, None, config, host=host)

    def request_apply_commit(
        self,
        agent: object,
        requester: object,
        reason: object,
        staged: Staged,
        host: str | None = None,
    ) -> Approval:
        """Queue applying a staged commit: its full sha, pinned tree and diff are kept;
        ``host``: the agent's."""
        agent = validate_agent_name(agent)
        sha = normalise_sha(staged.pin.commit)
        return self._insert("apply_commit", agent, requester, reason, sha, None, staged, host)

    def get(self, approval_id: object) -> Approval:
        if not isinstance(approval_id, int) or isinstance(approval_id, bool):
            raise BadRequest(f"approval id must be an integer (got {approval_id!r})")
        row = self._conn.execute(
            f"SELECT {COLUMNS} FROM approvals WHERE id = ?", (approval_id,)
        ).fetchone()
        if row is None:
            raise UnknownApproval(f"no approval with id {approval_id}")
        return from_row(row)

    def pending(self) -> list[Approval]:
        """Every pending approval, oldest first: the order they should be decided in."""
        rows = self._conn.execute(
            f"SELECT {COLUMNS} FROM approvals WHERE state = 'pending' ORDER BY id"
        )
        return [from_row(r) for r in rows]

    def recent(self, limit: int = 50) -> list[Approval]:
        """The ``limit`` newest approvals in any state, newest first."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_RECENT:
            raise BadRequest(f"limit must be an integer from 1 to {MAX_RECENT}")
        rows = self._conn.execute(
            f"SELECT {COLUMNS} FROM approvals ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [from_row(r) for r in rows]

    def save(self, approval: Approval, previous: ApprovalState | None = None) -> Approval:
        """Store a transition made by :func:`~hyperhive.core.approvals.transition`.

        The row must still be in ``previous`` (by default the one state the
        machine reaches ``approval.state`` from); if someone else moved it
        first, nothing is written and the error says who.
        """
        expected = previous if previous is not None else PREVIOUS_STATE.get(approval.state)
        if expected is None:
            raise IllegalTransition(f"approval {approval.id} cannot be saved as {approval.state}")
        cursor = self._conn.execute(
            "UPDATE approvals SET state = ?, decided_by = ?, decision_reason = ?, error = ?, "
            "decided_at = ?, finished_at = ? WHERE id = ? AND state = ?",
            (
                approval.state,
                approval.decided_by,
                approval.decision_reason,
                approval.error,
                approval.decided_at,
                approval.finished_at,
                approval.id,
                expected,
            ),
        )
        if cursor.rowcount == 1:
            return approval
        current = self.get(approval.id)
        if expected == "pending":
            raise already_decided(current)
        raise IllegalTransition(
            f"approval {approval.id} is {current.state}, not {expected}; "
            f"it cannot become {approval.state}"
        )

    def _insert(
        self,
        kind: Kind,
        agent: str,
        requester: object,
        reason: object,
        sha: str | None,
        config: str | None,
        staged: Staged | None = None,
        host: str | None = None,
    ) -> Approval:
        if requester != OPERATOR:
            requester = validate_agent_name(requester)
        assert isinstance(requester, str)
        reason = validate_reason(reason)
        now = self._clock()
        # The transaction holds the write lock from its start, before the duplicate
        # check, so the check and the insert are one step even across connections.
        with self._conn.transaction():
            self._refuse_duplicate(kind, agent, sha)
            refuse_over_quota(self._conn, requester)
            kept: tuple[str | None, ...] = (None, None, None)
            if staged is not None:
                kept = (staged.pin.tree, staged.pin.digest, staged.diff)
            cursor = self._conn.execute(
                "INSERT INTO approvals (kind, agent, requester, reason, sha, config, state, "
                "created_at, tree, digest, diff, host)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?) RETURNING id",
                (kind, agent, requester, reason, sha, config, now, *kept, host),
            )
            approval_id = returned_id(cursor)
        return self.get(approval_id)

    def _refuse_duplicate(self, kind: Kind, agent: str, sha: str | None) -> None:
        row = self._conn.execute(
            "SELECT id FROM approvals WHERE state = 'pending' AND kind = ? AND agent = ? "
            "AND sha IS NOT DISTINCT FROM ?",
            (kind, agent, sha),
        ).fetchone()
        if row is not None:
            what = f"spawn of {agent!r}" if kind == "spawn" else f"commit {sha} for {agent!r}"
            raise DuplicateRequest(f"a {what} is already waiting for approval (#{row[0]})")


def refuse_over_quota(conn: Database, requester: str) -> None:
    """Every kind counts, ToolUse too: one cap on what a requester keeps waiting."""
    (count,) = conn.execute(
        "SELECT count(*) FROM approvals WHERE state = 'pending' AND requester = ?",
        (requester,),
    ).fetchone()
    if count >= MAX_PENDING_PER_REQUESTER:
        raise QuotaExceeded(
            f"{requester} has {count} approvals waiting for the operator, the most it may"
            " have; wait for decisions before asking again"
        )


def from_row(row: tuple[Any, ...]) -> Approval:
    approval = Approval(*row)
    # sqlite keeps ``always`` as 0 or 1.
    return replace(approval, always=bool(approval.always))
