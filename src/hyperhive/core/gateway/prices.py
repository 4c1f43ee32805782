"""What tokens cost: a price table shipped with hyperhive, overridable by
``<state>/prices.toml``.

Prices are USD per million tokens, as Anthropic lists them: input, output, cache write
(the 5-minute cache) and cache read. A model id is priced by the longest family prefix
it starts with (``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4-5``), so dated ids
and aliases need no entry of their own. A model no family matches costs what the most
expensive family costs, and is marked so: the hive never under-counts what it cannot name.

Costs are integers in nano-USD (1e-9 $). A price of $X per million tokens is X·1000
nano-USD per token, a whole number for any price with at most three decimals, so every
cost and every sum of costs is exact; micro-USD would round a cache-read token of a
small model ($0.08/MTok = 0.08 µ$) to nothing.

``prices.toml`` (read once, at start; a bad file stops the start with a ConfigError)::

    [models.claude-sonnet-4-5]
    input = 3.0
    output = 15.0
    cache_write = 3.75
    cache_read = 0.30

Each table names a family prefix; its entry replaces the shipped one or adds a family.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from hyperhive.core.gateway.seams import Usage
from hyperhive.errors import ConfigError

__all__ = ["NANO_PER_USD", "Price", "PriceTable", "Priced", "load_prices"]

NANO_PER_USD: Final = 1_000_000_000
PRICE_KEYS: Final = ("input", "output", "cache_write", "cache_read")
MAX_PRICE_USD: Final = 100_000  # per million tokens: far above any model's
MAX_FAMILIES: Final = 256
MAX_FILE: Final = 256 * 1024
# What may follow a family prefix in a model id: a date, a version, a Vertex "@date", or
# the CLI's "[1m]" context marker. "claude-opus-4" must not price "claude-opus-45".
_BOUNDARY: Final = ("-", "@", "[", ":")


def _nano(amount: Decimal, at: str) -> int:
    nano = amount * 1000
    if nano != nano.to_integral_value():
        raise ConfigError(f"{at} may have at most three decimals (got {amount})")
    return int(nano)


@dataclass(frozen=True, slots=True)
class Price:
    """nano-USD per token for each kind of token (= USD per million tokens times 1000)."""

    input: int
    output: int
    cache_write: int
    cache_read: int

    @classmethod
    def per_mtok(cls, input: str, output: str, cache_write: str, cache_read: str) -> Price:
        return cls(*(_nano(Decimal(v), "") for v in (input, output, cache_write, cache_read)))

    def cost(self, usage: Usage) -> int:
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        )

    def to_wire(self) -> dict[str, float]:
        """USD per million tokens, as listed."""
        return {
            "input": self.input / 1000,
            "output": self.output / 1000,
            "cache_write": self.cache_write / 1000,
            "cache_read": self.cache_read / 1000,
        }


@dataclass(frozen=True, slots=True)
class Priced:
    family: str | None  # None: no family matched; the most expensive price was taken
    price: Price

    @property
    def known(self) -> bool:
        return self.family is not None


# USD per million tokens (Anthropic's list prices; cache write is the 5-minute cache).
SHIPPED: Final[dict[str, Price]] = {
    "claude-opus-4-5": Price.per_mtok("5", "25", "6.25", "0.50"),
    "claude-opus-4-1": Price.per_mtok("15", "75", "18.75", "1.50"),
    "claude-opus-4": Price.per_mtok("15", "75", "18.75", "1.50"),
    "claude-3-opus": Price.per_mtok("15", "75", "18.75", "1.50"),
    "claude-sonnet-4-5": Price.per_mtok("3", "15", "3.75", "0.30"),
    "claude-sonnet-4": Price.per_mtok("3", "15", "3.75", "0.30"),
    "claude-3-7-sonnet": Price.per_mtok("3", "15", "3.75", "0.30"),
    "claude-haiku-4-5": Price.per_mtok("1", "5", "1.25", "0.10"),
    "claude-3-5-haiku": Price.per_mtok("0.80", "4", "1", "0.08"),
    "claude-3-haiku": Price.per_mtok("0.25", "1.25", "0.30", "0.03"),
}


class PriceTable:
    def __init__(self, families: dict[str, Price]) -> None:
        if not families:
            raise ConfigError("the price table names no model family")
        # Longest first: the first prefix that matches is the most specific.
        self._families = sorted(families.items(), key=lambda kv: (-len(kv[0]), kv[0]))
        self._dearest = max(families.values(), key=_weight)
        self._cache: dict[str, Priced] = {}

    @property
    def families(self) -> dict[str, Price]:
        return dict(self._families)

    def price_of(self, model: str | None) -> Priced:
        if model is None:
            return Priced(None, self._dearest)
        found = self._cache.get(model)
        if found is None:
            found = self._match(model)
            if len(self._cache) < 1024:  # model ids come from the upstream: bounded
                self._cache[model] = found
        return found

    def _match(self, model: str) -> Priced:
        for family, price in self._families:
            if model == family or (model.startswith(family) and model[len(family)] in _BOUNDARY):
                return Priced(family, price)
        return Priced(None, self._dearest)


def _weight(price: Price) -> tuple[int, int, int, int]:
    return (price.output, price.input, price.cache_write, price.cache_read)


def load_prices(path: Path | None) -> PriceTable:
    """The shipped table, with ``path``'s entries (when the file exists) over it."""
    families = dict(SHIPPED)
    if path is not None:
        families.update(_read_overrides(path))
    return PriceTable(families)


def _read_overrides(path: Path) -> dict[str, Price]:
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_FILE:
        raise ConfigError(f"{where}: over {MAX_FILE // 1024} KiB")
    try:
        data = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    extra = set(data) - {"models"}
    if extra:
        raise ConfigError(f"{where}: unknown key {sorted(extra)[0]!r} (expected [models.<family>])")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ConfigError(f"{where}: models must be a table of [models.<family>] tables")
    if len(models) > MAX_FAMILIES:
        raise ConfigError(f"{where}: more than {MAX_FAMILIES} model families")
    return {_family(where, name): _price(where, name, entry) for name, entry in models.items()}


def _family(where: str, name: str) -> str:
    if not 0 < len(name) <= 200 or not name.isascii() or not name.isprintable() or " " in name:
        raise ConfigError(f"{where}: {name!r} is not a model family (a model id prefix)")
    return name


def _price(where: str, name: str, entry: object) -> Price:
    at = f"{where}: models.{name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{at} must be a table with {', '.join(PRICE_KEYS)}")
    unknown = sorted(set(entry) - set(PRICE_KEYS))
    if unknown:
        raise ConfigError(f"{at}: unknown key {unknown[0]!r} (expected {', '.join(PRICE_KEYS)})")
    missing = [k for k in PRICE_KEYS if k not in entry]
    if missing:
        raise ConfigError(f"{at}: missing {', '.join(missing)} (USD per million tokens)")
    return Price(*(_usd(f"{at}.{key}", entry[key]) for key in PRICE_KEYS))


def _usd(at: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{at} must be a number of USD per million tokens (got {value!r})")
    try:
        amount = Decimal(repr(value))
    except InvalidOperation:
        raise ConfigError(f"{at} must be a finite number (got {value!r})") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_PRICE_USD:
        raise ConfigError(f"{at} must be between 0 and {MAX_PRICE_USD} (got {value!r})")
    return _nano(amount, at)
