"""``hive usage`` and ``hive budget`` against a real ``hive-c0re`` process, its ledger
seeded in the same sqlite file before it starts (what the gateway writes, G's tests send
through api.sock)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import Daemon, start_daemon, stop_daemon
from hyperhive.cli.commands import since_day
from hyperhive.core.db import open_store
from hyperhive.core.gateway.ledger import Ledger
from hyperhive.core.gateway.seams import Usage


def day(days_ago: int = 0) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


@pytest.fixture
def spent(short_dir: Path) -> Iterator[Daemon]:
    state = short_dir / "state"
    conn = open_store(state / "hive.db")
    ledger = Ledger(conn)
    now = time.time()
    # alice: $0.90 today (300k sonnet input tokens) and some yesterday; bob a little.
    ledger.add("alice", day(), now, Usage(300_000, 0, 0, 0), 900_000_000, unpriced=False)
    ledger.add("alice", day(1), now - 86400, Usage(10, 20, 30, 40), 1_234, unpriced=False)
    ledger.add("bob", day(), now, Usage(1, 2, 0, 0), 33_000, unpriced=False)
    conn.close()
    daemon = start_daemon(state, short_dir / "run")
    try:
        assert daemon.cli("agents", "add", "alice").returncode == 0
        assert daemon.cli("agents", "add", "bob").returncode == 0
        yield daemon
    finally:
        stop_daemon(daemon)


def test_hive_usage_prints_spend_per_day_and_todays_state(spent: Daemon) -> None:
    shown = spent.cli("usage")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == [
        "DAY",
        "AGENT",
        "REQUESTS",
        "IN",
        "OUT",
        "CACHE",
        "WRITE",
        "CACHE",
        "READ",
        "COST",
    ]
    assert lines[1].split() == [day(1), "alice", "1", "10", "20", "30", "40", "$0.000001"]
    assert lines[2].split() == [day(), "alice", "1", "300,000", "0", "0", "0", "$0.90"]
    assert lines[3].split() == [day(), "bob", "1", "1", "2", "0", "0", "$0.000033"]
    assert f"today ({day()}, UTC):" in shown.stdout
    alice = next(line for line in lines if line.startswith("alice ") and " ok " in line)
    assert "$0.90, 300,000 tokens" in alice and alice.rstrip().endswith("none")

    only = json.loads(spent.cli("usage", "--agent", "bob", "--since", "2d", "--json").stdout)
    assert [(d["agent"], d["day"], d["tokens"]) for d in only["days"]] == [("bob", day(), 3)]
    assert list(only["agents"]) == ["bob"]
    today_only = json.loads(spent.cli("usage", "--since", day(), "--json").stdout)
    assert {d["day"] for d in today_only["days"]} == {day()}


def test_hive_budget_sets_pauses_and_resumes(spent: Daemon) -> None:
    warn = spent.cli("budget", "--agent", "alice", "--usd-per-day", "1")
    assert warn.returncode == 0, warn.stderr
    assert warn.stdout.strip() == "alice: budget $1.00/day; state warn"
    paused = spent.cli(
        "budget", "--agent", "alice", "--usd-per-day", "0.5", "--tokens-per-day", "1000000"
    )
    assert paused.stdout.strip() == "alice: budget $0.50/day, 1,000,000 tokens/day; state paused"
    shown = [
        " ".join(line.split())
        for line in spent.cli("usage", "--agent", "alice").stdout.splitlines()
    ]
    assert "alice paused $0.90, 300,000 tokens $0.50/day, 1,000,000 tokens/day" in shown
    agents = json.loads(spent.cli("agents", "--json").stdout)
    assert {a["name"]: a["paused"] for a in agents} == {"alice": "budget", "bob": None}

    resumed = spent.cli("budget", "--resume", "alice")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "alice resumed for the rest of today (UTC); state warn"
    agents = json.loads(spent.cli("agents", "--json").stdout)
    assert {a["name"]: a["paused"] for a in agents} == {"alice": None, "bob": None}

    hive = spent.cli("budget", "--tokens-per-day", "100000", "--json")
    assert json.loads(hive.stdout) == {
        "agent": None,
        "budget": {"usd_per_day": None, "tokens_per_day": 100_000},
        "state": "paused",
    }
    lifted = spent.cli("budget", "--tokens-per-day", "none")
    assert lifted.stdout.strip() == "the hive: budget none; state ok"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("budget", "--agent", "alice", "--usd-per-day", "-1"), "must be a positive number"),
        (("budget", "--agent", "alice", "--usd-per-day", "lots"), "--usd-per-day: expected a"),
        (("budget", "--agent", "alice", "--tokens-per-day", "1.5"), "--tokens-per-day: expected"),
        (("budget", "--agent", "nobody", "--usd-per-day", "1"), "no agent named 'nobody'"),
        (("budget", "--agent", "alice"), "usage: hive budget"),
        (("budget", "--resume", "alice", "--usd-per-day", "1"), "usage: hive budget --resume"),
        (("budget", "--resume", "nobody"), "no agent named 'nobody'"),
        (("usage", "--since", "last week"), "'since' must be a day as YYYY-MM-DD"),
        (("usage", "--agent", "nobody"), "no agent named 'nobody'"),
    ],
)
def test_bad_input_to_the_spend_commands_is_a_clear_error(
    spent: Daemon, args: tuple[str, ...], says: str
) -> None:
    before = spent.cli("usage", "--json").stdout
    shown = spent.cli(*args)
    assert shown.returncode == 1 and says in shown.stderr, shown.stderr
    assert spent.cli("usage", "--json").stdout == before


def test_since_in_days_counts_today_in() -> None:
    today = datetime(2027, 1, 15, tzinfo=UTC).date()
    assert since_day("1d", today) == "2027-01-15"
    assert since_day("7d", today) == "2027-01-09"
    assert since_day("2027-01-01", today) == "2027-01-01"
    assert since_day("0d", today) == "0d"  # left for the op to refuse
