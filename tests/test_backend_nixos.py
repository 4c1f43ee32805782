"""The nixos backend against an honest fake ``nixos-container``, and its
generated flakes parsed and evaluated by the real ``nix-instantiate``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hyperhive.backends._child import EXIT_UNKNOWN
from hyperhive.backends.base import BackendError, ContainerSpec
from hyperhive.backends.nix_flake import read_flags
from hyperhive.backends.nixos import NixosBackend
from support.backend_probe import Lines

FAKE = Path(__file__).parent / "support" / "fake-nixos-container"
UID = 1_900_000_042
HYPERHIVE_URL = "path:/opt/hyperhive"
# Evaluation needs no store: the dummy store works offline, without a daemon,
# as root or not (plain nix-instantiate as non-root looks for the daemon socket).
NIX = ("nix-instantiate", "--store", "dummy://", "--readonly-mode")

# Just enough of nixpkgs to evaluate a flake's nixosConfigurations without a
# store: nixosSystem hands back its modules applied to { lib, ... }, and
# getName behaves as nixpkgs' lib.getName.
STUB = """
let
  lib = {
    getName = x: if x ? pname then x.pname else (builtins.parseDrvName x.name).name;
    nixosSystem = { system, modules, ... }: {
      inherit system;
      modules = map (m:
        let value = if builtins.isPath m then import m else m;
        in if builtins.isFunction value then value { inherit lib; config = { }; pkgs = { }; }
           else value) modules;
    };
  };
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
  system = outputs.nixosConfigurations.container;
  glue = builtins.head (builtins.filter (m: m ? services) system.modules);
  allow = glue.nixpkgs.config.allowUnfreePredicate;
in {
  inherit (flake) description;
  inputs = flake.inputs;
  system = system.system;
  moduleCount = builtins.length system.modules;
  agentModule = builtins.any (m: (m.stub or null) == "hive-agent module") system.modules;
  agentNix = builtins.filter (x: x != null) (map (m: m.agentMarker or null) system.modules);
  unfree = {
    claude = allow { pname = "claude-code"; };
    claudeByName = allow { name = "claude-code-1.0.0"; };
    other = allow { pname = "vscode"; };
  };
  hostName = glue.networking.hostName;
  isContainer = glue.boot.isContainer;
  service = glue.services.hive-agent;
}
"""


@dataclass
class Setup:
    root: Path
    log: Path
    conf_dir: Path
    backend: NixosBackend

    def spec(self, name: str, **extra: Any) -> ContainerSpec:
        manager = name == "hm1nd"
        agent = self.root / "state" / "agents" / name
        return ContainerSpec(
            name=name,
            role="manager" if manager else "agent",
            socket_dir=self.root / "run" / ("manager" if manager else f"agents/{name}"),
            state_dir=agent / "state",
            claude_dir=agent / "claude",
            config_dir=self.root / "state" / "applied" / name,
            config_sha="c0ffee",
            command=("hive-ag3nt", "serve"),
            agents_dir=self.root / "state" / "proposed" if manager else None,
            **{"uid": UID, **extra},
        )

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def fake(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FAKE), *args], capture_output=True, text=True, timeout=30, check=False
        )


@pytest.fixture
def setup(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    log, conf_dir = short_dir / "calls.jsonl", short_dir / "etc" / "nixos-containers"
    monkeypatch.setenv("FAKE_NIXOS_CONTAINER_LOG", str(log))
    monkeypatch.setenv("FAKE_NIXOS_CONTAINER_STATE", str(short_dir / "fake"))
    monkeypatch.setenv("FAKE_NIXOS_CONTAINER_CONF_DIR", str(conf_dir))
    backend = NixosBackend(
        short_dir / "work",
        command=str(FAKE),
        conf_dir=conf_dir,
        hyperhive_url=HYPERHIVE_URL,
        system="x86_64-linux",
        poll_initial=0.02,
        poll_max=0.1,
    )
    return Setup(short_dir, log, conf_dir, backend)


async def test_the_life_cycle_runs_nixos_container_in_the_agents_own_directory(
    setup: Setup,
) -> None:
    spec = setup.spec("alice")
    backend = setup.backend
    await backend.create(spec)
    assert (await backend.status("alice")).state == "stopped"
    await backend.start(spec, Lines())
    assert (await backend.status("alice")).state == "running"
    # The harness runs as the agent's uid inside, which owns its binds.
    for path in spec.own_dirs:
        assert (path.stat().st_uid, path.stat().st_mode & 0o777) == (UID, 0o700)
    await backend.update(spec)
    await backend.stop("alice")
    await backend.destroy("alice")
    assert (await backend.status("alice")).state == "missing"
    flake = f"{backend.flake_dir('alice')}#container"
    calls = setup.calls()
    # Its private network's pair (tests/test_agent_network_nixos.py checks the choice).
    addresses = calls[0]["argv"][4:]
    assert addresses[::2] == ["--host-address", "--local-address"]
    assert [c["argv"] for c in calls] == [
        ["create", "h-alice", "--flake", flake, *addresses],
        ["status", "h-alice"],
        ["start", "h-alice"],
        ["status", "h-alice"],
        ["update", "h-alice", "--flake", flake],
        ["stop", "h-alice"],
        ["destroy", "h-alice"],
        ["status", "h-alice"],
    ]
    assert {c["cwd"] for c in calls[:5]} == {str(backend.flake_dir("alice").parent)}
    assert not backend.flake_dir("alice").exists()


async def test_a_container_name_over_eleven_characters_is_refused_before_anything_runs(
    setup: Setup,
) -> None:
    with pytest.raises(BackendError, match="too long"):
        await setup.backend.create(setup.spec("abcdefghij"))
    assert setup.calls() == []
    assert not (setup.root / "work").exists()
    # The fake refuses it the way nixos-container does.
    refused = setup.fake("create", "h-abcdefghij")
    assert refused.returncode == 2
    assert refused.stderr.endswith(": container name \u2018h-abcdefghij\u2019 is too long\n")


async def test_the_conf_gets_exactly_the_design_binds_and_keeps_its_other_lines(
    setup: Setup,
) -> None:
    alice, manager = setup.spec("alice"), setup.spec("hm1nd", memory_mb=2048)
    await setup.backend.create(alice)
    await setup.backend.create(manager)
    conf = setup.backend.conf_path("alice")
    written = conf.read_text()
    assert read_flags(written) == (
        f"--bind={alice.socket_dir}:/run/hive --bind={alice.claude_dir}:/root/.claude "
        f"--bind={alice.state_dir}:/state"
    )
    assert read_flags(setup.backend.conf_path("hm1nd").read_text()) == (
        f"--bind={manager.socket_dir}:/run/hive --bind={manager.claude_dir}:/root/.claude "
        f"--bind={manager.state_dir}:/state --bind={manager.agents_dir}:/agents "
        "--property=MemoryMax=2048M"
    )
    tool_lines = [line for line in written.splitlines() if "EXTRA_NSPAWN" not in line]
    assert tool_lines[0] == "PRIVATE_NETWORK=1"
    assert f"FLAKE={setup.backend.flake_dir('alice')}" in tool_lines
    conf.write_text(written + "# the operator's note\nHOST_PORT=8080\n")
    await setup.backend.update(setup.spec("alice", extra_ro_binds=(Path("/srv/data"),)))
    updated = conf.read_text().splitlines()
    assert [line for line in updated if "EXTRA_NSPAWN" not in line] == [
        *tool_lines,
        "# the operator's note",
        "HOST_PORT=8080",
    ]
    assert sum(line.startswith("EXTRA_NSPAWN_FLAGS=") for line in updated) == 1
    assert read_flags(conf.read_text()) == (
        f"--bind={alice.socket_dir}:/run/hive --bind={alice.claude_dir}:/root/.claude "
        f"--bind={alice.state_dir}:/state --bind-ro=/srv/data:/srv/data"
    )


async def test_a_bind_path_the_unit_would_split_is_refused(setup: Setup) -> None:
    spec = setup.spec("alice", extra_ro_binds=(Path("/srv/my data"),))
    with pytest.raises(BackendError, match="plain absolute path"):
        await setup.backend.create(spec)
    assert setup.calls() == []


def evaluate(flake_dir: Path) -> dict[str, Any]:
    (flake_dir / "stub.nix").write_text(STUB)
    parsed = subprocess.run(
        [*NIX, "--parse", str(flake_dir / "flake.nix")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert parsed.returncode == 0, parsed.stderr
    evaluated = subprocess.run(
        [*NIX, "--eval", "--strict", "--json", "-E", EVAL],
        capture_output=True, text=True, timeout=60, check=False, cwd=flake_dir,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    result: dict[str, Any] = json.loads(evaluated.stdout)
    return result


async def test_the_flake_evaluates_with_the_agent_module_agent_nix_and_the_unfree_opt_in(
    setup: Setup,
) -> None:
    tricky = 'quote " dollar ${HOME} backslash \\ newline \n end'
    # A role is free text, so it proves the Nix string escaping.
    spec = setup.spec("alice", env={"HYPERHIVE_ENGINE": "fake", "HYPERHIVE_AGENT_ROLE": tricky})
    spec.config_dir.mkdir(parents=True)
    (spec.config_dir / "agent.nix").write_text('{ lib, ... }: { agentMarker = "alice"; }\n')
    await setup.backend.create(spec)
    result = evaluate(setup.backend.flake_dir("alice"))
    assert result["inputs"] == {
        "hyperhive": {"url": HYPERHIVE_URL},
        "nixpkgs": {"follows": "hyperhive/nixpkgs"},
    }
    assert result["system"] == "x86_64-linux"
    assert result["agentModule"] is True
    assert result["agentNix"] == ["alice"]
    assert result["moduleCount"] == 3
    assert result["unfree"] == {"claude": True, "claudeByName": True, "other": False}
    assert result["hostName"] == "h-alice"
    assert result["isContainer"] is True
    assert result["service"] == {
        "enable": True,
        "name": "alice",
        "role": "agent",
        "network": True,
        "uid": UID,
        "environment": {"HYPERHIVE_ENGINE": "fake", "HYPERHIVE_AGENT_ROLE": tricky},
    }


async def test_a_manager_flake_without_agent_nix_still_evaluates(setup: Setup) -> None:
    backend = NixosBackend(
        setup.root / "work",
        command=str(FAKE),
        conf_dir=setup.conf_dir,
        hyperhive_url=HYPERHIVE_URL,
        nixpkgs_url="github:NixOS/nixpkgs/nixos-24.11",
    )
    await backend.create(setup.spec("hm1nd", network=False))
    result = evaluate(backend.flake_dir("hm1nd"))
    assert result["inputs"]["nixpkgs"] == {"url": "github:NixOS/nixpkgs/nixos-24.11"}
    assert result["agentNix"] == []
    assert result["moduleCount"] == 2
    assert result["unfree"]["claude"] is True
    assert result["service"]["role"] == "manager"
    assert result["service"]["network"] is False


async def test_wait_notices_a_container_that_went_down_by_polling_status(setup: Setup) -> None:
    spec = setup.spec("alice")
    await setup.backend.create(spec)
    await setup.backend.start(spec, Lines())
    waiting = asyncio.ensure_future(setup.backend.wait("alice"))
    assert setup.fake("terminate", "h-alice").returncode == 0  # it dies behind our back
    assert await asyncio.wait_for(waiting, 10) == EXIT_UNKNOWN
    await setup.backend.start(spec, Lines())
    waiting = asyncio.ensure_future(setup.backend.wait("alice"))
    await setup.backend.stop("alice")
    assert await asyncio.wait_for(waiting, 10) == 0


# nixos-container as a loaded host runs it: the next $FLAKY_COUNT status runs are
# killed before they answer (as a timeout or the OOM killer would), and every status
# run says on the FIFO $FLAKY_EVENTS whether it failed or went on to the fake.
FLAKY = """#!/bin/sh
if [ "$1" = status ]; then
    left=$(cat "$FLAKY_COUNT")
    if [ "$left" -gt 0 ]; then
        echo $((left - 1)) > "$FLAKY_COUNT"
        echo failed > "$FLAKY_EVENTS"
        kill -KILL $$
    fi
    echo answered > "$FLAKY_EVENTS"
fi
exec "$FAKE" "$@"
"""


@dataclass
class Flaky:
    backend: NixosBackend
    count: Path
    events: asyncio.StreamReader

    async def next_probe(self) -> str:
        return (await asyncio.wait_for(self.events.readline(), 10)).decode().strip()


@pytest.fixture
async def flaky(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Flaky]:
    tool, count, fifo = (setup.root / n for n in ("flaky-nixos-container", "count", "events"))
    tool.write_text(FLAKY)
    tool.chmod(0o755)
    count.write_text("0")
    os.mkfifo(fifo)
    monkeypatch.setenv("FAKE", str(FAKE))
    monkeypatch.setenv("FLAKY_COUNT", str(count))
    monkeypatch.setenv("FLAKY_EVENTS", str(fifo))
    reading = os.fdopen(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), "rb", buffering=0)
    keep_open = os.open(fifo, os.O_WRONLY)  # no EOF between two status runs
    events = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(events), reading
    )
    backend = NixosBackend(
        setup.root / "work",
        command=str(tool),
        conf_dir=setup.conf_dir,
        hyperhive_url=HYPERHIVE_URL,
        system="x86_64-linux",
        poll_initial=0.02,
        poll_max=0.1,
    )
    try:
        yield Flaky(backend, count, events)
    finally:
        transport.close()
        os.close(keep_open)


async def test_wait_keeps_waiting_through_a_status_probe_that_fails(
    setup: Setup, flaky: Flaky
) -> None:
    spec = setup.spec("alice")
    await setup.backend.create(spec)
    await setup.backend.start(spec, Lines())
    flaky.count.write_text("1")
    waiting = asyncio.ensure_future(flaky.backend.wait("alice"))
    assert await flaky.next_probe() == "failed"
    assert await flaky.next_probe() == "answered"  # it asked again: no crash reported
    assert not waiting.done()
    assert setup.fake("terminate", "h-alice").returncode == 0
    assert await asyncio.wait_for(waiting, 10) == EXIT_UNKNOWN


async def test_wait_gives_up_when_status_keeps_failing(setup: Setup, flaky: Flaky) -> None:
    spec = setup.spec("alice")
    await setup.backend.create(spec)
    await setup.backend.start(spec, Lines())
    flaky.count.write_text("1000")
    with pytest.raises(BackendError, match=r"failed 3 times in a row; the last: .*\(exit -9\)"):
        await asyncio.wait_for(flaky.backend.wait("alice"), 10)
    assert [await flaky.next_probe() for _ in range(3)] == ["failed"] * 3


async def test_tool_failures_become_backend_errors_with_the_tools_words(setup: Setup) -> None:
    spec = setup.spec("alice")
    with pytest.raises(BackendError, match="does not exist"):
        await setup.backend.start(spec, Lines())
    with pytest.raises(BackendError, match="does not exist"):
        await setup.backend.update(spec)
    await setup.backend.destroy("alice")  # the real tool exits 0 for a missing one
    await setup.backend.create(spec)
    with pytest.raises(BackendError, match="already exists"):
        await setup.backend.create(spec)
    missing = NixosBackend(setup.root / "w2", command=str(setup.root / "no-such-tool"))
    with pytest.raises(BackendError, match="cannot run"):
        await missing.status("alice")


def test_the_fake_fails_the_way_nixos_container_fails(setup: Setup, short_dir: Path) -> None:
    gone = setup.fake("status", "h-nobody")
    assert (gone.returncode, gone.stdout) == (2, "gone\n")
    assert gone.stderr.endswith(": container \u2018h-nobody\u2019 does not exist\n")
    assert setup.fake("destroy", "h-nobody").returncode == 0
    assert setup.fake("stop", "h-nobody").returncode == 2
    no_flake = short_dir / "empty"
    no_flake.mkdir()
    failed = setup.fake("create", "h-x", "--flake", f"{no_flake}#container")
    assert failed.returncode == 255
    assert "does not contain a 'flake.nix'" in failed.stderr
    # Like the real tool, the .conf written before the build stays behind.
    assert setup.fake("status", "h-x").stdout == "down\n"
    again = setup.fake("create", "h-x")
    assert again.returncode != 0 and "already exists" in again.stderr
    assert os.access(FAKE, os.X_OK)


async def test_secrets_stay_out_of_the_flake_and_go_to_a_private_env_file(setup: Setup) -> None:
    spec = setup.spec(
        "alice",
        env={
            "ANTHROPIC_API_KEY": "sk-ant-not-for-the-store",
            "HYPERHIVE_AGENT_NAME": "alice",
            "HYPERHIVE_AGENT_ROLE": "reviewer",
        },
    )
    await setup.backend.create(spec)
    flake = (setup.backend.flake_dir("alice") / "flake.nix").read_text()
    assert "sk-ant-not-for-the-store" not in flake and '"reviewer"' in flake
    env_file = spec.socket_dir / "env"
    assert env_file.read_text() == 'ANTHROPIC_API_KEY="sk-ant-not-for-the-store"\n'
    assert env_file.stat().st_mode & 0o777 == 0o600
