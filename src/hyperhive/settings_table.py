"""The strict reader of one table of hive.toml (settings_file.py): unknown keys refused
with a guess at what was meant, every value checked, every error naming the field."""

from __future__ import annotations

import difflib
import math
import re
import urllib.parse
from dataclasses import dataclass
from typing import Final

from hyperhive.errors import ConfigError
from hyperhive.settings import NOTIFY_EVENTS

__all__ = ["MAX_COUNT", "MAX_SECONDS", "MAX_TEXT", "Table"]

MAX_TEXT: Final = 1024
MAX_SECONDS: Final = 365 * 86400.0
MAX_COUNT: Final = 1_000_000_000_000
DURATION: Final = re.compile(r"(?:(\d+)(d|h|m|s))+")
_UNIT: Final = {"d": 86400, "h": 3600, "m": 60, "s": 1}


@dataclass
class Table:
    """One TOML table, its unknown keys already refused, with errors naming its path."""

    data: dict[str, object]
    where: str
    source: str
    known: tuple[str, ...]

    def __post_init__(self) -> None:
        for key in self.data:
            if key not in self.known:
                close = difflib.get_close_matches(key, self.known, n=1)
                hint = f" (did you mean {self.name(close[0])!r}?)" if close else ""
                raise self.fail(key, f"unknown key{hint}")

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.name(key)}: {problem}")

    def has(self, key: str) -> bool:
        return key in self.data

    def sub(self, key: str, known: tuple[str, ...]) -> Table:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return Table(value, self.name(key), self.source, known)

    def tables(self, key: str, known: tuple[str, ...], limit: int) -> list[Table]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, f"must be an array of tables ([[{self.name(key)}]])")
        if len(value) > limit:
            raise self.fail(key, f"more than {limit}")
        return [Table(v, f"{self.name(key)}[{i}]", self.source, known) for i, v in enumerate(value)]

    def integer(self, key: str, low: int = 1, high: int = MAX_COUNT) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"expected an integer from {low} to {high} (got {value!r})")
        return value

    def number(self, key: str, high: float = MAX_COUNT) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0 < value <= high
        ):
            raise self.fail(key, f"expected a positive number up to {high:g} (got {value!r})")
        return float(value)

    def seconds(self, key: str, *, off: bool = False, high: float = MAX_SECONDS) -> float | None:
        """A duration: seconds as a number, or text such as "90s", "10m", "1h30m";
        ``off``: false (None) is allowed too."""
        value = given = self.data.get(key)
        if value is False and off:
            return None
        if isinstance(value, str) and DURATION.fullmatch(value):
            value = sum(int(n) * _UNIT[u] for n, u in re.findall(r"(\d+)([dhms])", value))
        if (
            not isinstance(value, bool)
            and isinstance(value, int | float)
            and math.isfinite(value)
            and 0 < value <= high
        ):
            return float(value)
        also = ", or false for off" if off else ""
        raise self.fail(
            key,
            f'expected a duration such as 30, "90s", "10m" or "1h30m" up to {_span(high)}{also} '
            f"(got {given!r})",
        )

    def text(self, key: str, *, pattern: re.Pattern[str] | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value or len(value) > MAX_TEXT or "\0" in value:
            raise self.fail(key, f"expected a non-empty string up to {MAX_TEXT} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"{value!r} does not fit {pattern.pattern}")
        return value

    def required(self, key: str, *, pattern: re.Pattern[str] | None = None) -> str:
        found = self.text(key, pattern=pattern)
        if found is None:
            raise self.fail(key, "missing")
        return found

    def strings(self, key: str, limit: int, pattern: re.Pattern[str] | None = None) -> list[str]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not value or len(value) > limit:
            raise self.fail(key, f"expected a list of 1 to {limit} strings")
        for item in value:
            if not isinstance(item, str) or len(item) > MAX_TEXT or "\0" in item:
                raise self.fail(key, f"expected strings up to {MAX_TEXT} characters")
            if pattern is not None and not pattern.fullmatch(item):
                raise self.fail(key, f"{item!r} does not fit {pattern.pattern}")
        return list(value)

    def events(self) -> frozenset[str] | None:
        if not self.has("events"):
            return None
        names = self.strings("events", len(NOTIFY_EVENTS))
        for name in names:
            if name not in NOTIFY_EVENTS:
                raise self.fail(
                    "events", f"unknown event {name!r}: choose from {', '.join(NOTIFY_EVENTS)}"
                )
        return frozenset(names)

    def url(self, key: str, *, topic: bool = False) -> str:
        value = self.data.get(key)
        # The value is never echoed: it may carry a credential.
        shape = "http(s)://host[:port]/topic" if topic else "http(s)://host[:port][/path]"
        if not isinstance(value, str) or not _good_url(value, topic=topic):
            raise self.fail(key, f"expected {shape}")
        return value.rstrip("/")

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.data.get(key)
        if value not in choices:
            raise self.fail(key, f"expected one of {', '.join(choices)} (got {value!r})")
        assert isinstance(value, str)
        return value


def _span(seconds: float) -> str:
    return f"{seconds / 86400:g}d" if seconds >= 86400 else f"{seconds:g}s"


def _good_url(value: str, *, topic: bool) -> bool:
    parsed = urllib.parse.urlsplit(value)
    try:
        port_ok = parsed.port is None or 0 < parsed.port < 65536
    except ValueError:
        port_ok = False
    return (
        parsed.scheme in ("http", "https")
        and bool(parsed.hostname)
        and "@" not in parsed.netloc
        and not parsed.query
        and not parsed.fragment
        and port_ok
        and len(value) <= MAX_TEXT
        and not any(c.isspace() or ord(c) < 32 for c in value)
        and (not topic or parsed.path.strip("/") != "")
    )
