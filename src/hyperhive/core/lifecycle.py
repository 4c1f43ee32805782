"""Agents' containers over time: spawn, start, stop, crash-restart, rebuild, destroy.

The lifecycle decides what should run and keeps the ``containers`` table
true; the backend does the running. A container that exits without being
asked is noticed at once (the backend's ``wait``), reported on the bus and
to ``hm1nd``, and restarted with backoff until it keeps dying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final

from hyperhive.backends.base import Backend, BackendError, ContainerSpec
from hyperhive.config import Config
from hyperhive.core.agent_config import AgentConfig, default_agent_toml, parse_agent_toml
from hyperhive.core.agent_uids import AgentUids
from hyperhive.core.binds import check_binds, forbidden_roots
from hyperhive.core.config_repo import ConfigRepos
from hyperhive.core.containers import (
    ContainerRecord,
    ContainerRecords,
    agent_paths,
    build_spec,
    hive_rev,
)
from hyperhive.core.directory import AgentDirectory
from hyperhive.core.notifier import Notifier
from hyperhive.core.proposal import Files, Pin
from hyperhive.core.registry import AgentRecord, Registry
from hyperhive.core.supervision import CrashRecord, GiveUp, Policy, describe_exit
from hyperhive.core.supervision import on_unexpected_exit as decide_after_crash
from hyperhive.core.workspace import Workspaces
from hyperhive.errors import AlreadyExists, ClientError, HiveError, UnknownAgent
from hyperhive.names import MANAGER, validate_agent_name

log = logging.getLogger(__name__)
LOG_LINES: Final = 2000


class ContainersDisabled(HiveError):
    code = "no_containers"


class OtherHost(ClientError):
    """The agent runs on another host: only that host's core may touch its container."""

    code = "other_host"


class Lifecycle:
    def __init__(
        self,
        backend: Backend,
        *,
        config: Config,
        records: ContainerRecords,
        registry: Registry,
        directory: AgentDirectory,
        notifier: Notifier,
        repos: ConfigRepos,
        workspaces: Workspaces,
        env: Mapping[str, str],
        rev: str,
        policy: Policy | None = None,
        operator_token: str | None = None,
        uids: AgentUids | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``config``: the paths and limits of agents' containers; ``rev``: the code's
        fingerprint a container is rebuilt on when it changes."""
        self.backend = backend
        self._config = config
        self.records = records
        self._registry = registry
        self._directory = directory
        self._notifier = notifier
        self.repos = repos
        self.workspaces = workspaces
        self._env = dict(env)
        self._operator_token = operator_token
        # Agents run as their own uids only on backends that drop to them.
        self._uids = uids if backend.agent_uids else None
        self.rev = rev
        self._policy = policy or Policy()
        self._clock = clock
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._expected_exit: set[str] = set()
        self._crashes: dict[str, CrashRecord] = {}
        self._logs: dict[str, deque[str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- boot and shutdown --------------------------------------------------

    async def boot(self, *, manager: bool) -> None:
        """Create hm1nd if missing, rebuild stale containers, start what should run."""
        if manager and MANAGER not in self._registry:
            await self.spawn(MANAGER, None)
        for name, record in self._local().items():
            try:
                await self._refresh(name, record)
                if record.desired == "running":
                    await self.start(name)
                elif (await self.backend.status(name)).state == "running":
                    # Left running by a core that died; it should not be.
                    await self.stop(name)
            except HiveError as exc:
                log.error("agent %s did not come up at boot: %s", name, exc.message)
                self._set(name, state="failed", last_error=exc.message)

    def _local(self) -> dict[str, ContainerRecord]:
        # The store may be shared: other hosts' containers are theirs to run.
        return {n: r for n, r in self.records.all().items() if self._registry.is_local(n)}

    async def shutdown(self) -> None:
        """Stop every container (the core is going away; boot brings them back)."""
        names = [n for n, r in self._local().items() if r.state == "running"]
        await asyncio.gather(*(self._stop(n, keep_desired=True) for n in names))

    # -- operations -----------------------------------------------------------

    async def spawn(self, name: object, agent_toml: str | None) -> AgentRecord:
        name = validate_agent_name(name) if name != MANAGER else MANAGER
        if name in self._registry:
            raise AlreadyExists(f"agent {name!r} already exists")
        self._registry.port_for_new(name)  # no page port left: refuse before making anything
        text = agent_toml if agent_toml is not None else default_agent_toml(name)
        agent = parse_agent_toml(text)  # refuse a bad config before touching disk
        if self.workspaces.needs_clone(name, agent.workspace):
            await self.workspaces.clone(name, agent.workspace)  # before anything else is made
        sha = await self.repos.init_agent(name, text)
        record = await self._directory.add(name, list(agent.allow_send))
        spec = self._spec(name, agent, sha)
        await self.backend.create(spec)
        self._set(name, desired="running", state="stopped", config_sha=sha, hive_rev=self.rev)
        await self.start(name)
        return record

    async def start(self, name: str) -> ContainerRecord:
        self.require_local(name)
        async with self._lock(name):
            return await self._start(name)

    async def stop(self, name: str) -> ContainerRecord:
        self.require_local(name)
        async with self._lock(name):
            return await self._stop(name)

    async def restart(self, name: str) -> ContainerRecord:
        self.require_local(name)
        async with self._lock(name):
            await self._stop(name)
            return await self._start(name)

    def require_local(self, name: str) -> None:
        """Refuse, changing nothing, an agent another host's core runs (the store is shared:
        its container record is there, its container is not)."""
        agent = self._registry.get(name) if name in self._registry else None
        if agent is not None and not self._registry.is_local(name):
            raise OtherHost(f"{name} runs on host {agent.host}; use that host's core")

    async def destroy(self, name: str, *, purge: bool = False) -> None:
        """Nothing of it keeps running; with ``purge`` its state and configs go too."""
        self.require_local(name)
        self._require(name)
        async with self._lock(name):
            await self._stop(name)
            await self.backend.destroy(name)
            self.records.remove(name)
            await self._directory.remove(name)
            if purge:
                await self.repos.remove(name)
                await self.workspaces.remove(name)
                shutil.rmtree(agent_paths(self._config, name).root, ignore_errors=True)
        self._publish(name)

    async def rebuild(self) -> list[str]:
        """``auto_update``: rebuild containers whose rev or config is stale."""
        rebuilt = []
        for name, record in self._local().items():
            async with self._lock(name):
                if await self._refresh(name, record):
                    rebuilt.append(name)
                    if record.desired == "running":
                        await self._stop(name)
                        await self._start(name)
        return rebuilt

    def judge(self, files: Files) -> AgentConfig:
        """Refuse a config tree this host may not run: the host may have changed since the
        request, so its binds are judged as it is now."""
        config = self._config
        agent = parse_agent_toml(files["agent.toml"][1].decode())
        check_binds(agent.sandbox.ro_binds, forbidden_roots(config.state_dir, config.run_dir))
        return agent

    async def apply_commit(self, name: str, pin: Pin, approval_id: int) -> str:
        """Apply the pinned config tree and restart the agent on it."""

        def still_good(files: Files) -> None:
            agent = self.judge(files)
            clone.append(self.workspaces.needs_clone(name, agent.workspace))

        self.require_local(name)
        clone: list[bool] = []
        async with self._lock(name):
            applied = await self.repos.apply(name, pin, approval_id, still_good)
            agent = self._applied_config(name)
            failed = await self._clone_workspace(name, agent) if any(clone) else None
            self._registry.set_allow_send(name, agent.allow_send)
            await self.backend.update(self._spec(name, agent, applied))
            self._set(name, config_sha=applied, hive_rev=self.rev)
            record = self.records.get(name)
            if record is not None and record.desired == "running":
                await self._stop(name)
                await self._start(name)
        if failed is not None:
            raise failed  # applied and restarted, but without the clone it asked for
        return applied

    async def _clone_workspace(self, name: str, agent: AgentConfig) -> HiveError | None:
        """Clone the workspace an applied config adds, with the agent stopped: git writes in
        its /work meanwhile. The caller restarts it either way; a failure is returned."""
        if self.records.get(name) is not None:
            await self._stop(name, keep_desired=True)
        try:
            await self.workspaces.clone(name, agent.workspace)
        except HiveError as exc:
            log.error("agent %s: %s", name, exc.message)
            return exc
        return None

    def logs(self, name: str, lines: int) -> list[str]:
        self.require_local(name)
        self._require(name)
        return list(self._logs.get(name, ()))[-lines:]

    # -- internals ------------------------------------------------------------

    def _require(self, name: str) -> ContainerRecord:
        record = self.records.get(name)
        if record is None:
            raise UnknownAgent(f"no agent container named {name!r}")
        return record

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _applied_config(self, name: str) -> AgentConfig:
        text = self.repos.read_applied(name, "agent.toml")
        return parse_agent_toml(text or default_agent_toml(name))

    def _spec(self, name: str, agent: AgentConfig, sha: str) -> ContainerSpec:
        return build_spec(
            self._config,
            name,
            agent,
            self.repos.applied_dir(name),
            sha,
            self._env,
            self._operator_token,
            uid=self._uids.get(name) if self._uids is not None else None,
            isolated=self.backend.isolating,
            port=self._registry.get(name).port,
            relayed=self.backend.own_network,
        )

    async def _refresh(self, name: str, record: ContainerRecord) -> bool:
        sha = await self.repos.applied_sha(name)
        if record.hive_rev == self.rev and record.config_sha == sha:
            return False
        log.info("rebuilding %s (rev %s → %s)", name, record.hive_rev, self.rev)
        spec = self._spec(name, self._applied_config(name), sha)
        if (await self.backend.status(name)).state == "missing":
            await self.backend.create(spec)
        else:
            await self.backend.update(spec)
        self._set(name, hive_rev=self.rev, config_sha=sha)
        return True

    async def _start(self, name: str) -> ContainerRecord:
        record = self._require(name)
        if name in self._watchers and not self._watchers[name].done():
            return record
        spec = self._spec(name, self._applied_config(name), record.config_sha or "")
        self._expected_exit.discard(name)
        try:
            await self.backend.start(spec, self._output)
        except BackendError as exc:
            self._set(name, desired="running", state="failed", last_error=exc.message)
            raise
        self._watchers[name] = asyncio.create_task(self._watch(name))
        await self._directory.relay_page(name)
        return self._set(name, desired="running", state="running", last_error=None)

    async def _stop(self, name: str, *, keep_desired: bool = False) -> ContainerRecord:
        record = self._require(name)
        self._expected_exit.add(name)
        watcher = self._watchers.pop(name, None)
        await self.backend.stop(name)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        desired = record.desired if keep_desired else "stopped"
        return self._set(name, desired=desired, state="stopped")

    async def _watch(self, name: str) -> None:
        try:
            code = await self.backend.wait(name)
        except BackendError as exc:
            # The backend can no longer tell whether it runs: say so, never "running".
            if name not in self._expected_exit:
                log.error("agent %s cannot be watched: %s", name, exc.message)
                self._set(name, state="failed", last_error=exc.message)
                self._tell_manager(name, "failed", exc.message)
            return
        if name in self._expected_exit:
            return
        error = describe_exit(code)
        log.warning("agent %s %s", name, error)
        crashes, action = decide_after_crash(
            self._crashes.get(name, CrashRecord()), code, self._clock(), self._policy
        )
        self._crashes[name] = crashes
        record = self._require(name)
        if isinstance(action, GiveUp):
            self._set(name, state="failed", last_error=action.error)
            self._tell_manager(name, "failed", action.error)
            return
        self._set(name, state="restarting", last_error=error, restarts=record.restarts + 1)
        self._tell_manager(name, "crashed", f"{error}; restarting in {action.after:g}s")
        await asyncio.sleep(action.after)
        self._watchers.pop(name, None)
        try:
            await self._start(name)
        except HiveError as exc:
            self._tell_manager(name, "failed", exc.message)

    def _output(self, name: str, line: str) -> None:
        logging.getLogger(f"hyperhive.agent.{name}").info("%s", line)
        self._logs.setdefault(name, deque(maxlen=LOG_LINES)).append(line)

    def _set(self, name: str, **fields: object) -> ContainerRecord:
        record = self.records.put(name, self.backend.name, **fields)
        self._publish(name)
        return record

    def _publish(self, name: str) -> None:
        record = self.records.get(name)
        state = record.to_wire() if record else {"state": "destroyed"}
        self._notifier.publish({"type": "agent_state", "agent": name, **state})

    def _tell_manager(self, name: str, what: str, detail: str) -> None:
        if name != MANAGER:
            self._notifier.tell(
                MANAGER, "agent_state", {"agent": name, "state": what, "detail": detail}
            )


def container_services(
    backend: Backend,
    config: Config,
    records: ContainerRecords,
    registry: Registry,
    directory: AgentDirectory,
    notifier: Notifier,
    uids: AgentUids,
    *,
    env: Mapping[str, str],
    policy: Policy | None,
    operator_token: str | None,
) -> tuple[ConfigRepos, Lifecycle]:
    """The agents' config repos and their containers' lifecycle, as a hive runs them."""
    # The manager edits every agent's proposed config as its own uid.
    owner = uids.get(MANAGER) if backend.agent_uids else None
    repos = ConfigRepos(config.state_dir, owner=owner)
    lifecycle = Lifecycle(
        backend,
        config=config,
        records=records,
        registry=registry,
        directory=directory,
        notifier=notifier,
        repos=repos,
        workspaces=Workspaces(config),
        env=env,
        rev=hive_rev(),
        policy=policy,
        operator_token=operator_token,
        uids=uids,
    )
    return repos, lifecycle
