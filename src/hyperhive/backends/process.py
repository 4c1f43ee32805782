"""The process backend: each agent is a plain child process, with no isolation.

For development and for hosts without bubblewrap. The agent's directories reach
the harness by env vars instead of bind mounts.

Status after a core restart: the child runs in its own session, so it can
outlive the core that started it. Its pid and kernel start time are recorded in
``<work_dir>/h-<name>.json``; a new core reports such an orphan ``running``
(it is), can ``stop``/``destroy`` it (group kill) and ``wait`` for it (a pidfd,
so still immediate, but the exit code is :data:`EXIT_UNKNOWN`: only the dead
core could reap it). ``start`` *replaces* an orphan instead of keeping it,
because its output pipe died with the old core, so its logs would be lost and
its next write may kill it with SIGPIPE.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from hyperhive.backends._child import (
    EXIT_UNKNOWN,
    Child,
    adopt,
    alive,
    kill_group,
    spawn,
    start_time,
)
from hyperhive.backends.base import BackendError, ContainerSpec, ContainerStatus, OutputSink
from hyperhive.backends.cpu_groups import NO_CPU_GROUPS, CpuGroups

__all__ = ["EXIT_UNKNOWN", "NO_ISOLATION_WARNING", "ProcessBackend", "memory_limit_argv"]

log = logging.getLogger(__name__)

NO_ISOLATION_WARNING: Final = (
    "process backend: NO ISOLATION. Agents run as plain host processes and can read "
    "each other's state, credentials and sockets. Use it for development only; "
    "install bubblewrap (or run on NixOS) for a real hive."
)
DEFAULT_STOP_TIMEOUT: Final = 10.0
# After SIGKILL the kernel needs no cooperation; this only bounds a wedged D-state.
KILL_TIMEOUT: Final = 5.0
# Host env the harness may inherit: enough to find programs and speak UTF-8.
PASSED_ENV: Final = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME")


def memory_limit_argv(memory_mb: int | None) -> list[str]:
    """A command prefix that caps the agent's memory, or ``[]`` without a cap.

    With systemd running, a transient scope with ``MemoryMax`` caps the whole
    tree (a cgroup). Otherwise ``prlimit --as`` caps each process's address
    space: weaker (per process, virtual not resident; V8 reserves a lot of
    virtual memory, so keep it generous), but available everywhere.
    """
    if memory_mb is None:
        return []
    if memory_mb <= 0:
        raise BackendError(f"memory_mb must be positive, not {memory_mb}")
    systemd_run = shutil.which("systemd-run")
    if systemd_run and Path("/run/systemd/system").is_dir():
        user = [] if os.geteuid() == 0 else ["--user"]
        return [
            systemd_run, *user, "--scope", "--quiet", "--collect",
            "-p", f"MemoryMax={memory_mb}M", "-p", "MemorySwapMax=0", "--",
        ]  # fmt: skip
    prlimit = shutil.which("prlimit")
    if prlimit:
        return [prlimit, f"--as={memory_mb * 1024 * 1024}", "--"]
    raise BackendError("memory_mb is set but neither systemd nor prlimit is available")


def spec_to_json(spec: ContainerSpec) -> dict[str, Any]:
    """The spec as recorded on disk: the names of its env vars, never their
    values (API keys among them)."""
    data = dataclasses.asdict(spec)
    data["env"] = sorted(spec.env)
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


class ProcessBackend:
    name = "process"
    agent_uids = False
    isolating = False
    own_network = False

    def __init__(
        self,
        work_dir: Path,
        *,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        cpu: CpuGroups = NO_CPU_GROUPS,
    ) -> None:
        self._work_dir = work_dir
        self._stop_timeout = stop_timeout
        self.cpu = cpu
        self._children: dict[str, Child] = {}
        self._last_exit: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._announce()

    def _announce(self) -> None:
        log.warning(NO_ISOLATION_WARNING)

    # What runs, and how; the bwrap backend overrides these.

    def _argv(self, spec: ContainerSpec) -> list[str]:
        return [*memory_limit_argv(spec.memory_mb), *spec.command]

    def _layout(self, spec: ContainerSpec) -> dict[str, str]:
        env = {
            "HYPERHIVE_AGENT_NAME": spec.name,
            "HYPERHIVE_AGENT_SOCKET": str(spec.socket_dir / "mcp.sock"),
            "HYPERHIVE_AGENT_API_SOCKET": str(spec.socket_dir / "api.sock"),
            "HYPERHIVE_AGENT_STATE": str(spec.state_dir),
            "HYPERHIVE_AGENT_WORK": str(spec.work_dir or spec.state_dir),
            "CLAUDE_CONFIG_DIR": str(spec.claude_dir),
        }
        if spec.role == "manager" and spec.agents_dir is not None:
            env["HYPERHIVE_AGENTS_DIR"] = str(spec.agents_dir)
        return env

    def _env(self, spec: ContainerSpec) -> dict[str, str]:
        base = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
        # The layout comes last: an agent's config must not point its harness
        # at directories other than its own.
        return {"PYTHONUNBUFFERED": "1", **base, **spec.env, **self._layout(spec)}

    def _cwd(self, spec: ContainerSpec) -> Path | None:
        cwd = spec.work_dir or spec.state_dir
        return cwd if cwd.is_dir() else None

    def _signal_term(self, pid: int) -> None:
        kill_group(pid, signal.SIGTERM)

    def _signal_kill(self, pid: int) -> None:
        kill_group(pid, signal.SIGKILL)

    def _prepare(self, spec: ContainerSpec) -> None:
        """Make the host ready for ``spec`` to start (nothing to do here)."""

    async def _spawn(self, spec: ContainerSpec, output: OutputSink) -> Child:
        argv, env, cwd = self._argv(spec), self._env(spec), self._cwd(spec)
        return await spawn(spec.name, argv, env, cwd, output, nice=spec.nice)

    # The Backend protocol.

    async def create(self, spec: ContainerSpec) -> None:
        async with self._lock(spec.name):
            if self._read_meta(spec.name) is not None:
                raise BackendError(f"container {spec.container} already exists")
            self._write_meta(spec.name, {"spec": spec_to_json(spec), "pid": None})

    async def update(self, spec: ContainerSpec) -> None:
        # Recorded only: a running agent keeps its old spec until restarted.
        async with self._lock(spec.name):
            meta = self._require(spec.name)
            meta["spec"] = spec_to_json(spec)
            self._write_meta(spec.name, meta)

    async def start(self, spec: ContainerSpec, output: OutputSink) -> None:
        async with self._lock(spec.name):
            meta = self._require(spec.name)
            current = self._child(spec.name, meta)
            if current is not None and current.running:
                if current.popen is not None:
                    return
                log.info("replacing h-%s (pid %d) left by a previous core", spec.name, current.pid)
                await self._terminate(current)
            self._prepare(spec)
            child = await self._spawn(spec, output)
            self.cpu.place(spec.name, child.pid, spec.nice)
            self._children[spec.name] = child
            self._last_exit.pop(spec.name, None)
            child.exited.add_done_callback(lambda done: self._note_exit(spec.name, done))
            meta.update(spec=spec_to_json(spec), pid=child.pid, start_time=start_time(child.pid))
            if child.sandbox_init is not None:
                init = child.sandbox_init
                meta.update(sandbox_init=init, sandbox_init_start=start_time(init))
            self._write_meta(spec.name, meta)

    async def wait(self, name: str) -> int:
        child = self._child(name, self._read_meta(name))
        if child is None:
            if name in self._last_exit:
                return self._last_exit[name]
            raise BackendError(f"container h-{name} is not running")
        return await asyncio.shield(child.exited)

    async def stop(self, name: str) -> None:
        async with self._lock(name):
            child = self._child(name, self._read_meta(name))
            if child is not None:
                await self._terminate(child)

    async def destroy(self, name: str) -> None:
        await self.stop(name)
        self.cpu.release(name)
        async with self._lock(name):
            self._children.pop(name, None)
            self._last_exit.pop(name, None)
            self._meta_path(name).unlink(missing_ok=True)

    async def status(self, name: str) -> ContainerStatus:
        meta = self._read_meta(name)
        if meta is None:
            return ContainerStatus("missing")
        child = self._child(name, meta)
        if child is not None and child.running:
            return ContainerStatus("running", child.pid)
        return ContainerStatus("stopped")

    # Internals.

    def _child(self, name: str, meta: Mapping[str, Any] | None) -> Child | None:
        """Our child for ``name``, or an adopted orphan of a previous core."""
        child = self._children.get(name)
        if child is not None or meta is None or meta.get("pid") is None:
            return child
        pid = int(meta["pid"])
        if not alive(pid, meta.get("start_time")):
            # The process we started is gone, but a sandbox's init may have
            # outlived it (a core killed with -9): that is the one to reap.
            init = meta.get("sandbox_init")
            if init is None or not alive(int(init), meta.get("sandbox_init_start")):
                return None
            pid = int(init)
        child = adopt(name, pid)
        self._children[name] = child
        return child

    async def _terminate(self, child: Child) -> None:
        """SIGTERM the group, wait (bounded), then SIGKILL the group."""
        if child.running:
            self._signal_term(child.pid)
            try:
                await asyncio.wait_for(asyncio.shield(child.exited), self._stop_timeout)
            except TimeoutError:
                log.warning(
                    "h-%s ignored SIGTERM for %.0fs; killing", child.name, self._stop_timeout
                )
                self._signal_kill(child.pid)
                try:
                    await asyncio.wait_for(asyncio.shield(child.exited), KILL_TIMEOUT)
                except TimeoutError as exc:
                    raise BackendError(
                        f"h-{child.name} (pid {child.pid}) survived SIGKILL"
                    ) from exc
        # Whatever of the group outlived its leader goes too: stop means the whole tree.
        self._signal_kill(child.pid)
        await child.close_output(1.0)

    def _note_exit(self, name: str, done: asyncio.Future[int]) -> None:
        if done.cancelled():
            return
        self._last_exit[name] = done.result()
        log.info("h-%s exited with %d", name, done.result())
        self.cpu.release(name)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _meta_path(self, name: str) -> Path:
        return self._work_dir / f"h-{name}.json"

    def _read_meta(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._meta_path(name).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BackendError(f"unreadable backend record {self._meta_path(name)}: {exc}") from exc
        return data if isinstance(data, dict) else None

    def _require(self, name: str) -> dict[str, Any]:
        meta = self._read_meta(name)
        if meta is None:
            raise BackendError(f"container h-{name} does not exist")
        return meta

    def _write_meta(self, name: str, meta: Mapping[str, Any]) -> None:
        self._work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._meta_path(name)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(tmp, path)
