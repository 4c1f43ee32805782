"""The harness's settings, resolved once from flags and env, defaulting to the
container layout of DESIGN §2 (``/run/hive/mcp.sock``, ``/state``, ``/root/.claude``)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final, Literal

from hyperhive.agent import layout
from hyperhive.errors import BadConfig
from hyperhive.names import MANAGER, validate_agent_name
from hyperhive.tool_defaults import defaults
from hyperhive.tool_rules import ToolPolicy

Role = Literal["agent", "manager"]
MANAGER_PORT: Final = 8000
AGENT_PORTS: Final = range(8100, 9000)
DEFAULT_IDLE_SECONDS: Final = 600.0
WEB_SOCKET_NAME: Final = "web.sock"
# The gated page the core relays the agent's port to, where that port is out of the
# host's reach (its own network namespace): the page as on a port, on a unix socket.
PAGE_SOCKET_NAME: Final = "page.sock"
# HYPERHIVE_AGENT_PORT values that mean no page on a port: only web.sock, behind the core.
NO_PORT: Final = frozenset({"none", "off"})


def port_for(name: str) -> int:
    """A stable port in 8100-8999 from the name, so bookmarks survive restarts."""
    if name == MANAGER:
        return MANAGER_PORT
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    return AGENT_PORTS.start + digest % len(AGENT_PORTS)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    name: str
    role: Role
    socket: Path
    state_dir: Path
    claude_dir: Path
    listen: str
    port: int | None  # None: no page on a port, only on web.sock
    model_file: Path
    engine: str = "claude"
    idle_seconds: float = DEFAULT_IDLE_SECONDS
    agent_role: str | None = None  # agent.toml's role, appended to the system prompt
    default_model: str | None = None  # agent.toml's model, unless /model overrides
    agents_dir: Path | None = None  # the manager's view of every agent's config repo
    work_dir: Path | None = None  # the agent's workspace (/work); None: its state dir
    # The effective tool policy, from the core; a harness run by hand gets
    # the no-isolation default (see hyperhive.tool_defaults).
    tools: ToolPolicy = field(default_factory=partial(defaults, isolated=False, manager=False))
    # Where the page listens for the core's front door; None: next to the core socket.
    web_socket_path: Path | None = None
    # The core's model gateway (``/run/hive/api.sock`` in a container): the CLI talks to
    # the API only through it, with no key of its own. None: the CLI uses whatever
    # credentials its environment has (a harness run by hand, tests of the engine).
    api_socket: Path | None = None
    # The page behind its key on this unix socket instead of on ``port`` itself: the
    # core listens on the port and relays it here (core/page_relay.py).
    page_socket: Path | None = None

    @property
    def web_socket(self) -> Path:
        """The page's unix socket (``/run/hive/web.sock`` in a container)."""
        if self.web_socket_path is not None:
            return self.web_socket_path
        return self.socket.parent / WEB_SOCKET_NAME

    @property
    def workspace(self) -> Path:
        """Where the agent works: its cwd, and what its page reports changes of."""
        return self.work_dir if self.work_dir is not None else self.state_dir

    @property
    def history_db(self) -> Path:
        return layout.history_db(self.state_dir)

    @property
    def session_file(self) -> Path:
        return layout.session_file(self.state_dir)


def resolve(
    *,
    name: str | None,
    role: Role,
    socket: str | None = None,
    state: str | None = None,
    claude_dir: str | None = None,
    listen: str | None = None,
    port: int | None = None,
    engine: str | None = None,
    env: Mapping[str, str] | None = None,
) -> AgentSettings:
    env = os.environ if env is None else env
    chosen = name or env.get("HYPERHIVE_AGENT_NAME") or (MANAGER if role == "manager" else "")
    chosen = validate_agent_name(chosen) if chosen != MANAGER else chosen
    state_dir = Path(state or env.get("HYPERHIVE_AGENT_STATE") or "/state")
    env_port = env.get("HYPERHIVE_AGENT_PORT")
    web_socket = env.get("HYPERHIVE_AGENT_WEB_SOCKET")
    api_socket = env.get("HYPERHIVE_AGENT_API_SOCKET")
    page_socket = env.get("HYPERHIVE_AGENT_PAGE_SOCKET")
    return AgentSettings(
        name=chosen,
        role=role,
        socket=Path(socket or env.get("HYPERHIVE_AGENT_SOCKET") or "/run/hive/mcp.sock"),
        state_dir=state_dir,
        claude_dir=Path(claude_dir or env.get("CLAUDE_CONFIG_DIR") or "/root/.claude"),
        listen=listen or env.get("HYPERHIVE_AGENT_LISTEN") or "127.0.0.1",
        port=port if port is not None else _port(env_port, chosen),
        model_file=Path(env.get("HYPERHIVE_MODEL_FILE") or layout.model_file(state_dir)),
        engine=engine or env.get("HYPERHIVE_ENGINE") or "claude",
        idle_seconds=float(env.get("HYPERHIVE_IDLE_SECONDS") or DEFAULT_IDLE_SECONDS),
        agent_role=env.get("HYPERHIVE_AGENT_ROLE") or None,
        default_model=env.get("HYPERHIVE_AGENT_MODEL") or None,
        work_dir=Path(env.get("HYPERHIVE_AGENT_WORK") or "/work"),
        agents_dir=Path(env.get("HYPERHIVE_AGENTS_DIR") or "/agents")
        if role == "manager"
        else None,
        tools=tool_policy(env.get("HYPERHIVE_TOOL_POLICY"), manager=role == "manager"),
        web_socket_path=Path(web_socket) if web_socket else None,
        api_socket=Path(api_socket) if api_socket else None,
        page_socket=Path(page_socket) if page_socket else None,
    )


def _port(raw: str | None, name: str) -> int | None:
    """``HYPERHIVE_AGENT_PORT``: a port, ``none``/``off`` for none, unset for the hashed one."""
    if not raw:
        return port_for(name)
    if raw.strip().lower() in NO_PORT:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadConfig(
            f"HYPERHIVE_AGENT_PORT must be a port number or none, not {raw!r}"
        ) from None


def tool_policy(raw: str | None, *, manager: bool) -> ToolPolicy:
    """``HYPERHIVE_TOOL_POLICY`` (the core's completed policy), checked strictly."""
    if raw is None:
        return defaults(isolated=False, manager=manager)
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadConfig("HYPERHIVE_TOOL_POLICY is not JSON") from None
    policy = ToolPolicy.from_wire(data)
    if None in (policy.allow, policy.ask, policy.deny):
        raise BadConfig("HYPERHIVE_TOOL_POLICY must give all of allow, ask and deny")
    return policy
