"""The nixos backend's private networks: a pair of addresses per agent, the same each
time and never another container's, handed to the (fake) nixos-container; and for
``network = false`` a flake that evaluates to a unit leaving the container no route."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hyperhive.backends.base import BackendError, ContainerSpec
from hyperhive.backends.nix_flake import (
    ADDRESS_POOL,
    container_addresses,
    render_flake,
    taken_addresses,
)
from hyperhive.backends.nixos import NixosBackend

FAKE = Path(__file__).parent / "support" / "fake-nixos-container"
NIX = ("nix-instantiate", "--store", "dummy://", "--readonly-mode")

# nixosSystem hands back its modules applied to { lib, pkgs, ... }; pkgs has the one
# package the offline unit names.
STUB = """
let
  lib = {
    getName = x: x.pname or (builtins.parseDrvName x.name).name;
    nixosSystem = { system, modules, ... }: {
      inherit system;
      modules = map (m: if builtins.isFunction m then m { inherit lib pkgs; config = { }; } else m)
        modules;
    };
  };
  pkgs.iproute2 = { outPath = "/nix/store/00000000-iproute2"; name = "iproute2"; };
in {
  nixpkgs = { inherit lib; };
  hyperhive = { nixosModules.hive-agent = { stub = "hive-agent module"; }; };
}
"""

EVAL = """
let
  flake = import ./flake.nix;
  stub = import ./stub.nix;
  outputs = flake.outputs { self = outputs; inherit (stub) nixpkgs hyperhive; };
  glue = builtins.head (builtins.filter (m: m ? services)
    outputs.nixosConfigurations.container.modules);
in {
  service = glue.services.hive-agent;
  units = glue.systemd.services or { };
}
"""


def spec(root: Path, name: str = "alice", **extra: Any) -> ContainerSpec:
    agent = root / "state" / "agents" / name
    return ContainerSpec(
        name=name,
        role="manager" if name == "hm1nd" else "agent",
        socket_dir=root / "run" / "agents" / name,
        state_dir=agent / "state",
        claude_dir=agent / "claude",
        config_dir=root / "state" / "applied" / name,
        config_sha="c0ffee",
        command=("hive-ag3nt", "serve"),
        **{"uid": 1_900_000_301, **extra},
    )


def test_an_agent_gets_the_same_address_pair_each_time_and_never_a_taken_one() -> None:
    host, local = container_addresses("alice", set())
    assert (host, local) == container_addresses("alice", set())
    pair = ipaddress.IPv4Network(f"{host}/30", strict=False)
    assert pair.subnet_of(ADDRESS_POOL)
    assert (str(pair.network_address + 1), str(pair.network_address + 2)) == (host, local)
    # Either address held elsewhere: the next pair.
    for taken in ({host}, {local}):
        moved = container_addresses("alice", taken)
        assert moved != (host, local) and not set(moved) & taken
    # Assigned one after another, a thousand agents never share an address.
    held: set[str] = set()
    for n in range(1000):
        got = container_addresses(f"agent{n}", held)
        assert not set(got) & held
        held |= set(got)
    assert len(held) == 2000


def test_a_full_pool_is_a_clear_error() -> None:
    every = {str(a) for a in ADDRESS_POOL}
    with pytest.raises(BackendError, match=r"no private address pair left in 10\.231\.0\.0/16"):
        container_addresses("alice", every)


def test_taken_addresses_reads_every_conf_with_or_without_a_prefix() -> None:
    confs = [
        "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\n",
        "HOST_ADDRESS=10.231.0.1\nLOCAL_ADDRESS=10.231.0.2/30\nHOST_PORT=\n",
        "PRIVATE_NETWORK=0\n",
    ]
    assert taken_addresses(confs) == {"10.233.1.1", "10.233.1.2", "10.231.0.1", "10.231.0.2"}


@pytest.fixture
def backend(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> NixosBackend:
    monkeypatch.setenv("FAKE_NIXOS_CONTAINER_STATE", str(short_dir / "fake"))
    monkeypatch.setenv("FAKE_NIXOS_CONTAINER_CONF_DIR", str(short_dir / "etc"))
    return NixosBackend(
        short_dir / "work",
        command=str(FAKE),
        conf_dir=short_dir / "etc",
        hyperhive_url="path:/opt/hyperhive",
        system="x86_64-linux",
    )


def conf_addresses(backend: NixosBackend, name: str) -> tuple[str, str]:
    conf = backend.conf_path(name).read_text()
    assert "PRIVATE_NETWORK=1\n" in conf
    host = re.search(r"^HOST_ADDRESS=(.*)$", conf, re.M)
    local = re.search(r"^LOCAL_ADDRESS=(.*)$", conf, re.M)
    assert host is not None and local is not None
    return host.group(1), local.group(1)


async def test_every_agent_container_gets_a_private_network_of_its_own(
    backend: NixosBackend, short_dir: Path
) -> None:
    # An operator's own container already holds the pair alice would prefer.
    operator = short_dir / "etc" / "web.conf"
    preferred = container_addresses("alice", set())
    operator.parent.mkdir(parents=True)
    operator.write_text(f"PRIVATE_NETWORK=1\nHOST_ADDRESS={preferred[0]}\nLOCAL_ADDRESS=x\n")
    for name in ("alice", "bob", "hm1nd"):
        await backend.create(spec(short_dir, name, network=name != "bob"))
    pairs = {name: conf_addresses(backend, name) for name in ("alice", "bob", "hm1nd")}
    assert pairs["alice"] != preferred
    every = [address for pair in pairs.values() for address in pair]
    assert len(set(every)) == 6  # no collision, whatever their network setting
    assert all(ipaddress.ip_address(a) in ADDRESS_POOL for a in every)
    # Recreated, an agent gets its pair back.
    await backend.destroy("bob")
    await backend.create(spec(short_dir, "bob", network=False))
    assert conf_addresses(backend, "bob") == pairs["bob"]


def evaluate(flake_dir: Path) -> dict[str, Any]:
    (flake_dir / "stub.nix").write_text(STUB)
    evaluated = subprocess.run(
        [*NIX, "--eval", "--strict", "--json", "-E", EVAL],
        capture_output=True, text=True, timeout=60, check=False, cwd=flake_dir,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    result: dict[str, Any] = json.loads(evaluated.stdout)
    return result


def write_flake(directory: Path, container: ContainerSpec) -> Path:
    directory.mkdir(parents=True)
    text = render_flake(container, hyperhive_url="path:/opt/hyperhive", with_agent_nix=False)
    (directory / "flake.nix").write_text(text)
    parsed = subprocess.run(
        [*NIX, "--parse", str(directory / "flake.nix")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert parsed.returncode == 0, parsed.stderr
    return directory


def test_an_offline_agents_flake_takes_every_interface_but_lo_down_before_the_harness(
    short_dir: Path,
) -> None:
    offline = evaluate(write_flake(short_dir / "off", spec(short_dir, network=False)))
    assert offline["service"]["network"] is False
    unit = offline["units"]["hive-offline"]
    assert unit["requiredBy"] == ["hive-agent.service"]
    assert unit["before"] == ["hive-agent.service"]
    assert unit["serviceConfig"] == {"Type": "oneshot", "RemainAfterExit": True}
    assert "/nix/store/00000000-iproute2/bin/ip link set dev" in unit["script"]
    online = evaluate(write_flake(short_dir / "on", spec(short_dir)))
    assert online["service"]["network"] is True
    assert online["units"] == {}

    # The script itself, run in a network namespace of its own with a veth pair up, as
    # nixos-container gives a container (its end renamed eth0).
    script = unit["script"].replace("/nix/store/00000000-iproute2/bin/ip", "ip")
    ran = subprocess.run(
        ["unshare", "--net", "sh", "-c",
         "ip link add eth0 type veth peer name ve-h-alice && ip link set eth0 up && "
         f"ip link set ve-h-alice up && ip link set lo up && {script}\nip -o link show"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    up = {name: "UP" in flags for name, flags in link_flags(ran.stdout).items()}
    assert up == {"lo": True, "eth0": False, "ve-h-alice": False}


def link_flags(shown: str) -> dict[str, set[str]]:
    """``ip -o link show`` as {name: its flags}."""
    links = {}
    for line in shown.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        links[name] = set(line.split("<", 1)[1].split(">", 1)[0].split(","))
    return links
