"""Binding a UI's listening socket ourselves, before uvicorn sees it.

uvicorn answers a bind failure with ``sys.exit(1)`` from inside its task, which would take
the whole process down without a clear message: the dashboard turns the ``OSError`` into a
clear start error, an agent's harness into a warning (it keeps working without its page).
"""

from __future__ import annotations

import socket


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; ``OSError`` when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host.strip("[]"), port), family=family)
