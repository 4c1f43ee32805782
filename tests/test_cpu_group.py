"""Every agent runs in one cpu cgroup weighted below the core, and cannot leave it by
starting a session of its own (the autogroup escape that niceness alone leaves open)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hyperhive.backends.bwrap import BwrapBackend
from hyperhive.backends.cpu_group import (
    GROUP_NAME,
    V1_SHARES,
    V2_WEIGHT,
    CpuGroup,
    agents_cpu_group,
)
from support.backend_probe import Lines, write_probe
from test_backend_bwrap import BOUND, Hive, sandbox_pids

V1_PROC = "2:cpuacct:/\n1:cpu:/\n0::/\n"
V2_PROC = "0::/hive.slice\n"


def _fake_v1(root: Path) -> None:
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.shares").write_text("1024")


def _fake_v2(root: Path, subtree: str = "") -> Path:
    own = root / "hive.slice"
    own.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids")
    (own / "cgroup.controllers").write_text("cpu memory pids")
    (own / "cgroup.subtree_control").write_text(subtree)
    return own


def test_on_cgroup_v1_the_group_is_made_under_the_cores_own_with_a_tenth_of_its_shares(
    tmp_path: Path,
) -> None:
    _fake_v1(tmp_path)
    proc = tmp_path / "proc-cgroup"
    proc.write_text(V1_PROC)
    group = agents_cpu_group(tmp_path, proc)
    assert group == CpuGroup(tmp_path / "cpu" / GROUP_NAME / "cgroup.procs")
    assert (tmp_path / "cpu" / GROUP_NAME / "cpu.shares").read_text() == str(V1_SHARES)


def test_on_cgroup_v2_the_cpu_controller_is_delegated_and_the_group_weighted(
    tmp_path: Path,
) -> None:
    own = _fake_v2(tmp_path)
    proc = tmp_path / "proc-cgroup"
    proc.write_text(V2_PROC)
    group = agents_cpu_group(tmp_path, proc)
    assert group == CpuGroup(own / GROUP_NAME / "cgroup.procs")
    assert (own / "cgroup.subtree_control").read_text() == "+cpu"
    assert (own / GROUP_NAME / "cpu.weight").read_text() == str(V2_WEIGHT)


def test_without_a_cpu_controller_there_is_no_group_and_agents_run_by_niceness(
    tmp_path: Path,
) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory pids")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/\n")
    assert agents_cpu_group(tmp_path, proc) is None
    # A host where /proc cannot be read says so the same way, never raises.
    assert agents_cpu_group(tmp_path, tmp_path / "absent") is None


def _cgroup_of(pid: int) -> str:
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    cpu = [line for line in lines if ":cpu:" in line or ":cpu," in line or line.startswith("0::")]
    return "\n".join(cpu)


def _host_offers_a_group() -> CpuGroup | None:
    """On this host (root in CI) the core can make the group; where the kernel has no
    cpu controller at all, agents_cpu_group answering None is the right answer."""
    group = agents_cpu_group()
    v1 = Path("/sys/fs/cgroup/cpu/cpu.shares").exists()
    if os.geteuid() == 0 and v1:
        assert group is not None, "root with the v1 cpu controller must get the agents' group"
    return group


@pytest.fixture
async def hive(short_dir: Path) -> AsyncIterator[Hive]:
    state, run = short_dir / "state", short_dir / "run"
    run.mkdir(parents=True)
    backend = BwrapBackend(state / "backend", hide=(state, run), stop_timeout=0.5)
    hive = Hive(short_dir, state, run, write_probe(short_dir / "probe"), backend)
    hive.make_dirs(hive.spec("alice"))
    yield hive
    await backend.destroy("alice")


async def test_every_process_of_a_bwrap_agent_is_born_in_the_group_even_one_in_a_new_session(
    hive: Hive,
) -> None:
    group = _host_offers_a_group()
    if group is None:
        assert agents_cpu_group() is None  # nothing to place agents in, and nothing claimed
        return
    backend = BwrapBackend(
        hive.state / "backend", hide=(hive.state, hive.run), stop_timeout=0.5, cpu_group=group
    )
    spec = hive.spec("alice", "tree")  # the probe starts a child and an escapee (setsid)
    lines = Lines()
    await backend.create(spec)
    await backend.start(spec, lines)
    try:
        await lines.next_with("TREE ")
        status = await backend.status("alice")
        assert status.pid is not None
        inside = sandbox_pids(status.pid)
        assert len(inside) == 4  # init, probe, its child, the escapee in its own session
        name = str(group.procs.parent.name)
        for pid in [status.pid, *inside]:
            assert name in _cgroup_of(pid), f"pid {pid} is outside the agents' group"
        members = {int(p) for p in group.procs.read_text().split()}
        assert {status.pid, *inside} <= members
        assert os.getpid() not in members  # the core stays at its own weight
    finally:
        await asyncio.wait_for(backend.stop("alice"), BOUND)
        await backend.destroy("alice")
