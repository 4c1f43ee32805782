"""The web UIs of a hive: each agent's live page and the operator's dashboard.

The agent page talks to the harness only through :class:`hyperhive.agent.control.AgentControl`;
the dashboard to the core only through :class:`hyperhive.core.operator_desk.OperatorDesk`.
"""

from __future__ import annotations

from hyperhive.web.agent_app import create_agent_app
from hyperhive.web.security import check_listen, is_loopback
from hyperhive.web.server import WebServer, close_streams

__all__ = ["WebServer", "check_listen", "close_streams", "create_agent_app", "is_loopback"]
