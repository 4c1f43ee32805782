"""Extra read-only binds are judged by where they really lead (issue 9, finding 5).

``agent.toml``'s ``sandbox.ro_binds`` comes from the manager, so every spelling
of a forbidden place — a symlink, ``//``, ``/var/run``, a parent of it, the
hive's own dirs wherever they are — is refused, at request time on a real
daemon and again when a container is built.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Daemon
from hyperhive.client import Client, RemoteError
from hyperhive.config import Config
from hyperhive.core.agent_config import AgentConfig, BadConfig, Sandbox
from hyperhive.core.binds import check_binds, forbidden_roots
from hyperhive.core.containers import build_spec

# Every path the review found accepted, plus their other spellings.
FOUND_ACCEPTED = [
    "/proc",
    "/proc/1/root",
    "/proc/self/environ",
    "/sys",
    "/dev",
    "/root",
    "/etc/shadow",
    "/etc/hyperhive/env",
    "//run/hyperhive",
    "/var/run/hyperhive",
    "/run",
    "/etc",  # holds /etc/shadow
    "/var/lib",  # holds /var/lib/hyperhive
    "/",
]


@pytest.mark.parametrize("bind", FOUND_ACCEPTED)
def test_a_bind_to_a_forbidden_place_is_refused_whatever_its_spelling(
    config: Config, bind: str
) -> None:
    forbidden = forbidden_roots(config.state_dir, config.run_dir)
    with pytest.raises(BadConfig, match=r"sandbox\.ro_binds\[0\].*agents never see"):
        check_binds([bind], forbidden)


def test_the_real_state_and_run_dirs_are_refused_when_they_are_not_the_defaults(
    config: Config, short_dir: Path
) -> None:
    for d in (config.state_dir / "agents" / "bob" / "claude", config.run_dir / "agents"):
        d.mkdir(parents=True)
    sneaky = short_dir / "innocent"
    sneaky.symlink_to(config.state_dir / "agents" / "bob")
    forbidden = forbidden_roots(config.state_dir, config.run_dir)
    for bind in (
        str(config.state_dir),
        str(config.state_dir / "agents" / "bob" / "claude"),
        str(config.run_dir / "agents"),
        str(short_dir),  # a parent of both
        str(sneaky),
        str(sneaky / "claude"),
        f"{config.state_dir}/../state/agents",
    ):
        with pytest.raises(BadConfig, match="agents never see"):
            check_binds([bind], forbidden)


def test_an_ordinary_dir_is_bound_at_its_real_path(config: Config, short_dir: Path) -> None:
    data = short_dir / "datasets"
    data.mkdir()
    link = short_dir / "data-link"
    link.symlink_to(data)
    forbidden = forbidden_roots(config.state_dir, config.run_dir)
    assert check_binds([str(link), str(data), "/usr/share"], forbidden) == (
        data,
        Path("/usr/share"),
    )
    with pytest.raises(BadConfig, match="does not exist"):
        check_binds([str(short_dir / "missing")], forbidden)


def test_building_a_container_checks_the_binds_again_as_the_host_is_now(
    config: Config, short_dir: Path
) -> None:
    # Approved while harmless, then the path was turned into a way in.
    later = short_dir / "later"
    later.mkdir()
    agent = AgentConfig(sandbox=Sandbox(ro_binds=(str(later),)))
    assert build_spec(config, "bob", agent, config.state_dir, "sha", {}).extra_ro_binds == (later,)
    later.rmdir()
    later.symlink_to(config.state_dir)
    with pytest.raises(BadConfig, match="agents never see"):
        build_spec(config, "bob", agent, config.state_dir, "sha", {})


async def test_a_manager_asking_for_a_forbidden_bind_is_refused_and_nothing_is_queued(
    daemon: Daemon, short_dir: Path
) -> None:
    link = short_dir / "looks-harmless"
    link.symlink_to(daemon.state_dir)
    async with await Client.connect(daemon.host_socket) as host:
        await host.call("agent_add", name="hm1nd")
    manager = daemon.run_dir / "manager" / "mcp.sock"
    async with await Client.connect(manager) as hm1nd:
        for bind in ("/proc", "/var/run/hyperhive", str(link), str(daemon.run_dir)):
            config = f'[sandbox]\nro_binds = ["{bind}"]\n'
            with pytest.raises(RemoteError, match="agents never see") as err:
                await hm1nd.call("request_spawn", name="eve", reason="r", config=config)
            assert err.value.code == "bad_config"
    async with await Client.connect(daemon.host_socket) as host:
        assert (await host.call("approvals"))["pending"] == []
