"""One CPU control group for every agent, weighted far below the core.

Niceness alone does not keep the core responsive: with the kernel's autogroup
scheduling (on by default), every session is one scheduling entity of equal weight,
and each agent runs in a session of its own (two, under bwrap's ``--new-session``).
At 200 agents taking a turn at once the core was one entity among 201 and its
dashboard answered at p99 186 ms. In one cgroup, the agents together weigh a tenth of
the core, whatever sessions they make, and a process cannot leave a cgroup it cannot
write another's ``cgroup.procs`` of; when the core is idle they still get every cycle.

The group exists only when the core may make it (root, with the cpu controller on
cgroup v1, or on v2 where the core's own cgroup delegates it); otherwise agents run
as before, at their niceness only, and the log says so once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
GROUP_NAME: Final = "hyperhive-agents"
# The agents' weight against the core's, in each version's units: v1's cpu.shares
# (1024 for a task of the root group), v2's cpu.weight (100 for a default cgroup).
V1_SHARES: Final = 102
V2_WEIGHT: Final = 10
# sh joins the group, then becomes the command: everything the agent starts is born
# inside. A join that fails (the group removed under us) must not keep an agent from
# running, so its error is dropped and the exec goes on.
JOIN_SCRIPT: Final = '{ echo 0 > "$0"; } 2>/dev/null; exec "$@"'


@dataclass(frozen=True, slots=True)
class CpuGroup:
    procs: Path  # the group's cgroup.procs

    def prefix(self) -> list[str]:
        """A command prefix that runs the command inside the group."""
        return ["/bin/sh", "-c", JOIN_SCRIPT, str(self.procs)]


def _own_cgroup(controller: str | None, proc_cgroup: str) -> str | None:
    """The core's cgroup path for ``controller`` (None: the v2 unified line)."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if controller is None and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _v1(root: Path, proc_cgroup: str) -> CpuGroup | None:
    mount = root / "cpu"
    own = _own_cgroup("cpu", proc_cgroup)
    if own is None or not (mount / "cpu.shares").exists():
        return None
    group = mount / own.lstrip("/") / GROUP_NAME
    group.mkdir(exist_ok=True)
    _write(group / "cpu.shares", str(V1_SHARES))
    return CpuGroup(group / "cgroup.procs")


def _v2(root: Path, proc_cgroup: str) -> CpuGroup | None:
    own_path = _own_cgroup(None, proc_cgroup)
    if own_path is None or not (root / "cgroup.controllers").exists():
        return None
    own = root / own_path.lstrip("/")
    if "cpu" not in (own / "cgroup.controllers").read_text().split():
        return None
    if "cpu" not in (own / "cgroup.subtree_control").read_text().split():
        # Refused (EBUSY) when the core's own cgroup holds processes and is not the
        # root: cgroup v2 lets only leaves hold them.
        _write(own / "cgroup.subtree_control", "+cpu")
    group = own / GROUP_NAME
    group.mkdir(exist_ok=True)
    _write(group / "cpu.weight", str(V2_WEIGHT))
    return CpuGroup(group / "cgroup.procs")


def agents_cpu_group(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
) -> CpuGroup | None:
    """Make (or find) the agents' group; None where this host does not let us."""
    try:
        text = proc_cgroup.read_text()
        found = _v1(root, text) or _v2(root, text)
    except OSError as exc:
        log.info("agents share the CPU by niceness only: no cgroup of their own (%s)", exc)
        return None
    if found is None:
        log.info("agents share the CPU by niceness only: no cpu cgroup controller here")
    else:
        log.info("agents run in the cpu cgroup %s", found.procs.parent)
    return found
