"""Where agents sit for the CPU scheduler: together, below the core.

Niceness alone does not keep the core ahead of its agents. With autogroup
scheduling (on by default in most kernels) every session is a scheduling
entity of its own, weighted equally, and every sandbox runs in a new session
(bwrap's ``--new-session``, or the child's own): 200 busy agents left the core
one entity among 201 and its answers waited hundreds of milliseconds.

So each agent's processes move into a cgroup of their own, ``<agents>/<name>``,
under one ``agents`` group weighted as one process at the agents' niceness
(110 for niceness 10, against the core's 1024): however many agents run, all
of them together weigh about a tenth of the core when it wants the CPU, and
each agent weighs the same as any other however many processes it starts. A
process cannot leave its cgroup from inside a sandbox (cgroupfs is not there,
and its files are root's), unlike a session, which any process can start.

Where the groups go, chosen once (:func:`detect`):

- cgroup v1 with the ``cpu`` controller, core in its root: ``<cpu>/hyperhive-agents``;
- cgroup v2 where the core is alone in its cgroup and may write it (a systemd
  unit with ``Delegate=yes``): the core moves itself to ``<own>/core`` (v2 allows
  processes only in leaves) and the agents go to ``<own>/agents``;
- anywhere else nothing moves, and the harness puts its own session's autogroup
  at its niceness instead (:func:`hyperhive.agent.autogroup.settle`), which
  holds for agents that do not start sessions of their own.

Only processes still in the core's own cgroup move: one a systemd scope caps
(``memory_mb``) stays in its scope.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from hyperhive.backends._child import PROC, descendants
from hyperhive.backends.base import BackendError

log = logging.getLogger(__name__)

# The kernel's weight of one task at each niceness (sched_prio_to_weight, nice 0..19).
NICE_WEIGHTS: Final = (1024, 820, 655, 526, 423, 335, 272, 215, 172, 137,
                       110, 87, 70, 56, 45, 36, 29, 23, 18, 15)  # fmt: skip
V1_GROUP: Final = "hyperhive-agents"
CHOICE_ENV: Final = "HYPERHIVE_CPU_GROUPS"
# A process forks while it moves: each pass moves what the last one missed.
MAX_PASSES: Final = 8


def nice_weight(nice: int) -> int:
    """The v1 ``cpu.shares`` of one task at ``nice`` (0-19)."""
    return NICE_WEIGHTS[max(0, min(19, nice))]


def v2_weight(nice: int) -> int:
    """The same share on cgroup v2's ``cpu.weight`` scale (1-10000, 100 for nice 0)."""
    return max(1, round(nice_weight(nice) * 100 / 1024))


class CpuGroups(Protocol):
    """Puts an agent's processes in its cgroup; a failure is logged, never raised:
    an agent that runs unweighted is better than one that does not run."""

    kind: str

    def place(self, name: str, pid: int, nice: int) -> int:
        """Move ``pid`` and everything below it into ``name``'s group; how many moved."""
        ...

    def release(self, name: str) -> None:
        """Remove ``name``'s group, once its processes are gone."""
        ...


class NoCpuGroups:
    kind = "none"

    def place(self, name: str, pid: int, nice: int) -> int:
        return 0

    def release(self, name: str) -> None:
        pass


NO_CPU_GROUPS: Final = NoCpuGroups()


def tree(pid: int, proc: Path = PROC) -> list[int]:
    """``pid`` and everything below it."""
    return [pid, *(member for member, _ in descendants(pid, proc))]


@dataclass(slots=True)
class CgroupCpuGroups:
    """Agents' groups under ``agents`` (a cgroup dir), v1 or v2 by ``weight_file``."""

    agents: Path
    weight_file: str  # cpu.shares (v1) or cpu.weight (v2)
    source: Path | None  # v2: only processes still in this cgroup move
    proc: Path = PROC
    kind: str = "cgroup"
    _weighted: bool = False

    def place(self, name: str, pid: int, nice: int) -> int:
        try:
            group = self._group(name, nice)
            return self._move(group, pid)
        except OSError as exc:
            log.warning("h-%s runs unweighted: cannot place it in its cgroup: %s", name, exc)
            return 0

    def _group(self, name: str, nice: int) -> Path:
        if not self._weighted:
            weight = nice_weight(nice) if self.weight_file == "cpu.shares" else v2_weight(nice)
            (self.agents / self.weight_file).write_text(f"{weight}\n")
            self._weighted = True
        group = self.agents / name
        group.mkdir(exist_ok=True)
        return group

    def _move(self, group: Path, pid: int) -> int:
        moved: set[int] = set()
        for _ in range(MAX_PASSES):
            todo = [p for p in tree(pid, self.proc) if p not in moved and self._movable(p)]
            if not todo:
                break
            for member in todo:
                with contextlib.suppress(ProcessLookupError):
                    (group / "cgroup.procs").write_text(f"{member}\n")
                moved.add(member)
        return len(moved)

    def _movable(self, pid: int) -> bool:
        if self.source is None:
            return True
        try:
            text = (self.proc / str(pid) / "cgroup").read_text()
        except OSError:
            return False
        return unified_path(text) == self.source

    def release(self, name: str) -> None:
        with contextlib.suppress(OSError):  # still busy or gone: the next start reuses it
            (self.agents / name).rmdir()


# -- finding where the groups can go ---------------------------------------------------


def cgroup_mounts(mountinfo: str) -> dict[str, Path]:
    """``{"cpu": dir}`` for a v1 hierarchy with the cpu controller, ``{"unified": dir}``
    for cgroup2, from /proc/self/mountinfo."""
    found: dict[str, Path] = {}
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(rest) < 3:
            continue
        point = Path(fields[4])
        if rest[0] == "cgroup2":
            found.setdefault("unified", point)
        elif rest[0] == "cgroup" and "cpu" in rest[2].split(","):
            found.setdefault("cpu", point)
    return found


def v1_cpu_path(proc_cgroup: str) -> str | None:
    """The process's path in the v1 hierarchy holding ``cpu``, from /proc/<pid>/cgroup."""
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and "cpu" in parts[1].split(","):
            return parts[2]
    return None


def unified_path(proc_cgroup: str) -> Path | None:
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return Path(line[3:])
    return None


def detect(
    proc: Path = PROC,
    pid: int | None = None,
    choice: str | None = None,
    root: bool | None = None,
) -> CpuGroups:
    """Where this core can put its agents' groups, or nowhere (see the module doc).
    ``choice``: ``auto`` (the default) or ``off``, else ``HYPERHIVE_CPU_GROUPS``;
    ``root``: whether this core may move processes (by default: it runs as root)."""
    choice = os.environ.get(CHOICE_ENV, "auto") if choice is None else choice
    if choice not in ("auto", "off"):
        raise BackendError(f"{CHOICE_ENV}={choice!r}: expected auto or off")
    if choice == "off" or not (os.geteuid() == 0 if root is None else root):
        return NO_CPU_GROUPS  # moving processes between cgroups is root's
    pid = os.getpid() if pid is None else pid
    try:
        mounts = cgroup_mounts((proc / "self" / "mountinfo").read_text())
        mine = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return NO_CPU_GROUPS
    try:
        if "cpu" in mounts and v1_cpu_path(mine) == "/":
            agents = mounts["cpu"] / V1_GROUP
            agents.mkdir(exist_ok=True)
            return CgroupCpuGroups(agents, "cpu.shares", None, proc)
        if "unified" in mounts and (own := unified_path(mine)) is not None:
            return _delegated_v2(mounts["unified"], own, pid, proc)
    except OSError as exc:
        log.info("agents' cpu groups unavailable: %s", exc)
    return NO_CPU_GROUPS


def _delegated_v2(root: Path, own: Path, pid: int, proc: Path) -> CpuGroups:
    """Split the core's own cgroup into ``core`` and ``agents``, when it is ours alone."""
    here = root / own.relative_to("/")
    if own == Path("/") or "cpu" not in (here / "cgroup.controllers").read_text().split():
        return NO_CPU_GROUPS
    if (here / "cgroup.procs").read_text().split() != [str(pid)]:
        return NO_CPU_GROUPS  # shared with others (a login session, a test runner)
    (here / "core").mkdir(exist_ok=True)
    (here / "core" / "cgroup.procs").write_text(f"{pid}\n")
    (here / "cgroup.subtree_control").write_text("+cpu\n")
    (here / "agents").mkdir(exist_ok=True)
    return CgroupCpuGroups(here / "agents", "cpu.weight", own / "core", proc)
