"""The bwrap backend: each agent in a bubblewrap sandbox.

Own pid/ipc/uts namespaces, hostname ``h-<name>``, a read-only view of the host
system, and exactly the binds of DESIGN §2. The view is built entry by entry
(``--ro-bind /usr /usr``, ``--symlink usr/bin /bin``, …) rather than with
``--ro-bind / /``: on a read-only root bwrap cannot create the ``/state`` and
``/agents`` mount points. Hidden (an empty tmpfs): ``/tmp``, ``/run`` (it holds
the hive's sockets), ``/root`` and ``/home`` (credentials), and the hive's state
and run roots given to the constructor. Paths the harness needs that lie under a
hidden dir (the venv, the base interpreter, the hyperhive sources) are
bound back read-only.

Privilege: run by root, bwrap would leave the agent every capability (with
them ``mount -o remount,rw`` or ``open_by_handle_at`` reach the whole host).
So bwrap drops every capability but the three ``setpriv`` needs, and
``setpriv`` — the sandbox's first command — becomes the agent's own uid
(:mod:`hyperhive.core.agent_uids`), clears its groups and the bounding set,
and only then runs the harness: the agent's processes hold no capability,
cannot regain one (no-new-privs), and reach host files as an unprivileged
user would. Run by another user, bwrap itself is unprivileged (a user
namespace) and already gives the sandbox no capability. ``--new-session``
keeps the agent off any terminal the core has.

Dying with the core: bwrap's ``--die-with-parent`` takes the outer bwrap down
with the core, but the sandbox's own init (pid 1 of its namespace) outlives it
(seen every time here), harness and all, which would then reconnect to the
next core beside the agent that core starts anew. So every sandbox watches a
pipe only the core holds open (:mod:`hyperhive.agent.lifeline`) and ends when
the core does; and bwrap reports its init's pid (``--info-fd``), which the
record keeps, so a restarted core that still finds one alive (its ``start``,
``stop``, ``status``) treats it as the container: killing it from the host
ends the whole namespace.

``--die-with-parent`` is on: a sandbox outliving its core would be unreachable
(its output pipe dies with the core, its exit code cannot be collected) and
systemd would kill it with the core's cgroup anyway. A restarted core starts
every agent again, so dying with the core is the predictable choice; it also
means SIGKILL of the outer bwrap collapses the whole pid namespace.

The environment is exactly :func:`sandbox_env` (nothing of the core's leaks
in), handed to bwrap as its own environment rather than ``--setenv``.

Network: every sandbox has a network namespace of its own. With ``network =
false`` it has only its loopback, and the unix sockets in ``/run/hive`` are its
only ways out; with ``network = true`` a user-mode stack (:mod:`.user_net`)
gives it a default route that never reaches the host's loopback, and the
sandbox's command waits (``--block-fd``) until that stack is up. A host
resolver on loopback would be the sandbox's own, empty loopback in there: the
sandbox then gets a resolv.conf naming the stack's resolver instead.

Memory: see :func:`hyperhive.backends.process.memory_limit_argv`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Final

from hyperhive.backends._child import Child, descendants, kill_group, kill_tree, spawn
from hyperhive.backends.base import BackendError, ContainerSpec, OutputSink, give_dirs
from hyperhive.backends.bwrap_argv import bwrap_argv, sandbox_env
from hyperhive.backends.cpu_groups import NO_CPU_GROUPS, CpuGroups
from hyperhive.backends.process import KILL_TIMEOUT, ProcessBackend
from hyperhive.backends.user_net import (
    DEFAULT_TOOLS,
    HOST_RESOLV,
    MISSING,
    UserNet,
    find_tool,
    place_resolv,
)

LIFELINE_ENV: Final = "HYPERHIVE_LIFELINE_FD"  # read by hyperhive.agent.lifeline
INFO_LIMIT: Final = 4096
INFO_TIMEOUT: Final = 10.0


async def _sandbox_init(fd: int) -> int | None:
    """The pid bwrap reports for its sandbox's init on ``--info-fd``, or None."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=INFO_LIMIT, loop=loop)
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
    )
    try:
        # bwrap writes it (in pieces) once the namespace exists, then closes the
        # fd: read to the end, for closing early would kill bwrap with SIGPIPE.
        async with asyncio.timeout(INFO_TIMEOUT):
            data = await reader.read()
        pid = json.loads(data).get("child-pid")
    except (TimeoutError, ValueError, AttributeError):
        return None  # bwrap failed early; its exit says why
    finally:
        transport.close()
    return pid if isinstance(pid, int) and pid > 0 else None


class BwrapBackend(ProcessBackend):
    name = "bwrap"
    isolating = True
    own_network = True

    def __init__(
        self,
        work_dir: Path,
        *,
        hide: Sequence[Path] = (),
        stop_timeout: float = 10.0,
        bwrap: str = "bwrap",
        privileged: bool | None = None,
        user_net: Sequence[str] = DEFAULT_TOOLS,
        host_resolv: Path = HOST_RESOLV,
        cpu: CpuGroups = NO_CPU_GROUPS,
    ) -> None:
        self._hide = tuple(hide)
        self._bwrap = bwrap
        # Chosen once: the stack network = true sandboxes get (None: they cannot start).
        self.net_tool = find_tool(user_net)
        self._host_resolv = host_resolv
        self._nets: dict[str, UserNet] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Whether bwrap runs as root, and so must drop to the agent's uid itself.
        self.agent_uids = os.geteuid() == 0 if privileged is None else privileged
        super().__init__(work_dir, stop_timeout=stop_timeout, cpu=cpu)

    def _announce(self) -> None:
        pass  # isolated: nothing to warn about

    def _argv(
        self, spec: ContainerSpec, info_fd: int | None = None, block_fd: int | None = None
    ) -> list[str]:
        setpriv = None
        if self.agent_uids:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise BackendError("setpriv (util-linux) is needed to run agents unprivileged")
        resolv = self._resolv_path(spec)
        return bwrap_argv(
            spec, hide=self._hide, bwrap=self._bwrap, setpriv=setpriv, info_fd=info_fd,
            block_fd=block_fd, resolv_conf=resolv if resolv.is_file() else None,
        )  # fmt: skip

    async def _spawn(self, spec: ContainerSpec, output: OutputSink) -> Child:
        info, theirs = os.pipe()
        watched, lifeline = os.pipe()  # the write end never leaves the core
        # The sandbox's command waits on gate until the network stack is up.
        gate, opened = os.pipe() if spec.network else (None, None)
        env = {**self._env(spec), LIFELINE_ENV: str(watched)}
        theirs_all = (theirs, watched, *([gate] if gate is not None else []))
        try:
            argv = self._argv(spec, info_fd=theirs, block_fd=gate)
            child = await spawn(
                spec.name,
                argv,
                env,
                self._cwd(spec),
                output,
                pass_fds=theirs_all,
                nice=spec.nice,
            )
        except BaseException:
            for fd in (info, lifeline, opened):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in theirs_all:
                os.close(fd)
        child.lifeline = lifeline
        child.exited.add_done_callback(lambda _: os.close(lifeline))
        child.sandbox_init = await _sandbox_init(info)
        if opened is not None:
            try:
                await self._connect(spec, child)
                with contextlib.suppress(BrokenPipeError):  # bwrap died meanwhile
                    os.write(opened, b"1")
            finally:
                os.close(opened)  # after a failure the sandbox is dead already
        return child

    async def _connect(self, spec: ContainerSpec, child: Child) -> None:
        """Start the sandbox's network stack; a sandbox whose stack fails is killed."""
        if child.sandbox_init is None or self.net_tool is None:
            return  # bwrap failed early: its exit says why
        try:
            net = await UserNet.start(self.net_tool, spec.name, child.sandbox_init)
        except BaseException:
            kill_tree(child.pid, signal.SIGKILL)
            kill_group(child.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(child.exited), KILL_TIMEOUT)
            await child.close_output(0.5)
            raise
        self._nets[spec.name] = net
        # Tied to the container: it goes when the sandbox ends, however it ends.
        child.exited.add_done_callback(lambda _: self._later(net.stop()))

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def user_net(self, name: str) -> UserNet | None:
        """The network stack of ``name``'s running sandbox, if it has one."""
        return self._nets.get(name)

    async def stop(self, name: str) -> None:
        await super().stop(name)
        net = self._nets.pop(name, None)
        if net is not None:
            await net.stop()  # the same stop its sandbox's exit began: wait for the end

    def _prepare(self, spec: ContainerSpec) -> None:
        if spec.network and self.net_tool is None:
            raise BackendError(f"cannot start {spec.container}: {MISSING}")
        if self.agent_uids:
            give_dirs(spec)
        place_resolv(self._resolv_path(spec), self._host_resolv if spec.network else None)

    def _resolv_path(self, spec: ContainerSpec) -> Path:
        return self._work_dir / f"{spec.container}.resolv.conf"

    def _env(self, spec: ContainerSpec) -> dict[str, str]:
        # bwrap passes its own environment on, so giving it exactly the
        # sandbox's is --clearenv plus --setenv without putting the values
        # (forwarded API keys) in argv, which every host user can read in /proc.
        return sandbox_env(spec)

    def _cwd(self, spec: ContainerSpec) -> Path | None:
        return None

    def _signal_kill(self, pid: int) -> None:
        kill_tree(pid, signal.SIGKILL)
        kill_group(pid, signal.SIGKILL)

    def _signal_term(self, pid: int) -> None:
        # Not the outer bwrap nor its pid-1 init: a SIGTERMed bwrap dies at once
        # and takes the sandbox down with SIGKILL, leaving the harness no grace.
        # Everyone below them gets SIGTERM, found by process tree rather than
        # group: --new-session gives the agent a session of its own, and
        # anything it starts may leave that one too.
        inside = [m for m, parent in descendants(pid) if parent != pid]
        if not inside:
            # The sandbox is still being set up and its command not yet forked:
            # there is nobody to be graceful to, and a SIGTERM now would be lost.
            kill_group(pid, signal.SIGKILL)
            return
        for member in inside:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGTERM)
