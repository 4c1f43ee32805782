"""The approval queue over a real sqlite file: requests, decisions, races, reopening."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hyperhive.core.agent_config import BadConfig
from hyperhive.core.approval_queue import (
    MAX_PENDING_PER_REQUESTER,
    ApprovalQueue,
    DuplicateRequest,
)
from hyperhive.core.approvals import (
    AlreadyDecided,
    Applied,
    Approve,
    Deny,
    IllegalTransition,
    UnknownApproval,
    transition,
)
from hyperhive.core.db import Database, open_store
from hyperhive.core.proposal import Pin, Staged
from hyperhive.core.tool_approvals import ToolApprovals
from hyperhive.errors import BadName, BadRequest, QuotaExceeded

pytestmark = pytest.mark.usefixtures("both_stores")

SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
TREE = "cafe" * 10


def staged(sha: str) -> Staged:
    """A request as the config repos stage it: the commit, its pinned tree, the diff."""
    return Staged(Pin(sha, TREE, "5a" * 32), "-old\n+new\n", {})


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture
def db(store_target: str | Path) -> str | Path:
    return store_target


@pytest.fixture
def conn(db: Path) -> Iterator[Database]:
    connection = open_store(db)
    yield connection
    connection.close()


@pytest.fixture
def queue(conn: Database) -> ApprovalQueue:
    return ApprovalQueue(conn, Clock())


def test_a_spawn_request_is_pending_with_everything_the_operator_needs(
    queue: ApprovalQueue,
) -> None:
    got = queue.request_spawn("alice", "hm1nd", "we need a tester", 'role = "tests"\n')
    assert got.id == 1
    assert (got.kind, got.agent, got.requester, got.state) == ("spawn", "alice", "hm1nd", "pending")
    assert got.config == 'role = "tests"\n'
    assert got.sha is None
    assert got.created_at == 1_700_000_001.0
    assert queue.get(got.id) == got


def test_an_apply_commit_request_stores_its_sha_in_lowercase(queue: ApprovalQueue) -> None:
    got = queue.request_apply_commit("alice", "hm1nd", "more memory", staged(SHA.upper()))
    assert (got.kind, got.sha, got.config) == ("apply_commit", SHA, None)
    assert queue.get(got.id).sha == SHA
    # The pin and the diff shown are kept with it, for apply and for the dashboard.
    assert (got.tree, got.digest, got.diff) == (TREE, "5a" * 32, "-old\n+new\n")


def test_approvals_survive_closing_and_reopening_the_database(db: Path) -> None:
    first = open_store(db)
    queue = ApprovalQueue(first, Clock())
    spawn = queue.request_spawn("alice", "hm1nd", "why not", None)
    commit = queue.request_apply_commit("bob", "hm1nd", "tune", staged(SHA))
    approved = queue.save(transition(spawn, Approve("operator"), 5.0))
    first.close()
    again = ApprovalQueue(open_store(db))
    assert again.get(spawn.id) == approved
    assert again.pending() == [commit]


def test_pending_lists_only_undecided_requests_oldest_first(queue: ApprovalQueue) -> None:
    a = queue.request_spawn("alice", "hm1nd", "one", None)
    b = queue.request_spawn("bob", "hm1nd", "two", None)
    c = queue.request_apply_commit("carol", "hm1nd", "three", staged(SHA))
    queue.save(transition(b, Deny("operator", "no"), 9.0))
    assert [x.id for x in queue.pending()] == [a.id, c.id]


def test_recent_lists_every_state_newest_first_up_to_the_limit(queue: ApprovalQueue) -> None:
    ids = [queue.request_spawn(f"a{i}", "hm1nd", "r", None).id for i in range(5)]
    queue.save(transition(queue.get(ids[0]), Approve("operator"), 9.0))
    assert [x.id for x in queue.recent(3)] == ids[:1:-1]
    assert [x.state for x in queue.recent(10)][-1] == "approved"


@pytest.mark.parametrize("limit", [0, -1, 1001, True, "5"])
def test_recent_refuses_a_silly_limit(queue: ApprovalQueue, limit: object) -> None:
    with pytest.raises(BadRequest, match="limit must be an integer from 1 to 1000"):
        queue.recent(limit)  # type: ignore[arg-type]


def test_a_stale_transition_is_refused_and_the_winner_is_kept(queue: ApprovalQueue) -> None:
    pending = queue.request_spawn("alice", "hm1nd", "r", None)
    # Two deciders read the same pending row, then both try to write.
    approved = transition(pending, Approve("operator"), 10.0)
    denied = transition(pending, Deny("someone", "no"), 11.0)
    queue.save(approved)
    with pytest.raises(AlreadyDecided, match="approval 1 was already approved by operator"):
        queue.save(denied)
    assert queue.get(pending.id) == approved


def test_a_second_queue_on_another_connection_cannot_decide_again(db: Path) -> None:
    one, two = open_store(db), open_store(db)
    try:
        first, second = ApprovalQueue(one), ApprovalQueue(two)
        pending = first.request_spawn("alice", "hm1nd", "r", None)
        seen_by_second = second.get(pending.id)
        first.save(transition(pending, Deny("operator", "no"), 10.0))
        with pytest.raises(AlreadyDecided, match="already denied"):
            second.save(transition(seen_by_second, Approve("operator"), 11.0))
    finally:
        one.close()
        two.close()


def test_finishing_twice_is_an_illegal_transition(queue: ApprovalQueue) -> None:
    approved = queue.save(
        transition(queue.request_spawn("alice", "hm1nd", "r", None), Approve("operator"), 1.0)
    )
    applied = transition(approved, Applied(), 2.0)
    queue.save(applied)
    with pytest.raises(IllegalTransition, match="approval 1 is applied, not approved"):
        queue.save(applied)


def test_saving_with_an_explicit_previous_state_checks_that_state(queue: ApprovalQueue) -> None:
    pending = queue.request_spawn("alice", "hm1nd", "r", None)
    approved = transition(pending, Approve("operator"), 1.0)
    assert queue.save(approved, previous=pending.state) == approved
    with pytest.raises(AlreadyDecided):
        queue.save(approved, previous="pending")


def test_a_pending_approval_cannot_be_saved_as_a_transition(queue: ApprovalQueue) -> None:
    pending = queue.request_spawn("alice", "hm1nd", "r", None)
    with pytest.raises(IllegalTransition, match="cannot be saved as pending"):
        queue.save(pending)


def test_the_same_spawn_twice_while_pending_is_a_duplicate(queue: ApprovalQueue) -> None:
    first = queue.request_spawn("alice", "hm1nd", "r", None)
    with pytest.raises(DuplicateRequest, match=r"spawn of 'alice' is already waiting .*#1") as e:
        queue.request_spawn("alice", "hm1nd", "again, with a config", "model = 'x'\n")
    assert e.value.code == "duplicate"
    assert queue.pending() == [first]


def test_the_same_commit_twice_while_pending_is_a_duplicate(queue: ApprovalQueue) -> None:
    queue.request_apply_commit("alice", "hm1nd", "r", staged(SHA))
    with pytest.raises(DuplicateRequest, match=f"commit {SHA} for 'alice'"):
        queue.request_apply_commit("alice", "hm1nd", "r", staged(SHA.upper()))


def test_a_different_commit_or_another_agent_is_not_a_duplicate(queue: ApprovalQueue) -> None:
    queue.request_apply_commit("alice", "hm1nd", "r", staged(SHA))
    queue.request_apply_commit("alice", "hm1nd", "r", staged("abcd1234"))
    queue.request_apply_commit("bob", "hm1nd", "r", staged(SHA))
    queue.request_spawn("alice", "hm1nd", "r", None)
    assert len(queue.pending()) == 4


def test_a_requester_may_keep_only_so_many_approvals_waiting(queue: ApprovalQueue) -> None:
    for i in range(MAX_PENDING_PER_REQUESTER):
        queue.request_spawn(f"a{i}", "hm1nd", "r", None)
    with pytest.raises(QuotaExceeded, match=f"{MAX_PENDING_PER_REQUESTER} approvals waiting"):
        queue.request_spawn("late", "hm1nd", "one too many", None)
    assert len(queue.pending()) == MAX_PENDING_PER_REQUESTER
    # The operator's own requests are not crowded out, and a decision frees a slot.
    queue.request_spawn("mine", "operator", "r", None)
    queue.save(transition(queue.pending()[0], Deny("operator", "no"), 1.0))
    assert queue.request_spawn("late", "hm1nd", "now", None).agent == "late"


def test_a_request_may_be_made_again_once_the_first_is_decided(queue: ApprovalQueue) -> None:
    first = queue.request_spawn("alice", "hm1nd", "r", None)
    queue.save(transition(first, Deny("operator", "not yet"), 1.0))
    assert queue.request_spawn("alice", "hm1nd", "now?", None).id == 2


@pytest.mark.parametrize("name", ["Alice", "operator", "", "waytoolongname", None])
def test_a_bad_agent_name_is_refused_and_nothing_is_stored(
    queue: ApprovalQueue, name: object
) -> None:
    with pytest.raises(BadName):
        queue.request_spawn(name, "hm1nd", "r", None)
    assert queue.recent(10) == []


@pytest.mark.parametrize("reason", ["", "  ", None, "x" * 2001])
def test_a_missing_or_huge_reason_is_refused(queue: ApprovalQueue, reason: object) -> None:
    with pytest.raises(BadRequest, match="reason"):
        queue.request_apply_commit("alice", "hm1nd", reason, staged(SHA))
    assert queue.recent(10) == []


@pytest.mark.parametrize("sha", ["abc", "HEAD", "main", "g" * 40, "a" * 65, "", None, "--all"])
def test_a_sha_that_is_not_hex_is_refused(queue: ApprovalQueue, sha: object) -> None:
    with pytest.raises(BadRequest, match="sha must be 4 to 64 hex digits"):
        queue.request_apply_commit("alice", "hm1nd", "r", staged(sha))  # type: ignore[arg-type]


def test_the_requester_must_be_a_participant(queue: ApprovalQueue) -> None:
    with pytest.raises(BadName):
        queue.request_spawn("alice", "Robert'); DROP TABLE", "r", None)
    assert queue.request_spawn("alice", "operator", "r", None).requester == "operator"


def test_a_spawn_with_a_bad_config_is_refused_at_request_time(queue: ApprovalQueue) -> None:
    with pytest.raises(BadConfig, match="unknown key 'rol'"):
        queue.request_spawn("alice", "hm1nd", "r", 'rol = "x"\n')
    with pytest.raises(BadRequest, match="over 256 KiB"):
        queue.request_spawn("alice", "hm1nd", "r", "#" * (256 * 1024 + 1))
    assert queue.recent(10) == []


def test_an_unknown_approval_id_is_a_clear_error(queue: ApprovalQueue) -> None:
    with pytest.raises(UnknownApproval, match="no approval with id 42") as raised:
        queue.get(42)
    assert raised.value.code == "unknown_approval"
    with pytest.raises(BadRequest, match="approval id must be an integer"):
        queue.get("1")


def test_tool_uses_and_other_requests_share_one_pending_cap(
    conn: Database, queue: ApprovalQueue
) -> None:
    tools = ToolApprovals(conn, Clock())
    for i in range(MAX_PENDING_PER_REQUESTER - 1):
        queue.request_spawn(f"a{i}", "hm1nd", "r", None)
    asked = tools.ask("hm1nd", 0.0, "Bash", {"command": "ls"})
    assert (asked.decision, asked.created) == ("pending", True)
    with pytest.raises(QuotaExceeded):
        queue.request_spawn("late", "hm1nd", "r", None)
    with pytest.raises(QuotaExceeded):
        tools.ask("hm1nd", 0.0, "Bash", {"command": "pwd"})
    # The queue reads a tool use back whole.
    stored = queue.get(asked.approval.id if asked.approval else 0)
    assert (stored.kind, stored.tool, stored.input, stored.always) == (
        "tool_use",
        "Bash",
        '{"command":"ls"}',
        False,
    )
