"""The approval state machine, fed events: every allowed step and every refused one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hyperhive.core.approvals import (
    PREVIOUS_STATE,
    STATES,
    AlreadyDecided,
    Applied,
    Approval,
    ApprovalState,
    Approve,
    Deny,
    Event,
    Failed,
    IllegalTransition,
    Kind,
    transition,
)
from hyperhive.errors import BadRequest, ClientError

pytestmark = pytest.mark.usefixtures("both_stores")

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def pending(id: int = 7) -> Approval:
    return Approval(
        id=id,
        kind="apply_commit",
        agent="alice",
        requester="hm1nd",
        reason="give alice the network",
        sha="0123abcd" * 5,
        config=None,
        state="pending",
        decided_by=None,
        decision_reason=None,
        error=None,
        created_at=T0,
        decided_at=None,
        finished_at=None,
    )


def in_state(state: ApprovalState) -> Approval:
    """An approval that reached ``state`` the legal way."""
    path: dict[ApprovalState, list[Event]] = {
        "pending": [],
        "approved": [Approve("operator")],
        "denied": [Deny("operator", "not now")],
        "applied": [Approve("operator"), Applied()],
        "failed": [Approve("operator"), Failed("boom")],
    }
    approval = pending()
    for i, event in enumerate(path[state]):
        approval = transition(approval, event, T0 + 10 * (i + 1))
    return approval


def test_approving_a_pending_approval_records_who_and_when() -> None:
    got = transition(pending(), Approve("operator"), T0 + 5)
    assert got.state == "approved"
    assert got.decided_by == "operator"
    assert got.decided_at == T0 + 5
    assert got.decision_reason is None
    assert got.finished_at is None


def test_denying_a_pending_approval_records_the_reason() -> None:
    got = transition(pending(), Deny("operator", "too expensive"), T0 + 5)
    assert got.state == "denied"
    assert (got.decided_by, got.decision_reason, got.decided_at) == (
        "operator",
        "too expensive",
        T0 + 5,
    )


def test_an_approved_approval_can_be_marked_applied() -> None:
    got = transition(in_state("approved"), Applied(), T0 + 99)
    assert got.state == "applied"
    assert got.finished_at == T0 + 99
    assert got.decided_by == "operator"
    assert got.error is None


def test_an_approved_approval_can_be_marked_failed_with_its_error() -> None:
    got = transition(in_state("approved"), Failed("nixos-container exited 1"), T0 + 99)
    assert got.state == "failed"
    assert got.error == "nixos-container exited 1"
    assert got.finished_at == T0 + 99


def test_a_failure_without_a_message_still_says_something() -> None:
    assert transition(in_state("approved"), Failed("  "), T0).error == "unknown error"


def test_a_huge_failure_message_is_cut_not_refused() -> None:
    got = transition(in_state("approved"), Failed("x" * 100_000), T0)
    assert got.state == "failed"
    assert got.error is not None
    assert len(got.error) == 8000
    assert got.error.endswith("…")


def test_transitions_never_change_the_input_approval() -> None:
    before = pending()
    transition(before, Approve("operator"), T0)
    assert before == pending()


@pytest.mark.parametrize("state", ["approved", "denied", "applied", "failed"])
@pytest.mark.parametrize("event", [Approve("operator"), Deny("operator", "no")])
def test_deciding_an_approval_twice_is_refused(state: ApprovalState, event: Event) -> None:
    with pytest.raises(AlreadyDecided) as raised:
        transition(in_state(state), event, T0 + 1000)
    assert raised.value.code == "already_decided"
    assert isinstance(raised.value, ClientError)


def test_the_already_decided_error_names_who_decided_and_when() -> None:
    with pytest.raises(AlreadyDecided) as raised:
        transition(in_state("approved"), Deny("operator", "changed my mind"), T0 + 1000)
    assert (
        raised.value.message
        == "approval 7 was already approved by operator at 2023-11-14 22:13:30Z"
    )


def test_the_already_decided_error_says_a_denial_was_a_denial() -> None:
    with pytest.raises(AlreadyDecided, match="already denied by operator"):
        transition(in_state("denied"), Approve("operator"), T0 + 1000)


@pytest.mark.parametrize(
    ("state", "tail"),
    [("applied", "and has been applied"), ("failed", "and failed to apply")],
)
def test_the_already_decided_error_tells_how_a_finished_approval_ended(
    state: ApprovalState, tail: str
) -> None:
    with pytest.raises(AlreadyDecided, match=tail):
        transition(in_state(state), Approve("operator"), T0 + 1000)


@pytest.mark.parametrize("state", ["pending", "denied", "applied", "failed"])
@pytest.mark.parametrize("event", [Applied(), Failed("boom")])
def test_only_an_approved_approval_can_be_finished(state: ApprovalState, event: Event) -> None:
    before = in_state(state)
    with pytest.raises(IllegalTransition, match=f"approval 7 is {state}"):
        transition(before, event, T0 + 1000)


@pytest.mark.parametrize("reason", ["", "   \n", None, 42])
def test_a_deny_needs_a_reason(reason: object) -> None:
    with pytest.raises(BadRequest, match="deny reason must be a non-empty string"):
        transition(pending(), Deny("operator", reason), T0)  # type: ignore[arg-type]


def test_a_deny_reason_may_be_2000_characters_but_not_more() -> None:
    assert transition(pending(), Deny("operator", "n" * 2000), T0).state == "denied"
    with pytest.raises(BadRequest, match="2001 characters; the limit is 2000"):
        transition(pending(), Deny("operator", "n" * 2001), T0)


@pytest.mark.parametrize("event", [Approve(""), Deny(" ", "no")])
def test_a_decision_must_name_who_made_it(event: Event) -> None:
    with pytest.raises(BadRequest, match="decider must be named"):
        transition(pending(), event, T0)


def test_every_state_but_pending_has_exactly_one_predecessor_that_the_machine_uses() -> None:
    assert set(PREVIOUS_STATE) == set(STATES) - {"pending"}
    for state in PREVIOUS_STATE:
        reached = in_state(state)
        assert reached.state == state
        # The step into ``state`` started from PREVIOUS_STATE[state].
        assert in_state(PREVIOUS_STATE[state]).state == PREVIOUS_STATE[state]


def test_to_wire_carries_every_field() -> None:
    approval = replace(in_state("failed"), config="role = 'x'\n", host="beta")
    wire = approval.to_wire()
    assert wire == {
        "id": 7,
        "kind": "apply_commit",
        "agent": "alice",
        "requester": "hm1nd",
        "reason": "give alice the network",
        "sha": "0123abcd" * 5,
        "config": "role = 'x'\n",
        "state": "failed",
        "decided_by": "operator",
        "decision_reason": None,
        "error": "boom",
        "created_at": T0,
        "decided_at": T0 + 10,
        "finished_at": T0 + 20,
        "tree": None,
        "digest": None,
        "tool": None,
        "input": None,
        "input_json": None,
        "always": False,
        "answered_at": None,
        "host": "beta",
    }


# -- ToolUse ------------------------------------------------------------------------


def tool_use(id: int = 9) -> Approval:
    return replace(
        pending(id),
        kind="tool_use",
        requester="alice",
        reason="alice asks to use Bash",
        sha=None,
        tool="Bash",
        input='{"command":"rm -rf build"}',
    )


def test_a_tool_use_approved_once_is_approved_until_the_agent_uses_it() -> None:
    approved = transition(tool_use(), Approve("operator"), T0 + 1)
    assert (approved.state, approved.always, approved.finished_at) == ("approved", False, None)
    used = transition(approved, Applied(), T0 + 2)
    assert (used.state, used.finished_at) == ("applied", T0 + 2)
    with pytest.raises(IllegalTransition, match="approval 9 is applied"):
        transition(used, Applied(), T0 + 3)  # used once, never twice


def test_a_tool_use_approved_always_says_so() -> None:
    approved = transition(tool_use(), Approve("operator", always=True), T0 + 1)
    assert (approved.state, approved.always) == ("approved", True)


@pytest.mark.parametrize("kind", ["spawn", "apply_commit"])
def test_only_a_tool_use_can_be_approved_always(kind: Kind) -> None:
    before = replace(tool_use(), kind=kind)
    with pytest.raises(BadRequest, match="only a tool use can be approved always"):
        transition(before, Approve("operator", always=True), T0)


def test_a_tool_use_never_fails_it_is_run_by_the_agent() -> None:
    approved = transition(tool_use(), Approve("operator"), T0)
    with pytest.raises(IllegalTransition, match="is a tool use: it never fails"):
        transition(approved, Failed("boom"), T0 + 1)


def test_a_tool_use_is_denied_with_its_reason_like_any_approval() -> None:
    denied = transition(tool_use(), Deny("operator", "no deletes today"), T0)
    assert (denied.state, denied.decision_reason) == ("denied", "no deletes today")
    with pytest.raises(AlreadyDecided, match="already denied"):
        transition(denied, Approve("operator"), T0 + 1)


def test_deciding_a_used_tool_use_again_says_it_was_used() -> None:
    used = transition(transition(tool_use(), Approve("operator"), T0), Applied(), T0 + 1)
    with pytest.raises(AlreadyDecided, match=r"already approved by operator .* and has been used"):
        transition(used, Deny("operator", "too late"), T0 + 2)


def test_a_tool_uses_wire_form_carries_the_tool_and_its_exact_input() -> None:
    wire = transition(tool_use(), Approve("operator", always=True), T0).to_wire()
    assert wire["kind"] == "tool_use"
    assert (wire["tool"], wire["always"]) == ("Bash", True)
    assert wire["input"] == {"command": "rm -rf build"}
    assert wire["input_json"] == '{"command":"rm -rf build"}'
