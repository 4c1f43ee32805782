"""Agents sit below the core for the CPU scheduler: in cgroups of their own under one
lightly weighted group where the host allows, else in an autogroup at their niceness.

The pure parts read cgroupfs and /proc through a root path, so they run here on
trees of real files; the last test runs a real core with a real bwrap agent and
checks, from the host, whichever of the two this machine gives."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Daemon, start_fake_engine_daemon, stop_daemon
from hyperhive.agent.autogroup import autogroup_nice, give
from hyperhive.backends import cpu_groups
from hyperhive.backends.cpu_groups import (
    CgroupCpuGroups,
    cgroup_mounts,
    nice_weight,
    unified_path,
    v1_cpu_path,
    v2_weight,
)
from hyperhive.config import DEFAULT_AGENT_NICE
from support.procs import sandboxed_harness_pids, sandboxes

HYBRID = """\
25 1 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
28 25 0:25 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED = "30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_mountinfo_names_the_cpu_hierarchy_and_the_unified_one() -> None:
    assert cgroup_mounts(HYBRID) == {
        "cpu": Path("/sys/fs/cgroup/cpu"),
        "unified": Path("/sys/fs/cgroup/unified"),
    }
    assert cgroup_mounts(UNIFIED) == {"unified": Path("/sys/fs/cgroup")}
    assert cgroup_mounts("garbage\n\n1 2 3 - cgroup\n") == {}


def test_a_process_cgroup_file_gives_its_cpu_and_unified_paths() -> None:
    text = "9:name=systemd:/\n4:memory:/x\n2:cpu,cpuacct:/hive\n0::/system.slice/h.service\n"
    assert v1_cpu_path(text) == "/hive"
    assert unified_path(text) == Path("/system.slice/h.service")
    assert v1_cpu_path("0::/\n") is None
    assert unified_path("2:cpu:/\n") is None


def test_weights_follow_the_kernels_table_for_the_agents_niceness() -> None:
    assert nice_weight(0) == 1024
    assert nice_weight(10) == 110
    assert nice_weight(19) == 15
    assert nice_weight(40) == 15  # clamped, never an index error
    assert v2_weight(0) == 100
    assert v2_weight(10) == 11
    assert v2_weight(19) == 1


def fake_proc(root: Path, tree: dict[int, list[int]], cgroups: dict[int, str]) -> Path:
    """A /proc with each pid's children list and cgroup file."""
    for pid, children in tree.items():
        task = root / str(pid) / "task" / str(pid)
        task.mkdir(parents=True)
        (task / "children").write_text(" ".join(map(str, children)) + " " if children else "")
        (root / str(pid) / "cgroup").write_text(cgroups.get(pid, "0::/hive/core\n"))
    return root


def test_placing_an_agent_moves_its_whole_tree_and_weights_the_agents_group_once(
    tmp_path: Path,
) -> None:
    proc = fake_proc(tmp_path / "proc", {10: [11, 12], 11: [13], 12: [], 13: []}, {})
    agents = tmp_path / "cg" / "agents"
    agents.mkdir(parents=True)
    groups = CgroupCpuGroups(agents, "cpu.shares", None, proc)
    assert groups.place("alice", 10, 10) == 4
    assert (agents / "cpu.shares").read_text() == "110\n"
    assert (agents / "alice" / "cgroup.procs").is_file()
    (agents / "cpu.shares").write_text("999\n")
    assert groups.place("bob", 12, 10) == 1
    assert (agents / "cpu.shares").read_text() == "999\n"  # set once, not per agent
    (agents / "alice" / "cgroup.procs").unlink()
    groups.release("alice")
    assert not (agents / "alice").exists()


def test_on_cgroup_v2_a_process_in_a_systemd_scope_stays_where_it_is(tmp_path: Path) -> None:
    cgroups = {21: "0::/system.slice/run-u7.scope\n"}
    proc = fake_proc(tmp_path / "proc", {20: [21, 22], 21: [], 22: []}, cgroups)
    agents = tmp_path / "agents"
    agents.mkdir()
    groups = CgroupCpuGroups(agents, "cpu.weight", Path("/hive/core"), proc)
    assert groups.place("carol", 20, 10) == 2  # 20 and 22, not the scoped 21
    assert (agents / "cpu.weight").read_text() == "11\n"


def test_a_group_that_cannot_be_written_leaves_the_agent_running_unweighted(
    tmp_path: Path,
) -> None:
    proc = fake_proc(tmp_path / "proc", {30: []}, {})
    groups = CgroupCpuGroups(tmp_path / "missing", "cpu.shares", None, proc)
    assert groups.place("dave", 30, 10) == 0


def test_a_delegated_v2_cgroup_is_split_into_the_core_and_its_agents(tmp_path: Path) -> None:
    own = tmp_path / "cg" / "hive.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu memory pids\n")
    (own / "cgroup.procs").write_text("4242\n")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "4242").mkdir()
    (proc / "self" / "mountinfo").write_text(f"30 1 0:26 / {tmp_path / 'cg'} rw - cgroup2 c rw\n")
    (proc / "4242" / "cgroup").write_text("0::/hive.service\n")
    groups = cpu_groups.detect(proc, pid=4242, root=True)
    assert isinstance(groups, CgroupCpuGroups)
    assert groups.agents == own / "agents"
    assert (own / "core" / "cgroup.procs").read_text() == "4242\n"
    assert (own / "cgroup.subtree_control").read_text() == "+cpu\n"
    (own / "cgroup.procs").write_text("4242\n77\n")  # a shared cgroup is not ours to split
    assert cpu_groups.detect(proc, pid=4242, root=True).kind == "none"
    (own / "cgroup.procs").write_text("4242\n")
    assert cpu_groups.detect(proc, pid=4242, root=False).kind == "none"  # a user's core


def test_the_harness_gives_its_autogroup_its_niceness_and_never_raises_it(
    tmp_path: Path,
) -> None:
    group = tmp_path / "autogroup"
    group.write_text("/autogroup-7 nice 0\n")
    assert give(group, 10) is True
    assert group.read_text() == "10\n"
    group.write_text("/autogroup-7 nice 15\n")
    assert give(group, 10) is True
    assert group.read_text() == "/autogroup-7 nice 15\n"
    assert give(tmp_path / "none", 10) is False
    assert autogroup_nice("/autogroup-7 nice x") is None


# -- a real core and a real sandbox ----------------------------------------------------


@pytest.fixture(params=["auto", "off"])
def bwrap_core(
    request: pytest.FixtureRequest, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Daemon]:
    """A real core on bwrap: placing agents where this host allows, or (``off``) nowhere,
    so the harness's own fallback is exercised on every host."""
    monkeypatch.setenv(cpu_groups.CHOICE_ENV, request.param)
    daemon = start_fake_engine_daemon(short_dir)
    try:
        yield daemon
    finally:
        stop_daemon(daemon)


def weighing(pid: int) -> str | None:
    """How ``pid`` is weighed below the core: its agents' cgroup, or its autogroup."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        autogroup: str | None = Path(f"/proc/{pid}/autogroup").read_text()
    except FileNotFoundError:
        autogroup = None  # a kernel without autogroups: niceness alone weighs
    v1, v2 = v1_cpu_path(text), unified_path(text)
    if v1 == f"/{cpu_groups.V1_GROUP}/hm1nd":
        return "cgroup v1"
    if v2 is not None and v2.parts[-2:] == ("agents", "hm1nd"):
        return "cgroup v2"
    if autogroup is not None and autogroup_nice(autogroup) == DEFAULT_AGENT_NICE:
        return "autogroup"
    if autogroup is None and int(stat.rsplit(")", 1)[1].split()[16]) == DEFAULT_AGENT_NICE:
        return "niceness"
    return None


def test_a_real_sandboxed_harness_is_weighed_below_the_core(
    bwrap_core: Daemon, short_dir: Path
) -> None:
    deadline = time.monotonic() + 30
    found: str | None = None
    while found is None:
        harness = [
            pid for pid, name in sandboxed_harness_pids(short_dir).items() if name == "hm1nd"
        ]
        found = weighing(harness[0]) if harness else None
        if found is None:
            assert time.monotonic() < deadline, "the harness runs at the core's weight"
            time.sleep(0.05)  # /proc has no event for "a process moved"
    if os.environ[cpu_groups.CHOICE_ENV] == "off":
        assert found in {"autogroup", "niceness"}
    if found.startswith("cgroup"):
        # Every process of the sandbox, the bwraps around the harness too.
        group = Path(f"/proc/{harness[0]}/cgroup").read_text()
        for pid, _ in sandboxes(short_dir):
            assert Path(f"/proc/{pid}/cgroup").read_text() == group
    if found == "cgroup v1":
        mount = cgroup_mounts(Path("/proc/self/mountinfo").read_text())["cpu"]
        shares = (mount / cpu_groups.V1_GROUP / "cpu.shares").read_text()
        assert shares == f"{nice_weight(DEFAULT_AGENT_NICE)}\n"
