"""The stall decision (core/stall.py), fed turns, activity and what waits, with a made-up
clock: no I/O, no sleeping."""

from __future__ import annotations

import pytest

from hyperhive.core.stall import (
    MAX_TICK,
    MIN_TICK,
    StallChange,
    StallTracker,
    Waiting,
    tick_seconds,
)
from hyperhive.settings import StallSettings

T0 = 1_000_000.0
LIMITS = StallSettings(thinking=10.0, approval=60.0, lease=30.0)


def summary(changes: list[StallChange]) -> list[tuple[str, str, str | None, int | None]]:
    return [(c.type, c.waiting.what, c.waiting.agent, c.waiting.id) for c in changes]


def approval(aid: int, agent: str = "bob", since: float = T0) -> Waiting:
    return Waiting("approval", agent, aid, since, f"Spawn approval #{aid} for {agent}")


def test_a_turn_with_no_engine_event_past_the_threshold_stalls_once() -> None:
    tracker = StallTracker()
    tracker.turn_started("alice", 7, T0)
    assert tracker.check(T0 + 9.9, LIMITS) == []
    changes = tracker.check(T0 + 10.0, LIMITS)
    assert summary(changes) == [("stall", "thinking", "alice", None)]
    event = changes[0].to_event()
    assert event["type"] == "stall" and event["since"] == T0 and event["seconds"] == 10.0
    assert "alice" in event["text"] and "no engine event" in event["text"]
    # Reported once: later checks of the same silence say nothing more.
    assert tracker.check(T0 + 20.0, LIMITS) == []
    assert tracker.check(T0 + 500.0, LIMITS) == []
    assert [w.agent for w in tracker.stalled()] == ["alice"]


def test_engine_events_keep_a_long_turn_from_stalling() -> None:
    tracker = StallTracker()
    tracker.turn_started("alice", 7, T0)
    for step in range(1, 30):
        tracker.activity("alice", 7, T0 + step * 5.0)  # an event every 5 s, threshold 10 s
        assert tracker.check(T0 + step * 5.0 + 9.0, LIMITS) == []
    assert tracker.stalled() == []


def test_activity_clears_a_thinking_stall_and_a_new_silence_is_a_new_stall() -> None:
    tracker = StallTracker()
    tracker.turn_started("alice", 7, T0)
    assert summary(tracker.check(T0 + 11, LIMITS)) == [("stall", "thinking", "alice", None)]
    tracker.activity("alice", 7, T0 + 12)
    cleared = tracker.check(T0 + 12, LIMITS)
    assert summary(cleared) == [("stall_cleared", "thinking", "alice", None)]
    assert cleared[0].seconds == 12 and "no longer stalled" in cleared[0].text
    assert tracker.check(T0 + 21, LIMITS) == []
    again = tracker.check(T0 + 22, LIMITS)
    assert summary(again) == [("stall", "thinking", "alice", None)]
    assert again[0].waiting.since == T0 + 12


def test_the_end_of_the_turn_clears_its_stall_and_a_repeated_end_changes_nothing() -> None:
    tracker = StallTracker()
    tracker.turn_started("alice", 7, T0)
    tracker.check(T0 + 11, LIMITS)
    assert tracker.turn_ended("alice", 7) is True
    assert summary(tracker.check(T0 + 12, LIMITS)) == [("stall_cleared", "thinking", "alice", None)]
    assert tracker.turn_ended("alice", 7) is False
    assert tracker.check(T0 + 100, LIMITS) == []


def test_the_end_of_an_older_turn_leaves_the_running_one() -> None:
    tracker = StallTracker()
    tracker.turn_started("alice", 8, T0)
    assert tracker.turn_ended("alice", 7) is False
    assert summary(tracker.check(T0 + 10, LIMITS)) == [("stall", "thinking", "alice", None)]


def test_an_agent_that_stops_has_no_turn_to_stall() -> None:
    tracker = StallTracker()
    tracker.turn_started("alice", 7, T0)
    tracker.turn_started("bob", 3, T0)
    tracker.check(T0 + 11, LIMITS)
    tracker.agent_gone("alice")
    assert summary(tracker.check(T0 + 12, LIMITS)) == [("stall_cleared", "thinking", "alice", None)]
    assert [w.agent for w in tracker.stalled()] == ["bob"]


def test_an_approval_pending_past_its_threshold_stalls_until_decided() -> None:
    tracker = StallTracker()
    tracker.waiting("approval", [approval(3, since=T0), approval(4, since=T0 + 50)])
    assert tracker.check(T0 + 59, LIMITS) == []
    changes = tracker.check(T0 + 60, LIMITS)
    assert summary(changes) == [("stall", "approval", "bob", 3)]
    assert "waited 60 s for the operator" in changes[0].text
    # Fed again at the next tick, unchanged: nothing new.
    tracker.waiting("approval", [approval(3, since=T0), approval(4, since=T0 + 50)])
    assert tracker.check(T0 + 61, LIMITS) == []
    tracker.settled("approval", 3)
    assert summary(tracker.check(T0 + 62, LIMITS)) == [("stall_cleared", "approval", "bob", 3)]
    assert summary(tracker.check(T0 + 110, LIMITS)) == [("stall", "approval", "bob", 4)]


def test_a_question_waits_as_long_as_an_approval_may() -> None:
    tracker = StallTracker()
    tracker.waiting("question", [Waiting("question", "hm1nd", 9, T0, "question #9 from hm1nd")])
    assert tracker.check(T0 + 59, LIMITS) == []
    assert summary(tracker.check(T0 + 60, LIMITS)) == [("stall", "question", "hm1nd", 9)]
    tracker.waiting("question", [])  # answered: gone from the next read
    assert summary(tracker.check(T0 + 61, LIMITS)) == [("stall_cleared", "question", "hm1nd", 9)]


def test_a_lease_held_too_long_stalls_and_clears_once_acked() -> None:
    tracker = StallTracker()
    lease = Waiting("lease", "alice", 12, T0, "message #12 leased by alice")
    tracker.waiting("lease", [lease])
    assert tracker.check(T0 + 29, LIMITS) == []
    changes = tracker.check(T0 + 30, LIMITS)
    assert summary(changes) == [("stall", "lease", "alice", 12)]
    assert "has not been acked for 30 s" in changes[0].text
    tracker.waiting("lease", [])
    assert summary(tracker.check(T0 + 31, LIMITS)) == [("stall_cleared", "lease", "alice", 12)]


def test_a_threshold_of_none_never_stalls_and_switching_it_off_clears() -> None:
    tracker = StallTracker()
    tracker.turn_started("alice", 7, T0)
    tracker.waiting("approval", [approval(3)])
    off = StallSettings(thinking=None, approval=None, lease=None)
    assert tracker.check(T0 + 10**6, off) == []
    assert len(tracker.check(T0 + 10**6, LIMITS)) == 2
    cleared = tracker.check(T0 + 10**6 + 1, StallSettings(thinking=None, approval=60.0, lease=None))
    assert summary(cleared) == [("stall_cleared", "thinking", "alice", None)]


def test_a_reload_that_lowers_a_threshold_applies_at_the_next_check() -> None:
    tracker = StallTracker()
    tracker.turn_started("alice", 7, T0)
    assert tracker.check(T0 + 100, StallSettings(thinking=600.0)) == []
    lowered = tracker.check(T0 + 101, StallSettings(thinking=60.0))
    assert summary(lowered) == [("stall", "thinking", "alice", None)]
    raised = tracker.check(T0 + 102, StallSettings(thinking=600.0))
    assert summary(raised) == [("stall_cleared", "thinking", "alice", None)]


def test_a_turn_is_fed_by_activity_not_as_a_pool() -> None:
    with pytest.raises(ValueError, match="turns"):
        StallTracker().waiting("thinking", [])


def test_the_watch_looks_a_quarter_of_the_shortest_threshold_within_bounds() -> None:
    assert tick_seconds(StallSettings(thinking=600.0, approval=3600.0, lease=1800.0)) == MAX_TICK
    assert tick_seconds(StallSettings(thinking=40.0, approval=None, lease=None)) == 10.0
    assert tick_seconds(StallSettings(thinking=0.01)) == MIN_TICK
    assert tick_seconds(StallSettings(thinking=None, approval=None, lease=None)) == MAX_TICK
