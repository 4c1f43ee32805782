"""``[budget]`` in agent.toml and the hive's budget in the daemon's config: checked strictly,
every mistake a clear error naming the field."""

from __future__ import annotations

import pytest

from hyperhive import config as hive_config
from hyperhive.core.agent_config import default_agent_toml, parse_agent_toml
from hyperhive.core.gateway.budget import Budget
from hyperhive.errors import BadConfig, ConfigError


def test_a_budget_table_sets_the_agents_daily_limits() -> None:
    parsed = parse_agent_toml("[budget]\nusd_per_day = 2.5\ntokens_per_day = 1000000\n")
    assert parsed.budget == Budget.of(2.5, 1_000_000)
    assert parse_agent_toml("[budget]\nusd_per_day = 3\n").budget == Budget.of(3.0)
    assert parse_agent_toml("").budget == Budget()


def test_the_default_agent_toml_documents_the_budget_and_sets_none() -> None:
    text = default_agent_toml("alice")
    assert "[budget]" in text and "# usd_per_day" in text and "# tokens_per_day" in text
    assert parse_agent_toml(text).budget == Budget()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[budget]\nusd_per_dya = 1\n", "unknown key 'budget.usd_per_dya' (did you mean"),
        ("[budget]\nusd_per_day = 0\n", "budget.usd_per_day must be a positive number"),
        ("[budget]\nusd_per_day = -1.5\n", "budget.usd_per_day must be a positive number"),
        ('[budget]\nusd_per_day = "5"\n', "budget.usd_per_day must be a positive number"),
        ("[budget]\nusd_per_day = true\n", "budget.usd_per_day must be a positive number"),
        ("[budget]\nusd_per_day = nan\n", "budget.usd_per_day must be a positive number"),
        ("[budget]\nusd_per_day = inf\n", "budget.usd_per_day must be a positive number"),
        ("[budget]\ntokens_per_day = 1.5\n", "budget.tokens_per_day must be a positive integer"),
        ("[budget]\ntokens_per_day = 0\n", "budget.tokens_per_day must be a positive integer"),
        ("[budget]\ntokens_per_day = -3\n", "budget.tokens_per_day must be a positive integer"),
        ("budget = 5\n", "budget must be a table"),
    ],
)
def test_a_bad_budget_is_refused_naming_the_field(text: str, says: str) -> None:
    with pytest.raises(BadConfig) as err:
        parse_agent_toml(text)
    assert says in err.value.message


def test_the_hive_budget_comes_from_the_daemons_env() -> None:
    env = {
        "HOME": "/tmp",
        "HYPERHIVE_BUDGET_USD_PER_DAY": "12.5",
        "HYPERHIVE_BUDGET_TOKENS_PER_DAY": "5000000",
    }
    resolved = hive_config.resolve(env=env, uid=1000)
    assert resolved.hive_usd_per_day == 12.5 and resolved.hive_tokens_per_day == 5_000_000
    plain = hive_config.resolve(env={"HOME": "/tmp"}, uid=1000)
    assert plain.hive_usd_per_day is None and plain.hive_tokens_per_day is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HYPERHIVE_BUDGET_USD_PER_DAY", "-1"),
        ("HYPERHIVE_BUDGET_USD_PER_DAY", "0"),
        ("HYPERHIVE_BUDGET_USD_PER_DAY", "five"),
        ("HYPERHIVE_BUDGET_USD_PER_DAY", "nan"),
        ("HYPERHIVE_BUDGET_USD_PER_DAY", "inf"),
        ("HYPERHIVE_BUDGET_TOKENS_PER_DAY", "1.5"),
        ("HYPERHIVE_BUDGET_TOKENS_PER_DAY", "-2"),
    ],
)
def test_a_bad_hive_budget_in_the_env_stops_the_start(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        hive_config.resolve(env={"HOME": "/tmp", key: value}, uid=1000)
    assert key in err.value.message and "expected a positive" in err.value.message
