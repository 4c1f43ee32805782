"""The gateway's admission decisions, fed events by table (core/gateway/admission.py)."""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

import pytest

from hyperhive.core.gateway.admission import (
    BACKOFF_CAP,
    RETRY_AFTER_CAP,
    AdmissionCore,
    parse_retry_after,
)

# -- who goes next -------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    cap: int
    per_agent: int | None
    wants: str  # one letter per request, an agent each, in the order they came
    granted: str  # the agents granted, in order, on the first grant


CASES = {
    "everyone fits under the cap": Case(4, None, "abc", "abc"),
    "the hive-wide cap stops the rest": Case(2, None, "abcd", "ab"),
    "agents take turns, not first come first served": Case(4, None, "aaaabb", "abab"),
    "three agents alternate round robin": Case(6, None, "aaabbbccc", "abcabc"),
    "the per-agent cap lets others past": Case(4, 1, "aaab", "ab"),
    "an agent at its own cap waits while the hive has room": Case(8, 2, "aaaa", "aa"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_grants_follow_caps_and_turns(case: Case) -> None:
    core = AdmissionCore(case.cap, case.per_agent)
    tickets = {core.want(agent): agent for agent in case.wants}

    granted = "".join(tickets[t] for t in core.grant(now=0.0))

    assert granted == case.granted
    assert core.in_flight == len(case.granted)


def test_a_finished_request_lets_the_next_agent_in_line_go() -> None:
    core = AdmissionCore(cap=1)
    a1, a2, b1 = core.want("a"), core.want("a"), core.want("b")
    assert core.grant(0.0) == [a1]

    core.done("a")

    assert core.grant(0.0) == [b1], "b was waiting longer in the rotation than a's second"
    core.done("b")
    assert core.grant(0.0) == [a2]


def test_an_agents_own_requests_keep_their_order() -> None:
    core = AdmissionCore(cap=3)
    tickets = [core.want("a") for _ in range(3)]

    assert core.grant(0.0) == tickets


def test_a_cancelled_waiter_is_never_granted_and_holds_no_slot() -> None:
    core = AdmissionCore(cap=1)
    first, gone, last = core.want("a"), core.want("b"), core.want("c")
    assert core.grant(0.0) == [first]

    core.cancel(gone)
    core.done("a")

    assert core.grant(0.0) == [last]
    assert core.waiting == 0


def test_per_agent_cap_frees_when_that_agent_finishes() -> None:
    core = AdmissionCore(cap=10, per_agent=1)
    first, second = core.want("a"), core.want("a")
    assert core.grant(0.0) == [first]
    assert core.grant(0.0) == []

    core.done("a")

    assert core.grant(0.0) == [second]


def test_a_slot_taken_at_once_is_what_a_ticket_would_be_granted() -> None:
    core = AdmissionCore(cap=2, per_agent=1)
    assert core.take("a", 0.0) and core.running == {"a": 1}
    assert not core.take("a", 0.0), "a is at its own cap"
    queued = core.want("c")
    assert not core.take("b", 0.0), "c waits: b goes behind it, not past"
    assert core.grant(0.0) == [queued]
    assert not core.take("b", 0.0), "the hive-wide cap"
    core.done("a")
    core.done("c")
    core.throttled(0.0, 5.0)
    assert not core.take("b", 4.9) and core.take("b", 5.0)


# -- the hold-off --------------------------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    events: tuple[tuple[str, float | None], ...]  # ("429", retry_after) or ("ok", None)
    holds: tuple[float, ...]  # the hold each "429" set, in order


THROTTLES = {
    "retry-after is honoured": Throttle((("429", 7.0),), (7.0,)),
    "without retry-after it doubles from one second": Throttle(
        (("429", None), ("429", None), ("429", None), ("429", None)), (1.0, 2.0, 4.0, 8.0)
    ),
    "a success starts the doubling over": Throttle(
        (("429", None), ("429", None), ("ok", None), ("429", None)), (1.0, 2.0, 1.0)
    ),
    "the doubling stops at the cap": Throttle(
        tuple(("429", None) for _ in range(9)), (1, 2, 4, 8, 16, 32, BACKOFF_CAP, 60, 60)
    ),
}


@pytest.mark.parametrize("case", THROTTLES.values(), ids=THROTTLES.keys())
def test_throttles_set_the_hold_off(case: Throttle) -> None:
    core = AdmissionCore(cap=4)
    holds = []
    now = 0.0
    for kind, retry_after in case.events:
        if kind == "ok":
            core.succeeded()
            continue
        holds.append(core.throttled(now, retry_after))
        now = core.hold_until  # the next answer comes after the hold

    assert tuple(holds) == case.holds


def test_nobody_is_granted_until_the_hold_off_ends() -> None:
    core = AdmissionCore(cap=4)
    core.throttled(100.0, 5.0)
    ticket = core.want("a")

    assert core.grant(104.9) == []
    assert core.hold_until == 105.0
    assert core.grant(105.0) == [ticket]


def test_a_shorter_hold_never_cuts_a_longer_one() -> None:
    core = AdmissionCore(cap=4)
    core.throttled(0.0, 30.0)

    core.throttled(1.0, 2.0)

    assert core.hold_until == 30.0


# -- retry-after -------------------------------------------------------------------

WALL = 1_800_000_000.0
RETRY_AFTERS = {
    "seconds": ("12", 12.0),
    "fractional seconds": ("0.5", 0.5),
    "an HTTP date": (email.utils.formatdate(WALL + 30, usegmt=True), 30.0),
    "a date in the past": (email.utils.formatdate(WALL - 30, usegmt=True), 0.0),
    "absurdly long": ("999999", RETRY_AFTER_CAP),
    "negative": ("-3", 0.0),
    "garbage": ("soon", None),
    "not a number": ("nan", None),
    "absent": (None, None),
}


@pytest.mark.parametrize(("header", "seconds"), RETRY_AFTERS.values(), ids=RETRY_AFTERS.keys())
def test_retry_after_is_read_as_seconds_or_a_date(header: str | None, seconds: float) -> None:
    assert parse_retry_after(header, WALL) == seconds
