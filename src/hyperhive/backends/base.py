"""The backend seam: one small async Protocol every container backend implements.

The lifecycle (``hyperhive.core.lifecycle``) decides *what* should run; a
backend only knows *how*: nixos-container, bubblewrap, or a plain process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from hyperhive.errors import HiveError
from hyperhive.ownership import claim


class BackendError(HiveError):
    """A backend operation failed; ``message`` says what the tool answered."""

    code = "backend"


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """Everything a backend needs to build and run one agent's container.

    Binds (DESIGN §2): ``socket_dir`` → ``/run/hive``, ``claude_dir`` →
    ``/root/.claude``, ``state_dir`` → ``/state``, ``work_dir`` → ``/work``
    (the agent's cwd), and for the manager only ``agents_dir`` → ``/agents``
    (read-write). ``config_dir`` holds the applied
    ``agent.toml`` (and ``agent.nix``); ``config_sha`` names that tree.
    """

    name: str
    role: Literal["agent", "manager"]
    socket_dir: Path
    state_dir: Path
    claude_dir: Path
    config_dir: Path
    config_sha: str
    command: tuple[str, ...]  # the harness, as run inside the container
    env: Mapping[str, str] = field(default_factory=dict)
    agents_dir: Path | None = None
    network: bool = True
    memory_mb: int | None = None
    extra_ro_binds: tuple[Path, ...] = ()
    # The host uid the agent runs as, for backends whose ``agent_uids`` is true.
    uid: int | None = None
    # The agent's workspace, its cwd (``/work``); None for specs that have none.
    work_dir: Path | None = None
    # The niceness of everything in it: agents run below the core, so a busy or hostile
    # one cannot starve the core's answers (hyperhive.config.DEFAULT_AGENT_NICE).
    nice: int = 0

    @property
    def container(self) -> str:
        return f"h-{self.name}"

    @property
    def own_dirs(self) -> tuple[Path, ...]:
        """The host dirs bound read-write into the container: the agent's own."""
        dirs: tuple[Path, ...] = (self.state_dir, self.claude_dir, self.socket_dir)
        if self.work_dir is not None:
            dirs += (self.work_dir,)
        if self.role == "manager" and self.agents_dir is not None:
            dirs += (self.agents_dir,)
        return dirs


State = Literal["running", "stopped", "missing"]


@dataclass(frozen=True, slots=True)
class ContainerStatus:
    state: State
    pid: int | None = None


# Called with (agent name, one line of the container's output).
OutputSink = Callable[[str, str], None]


def give_dirs(spec: ContainerSpec) -> None:
    """Hand ``spec``'s own dirs to the uid its agent runs as (see :mod:`hyperhive.ownership`)."""
    if spec.uid is None:
        raise BackendError(f"{spec.container}: the agent has no uid to run as")
    try:
        for path in spec.own_dirs:
            claim(path, spec.uid)
    except OSError as exc:
        raise BackendError(f"cannot give {spec.container} its directories: {exc}") from exc


class Backend(Protocol):
    name: str
    # True when the backend runs each agent as its own unprivileged host uid
    # (``ContainerSpec.uid``): the core then hands the agent's files to it.
    agent_uids: bool
    # True when the container is the boundary (bwrap, nixos): the agent may
    # then use every built-in tool inside it by default (hyperhive.tool_defaults).
    isolating: bool
    # True when an agent's 127.0.0.1 is its own (bwrap's network namespace, nixos's
    # private network): its page port is then the core's relay (core/page_relay.py).
    own_network: bool

    async def create(self, spec: ContainerSpec) -> None:
        """Build the container (not started). Creating an existing one is an error."""
        ...

    async def update(self, spec: ContainerSpec) -> None:
        """Rebuild an existing container from a new spec (config or rev changed)."""
        ...

    async def start(self, spec: ContainerSpec, output: OutputSink) -> None:
        """Start it; its output lines go to ``output``. Starting a running one is a no-op."""
        ...

    async def wait(self, name: str) -> int:
        """Return the exit code once the running container's main process ends."""
        ...

    async def stop(self, name: str) -> None:
        """Stop it (SIGTERM to its process group, bounded wait, then SIGKILL)."""
        ...

    async def destroy(self, name: str) -> None:
        """Stop if running and remove the container for good."""
        ...

    async def status(self, name: str) -> ContainerStatus: ...
