"""Where the hive's live settings come from, and the one way they are reloaded.

The effective value of a setting is its env var's when set (flags and env win), else
hive.toml's, else the default. :class:`SettingsSource` knows the file and the env pins;
both ``hive config reload`` (core/ops/config.py) and SIGHUP (daemons/c0re.py) call its
:meth:`~SettingsSource.reload`, which changes nothing when the file is bad.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from hyperhive.config import Config
from hyperhive.settings import LiveSettings, Settings
from hyperhive.settings_file import load_settings

__all__ = [
    "PINS",
    "SettingsSource",
    "changed_tables",
    "env_over_file",
    "gateway_caps",
    "hive_budget",
]

log = logging.getLogger(__name__)

# Each env var that pins a setting: the Settings field, the Config field holding the
# env's value, and the setting's name in hive.toml.
PINS: Final = (
    (
        "HYPERHIVE_BUDGET_USD_PER_DAY",
        "budget_usd_per_day",
        "hive_usd_per_day",
        "budget.usd_per_day",
    ),
    (
        "HYPERHIVE_BUDGET_TOKENS_PER_DAY",
        "budget_tokens_per_day",
        "hive_tokens_per_day",
        "budget.tokens_per_day",
    ),
    (
        "HYPERHIVE_GATEWAY_CONCURRENCY",
        "gateway_concurrency",
        "gateway_concurrency",
        "gateway.concurrency",
    ),
    ("HYPERHIVE_GATEWAY_PER_AGENT", "gateway_per_agent", "gateway_per_agent", "gateway.per_agent"),
)
# Each Settings field's table in hive.toml, for "what changed".
TABLES: Final = {
    "notify": "notify",
    "policies": "policy",
    "stall": "stall",
    "budget_usd_per_day": "budget",
    "budget_tokens_per_day": "budget",
    "gateway_concurrency": "gateway",
    "gateway_per_agent": "gateway",
}


def env_over_file(settings: Settings, config: Config) -> Settings:
    """``settings`` (the file's) with every value the env pinned replaced by the env's."""
    pinned = {
        field: getattr(config, held) for env, field, held, _ in PINS if env in config.env_pinned
    }
    return dataclasses.replace(settings, **pinned)


def hive_budget(settings: Settings, config: Config) -> tuple[float | None, int | None]:
    """The hive-wide daily budget in force: the settings', else the daemon's config's
    (a Config made without env or file, as tests make it)."""
    usd, tokens = settings.budget_usd_per_day, settings.budget_tokens_per_day
    return (
        config.hive_usd_per_day if usd is None else usd,
        config.hive_tokens_per_day if tokens is None else tokens,
    )


def gateway_caps(settings: Settings, config: Config) -> tuple[int, int | None]:
    """The gateway's caps in force: the settings', else the daemon's config's."""
    cap, per_agent = settings.gateway_concurrency, settings.gateway_per_agent
    return (
        config.gateway_concurrency if cap is None else cap,
        config.gateway_per_agent if per_agent is None else per_agent,
    )


def pinned_names(config: Config) -> dict[str, str]:
    """hive.toml's name of each setting the env pinned, and the env var that did."""
    return {name: env for env, _, _, name in PINS if env in config.env_pinned}


def changed_tables(old: Settings, new: Settings) -> list[str]:
    """The hive.toml tables whose effective values differ, in the file's order."""
    found = {table for f, table in TABLES.items() if getattr(old, f) != getattr(new, f)}
    return [t for t in ("budget", "gateway", "stall", "notify", "policy") if t in found]


class SettingsSource:
    def __init__(self, config: Config) -> None:
        self._config = config

    @property
    def path(self) -> Path:
        return self._config.settings_file

    def pinned(self) -> dict[str, str]:
        return pinned_names(self._config)

    def load(self) -> Settings:
        """The effective settings now; a bad file is a ConfigError naming the field."""
        return env_over_file(load_settings(self.path), self._config)

    def reload(self, live: LiveSettings, publish: Callable[[dict[str, Any]], object]) -> list[str]:
        """Read the file again into ``live`` and tell the bus; a ConfigError changes
        nothing. The answer: the tables that changed."""
        new = self.load()
        changed = changed_tables(live.current(), new)
        live.replace(new)
        publish({"type": "config_reloaded", "changed": changed})
        log.info("reloaded %s: %s", self.path, ", ".join(changed) or "nothing changed")
        return changed
