"""Whose fault a failed turn was, the backoff, the badge, and when a message is dead:
the pure decisions, by table."""

from __future__ import annotations

from typing import Any

import pytest

from hyperhive.agent.engine import EngineError, EngineUnavailable, NotLoggedIn
from hyperhive.agent.failures import REASON_LIMIT, Backoff, Failed, Handled, Outcome, Retry, judge
from hyperhive.agent.state import AgentState
from hyperhive.core.dead_letter import MAX_REASON, check_reason, verdict
from hyperhive.errors import BadRequest

OK: dict[str, Any] = {"is_error": False, "text": "done"}


def api_error(status: int | None, kind: str | None, text: str = "API Error") -> dict[str, Any]:
    return {"is_error": True, "text": text, "api_error_status": status, "api_error": kind}


@pytest.mark.parametrize(
    ("raised", "result", "cancelled", "expected"),
    [
        # the turn ran
        (None, OK, False, Handled()),
        (None, {}, False, Handled()),  # no result at all: nothing says it failed
        # the operator cancelled it: the message was seen to
        (None, {"is_error": True, "text": "interrupted"}, True, Handled()),
        # no credentials, or refused ones: wait for a login
        (NotLoggedIn("not logged in"), {}, False, Retry("login", "not logged in")),
        (None, {"is_error": True, "auth_error": True, "text": "x"}, False, Retry("login", "x")),
        (None, api_error(None, "authentication_failed", "Not logged in"), False,
         Retry("login", "Not logged in")),
        (None, api_error(401, None, "Invalid API key"), False, Retry("login", "Invalid API key")),
        (None, api_error(403, None, "forbidden"), False, Retry("login", "forbidden")),
        # upstream trouble after the CLI's own retries: back off
        (None, api_error(529, "server_error", "Overloaded"), False,
         Retry("upstream", "Overloaded")),
        (None, api_error(500, None, "boom"), False, Retry("upstream", "boom")),
        (None, api_error(503, None, "down"), False, Retry("upstream", "down")),
        (None, api_error(429, "rate_limit", "slow down"), False, Retry("upstream", "slow down")),
        (None, api_error(408, None, "timeout"), False, Retry("upstream", "timeout")),
        (None, api_error(None, "server_error", "ECONNREFUSED"), False,
         Retry("upstream", "ECONNREFUSED")),
        (None, api_error(None, "billing_error", "no credit"), False,
         Retry("upstream", "no credit")),
        # the engine would not start
        (EngineUnavailable("cannot start"), {}, False, Retry("engine", "cannot start")),
        # anything else may be the message's doing: an attempt
        (EngineError("Claude Code failed: bad"), {}, False, Failed("Claude Code failed: bad")),
        (None, api_error(400, "invalid_request", "prompt is too long"), False,
         Failed("prompt is too long")),
        (None, api_error(None, "unknown", "strange"), False, Failed("strange")),
        (None, {"is_error": True, "text": "error_max_turns"}, False, Failed("error_max_turns")),
        (None, {"is_error": True}, False, Failed("the turn failed")),
        # junk where a status or a kind should be is neither
        (None, api_error(True, ["server_error"]), False, Failed("API Error")),  # type: ignore[arg-type]
        # an engine that raised wins over the cancel: the turn did not run
        (EngineError("broke"), {}, True, Failed("broke")),
    ],
)  # fmt: skip
def test_which_failures_keep_the_message_and_which_count_against_it(
    raised: EngineError | None, result: dict[str, Any], cancelled: bool, expected: Outcome
) -> None:
    assert judge(raised, result, cancelled=cancelled) == expected


def test_a_long_error_text_is_cut_to_a_bounded_reason() -> None:
    outcome = judge(EngineError("x" * 50_000), {}, cancelled=False)
    assert isinstance(outcome, Failed)
    assert len(outcome.reason) == REASON_LIMIT and outcome.reason.endswith("…")
    # a reason the harness sends is always one the core accepts
    assert check_reason(outcome.reason) == outcome.reason


def test_the_backoff_doubles_from_one_second_to_five_minutes() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(0, 12)] == [
        0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0,
    ]  # fmt: skip
    assert backoff.delay(10**6) == 300.0  # a long outage does not overflow


@pytest.mark.parametrize(
    ("attempts", "limit", "expected"),
    [(1, 3, "again"), (2, 3, "again"), (3, 3, "dead"), (4, 3, "dead"), (1, 1, "dead")],
)
def test_a_message_is_dead_once_its_failed_tries_reach_the_limit(
    attempts: int, limit: int, expected: str
) -> None:
    assert verdict(attempts, limit) == expected


@pytest.mark.parametrize(
    "reason", [None, 3, "", "   ", "x" * (MAX_REASON + 1), "\ud800", ["a"]], ids=repr
)
def test_a_failure_reason_must_be_a_short_text(reason: object) -> None:
    with pytest.raises(BadRequest):
        check_reason(reason)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"core_connected": True}, ("idle", None)),
        ({"core_connected": True, "backoff": "upstream: 529"}, ("backoff", "upstream: 529")),
        ({"core_connected": True, "backoff": "engine", "turn_running": True}, ("thinking", None)),
        ({"core_connected": True, "backoff": "engine", "logged_in": False}, ("offline", "login")),
        ({"core_connected": False, "backoff": "engine"}, ("offline", "core")),
        ({"core_connected": True, "logged_in": False}, ("offline", "login")),
    ],
)  # fmt: skip
def test_the_badge_says_backoff_with_its_reason_below_thinking_and_offline(
    facts: dict[str, Any], expected: tuple[str, str | None]
) -> None:
    state = AgentState(0.0)
    state.update(1.0, **facts)
    assert (state.current.state, state.current.reason) == expected


def test_a_backoff_ends_when_its_fact_is_cleared_and_an_unrelated_update_keeps_it() -> None:
    state = AgentState(0.0)
    state.update(1.0, core_connected=True, backoff="upstream: 529")
    assert state.update(2.0, turn_running=False) is None  # backoff left as it was
    cleared = state.update(3.0, backoff=None)
    assert cleared is not None and (cleared.state, cleared.since) == ("idle", 3.0)
