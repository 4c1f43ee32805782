"""The user-mode network stack a bwrap sandbox with ``network = true`` gets.

Every sandbox has a network namespace of its own (``--unshare-net``): without a
stack its only ways out are the unix sockets in ``/run/hive``. With one, the core
starts slirp4netns (or pasta, when slirp4netns is missing) on the sandbox's
namespace once bwrap has reported the sandbox's pid, and the sandbox's command
runs only once the stack is up (bwrap's ``--block-fd``).

Neither stack may reach the host's loopback, where the dashboard, the agents'
pages and whatever else the host keeps private listen: slirp4netns runs with
``--disable-host-loopback`` (its 10.0.2.2 would otherwise be the host's
127.0.0.1); pasta with ``--no-map-gw`` (its gateway would otherwise be) and no
port forwarding either way (``-T none``: the sandbox's loopback ports are not
the host's; ``-t none``: an agent's listener is not bound on the host).
slirp4netns also runs sandboxed (``--enable-sandbox --enable-seccomp``): it is
root, parsing every packet an agent sends.

The stack is the core's child, in its own session, and dies with the core
(slirp4netns watches ``--exit-fd``, a pipe only the core holds). The backend
stops it with its container; if it dies on its own the agent goes on without
network and the core logs it (:meth:`UserNet.watch`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from hyperhive.backends._child import Child, kill_group, spawn
from hyperhive.backends.base import BackendError

log = logging.getLogger(__name__)

Kind = Literal["slirp4netns", "pasta"]
KINDS: Final[tuple[Kind, ...]] = ("slirp4netns", "pasta")
DEFAULT_TOOLS: Final = KINDS  # in order of preference
TAP: Final = "tap0"
MTU: Final = 65520
# slirp4netns's resolver; pasta is told to answer queries sent to the same address.
RESOLVER: Final = "10.0.2.3"
READY_TIMEOUT: Final = 10.0
STOP_GRACE: Final = 2.0
KILL_TIMEOUT: Final = 5.0
ROUTE_POLL: Final = 0.02  # pasta has no ready fd: its route appearing is the sign
HOST_RESOLV: Final = Path("/etc/resolv.conf")
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MISSING: Final = (
    "network = true needs a user-mode network stack for the sandbox, and neither "
    "slirp4netns nor pasta is installed: apt-get install slirp4netns (Debian package "
    "slirp4netns; or passt, for pasta), or give the agent network = false"
)


@dataclass(frozen=True, slots=True)
class StackTool:
    kind: Kind
    path: str


def find_tool(names: Sequence[str] = DEFAULT_TOOLS) -> StackTool | None:
    """The first of ``names`` (``slirp4netns``/``pasta``, or paths to them) installed."""
    for name in names:
        kind = Path(name).name
        path = shutil.which(name)
        if path is not None and kind in KINDS:
            return StackTool(kind, path)
    return None


def slirp4netns_argv(
    path: str, pid: int, *, userns: str | None, ready_fd: int, exit_fd: int
) -> list[str]:
    """``--enable-sandbox`` (a mount namespace of its own, every capability but
    CAP_NET_BIND_SERVICE dropped) when the sandbox shares our user namespace (a
    root core); joining an unprivileged bwrap's, slirp4netns's sandbox fails
    (setegid) and there is no capability to drop anyway."""
    args = [
        path, "--configure", f"--mtu={MTU}", "--disable-host-loopback",
        *(["--enable-sandbox"] if userns is None else []), "--enable-seccomp",
        f"--ready-fd={ready_fd}", f"--exit-fd={exit_fd}",
    ]  # fmt: skip
    if userns is not None:
        args.append(f"--userns-path={userns}")
    return [*args, "--netns-type=path", f"/proc/{pid}/ns/net", TAP]


def pasta_argv(path: str, pid: int, *, userns: str | None, dns_forward: bool) -> list[str]:
    args = [
        path, "--config-net", "--foreground", "--quiet", "--mtu", str(MTU),
        "--ns-ifname", TAP, "--no-map-gw",
        "--tcp-ports", "none", "--udp-ports", "none", "--tcp-ns", "none", "--udp-ns", "none",
    ]  # fmt: skip
    if dns_forward:
        args += ["--dns-forward", RESOLVER]
    if userns is not None:
        args += ["--userns", userns]
    # Without --userns, --netns PATH joins the network namespace only.
    return [*args, "--netns", f"/proc/{pid}/ns/net"]


def sandbox_resolv(host_text: str, resolver: str = RESOLVER) -> str | None:
    """The sandbox's resolv.conf when the host's names a loopback resolver (which is
    the sandbox's own, empty loopback in there), else None: the host's serves."""
    lines, changed = [], False
    for line in host_text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and _loopback(words[1]):
            line, changed = f"nameserver {resolver}", True
        if line not in lines or not line.startswith("nameserver"):
            lines.append(line)
    return "\n".join(lines) + "\n" if changed else None


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def foreign_userns(pid: int) -> str | None:
    """``/proc/<pid>/ns/user`` when the sandbox's user namespace is not ours (an
    unprivileged bwrap makes one): the stack must join it before its network."""
    path = f"/proc/{pid}/ns/user"
    try:
        theirs, ours = os.stat(path), os.stat("/proc/self/ns/user")
    except OSError as exc:
        raise BackendError(f"cannot see the sandbox's namespaces (pid {pid}): {exc}") from exc
    return None if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino) else path


class UserNet:
    """One running stack for one sandbox's network namespace."""

    def __init__(
        self,
        name: str,
        tool: StackTool,
        child: Child,
        exit_fd: int | None,
        lines: collections.deque[str],
    ) -> None:
        self.name = name
        self.tool = tool
        self._child = child
        self._exit_fd = exit_fd
        self._stopping = False
        self._stop: asyncio.Future[None] | None = None
        self._lines = lines  # its last output lines, for the error when it fails
        child.exited.add_done_callback(self._on_exit)

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def exited(self) -> asyncio.Future[int]:
        return self._child.exited

    @classmethod
    async def start(
        cls, tool: StackTool, name: str, pid: int, *, within: float = READY_TIMEOUT
    ) -> UserNet:
        """Start the stack on sandbox ``pid``'s namespace; return once it is up."""
        userns = foreign_userns(pid)
        env = {"PATH": os.environ.get("PATH") or DEFAULT_PATH, "LANG": "C.UTF-8"}
        lines: collections.deque[str] = collections.deque(maxlen=20)

        def sink(_: str, line: str) -> None:
            lines.append(line)
            log.debug("h-%s %s: %s", name, tool.kind, line)

        ready: int | None = None
        exit_fd: int | None = None
        if tool.kind == "slirp4netns":
            ready, ready_w = os.pipe()
            exit_r, exit_fd = os.pipe()
            argv = slirp4netns_argv(tool.path, pid, userns=userns, ready_fd=ready_w, exit_fd=exit_r)
            try:
                child = await spawn(name, argv, env, None, sink, pass_fds=(ready_w, exit_r))
            except BaseException:
                os.close(ready)
                os.close(exit_fd)
                raise
            finally:
                os.close(ready_w)
                os.close(exit_r)
        else:
            dns = sandbox_resolv(_read(HOST_RESOLV)) is not None
            argv = pasta_argv(tool.path, pid, userns=userns, dns_forward=dns)
            child = await spawn(name, argv, env, None, sink)
        net = cls(name, tool, child, exit_fd, lines)
        try:
            up = _ready_fd(ready) if ready is not None else _default_route(pid)
            await net._until_up(up, within)
        except BaseException:
            await net.stop()
            raise
        return net

    async def _until_up(self, up: asyncio.Future[bool], within: float) -> None:
        either: set[asyncio.Future[Any]] = {up, self._child.exited}
        done, _ = await asyncio.wait(either, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        if up in done and up.result():
            return
        if up in done:  # its ready fd closed unwritten: it is on its way out
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._child.exited), STOP_GRACE)
        up.cancel()
        said = "; ".join(self._lines) or "no output"
        exited = self._child.exited
        why = (
            f"exited with {exited.result()}"
            if exited.done()
            else f"was not up within {within:.0f}s"
        )
        raise BackendError(f"h-{self.name}: {self.tool.kind} {why} ({said})")

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop it: its exit fd closed and SIGTERM, a bounded wait, then SIGKILL.
        Every caller waits for the one stop the first began."""
        if self._stop is None:
            self._stop = asyncio.ensure_future(self._stop_now(grace))
        await asyncio.shield(self._stop)

    async def _stop_now(self, grace: float) -> None:
        self._stopping = True
        if self._exit_fd is not None:
            os.close(self._exit_fd)
            self._exit_fd = None
        if self._child.running:
            kill_group(self._child.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._child.exited), grace)
        kill_group(self._child.pid, signal.SIGKILL)  # its group, whatever it started
        try:
            await asyncio.wait_for(asyncio.shield(self._child.exited), KILL_TIMEOUT)
        except TimeoutError as exc:
            raise BackendError(f"h-{self.name}: {self.tool.kind} survived SIGKILL") from exc
        await self._child.close_output(0.5)

    def _on_exit(self, done: asyncio.Future[int]) -> None:
        if self._stopping or done.cancelled():
            return
        log.warning(
            "h-%s: its network stack (%s, pid %d) exited with %s; the agent goes on "
            "without network until it is restarted",
            self.name, self.tool.kind, self._child.pid, done.result(),
        )  # fmt: skip


def place_resolv(path: Path, host: Path | None) -> bool:
    """Write the sandbox's own resolv.conf at ``path`` (0644: the agent's uid reads it
    through its bind) when the ``host``'s would not serve it (None: the sandbox has no
    network, nothing to resolve with); True when there is one."""
    text = sandbox_resolv(_read(host)) if host is not None else None
    if text is None:
        path.unlink(missing_ok=True)
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _ready_fd(fd: int) -> asyncio.Future[bool]:
    """True once slirp4netns writes to its ready fd; False if it closes it unwritten."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[bool] = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(fd, 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        loop.remove_reader(fd)
        os.close(fd)
        if not result.done():
            result.set_result(bool(data))

    def cancelled(_: asyncio.Future[bool]) -> None:
        if result.cancelled():
            loop.remove_reader(fd)
            os.close(fd)

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    result.add_done_callback(cancelled)
    return result


def _default_route(pid: int) -> asyncio.Future[bool]:
    """True once the namespace of ``pid`` has a default route (pasta's work done)."""

    def routed() -> bool:
        try:
            return has_default_route(Path(f"/proc/{pid}/net/route").read_text())
        except OSError:
            return False

    async def poll() -> bool:
        # pasta in the foreground signals nothing when it is up; bounded by the caller.
        while not routed():  # noqa: ASYNC110
            await asyncio.sleep(ROUTE_POLL)
        return True

    return asyncio.ensure_future(poll())


def has_default_route(route_table: str) -> bool:
    """Whether ``/proc/net/route`` text has a default (destination 0/0) route."""
    rows = [line.split() for line in route_table.splitlines()[1:]]
    return any(len(row) > 7 and row[1] == "00000000" and row[7] == "00000000" for row in rows)
