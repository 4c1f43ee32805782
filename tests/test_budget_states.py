"""Budget states (core/gateway/budget.py), pure: ok below 80 %, warn from 80 %, paused
from 100 % of either limit, a resume demoting paused to warn, and what each change says."""

from __future__ import annotations

import pytest

from hyperhive.core.gateway.budget import (
    Budget,
    Override,
    Spend,
    State,
    describe,
    notice,
    state_of,
    usd,
)
from hyperhive.core.gateway.prices import NANO_PER_USD
from hyperhive.core.gateway.seams import Usage

DOLLAR = NANO_PER_USD


def spent(nusd: int = 0, tokens: int = 0) -> Spend:
    return Spend(1, Usage(input_tokens=tokens), nusd)


@pytest.mark.parametrize(
    ("spend", "budget", "state"),
    [
        (spent(0), Budget(), "ok"),
        (spent(10**15, 10**12), Budget(), "ok"),  # no limit: never paused
        (spent(DOLLAR * 79 // 100), Budget.of(1.0), "ok"),
        (spent(DOLLAR * 80 // 100 - 1), Budget.of(1.0), "ok"),
        (spent(DOLLAR * 80 // 100), Budget.of(1.0), "warn"),
        (spent(DOLLAR - 1), Budget.of(1.0), "warn"),
        (spent(DOLLAR), Budget.of(1.0), "paused"),
        (spent(DOLLAR * 2), Budget.of(1.0), "paused"),
        (spent(tokens=799), Budget.of(tokens_per_day=1000), "ok"),
        (spent(tokens=800), Budget.of(tokens_per_day=1000), "warn"),
        (spent(tokens=1000), Budget.of(tokens_per_day=1000), "paused"),
        # The nearer limit decides.
        (spent(DOLLAR // 2, 1000), Budget.of(1.0, 1000), "paused"),
        (spent(DOLLAR, 10), Budget.of(1.0, 1000), "paused"),
        (spent(DOLLAR * 85 // 100, 10), Budget.of(1.0, 1000), "warn"),
    ],
)
def test_the_state_follows_the_nearer_limit(spend: Spend, budget: Budget, state: State) -> None:
    assert state_of(spend, budget) == state


@pytest.mark.parametrize(
    ("spend", "state"),
    [(spent(DOLLAR * 2), "warn"), (spent(DOLLAR // 2), "ok"), (spent(DOLLAR * 9 // 10), "warn")],
)
def test_a_resumed_scope_warns_but_never_pauses(spend: Spend, state: State) -> None:
    assert state_of(spend, Budget.of(1.0), resumed=True) == state


@pytest.mark.parametrize(
    ("before", "after", "said", "tells_hm1nd"),
    [
        ("ok", "ok", None, False),
        ("ok", "warn", "alice has used 80 % or more of its budget", True),
        ("warn", "warn", None, False),
        ("warn", "paused", "alice is paused: budget", True),
        ("ok", "paused", "alice is paused: budget", True),
        ("paused", "paused", None, False),
        ("paused", "ok", "alice is within its budget", False),  # a new day, a raise
        ("paused", "warn", "alice has used 80 %", True),  # raised, but not by much
        ("warn", "ok", "alice is within its budget", False),
    ],
)
def test_each_change_of_state_is_announced_once(
    before: State, after: State, said: str | None, tells_hm1nd: bool
) -> None:
    found = notice("alice", before, after, spent(DOLLAR), Budget.of(1.0))
    if said is None:
        assert found is None
        return
    assert found is not None and found.state == after and said in found.text
    assert found.tell_manager is tells_hm1nd
    assert found.to_wire() == {
        "type": "budget",
        "agent": "alice",
        "state": after,
        "text": found.text,
    }


def test_a_pause_names_the_spend_the_budget_and_what_the_operator_can_do() -> None:
    text = describe("alice", "paused", spent(1_020_000_000), Budget.of(1.0))
    assert text == (
        "alice is paused: budget ($1.02 of $1.00 today); "
        "the operator can raise its budget or resume it"
    )
    hive = describe(None, "paused", spent(tokens=1_500_000), Budget.of(tokens_per_day=1_000_000))
    assert hive == (
        "the hive is paused: budget (1,500,000 of 1,000,000 tokens today); "
        "the operator can raise the hive's budget or resume it"
    )


def test_an_override_replaces_only_the_fields_it_sets() -> None:
    base = Budget.of(1.0, 1000)
    assert Override().over(base) == base
    assert Override(set_usd=True, nusd_per_day=5 * DOLLAR).over(base) == Budget.of(5.0, 1000)
    assert Override(set_tokens=True, tokens_per_day=None).over(base) == Budget.of(1.0, None)


def test_money_reads_in_cents_and_small_sums_stay_visible() -> None:
    assert usd(1_020_000_000) == "$1.02"
    assert usd(DOLLAR // 100) == "$0.01"
    assert usd(4_200_000) == "$0.0042"
    assert Spend(2, Usage(1, 2, 3, 4), 1_500).to_wire() == {
        "requests": 2,
        "input_tokens": 1,
        "output_tokens": 2,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 4,
        "tokens": 10,
        "cost_usd": 1.5e-6,
    }
