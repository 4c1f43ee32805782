"""Restart-or-give-up decisions, fed exits directly."""

from __future__ import annotations

from hyperhive.core.supervision import (
    CrashRecord,
    GiveUp,
    Policy,
    Restart,
    describe_exit,
    on_unexpected_exit,
)


def test_crashes_are_restarted_with_doubling_backoff() -> None:
    record = CrashRecord()
    delays = []
    for t in range(4):
        record, action = on_unexpected_exit(record, 1, now=float(t))
        assert isinstance(action, Restart)
        delays.append(action.after)
    assert delays == [1.0, 2.0, 4.0, 8.0]


def test_a_container_that_keeps_dying_is_given_up_with_its_last_error() -> None:
    record = CrashRecord()
    action: Restart | GiveUp = Restart(0)
    for t in range(5):
        record, action = on_unexpected_exit(record, 3, now=float(t))
    assert isinstance(action, GiveUp)
    assert "exited with code 3" in action.error and "5 crashes" in action.error


def test_old_crashes_fall_out_of_the_window() -> None:
    policy = Policy(max_crashes=3, window=10.0)
    record = CrashRecord()
    record, _ = on_unexpected_exit(record, 1, now=0.0, policy=policy)
    record, _ = on_unexpected_exit(record, 1, now=1.0, policy=policy)
    record, action = on_unexpected_exit(record, 1, now=100.0, policy=policy)
    assert action == Restart(1.0) and record.times == (100.0,)


def test_backoff_is_capped() -> None:
    policy = Policy(max_crashes=100, backoff_max=30.0)
    record = CrashRecord()
    action: Restart | GiveUp = Restart(0)
    for t in range(10):
        record, action = on_unexpected_exit(record, 1, now=float(t), policy=policy)
    assert action == Restart(30.0)


def test_exit_descriptions_name_signals() -> None:
    assert describe_exit(-9) == "killed by signal 9"
    assert describe_exit(2) == "exited with code 2"
