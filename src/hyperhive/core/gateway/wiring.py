"""The gateway's parts as a hive-c0re builds them from its Config and the env it is given:
the credentials only the core holds, the setup-token flows, and the gateway itself."""

from __future__ import annotations

from collections.abc import Mapping

from hyperhive.claude_cli import claude_cli
from hyperhive.config import Config, upstream_url
from hyperhive.core.bus import EventBus
from hyperhive.core.connections import ConnectionBudget
from hyperhive.core.gateway.credentials import HiveCredentials
from hyperhive.core.gateway.seams import CredentialSource, Metering
from hyperhive.core.gateway.service import Gateway
from hyperhive.core.gateway.setup_token import SetupTokens
from hyperhive.settings import LiveSettings


def logins(
    config: Config, env: Mapping[str, str], bus: EventBus
) -> tuple[HiveCredentials, SetupTokens]:
    """The credentials only the core holds (its env's among them) and its setup-token
    flows; a save wakes the agents waiting for a login (the event names no secret)."""
    credentials = HiveCredentials(
        config.state_dir,
        env,
        on_saved=lambda agent: bus.publish({"type": "login", "agent": agent}),
    )
    scratch = config.run_dir / "setup-token"
    return credentials, SetupTokens([claude_cli(env), "setup-token"], env, scratch=scratch)


def gateway_for(
    config: Config,
    env: Mapping[str, str],
    metering: Metering,
    credentials: CredentialSource,
    budget: ConnectionBudget,
    settings: LiveSettings,
) -> Gateway:
    """The model gateway: every agent's api.sock, forwarding to the upstream."""
    upstream = upstream_url(config, env)
    return Gateway(config, upstream, metering, credentials, budget=budget, settings=settings)
