"""The nixos backend: each agent a NixOS container built from a per-agent flake.

``nixos-container`` does the work; this module writes the flake
(:mod:`hyperhive.backends.nix_flake`), the bind mounts in the container's
``.conf`` (``EXTRA_NSPAWN_FLAGS``, other lines kept), and runs the tool in the
agent's own working directory (``<work_dir>/h-<name>``) with bounded timeouts.

Crash detection is *polled*: nixos-container has no wait, and the honest
alternatives (machinectl, systemd) are the host's, not ours. :meth:`wait` asks
``nixos-container status`` with a backoff from ``poll_initial`` to
``poll_max`` seconds. The main process's exit code is not reported by
nixos-container: :meth:`wait` answers 0 after our own ``stop`` and
:data:`EXIT_UNKNOWN` otherwise. A probe that fails (the tool timed out, was
killed, printed nothing) says nothing about the container, so :meth:`wait`
keeps waiting; only ``status_failures`` failures in a row make it give up,
with a :class:`BackendError` that says so.

Network: every container has a private network (a veth pair, ``--host-address``
and ``--local-address`` from :func:`~hyperhive.backends.nix_flake.container_addresses`:
the same pair for an agent each time, never one another container holds). With
``network = true`` its default route is the host's end, and the host's NAT
(``services.hive-c0re.nat``) takes it on; with ``network = false`` the
container's flake brings every interface but ``lo`` down before the harness starts.
127.0.0.1 in a container is its own: the host's loopback is out of reach.

The harness's output goes to the container's journal
(``journalctl -M h-<name> -u hive-agent``); the output sink only gets the
tool's own lines from ``start``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Final

from hyperhive.backends._child import EXIT_UNKNOWN
from hyperhive.backends.base import (
    BackendError,
    ContainerSpec,
    ContainerStatus,
    OutputSink,
    State,
    give_dirs,
)
from hyperhive.backends.nix_flake import (
    container_addresses,
    default_hyperhive_url,
    nspawn_flags,
    render_flake,
    secret_env_file,
    taken_addresses,
    with_flags,
)

log = logging.getLogger(__name__)

MAX_CONTAINER_NAME: Final = 11  # nixos-container: interface names are short
DEFAULT_CONF_DIR: Final = Path("/etc/nixos-containers")
BUILD_TIMEOUT: Final = 1800.0  # a first build may download and compile a lot
COMMAND_TIMEOUT: Final = 180.0  # systemctl stop waits for the container's own timeout
STATUS_FAILURES: Final = 3  # failed status probes in a row before wait gives up
STATES: Final[dict[str, State]] = {"up": "running", "down": "stopped", "gone": "missing"}


class NixosBackend:
    name = "nixos"
    isolating = True
    own_network = True

    def __init__(
        self,
        work_dir: Path,
        *,
        command: str = "nixos-container",
        conf_dir: Path = DEFAULT_CONF_DIR,
        hyperhive_url: str | None = None,
        nixpkgs_url: str | None = None,
        system: str | None = None,
        build_timeout: float = BUILD_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
        poll_initial: float = 0.5,
        poll_max: float = 5.0,
        status_failures: int = STATUS_FAILURES,
        privileged: bool | None = None,
    ) -> None:
        # nspawn leaves a container's root many capabilities (CAP_SYS_ADMIN and
        # CAP_DAC_READ_SEARCH among them), so the harness never runs as that
        # root: it runs as the agent's own uid, the owner of its binds.
        self.agent_uids = os.geteuid() == 0 if privileged is None else privileged
        self._work_dir = work_dir
        self._command = command
        self._conf_dir = conf_dir
        self._hyperhive_url = hyperhive_url or default_hyperhive_url()
        self._nixpkgs_url = nixpkgs_url
        self._system = system
        self._build_timeout = build_timeout
        self._command_timeout = command_timeout
        self._poll = (poll_initial, poll_max)
        self._status_failures = status_failures
        self._stopping: set[str] = set()

    def flake_dir(self, name: str) -> Path:
        return self._agent_dir(name) / "flake"

    def conf_path(self, name: str) -> Path:
        return self._conf_dir / f"h-{name}.conf"

    async def create(self, spec: ContainerSpec) -> None:
        flags = self._check(spec)
        conf = self.conf_path(spec.name)
        if conf.exists():
            raise BackendError(f"container {spec.container} already exists")
        flake = self._write_flake(spec)
        host, local = container_addresses(spec.name, self._taken_addresses())
        try:
            await self._run(
                spec.name, "create", spec.container, "--flake", f"{flake}#container",
                "--host-address", host, "--local-address", local,
            )  # fmt: skip
        except BackendError:
            # The tool writes the .conf before building; a failed build leaves
            # a half-made container that would block the next create.
            if conf.exists():
                with contextlib.suppress(BackendError):
                    await self._run(spec.name, "destroy", spec.container)
            raise
        self._write_flags(spec.name, flags)

    async def update(self, spec: ContainerSpec) -> None:
        flags = self._check(spec)
        if not self.conf_path(spec.name).exists():
            raise BackendError(f"container {spec.container} does not exist")
        flake = self._write_flake(spec)
        await self._run(spec.name, "update", spec.container, "--flake", f"{flake}#container")
        # Binds are read when the container starts; a running one keeps its old ones.
        self._write_flags(spec.name, flags)

    async def start(self, spec: ContainerSpec, output: OutputSink) -> None:
        self._check(spec)
        if self.agent_uids:
            give_dirs(spec)
        self._stopping.discard(spec.name)
        text = await self._run(spec.name, "start", spec.container)
        for line in text.splitlines():
            output(spec.name, line)

    async def wait(self, name: str) -> int:
        delay, ceiling = self._poll
        failures = 0
        while True:
            try:
                running = (await self.status(name)).state == "running"
            except BackendError as exc:
                # One failed probe is no crash: a loaded host can fail or time out a
                # status run while the container goes on fine.
                failures += 1
                if failures >= self._status_failures:
                    raise BackendError(
                        f"cannot tell whether h-{name} is running: nixos-container status "
                        f"failed {failures} times in a row; the last: {exc.message}"
                    ) from exc
                log.warning("h-%s: status probe %d failed: %s", name, failures, exc.message)
            else:
                if not running:
                    return 0 if name in self._stopping else EXIT_UNKNOWN
                failures = 0
            await asyncio.sleep(delay)
            delay = min(delay * 2, ceiling)

    async def stop(self, name: str) -> None:
        self._stopping.add(name)
        await self._run(name, "stop", f"h-{name}")

    async def destroy(self, name: str) -> None:
        self._stopping.add(name)
        await self._run(name, "destroy", f"h-{name}")  # exits 0 for a missing one
        shutil.rmtree(self._agent_dir(name), ignore_errors=True)

    async def status(self, name: str) -> ContainerStatus:
        code, out, err = await self._exec(name, ["status", f"h-{name}"], self._command_timeout)
        answer = out.split()
        # A missing container prints "gone" and then fails; that is an answer.
        if answer and answer[0] in STATES and (code == 0 or answer[0] == "gone"):
            return ContainerStatus(STATES[answer[0]])
        raise BackendError(f"nixos-container status h-{name} failed (exit {code}): {err.strip()}")

    # Internals.

    def _check(self, spec: ContainerSpec) -> str:
        """Refuse what the tool would refuse, before anything runs or is written."""
        if len(spec.container) > MAX_CONTAINER_NAME:
            raise BackendError(
                f"container name {spec.container!r} is too long: nixos-container "
                f"allows {MAX_CONTAINER_NAME} characters"
            )
        if self.agent_uids and spec.uid is None:
            raise BackendError(f"{spec.container}: a root core must give the agent a uid")
        return nspawn_flags(spec)

    def _taken_addresses(self) -> set[str]:
        """The addresses every container's ``.conf`` holds (the hive's and any other)."""
        confs = []
        for conf in sorted(self._conf_dir.glob("*.conf")):
            with contextlib.suppress(OSError):
                confs.append(conf.read_text())
        return taken_addresses(confs)

    def _agent_dir(self, name: str) -> Path:
        return self._work_dir / f"h-{name}"

    def _write_flake(self, spec: ContainerSpec) -> Path:
        flake = self.flake_dir(spec.name)
        flake.mkdir(parents=True, exist_ok=True)
        agent_nix = spec.config_dir / "agent.nix"
        if agent_nix.is_file():
            shutil.copyfile(agent_nix, flake / "agent.nix")
        else:
            (flake / "agent.nix").unlink(missing_ok=True)
        text = render_flake(
            spec,
            hyperhive_url=self._hyperhive_url,
            nixpkgs_url=self._nixpkgs_url,
            system=self._system,
            with_agent_nix=agent_nix.is_file(),
        )
        _write_atomic(flake / "flake.nix", text)
        spec.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        env_file = spec.socket_dir / "env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret_env_file(spec))
        return flake

    def _write_flags(self, name: str, flags: str) -> None:
        conf = self.conf_path(name)
        try:
            current = conf.read_text()
        except FileNotFoundError as exc:
            raise BackendError(f"nixos-container left no {conf}") from exc
        _write_atomic(conf, with_flags(current, flags))

    async def _run(self, name: str, *args: str) -> str:
        building = args[0] in ("create", "update")
        timeout = self._build_timeout if building else self._command_timeout
        code, out, err = await self._exec(name, list(args), timeout)
        if code != 0:
            raise BackendError(
                f"nixos-container {args[0]} {args[1]} failed (exit {code}): {err.strip()[-2000:]}"
            )
        return out + err

    async def _exec(self, name: str, args: list[str], limit: float) -> tuple[int, str, str]:
        cwd = self._agent_dir(name)
        if not cwd.is_dir():
            cwd = self._work_dir
            cwd.mkdir(parents=True, exist_ok=True)
        try:
            proc = await asyncio.create_subprocess_exec(
                self._command, *args,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # so a timeout can kill the build's whole tree
            )  # fmt: skip
        except OSError as exc:
            raise BackendError(f"cannot run {self._command}: {exc.strerror or exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), limit)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5.0)
            raise BackendError(
                f"nixos-container {args[0]} h-{name} did not finish within {limit:.0f}s"
            ) from None
        return proc.returncode or 0, _text(out), _text(err)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
