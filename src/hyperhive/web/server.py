"""uvicorn, tuned for hive UIs: shutdown ends open SSE streams, and a ready event."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Final

import uvicorn
from starlette.applications import Starlette

from hyperhive.web.sse import StreamHub

LIMIT_CONCURRENCY: Final = 256
KEEP_ALIVE_SECONDS: Final = 5


def close_streams(app: Starlette) -> None:
    """End every open SSE stream of an app built here (idempotent)."""
    hub = getattr(app.state, "streams", None)
    if isinstance(hub, StreamHub):
        hub.close()


class WebServer(uvicorn.Server):
    """A uvicorn server whose shutdown does not wait on SSE clients forever.

    Stop it with ``server.should_exit = True`` and await the ``serve()`` task. ``ready`` is
    set once the sockets listen; :attr:`port` is the bound port then (useful with ``port=0``).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @classmethod
    def for_app(
        cls,
        app: Starlette,
        host: str,
        port: int,
        *,
        limit_concurrency: int = LIMIT_CONCURRENCY,
        timeout_keep_alive: int = KEEP_ALIVE_SECONDS,
    ) -> WebServer:
        # No access log: a ``?token=`` login would otherwise be written to it.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            # Beyond this many connections and requests at once uvicorn answers 503 and
            # hangs up, so a flood of browsers or scripts cannot eat the process's fds.
            limit_concurrency=limit_concurrency,
            timeout_keep_alive=timeout_keep_alive,
        )
        return cls(config)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Embedded in the harness, which owns SIGTERM/SIGINT and stops us via should_exit;
        # uvicorn's default would take over the process's signal handlers while serving.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if isinstance(self.config.app, Starlette):
            close_streams(self.config.app)
        await super().shutdown(sockets)

    @property
    def port(self) -> int:
        port: int = self.servers[0].sockets[0].getsockname()[1]
        return port
