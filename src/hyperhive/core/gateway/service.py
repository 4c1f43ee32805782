"""The gateway as the hive runs it: one :class:`~.server.GatewayServer` per agent, on
``api.sock`` beside its ``mcp.sock``, all sharing one upstream connection pool, one
admission queue, the hive's metering and its credentials."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from hyperhive.config import Config
from hyperhive.core.connections import ConnectionBudget
from hyperhive.core.gateway.admission import Admission
from hyperhive.core.gateway.http_conn import HttpLimits
from hyperhive.core.gateway.seams import CredentialSource, Metering
from hyperhive.core.gateway.server import Forwarder, GatewayLimits, GatewayServer
from hyperhive.core.gateway.upstream import Upstream
from hyperhive.core.settings_source import gateway_caps
from hyperhive.settings import LiveSettings, Settings

log = logging.getLogger(__name__)
SOCKET_NAME: Final = "api.sock"
MAX_HEAD: Final = 64 * 1024


def gateway_limits(config: Config) -> GatewayLimits:
    http = HttpLimits(
        max_head=MAX_HEAD,
        max_body=config.gateway_max_body,
        # The same bounds as a line on mcp.sock: a request arrives whole in time, and
        # a connection with nothing to do goes.
        request_timeout=config.line_timeout,
        idle_timeout=config.idle_timeout,
    )
    return GatewayLimits(
        http, connections=config.gateway_connections, retry_for=config.gateway_retry_for
    )


class Gateway:
    def __init__(
        self,
        config: Config,
        upstream_url: str,
        metering: Metering,
        credentials: CredentialSource,
        *,
        budget: ConnectionBudget | None = None,
        settings: LiveSettings | None = None,
    ) -> None:
        """``budget``: the hive-wide connection budget, shared with the other sockets;
        ``settings``: caps a reload changes (for new admissions: nothing upstream is cut)."""
        self._limits = gateway_limits(config)
        self.admission = Admission(config.gateway_concurrency, config.gateway_per_agent)
        self._unwatch: Callable[[], None] | None = None
        if settings is not None:

            def take_caps(now: Settings) -> None:
                self.admission.set_caps(*gateway_caps(now, config))

            take_caps(settings.current())
            self._unwatch = settings.watch(take_caps)
        self.upstream = Upstream(upstream_url)
        self.forwarder = Forwarder(
            self.upstream,
            self.admission,
            metering,
            credentials,
            retry_for=config.gateway_retry_for,
        )
        self._budget = budget
        self._servers: dict[str, GatewayServer] = {}

    def socket(self, name: str) -> Path | None:
        server = self._servers.get(name)
        return server.path if server is not None else None

    def connections(self, name: str) -> int:
        """Connections open on ``name``'s api.sock now."""
        server = self._servers.get(name)
        return server.connections if server is not None else 0

    async def open(self, name: str, socket_dir: Path, owner_uid: int | None) -> Path:
        """Serve ``name`` on ``socket_dir/api.sock`` (the dir exists: its mcp.sock's)."""
        await self.close(name)
        server = GatewayServer(
            socket_dir / SOCKET_NAME,
            name,
            self.forwarder,
            self._limits,
            self._budget,
            owner=owner_uid,
        )
        await server.start()
        self._servers[name] = server
        return server.path

    async def close(self, name: str, grace: float = 1.0) -> None:
        server = self._servers.pop(name, None)
        if server is not None:
            await server.close(grace)

    async def close_all(self, grace: float) -> None:
        """Every socket drained (answers in flight get ``grace``), then the pool closed."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        servers, self._servers = list(self._servers.values()), {}
        await asyncio.gather(*(s.close(grace) for s in servers))
        await self.upstream.aclose()
