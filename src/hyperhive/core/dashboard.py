"""Serving the operator's dashboard from ``hive-c0re`` (DESIGN §1, §9).

:func:`serve_dashboard` checks the listen address before anything binds: loopback is fine
as it is, any other address needs the operator token. It returns the running
:class:`WebServer`; stop it with :func:`stop_dashboard` before the hive shuts down, so the
open SSE streams end first.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Final

from hyperhive.errors import ConfigError
from hyperhive.web.dashboard_app import create_dashboard_app
from hyperhive.web.security import check_listen
from hyperhive.web.server import WebServer

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

START_TIMEOUT: Final = 15.0
STOP_TIMEOUT: Final = 10.0
log = logging.getLogger(__name__)

# The serve() task of each running dashboard, so that stop_dashboard can wait for it.
_TASKS: dict[WebServer, asyncio.Task[None]] = {}


def _bind(host: str, port: int) -> socket.socket:
    # Bound here rather than by uvicorn: uvicorn answers a bind failure with sys.exit(1)
    # from inside its task, which would take the whole daemon down without a clear message.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(
            f"the dashboard cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None


async def serve_dashboard(hive: Hive, host: str, port: int, token: str | None) -> WebServer:
    """Start the dashboard on ``host:port``; a :class:`ConfigError` if it may not or cannot."""
    check_listen(host, token)
    token = token.strip() if token and token.strip() else None
    sock = _bind(host, port)
    server = WebServer.for_app(create_dashboard_app(hive, token=token), host, port)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="dashboard")
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        server.should_exit = True
        await asyncio.wait({task}, timeout=STOP_TIMEOUT)
        task.cancel()
        sock.close()
        raise ConfigError(f"the dashboard did not start on {host}:{port}")
    _TASKS[server] = task
    shown = f"[{host}]" if ":" in host else host
    log.info("dashboard on http://%s:%d/%s", shown, server.port, "" if token else " (loopback)")
    return server


async def stop_dashboard(server: WebServer) -> None:
    """Stop accepting, end the SSE streams, and wait (bounded) for the server to finish."""
    server.should_exit = True
    task = _TASKS.pop(server, None)
    if task is None:
        return
    done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT)
    if not done:
        log.warning("the dashboard did not stop within %gs; cancelling it", STOP_TIMEOUT)
        task.cancel()
