"""The spend ledger (core/gateway/ledger.py) on both stores: sums per agent per UTC day
and per time bucket, overrides and resumes, all surviving a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperhive.core.db import open_store
from hyperhive.core.gateway.budget import Override, Spend
from hyperhive.core.gateway.ledger import Ledger
from hyperhive.core.gateway.seams import Usage

pytestmark = pytest.mark.usefixtures("both_stores")

DAY1 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
DAY = "2027-01-15"


def test_responses_add_up_per_agent_per_day_and_survive_a_reopen(store_target: str | Path) -> None:
    path = store_target
    ledger = Ledger(open_store(path))
    ledger.add("alice", DAY, DAY1, Usage(10, 5, 2, 1), 1_000, unpriced=False)
    ledger.add("alice", DAY, DAY1 + 1, Usage(1, 1, 0, 0), 7, unpriced=True)
    ledger.add("bob", DAY, DAY1 + 2, Usage(100, 0, 0, 0), 300, unpriced=False)
    ledger.add("alice", "2027-01-16", DAY1 + 86400, Usage(4, 4, 4, 4), 16, unpriced=False)
    reopened = Ledger(open_store(path))
    assert reopened.spend("alice", DAY) == Spend(2, Usage(11, 6, 2, 1), 1_007)
    assert reopened.spend("carol", DAY) == Spend()
    assert reopened.hive_spend(DAY) == Spend(3, Usage(111, 6, 2, 1), 1_307)
    assert reopened.hive_spend("2020-01-01") == Spend()
    assert set(reopened.spend_by_agent(DAY)) == {"alice", "bob"}
    assert reopened.unpriced(DAY) == 1
    assert [(a, d) for a, d, _ in reopened.days(None, DAY)] == [
        ("alice", DAY),
        ("bob", DAY),
        ("alice", "2027-01-16"),
    ]
    assert [d for _, d, _ in reopened.days("alice", "2027-01-16")] == ["2027-01-16"]
    # The gateway's one read after a response: the agent's day and the hive's.
    assert reopened.spend_with_hive("alice", DAY) == (
        reopened.spend("alice", DAY),
        reopened.hive_spend(DAY),
    )
    assert reopened.spend_with_hive("carol", DAY) == (Spend(), reopened.hive_spend(DAY))
    assert reopened.spend_with_hive("alice", "2020-01-01") == (Spend(), Spend())


def test_buckets_sum_the_traffic_that_falls_in_them(store_target: str | Path) -> None:
    ledger = Ledger(open_store(store_target))
    base = 1_800_000_000  # a multiple of 300
    for offset, tokens in ((0, 10), (59, 20), (60, 40), (299, 80), (300, 160), (3600, 320)):
        ledger.add("alice", DAY, base + offset, Usage(tokens), tokens * 3, unpriced=False)
    ledger.add("bob", DAY, base + 10, Usage(1), 1, unpriced=False)
    assert ledger.series("alice", base, 60) == {
        "alice": [
            (base, 90, 30),
            (base + 60, 120, 40),
            (base + 240, 240, 80),
            (base + 300, 480, 160),
            (base + 3600, 960, 320),
        ]
    }
    assert ledger.series(None, base, 300) == {
        "alice": [(base, 450, 150), (base + 300, 480, 160), (base + 3600, 960, 320)],
        "bob": [(base, 1, 1)],
    }
    assert ledger.series(None, base + 301, 300) == {
        "alice": [(base + 300, 480, 160), (base + 3600, 960, 320)]
    }


def test_overrides_and_resumes_are_kept(store_target: str | Path) -> None:
    path = store_target
    ledger = Ledger(open_store(path))
    assert ledger.override("alice") == Override()
    ledger.set_override("alice", Override(True, 5, False, None), DAY1)
    ledger.set_override(None, Override(False, None, True, 1000), DAY1)
    ledger.note("alice", DAY, "resumed", "resumed", DAY1)
    ledger.note(None, DAY, "paused", "the hive is paused", DAY1)
    reopened = Ledger(open_store(path))
    assert reopened.override("alice") == Override(True, 5, False, None)
    assert reopened.override(None) == Override(False, None, True, 1000)
    assert reopened.overrides("alice") == (reopened.override("alice"), reopened.override(None))
    assert reopened.overrides("bob") == (Override(), Override(False, None, True, 1000))
    assert reopened.resumed(DAY) == {"alice"}
    assert reopened.resumed("2027-01-16") == set()
    assert [e["what"] for e in reopened.log(None)] == ["paused"]
