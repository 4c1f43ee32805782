"""The approval state machine, as pure code: no clock, no database, no I/O.

An approval is decided once by a person and finished once by the core::

    pending --approve--> approved --applied--> applied
                                  --failed---> failed
    pending --deny-----> denied

For a ToolUse (the agent asks to run one tool with one exact input) ``applied``
means the agent has used it: an approval covers one call, so it is consumed
once; approving "always" records a rule (the core does) and the approval counts
as used at once. A ToolUse never fails: it is run by the agent, not the core.

:func:`transition` is the only way to move an approval; the queue stores what
it returns (compare-and-set on :data:`PREVIOUS_STATE`), so the rules live here
and are tested by feeding events, not by driving a daemon.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Final, Literal, assert_never

from hyperhive.errors import BadRequest, ClientError, HiveError

Kind = Literal["spawn", "apply_commit", "tool_use"]
ApprovalState = Literal["pending", "approved", "applied", "failed", "denied"]

KINDS: Final[tuple[Kind, ...]] = ("spawn", "apply_commit", "tool_use")
STATES: Final[tuple[ApprovalState, ...]] = ("pending", "approved", "applied", "failed", "denied")
MAX_REASON: Final = 2000
# A failure message comes from the core (a backend's stderr, say); it is cut,
# never refused, so a failure is always recorded.
MAX_ERROR: Final = 8000

# The one state each state can be reached from. The queue uses it as the
# expected current row state, so two deciders racing cannot both win.
PREVIOUS_STATE: Final[dict[ApprovalState, ApprovalState]] = {
    "approved": "pending",
    "denied": "pending",
    "applied": "approved",
    "failed": "approved",
}


class AlreadyDecided(ClientError):
    code = "already_decided"


class UnknownApproval(ClientError):
    code = "unknown_approval"


class IllegalTransition(HiveError):
    """The core tried to finish an approval that is not approved: a bug, not a request."""

    code = "illegal_transition"


@dataclass(frozen=True, slots=True)
class Approve:
    by: str
    # ToolUse only: every future call with the same tool and input is allowed too.
    always: bool = False


@dataclass(frozen=True, slots=True)
class Deny:
    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class Applied:
    pass


@dataclass(frozen=True, slots=True)
class Failed:
    error: str


Event = Approve | Deny | Applied | Failed


@dataclass(frozen=True, slots=True)
class Approval:
    id: int
    kind: Kind
    agent: str
    requester: str
    reason: str
    sha: str | None
    config: str | None
    state: ApprovalState
    decided_by: str | None
    decision_reason: str | None
    error: str | None
    created_at: float
    decided_at: float | None
    finished_at: float | None
    # An ApplyCommit's pin: the verified tree it showed and a SHA-256 of its
    # files; apply takes exactly these. The diff shown is kept beside them.
    tree: str | None = None
    digest: str | None = None
    diff: str | None = None
    # A ToolUse's tool and its input as canonical JSON (what the operator approves, byte
    # for byte); ``answered_at``: when the agent was told of the decision.
    tool: str | None = None
    input: str | None = None
    always: bool = False
    answered_at: float | None = None
    # The host it is carried out on: a spawn's placement (core/spawn_placement.py; None:
    # the deciding core's), else the host that runs the agent. None: from before hosts.
    host: str | None = None

    def to_wire(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "agent": self.agent,
            "requester": self.requester,
            "reason": self.reason,
            "sha": self.sha,
            "config": self.config,
            "state": self.state,
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "error": self.error,
            "created_at": self.created_at,
            "decided_at": self.decided_at,
            "finished_at": self.finished_at,
            "tree": self.tree,
            "digest": self.digest,
            "tool": self.tool,
            # The object for programs, and the exact canonical text that was approved.
            "input": None if self.input is None else json.loads(self.input),
            "input_json": self.input,
            "always": self.always,
            "answered_at": self.answered_at,
            "host": self.host,
        }


def validate_reason(reason: object, what: str = "reason") -> str:
    """A reason is shown to a person: it must say something, and not too much."""
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest(f"{what} must be a non-empty string")
    if len(reason) > MAX_REASON:
        raise BadRequest(f"{what} is {len(reason)} characters; the limit is {MAX_REASON}")
    return reason


def _validate_by(by: object) -> str:
    if not isinstance(by, str) or not by.strip():
        raise BadRequest("the decider must be named")
    return by


def transition(approval: Approval, event: Event, now: float) -> Approval:
    """Return ``approval`` after ``event`` at time ``now``, or raise if not allowed."""
    match event:
        case Approve(by=by, always=always):
            _require_pending(approval)
            if always and approval.kind != "tool_use":
                raise BadRequest(
                    f"approval {approval.id} is a {approval.kind}: only a tool use can be "
                    "approved always"
                )
            decided_by = _validate_by(by)
            return replace(
                approval, state="approved", decided_by=decided_by, decided_at=now, always=always
            )
        case Deny(by=by, reason=reason):
            _require_pending(approval)
            return replace(
                approval,
                state="denied",
                decided_by=_validate_by(by),
                decision_reason=validate_reason(reason, "a deny reason"),
                decided_at=now,
            )
        case Applied():
            _require_approved(approval, "applied")
            return replace(approval, state="applied", finished_at=now)
        case Failed(error=error):
            _require_approved(approval, "failed")
            if approval.kind == "tool_use":
                raise IllegalTransition(f"approval {approval.id} is a tool use: it never fails")
            text = error.strip() or "unknown error"
            if len(text) > MAX_ERROR:
                text = text[: MAX_ERROR - 1] + "…"
            return replace(approval, state="failed", error=text, finished_at=now)
    assert_never(event)


def already_decided(approval: Approval) -> AlreadyDecided:
    """The error for deciding ``approval`` again, naming who decided it and when."""
    verb = "denied" if approval.state == "denied" else "approved"
    when = "an unknown time" if approval.decided_at is None else _iso(approval.decided_at)
    message = f"approval {approval.id} was already {verb} by {approval.decided_by} at {when}"
    if approval.state == "applied" and approval.kind == "tool_use":
        message += " and has been used"
    elif approval.state == "applied":
        message += " and has been applied"
    elif approval.state == "failed":
        message += " and failed to apply"
    return AlreadyDecided(message)


def _require_pending(approval: Approval) -> None:
    if approval.state != "pending":
        raise already_decided(approval)


def _require_approved(approval: Approval, target: str) -> None:
    if approval.state != "approved":
        raise IllegalTransition(
            f"approval {approval.id} is {approval.state}; only an approved one can become {target}"
        )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))
