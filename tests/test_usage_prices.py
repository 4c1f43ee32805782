"""The price table (core/gateway/prices.py): model ids priced by family, unknown models at
the dearest price, costs exact in nano-USD, and ``prices.toml`` checked strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperhive.core.gateway.prices import NANO_PER_USD, SHIPPED, Price, load_prices
from hyperhive.core.gateway.seams import Usage
from hyperhive.errors import ConfigError


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
        ("claude-sonnet-4-5[1m]", "claude-sonnet-4-5"),
    ],
)
def test_a_model_id_is_priced_by_its_longest_family_prefix(model: str, family: str) -> None:
    priced = load_prices(None).price_of(model)
    assert priced.known and priced.family == family and priced.price == SHIPPED[family]


@pytest.mark.parametrize("model", ["gpt-4o", "claude-opus-45", "claude", "", None])
def test_an_unknown_model_costs_the_dearest_family_and_is_marked(model: str | None) -> None:
    priced = load_prices(None).price_of(model)
    assert not priced.known and priced.family is None
    assert priced.price == max(SHIPPED.values(), key=lambda p: p.output)
    assert priced.price.output == 75_000  # $75 per million tokens, in nano-USD per token


def test_costs_are_exact_integers_in_nano_dollars() -> None:
    sonnet = SHIPPED["claude-sonnet-4-5"]
    usage = Usage(input_tokens=1_000_000, output_tokens=1, cache_read_input_tokens=3)
    # $3 for a million input tokens, $15/MTok for one output token, $0.30/MTok for 3 reads.
    assert sonnet.cost(usage) == 3 * NANO_PER_USD + 15_000 + 3 * 300
    haiku = SHIPPED["claude-3-5-haiku"]
    # A single cache-read token costs 0.08 micro-dollars: still counted, exactly.
    assert haiku.cost(Usage(cache_read_input_tokens=1)) == 80
    assert Price.per_mtok("3", "15", "3.75", "0.30") == sonnet


def test_prices_toml_replaces_a_family_and_adds_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        "[models.claude-sonnet-4-5]\ninput = 2\noutput = 10.5\ncache_write = 2.5\n"
        "cache_read = 0.125\n\n"
        '[models."claude-next"]\ninput = 1\noutput = 2\ncache_write = 0\ncache_read = 0\n'
    )
    table = load_prices(path)
    assert table.price_of("claude-sonnet-4-5-20250929").price == Price(2000, 10500, 2500, 125)
    assert table.price_of("claude-next-20270101").family == "claude-next"
    assert table.price_of("claude-haiku-4-5").price == SHIPPED["claude-haiku-4-5"]


def test_a_missing_prices_toml_is_the_shipped_table(tmp_path: Path) -> None:
    assert load_prices(tmp_path / "prices.toml").families == SHIPPED


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[models.x\n", "not valid TOML"),
        ("price = 1\n", "unknown key 'price'"),
        ("models = 3\n", "models must be a table"),
        ("[models.x]\ninput = 1\noutput = 1\ncache_write = 1\n", "missing cache_read"),
        (
            "[models.x]\ninput = 1\noutput = 1\ncache_write = 1\ncache_read = 1\nfoo = 2\n",
            "unknown key 'foo'",
        ),
        (
            "[models.x]\ninput = -1\noutput = 1\ncache_write = 1\ncache_read = 1\n",
            "models.x.input must be between 0",
        ),
        (
            '[models.x]\ninput = "3"\noutput = 1\ncache_write = 1\ncache_read = 1\n',
            "models.x.input must be a number",
        ),
        (
            "[models.x]\ninput = true\noutput = 1\ncache_write = 1\ncache_read = 1\n",
            "must be a number",
        ),
        (
            "[models.x]\ninput = nan\noutput = 1\ncache_write = 1\ncache_read = 1\n",
            "must be between",
        ),
        (
            "[models.x]\ninput = inf\noutput = 1\ncache_write = 1\ncache_read = 1\n",
            "must be between",
        ),
        (
            "[models.x]\ninput = 0.0001\noutput = 1\ncache_write = 1\ncache_read = 1\n",
            "at most three decimals",
        ),
        (
            '[models."a b"]\ninput = 1\noutput = 1\ncache_write = 1\ncache_read = 1\n',
            "is not a model family",
        ),
        ("[models]\nx = 1\n", "models.x must be a table"),
    ],
)
def test_a_bad_prices_toml_is_a_config_error_that_names_the_mistake(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_prices(path)
    assert says in err.value.message and str(path) in err.value.message


def test_a_prices_toml_that_is_not_text_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_bytes(b"\xff\xfe[models]")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_prices(path)
