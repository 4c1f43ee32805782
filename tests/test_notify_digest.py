"""Rate limiting by digest, by table with a fake clock: send alone, fold into one
digest, or wait for room in the window; and what a digest says."""

from __future__ import annotations

import pytest

from hyperhive.core.notify.digest import (
    FIRST,
    Action,
    Due,
    Fold,
    Folded,
    Send,
    Wait,
    decide,
    digest_of,
)

NOW = 1000.0


def dues(n: int, start: int = 1) -> list[Due]:
    return [Due(i, "approval") for i in range(start, start + n)]


@pytest.mark.parametrize(
    ("due", "sent", "after", "window", "expected"),
    [
        ([], [], 5, 10.0, None),
        (dues(1), [], 5, 10.0, Send(1)),
        (dues(5), [], 5, 10.0, Send(1)),  # as many as the window has room for: one by one
        (dues(6), [], 5, 10.0, Fold((1, 2, 3, 4, 5, 6))),  # more: all as one digest
        (dues(3), [NOW - 1, NOW - 2], 5, 10.0, Send(1)),
        (dues(4), [NOW - 1, NOW - 2], 5, 10.0, Fold((1, 2, 3, 4))),
        (dues(1), [NOW - 1, NOW - 2, NOW - 3, NOW - 4], 5, 10.0, Send(1)),  # the last slot
        (dues(1), [NOW - 1, NOW - 2, NOW - 3, NOW - 4, NOW - 5], 5, 10.0, Wait(NOW + 5)),
        (dues(9), [NOW - 9, NOW - 1, NOW - 2, NOW - 3, NOW - 4], 5, 10.0, Wait(NOW + 1)),
        # Sends older than the window do not count.
        (dues(2), [NOW - 10, NOW - 11, NOW - 30, NOW - 12, NOW - 13], 5, 10.0, Send(1)),
        # Seven in the window, room for five: one more fits when three have left it.
        (dues(1), [NOW - k for k in (1, 2, 3, 4, 5, 6, 7)], 5, 10.0, Wait(NOW + 5)),
        # A limit below one still lets one through per window.
        (dues(2), [], 0, 10.0, Fold((1, 2))),
        (dues(1), [NOW - 4], 1, 10.0, Wait(NOW + 6)),
    ],
)
def test_what_is_due_goes_alone_in_a_digest_or_waits_for_room(
    due: list[Due], sent: list[float], after: int, window: float, expected: Action | None
) -> None:
    assert decide(due, sent, NOW, after, window) == expected


def test_a_burst_through_the_decider_reaches_a_sink_as_few_sends_covering_all() -> None:
    """100 rows due within a second, fed through decide as the worker would."""
    clock, pending, covered = NOW, dues(100), 0
    sent: list[float] = []
    sends = 0
    while pending:
        action = decide(pending[:1] if sends < 2 else pending, sent, clock, 5, 10.0)
        if isinstance(action, Wait):
            clock = action.until
            continue
        sends += 1
        sent.append(clock)
        if isinstance(action, Send):
            covered += 1
            pending = [d for d in pending if d.id != action.id]
        else:
            assert isinstance(action, Fold)
            covered += len(action.ids)
            pending = [d for d in pending if d.id not in action.ids]
        clock += 0.01
    assert covered == 100 and sends == 3


def test_a_digest_counts_by_kind_and_lists_the_first_titles_with_links() -> None:
    items = [Folded("approval", f"bob asks to use Bash #{i}", f"/#approval-{i}") for i in range(12)]
    items += [Folded("question", "hm1nd asks you a question", "/#question-1")]
    note = digest_of(items)
    assert note.kind == "digest" and note.link == "/"
    assert note.data["count"] == 13 and note.data["kinds"] == {"approval": 12, "question": 1}
    assert len(note.data["first"]) == FIRST
    assert note.data["first"][0] == {
        "kind": "approval",
        "title": "bob asks to use Bash #0",
        "link": "/#approval-0",
    }
    assert note.title == "13 notifications" and "3 more" in note.body


def test_a_digest_folded_again_keeps_every_count() -> None:
    first = digest_of([Folded("failed", "bob failed", "/#agent-row-bob")] * 4)
    again = digest_of(
        [
            Folded("digest", first.title, first.link, first.data),
            Folded("stall", "stalled thinking: bob", "/#agent-row-bob"),
        ]
    )
    assert again.data["count"] == 5 and again.data["kinds"] == {"failed": 4, "stall": 1}
    assert [f["title"] for f in again.data["first"]] == ["bob failed"] * 4 + [
        "stalled thinking: bob"
    ]
