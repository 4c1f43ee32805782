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
import sys
from collections.abc import Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import hyperhive
from hyperhive.backends._child import Child, descendants, kill_group, kill_tree, spawn
from hyperhive.backends.base import BackendError, ContainerSpec, OutputSink, give_dirs
from hyperhive.backends.cpu_group import CpuGroup
from hyperhive.backends.process import KILL_TIMEOUT, ProcessBackend, memory_limit_argv
from hyperhive.backends.user_net import (
    DEFAULT_TOOLS,
    HOST_RESOLV,
    MISSING,
    UserNet,
    find_tool,
    place_resolv,
)

# Host top-level entries never shown: virtual filesystems get fresh instances,
# the rest may hold other agents' files or the operator's credentials.
SKIPPED: Final = frozenset({"proc", "dev", "tmp", "run", "root", "home", "state", "agents", "work"})
WORK: Final = Path("/work")  # the agent's workspace; whatever the host has there is hidden
ALWAYS_HIDDEN: Final = (Path("/tmp"), Path("/run"), Path("/root"), Path("/home"))
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LIFELINE_ENV: Final = "HYPERHIVE_LIFELINE_FD"  # read by hyperhive.agent.lifeline
INFO_LIMIT: Final = 4096
INFO_TIMEOUT: Final = 10.0
# Kept by bwrap only until setpriv, the sandbox's first command, drops them
# all: setpriv needs the first three to become the agent's uid and empty its
# bounding set, and bwrap itself must enter /work (0700, the agent's).
SETPRIV_CAPS: Final = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_OVERRIDE")


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def harness_paths() -> list[Path]:
    """What ``sys.executable -m hyperhive...`` needs to see inside the sandbox."""
    package_root = Path(hyperhive.__file__).resolve().parent.parent
    paths = [Path(sys.prefix), Path(sys.base_prefix), package_root]
    paths.append(Path(os.path.realpath(sys.executable)).parent)
    return [p.resolve() for p in paths]


def host_view(root: Path = Path("/")) -> list[str]:
    """Read-only binds (and symlinks) of the host's top-level entries."""
    args: list[str] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name in SKIPPED:
            continue
        path = root / entry.name
        if entry.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        else:
            args += ["--ro-bind", str(path), str(path)]
    return args


def bwrap_argv(
    spec: ContainerSpec,
    *,
    hide: Sequence[Path] = (),
    bwrap: str = "bwrap",
    needed: Sequence[Path] | None = None,
    setpriv: str | None = None,
    info_fd: int | None = None,
    block_fd: int | None = None,
    resolv_conf: Path | None = None,
) -> list[str]:
    """The whole command line; with ``setpriv`` (the core runs as root) the
    agent runs as ``spec.uid`` with no capabilities. ``block_fd``: the sandbox's
    command waits for a byte (or EOF) there; ``resolv_conf``: bound over
    /etc/resolv.conf."""
    hidden = [*ALWAYS_HIDDEN, *(Path(os.path.realpath(p)) for p in hide), WORK]
    args = [
        bwrap,
        *(["--info-fd", str(info_fd)] if info_fd is not None else []),
        *(["--block-fd", str(block_fd)] if block_fd is not None else []),
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
        "--hostname", spec.container,
        "--die-with-parent", "--new-session",
        *host_view(),
        "--dev", "/dev",
        "--proc", "/proc",
    ]  # fmt: skip
    # Hide first: a later bind at a path under a hidden dir lands on the tmpfs.
    for path in hidden:
        if path == Path("/tmp"):
            args += ["--perms", "01777"]  # the agent's own /tmp, writable by its uid
        if path == WORK and spec.work_dir is not None:
            # Before the harness paths: a checkout of hyperhive under the host's
            # /work (a developer's) is bound back on top, inside the workspace.
            args += ["--bind", str(spec.work_dir), str(WORK)]
        elif path in ALWAYS_HIDDEN or path == WORK or not _under(path, ALWAYS_HIDDEN):
            args += ["--tmpfs", str(path)]
    args += _run_links()
    if resolv_conf is not None:
        args += ["--ro-bind", str(resolv_conf), "/etc/resolv.conf"]
    for path in needed if needed is not None else harness_paths():
        if _under(path, hidden):
            args += [*_mount_point_parents(path, hidden), "--ro-bind", str(path), str(path)]
    for path in spec.extra_ro_binds:
        args += [*_mount_point_parents(path, hidden), "--ro-bind", str(path), str(path)]
    args += ["--bind", str(spec.socket_dir), "/run/hive"]
    args += ["--bind", str(spec.claude_dir), "/root/.claude"]
    args += ["--bind", str(spec.state_dir), "/state"]
    if spec.role == "manager" and spec.agents_dir is not None:
        args += ["--bind", str(spec.agents_dir), "/agents"]
    # The sandbox root is bwrap's own tmpfs: writable until every mount point
    # exists, then read-only so the agent's only writable places are its binds.
    args += ["--remount-ro", "/"]
    args += ["--chdir", "/work" if spec.work_dir is not None else "/state"]
    return [*memory_limit_argv(spec.memory_mb), *args, *_privileges(spec, setpriv)]


def _privileges(spec: ContainerSpec, setpriv: str | None) -> list[str]:
    """The capability drop and the uid change, ending with the command itself."""
    if setpriv is None:
        return ["--", *spec.command]
    if spec.uid is None:
        raise BackendError(f"{spec.container}: a root core must give the agent a uid")
    keep = [arg for cap in SETPRIV_CAPS for arg in ("--cap-add", cap)]
    become = [
        setpriv,
        f"--reuid={spec.uid}", f"--regid={spec.uid}", "--clear-groups",
        "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs",
    ]  # fmt: skip
    return ["--cap-drop", "ALL", *keep, "--", *become, "--", *spec.command]


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


def _mount_point_parents(path: Path, hidden: Sequence[Path]) -> list[str]:
    """Traversable dirs leading to a bind inside a hidden (tmpfs) dir.

    bwrap makes a mount point's missing parents with the modes of the host's,
    and a host's ``/root/.pyenv`` or ``/tmp/tmpXXXX`` may be 0700 root: the
    agent's uid could not walk through them to the bind.
    """
    top = next((root for root in hidden if root in path.parents), None)
    if top is None:
        return []
    between = [p for p in reversed(path.parents) if top in p.parents]
    return [arg for p in between for arg in ("--perms", "0755", "--dir", str(p))]


def _run_links() -> list[str]:
    """Bits of the hidden /run that the host system itself points into."""
    args: list[str] = []
    current = Path("/run/current-system")  # NixOS: PATH and /etc/static live there
    if current.is_symlink():
        args += ["--symlink", os.readlink(current), str(current)]
    resolv = Path(os.path.realpath("/etc/resolv.conf"))
    if resolv.is_file() and _under(resolv, [Path("/run")]):
        args += ["--ro-bind", str(resolv), str(resolv)]
    return args


def sandbox_env(spec: ContainerSpec) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    path = f"{venv_bin}:{os.environ.get('PATH') or DEFAULT_PATH}"
    layout = {
        "HYPERHIVE_AGENT_NAME": spec.name,
        "HYPERHIVE_AGENT_SOCKET": "/run/hive/mcp.sock",
        "HYPERHIVE_AGENT_STATE": "/state",
        "HYPERHIVE_AGENT_WORK": "/work" if spec.work_dir is not None else "/state",
        "CLAUDE_CONFIG_DIR": "/root/.claude",
    }
    if spec.role == "manager" and spec.agents_dir is not None:
        layout["HYPERHIVE_AGENTS_DIR"] = "/agents"
    base = {"PATH": path, "HOME": "/root", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    return {**base, **spec.env, **layout}


class BwrapBackend(ProcessBackend):
    name = "bwrap"
    isolating = True

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
        cpu_group: CpuGroup | None = None,
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
        super().__init__(work_dir, stop_timeout=stop_timeout, cpu_group=cpu_group)

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
                group=self._cpu_group,
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
