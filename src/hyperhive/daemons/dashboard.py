"""Serving the operator's dashboard from ``hive-c0re`` (DESIGN §1, §9).

:func:`serve_dashboard` checks the operator token before anything binds (there always is
one, see :mod:`hyperhive.core.operator_token`). It returns the running
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
from hyperhive.web.listen import bind_tcp
from hyperhive.web.security import check_listen, is_loopback
from hyperhive.web.server import WebServer

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

START_TIMEOUT: Final = 15.0
STOP_TIMEOUT: Final = 10.0
log = logging.getLogger(__name__)

# The serve() task of each running dashboard, so that stop_dashboard can wait for it.
_TASKS: dict[WebServer, asyncio.Task[None]] = {}


def _bind(host: str, port: int) -> socket.socket:
    try:
        return bind_tcp(host, port)
    except OSError as exc:
        raise ConfigError(
            f"the dashboard cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None


async def serve_dashboard(hive: Hive, host: str, port: int, token: str) -> WebServer:
    """Start the dashboard on ``host:port`` behind ``token``; a :class:`ConfigError` if it
    may not or cannot."""
    check_listen(host, token)
    app = create_dashboard_app(hive.operator_desk(), token=token, loopback=is_loopback(host))
    sock = _bind(host, port)
    server = WebServer.for_app(app, host, port)
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
    log.info("dashboard on http://%s:%d/", shown, server.port)  # never with the token
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
