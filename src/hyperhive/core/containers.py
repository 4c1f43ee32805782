"""Per-agent container records and the specs handed to backends.

The ``containers`` table remembers, across core restarts, what each agent's
container should be doing (``desired``), what it is doing (``state``), the
hyperhive rev and applied config sha it was built from, and its last error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import hyperhive
from hyperhive.agent.settings import PAGE_SOCKET_NAME
from hyperhive.backends.base import ContainerSpec
from hyperhive.config import Config
from hyperhive.core.agent_config import AgentConfig
from hyperhive.core.binds import check_binds, forbidden_roots
from hyperhive.core.db import Database
from hyperhive.names import MANAGER
from hyperhive.secret_env import is_secret_name
from hyperhive.tokens import key_digest, page_key
from hyperhive.tool_defaults import effective

Desired = Literal["running", "stopped"]
CONTAINER_API_SOCKET: Final = "/run/hive/api.sock"
# Where the harness serves its gated page when the core relays the page's port to it.
CONTAINER_PAGE_SOCKET: Final = "/run/hive/" + PAGE_SOCKET_NAME
# Nothing of ANTHROPIC_*: the core holds the credentials and the upstream's address, and
# the harness points its CLI at the core's gateway (agent/claude.py).
FORWARD_PREFIXES: Final = ("CLAUDE_CODE_", "HYPERHIVE_")
# Paths and identities are the core's to set per container, never forwarded.
NOT_FORWARDED: Final = frozenset(
    {
        "HYPERHIVE_STATE_DIR",
        "HYPERHIVE_RUN_DIR",
        "HYPERHIVE_LISTEN",
        "HYPERHIVE_BACKEND",
        "HYPERHIVE_AGENT_NAME",
        "HYPERHIVE_AGENT_SOCKET",
        "HYPERHIVE_AGENT_STATE",
        "HYPERHIVE_AGENT_WORK",
        "HYPERHIVE_AGENT_PORT",
        "HYPERHIVE_AGENT_WEB_SOCKET",
        "HYPERHIVE_AGENT_PAGE_SOCKET",
        "HYPERHIVE_AGENT_API_SOCKET",
        "HYPERHIVE_TOOL_POLICY",
        "HYPERHIVE_FORWARD_ENV",
        # Agents get only the digest of their own page key instead (hyperhive.tokens).
        "HYPERHIVE_OPERATOR_TOKEN",
        "HYPERHIVE_PAGE_KEY_DIGEST",
        # The shared store and who this core is among the hosts: the core's business. A
        # database URL may carry a password, and even without one it says where the
        # hive's every message and approval live.
        "HYPERHIVE_DATABASE_URL",
        "HYPERHIVE_HOST_NAME",
        "HYPERHIVE_ADVERTISE_URL",
    }
)


def hive_rev() -> str:
    """A fingerprint of the installed hyperhive code: changes whenever it does."""
    digest = hashlib.sha256()
    root = Path(hyperhive.__file__).parent
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".html", ".js", ".css", ".nix"):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return f"{hyperhive.__version__}+{digest.hexdigest()[:12]}"


def forwarded_env(env: Mapping[str, str], extra: tuple[str, ...] = ()) -> dict[str, str]:
    """What the core passes from its own environment into every container."""
    names = set(extra) | {n.strip() for n in env.get("HYPERHIVE_FORWARD_ENV", "").split(",")}
    return {
        k: v
        for k, v in env.items()
        if (k.startswith(FORWARD_PREFIXES) or k in names)
        and k not in NOT_FORWARDED
        # Not by prefix and not by HYPERHIVE_FORWARD_ENV: CLAUDE_CODE_OAUTH_TOKEN and kin.
        and not is_secret_name(k)
    }


@dataclass(frozen=True, slots=True)
class AgentPaths:
    root: Path
    socket_dir: Path

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def claude(self) -> Path:
        return self.root / "claude"

    @property
    def work(self) -> Path:
        return self.root / "work"


@functools.lru_cache(maxsize=4096)
def agent_state_dir(state_dir: Path, name: str) -> Path:
    """``agent_paths(config, name).state`` for the hive whose state dir is ``state_dir``;
    asked for every agent on every dashboard listing, where building paths adds up."""
    return state_dir / "agents" / name / "state"


def agent_paths(config: Config, name: str) -> AgentPaths:
    socket = config.agent_socket(name, manager=name == MANAGER)
    return AgentPaths(config.state_dir / "agents" / name, socket.parent)


def build_spec(
    config: Config,
    name: str,
    agent: AgentConfig,
    config_dir: Path,
    config_sha: str,
    env: Mapping[str, str],
    operator_token: str | None = None,
    *,
    uid: int | None = None,
    isolated: bool = False,
    port: int | None = None,
    relayed: bool = False,
) -> ContainerSpec:
    """The spec to run ``name`` on; a bind that leads somewhere forbidden is
    :class:`BadConfig`, checked on the host as it is now. ``port``: its page's port, as
    the registry assigned it (the harness would otherwise hash its own); ``relayed``: the
    core listens on that port and relays it to the harness's page.sock."""
    binds = check_binds(agent.sandbox.ro_binds, forbidden_roots(config.state_dir, config.run_dir))
    paths = agent_paths(config, name)
    for d in (paths.state, paths.claude, paths.work, paths.socket_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    manager = name == MANAGER
    module = "hyperhive.daemons.m1nd" if manager else "hyperhive.daemons.ag3nt"
    tools = effective(agent.tools, isolated=isolated, manager=manager)
    extra = {
        "HYPERHIVE_AGENT_NAME": name,
        "HYPERHIVE_TOOL_POLICY": json.dumps(tools.to_wire()),
        # The core's gateway, as a container sees it; a backend whose layout differs (the
        # process backend) sets its own.
        "HYPERHIVE_AGENT_API_SOCKET": CONTAINER_API_SOCKET,
    }
    if port is not None:
        extra["HYPERHIVE_AGENT_PORT"] = str(port)
        if relayed:
            extra["HYPERHIVE_AGENT_PAGE_SOCKET"] = CONTAINER_PAGE_SOCKET
    if operator_token:
        extra["HYPERHIVE_PAGE_KEY_DIGEST"] = key_digest(page_key(operator_token, name))
    if agent.role:
        extra["HYPERHIVE_AGENT_ROLE"] = agent.role
    if agent.model:
        extra["HYPERHIVE_AGENT_MODEL"] = agent.model
    return ContainerSpec(
        name=name,
        role="manager" if manager else "agent",
        socket_dir=paths.socket_dir,
        state_dir=paths.state,
        claude_dir=paths.claude,
        config_dir=config_dir,
        config_sha=config_sha,
        command=(sys.executable, "-m", module, "serve", "--name", name),
        env={**env, **extra},
        agents_dir=config.state_dir / "proposed" if manager else None,
        network=agent.sandbox.network,
        memory_mb=agent.sandbox.memory_mb,
        extra_ro_binds=binds,
        uid=uid,
        work_dir=paths.work,
        nice=config.agent_nice,
    )


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    name: str
    backend: str
    desired: Desired
    state: str  # running | stopped | failed | missing
    hive_rev: str | None
    config_sha: str | None
    last_error: str | None
    restarts: int
    updated_at: float

    def to_wire(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "desired": self.desired,
            "state": self.state,
            "hive_rev": self.hive_rev,
            "config_sha": self.config_sha,
            "last_error": self.last_error,
            "restarts": self.restarts,
            "since": self.updated_at,
        }


_SELECT: Final = (
    "SELECT name, backend, desired, state, hive_rev, config_sha, last_error, restarts,"
    " updated_at FROM containers"
)


class ContainerRecords:
    def __init__(self, conn: Database, clock: Callable[[], float] = time.time) -> None:
        self._conn = conn
        self._clock = clock

    def get(self, name: str) -> ContainerRecord | None:
        row = self._conn.execute(f"{_SELECT} WHERE name = ?", (name,)).fetchone()
        return ContainerRecord(*row) if row else None

    def all(self) -> dict[str, ContainerRecord]:
        return {row[0]: ContainerRecord(*row) for row in self._conn.execute(_SELECT)}

    def put(self, name: str, backend: str, **fields: Any) -> ContainerRecord:
        """Create or update; unspecified fields keep their value (or defaults)."""
        old = self.get(name)
        merged: dict[str, Any] = {
            "desired": "stopped",
            "state": "missing",
            "hive_rev": None,
            "config_sha": None,
            "last_error": None,
            "restarts": 0,
        }
        if old is not None:
            merged |= {k: getattr(old, k) for k in merged}
        merged |= fields
        self._conn.execute(
            "INSERT INTO containers (name, backend, desired, state, hive_rev, config_sha,"
            " last_error, restarts, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET backend = excluded.backend,"
            " desired = excluded.desired, state = excluded.state, hive_rev = excluded.hive_rev,"
            " config_sha = excluded.config_sha, last_error = excluded.last_error,"
            " restarts = excluded.restarts, updated_at = excluded.updated_at",
            (name, backend, merged["desired"], merged["state"], merged["hive_rev"],
             merged["config_sha"], merged["last_error"], merged["restarts"], self._clock()),
        )  # fmt: skip
        record = self.get(name)
        assert record is not None
        return record

    def remove(self, name: str) -> None:
        self._conn.execute("DELETE FROM containers WHERE name = ?", (name,))
