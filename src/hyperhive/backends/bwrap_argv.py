"""The sandbox's command line: what bwrap binds, hides, unshares and drops for one agent
(the why of each is in :mod:`hyperhive.backends.bwrap`). Pure: a spec in, argv and env
out, so every rule is tested without starting a sandbox."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

import hyperhive
from hyperhive.backends.base import BackendError, ContainerSpec
from hyperhive.backends.process import memory_limit_argv

# Host top-level entries never shown: virtual filesystems get fresh instances,
# the rest may hold other agents' files or the operator's credentials.
SKIPPED: Final = frozenset({"proc", "dev", "tmp", "run", "root", "home", "state", "agents", "work"})
WORK: Final = Path("/work")  # the agent's workspace; whatever the host has there is hidden
ALWAYS_HIDDEN: Final = (Path("/tmp"), Path("/run"), Path("/root"), Path("/home"))
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
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
