"""The per-agent flake and ``.conf`` the nixos backend hands to nixos-container.

Pure text in, text out, so tests can parse and evaluate exactly what would run.
"""

from __future__ import annotations

import hashlib
import ipaddress
import platform
import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Final

import hyperhive
from hyperhive.backends.base import BackendError, ContainerSpec

FLAGS_KEY: Final = "EXTRA_NSPAWN_FLAGS"
# EXTRA_NSPAWN_FLAGS is word-split by the container@ unit's shell script and
# read by systemd's EnvironmentFile parser, so bind paths must survive both.
SAFE_PATH: Final = re.compile(r"[A-Za-z0-9_./+@%,-]+")
NIX_SYSTEMS: Final = {
    "x86_64": "x86_64-linux",
    "aarch64": "aarch64-linux",
    "arm64": "aarch64-linux",
}


# Each agent's container gets a pair of addresses from here: a /30 of its own, the host's
# end (.1) and the container's (.2). Not nixos-container's own 10.233.x, so the hive's
# containers never take an address an operator's hand-made container might want.
ADDRESS_POOL: Final = ipaddress.IPv4Network("10.231.0.0/16")
PAIRS: Final = ADDRESS_POOL.num_addresses // 4
ADDRESS_LINE: Final = re.compile(r"^(?:HOST|LOCAL)_ADDRESS=([0-9.]+)(?:/[0-9]+)?$", re.M)


def container_addresses(name: str, taken: Collection[str]) -> tuple[str, str]:
    """(host address, local address) for ``name``'s private network: the pair hashed
    from its name, so it stays the same, else the next one no other container holds."""
    preferred = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % PAIRS
    for step in range(PAIRS):
        base = ADDRESS_POOL.network_address + 4 * ((preferred + step) % PAIRS)
        host, local = str(base + 1), str(base + 2)
        if host not in taken and local not in taken:
            return host, local
    raise BackendError(f"no private address pair left in {ADDRESS_POOL} for h-{name}")


def taken_addresses(confs: Iterable[str]) -> set[str]:
    """Every HOST_ADDRESS and LOCAL_ADDRESS the given container ``.conf`` texts hold."""
    return {address for conf in confs for address in ADDRESS_LINE.findall(conf)}


# network = false: the container keeps its veth (nixos-container always makes one) but
# no interface but lo stays up, so nothing in it has a route anywhere; hive-agent, which
# also gets a network namespace of its own, starts only once this has run.
OFFLINE_UNIT: Final = r"""
          systemd.services.hive-offline = {
            description = "No network for this agent (network = false)";
            wantedBy = [ "multi-user.target" ];
            requiredBy = [ "hive-agent.service" ];
            before = [ "hive-agent.service" ];
            serviceConfig = { Type = "oneshot"; RemainAfterExit = true; };
            script = ''
              # /proc/net/dev lists this namespace's interfaces, whatever /sys shows.
              for name in $(sed -n 's/^ *\([^:]*\):.*/\1/p' /proc/net/dev); do
                [ "$name" = lo ] || ${pkgs.iproute2}/bin/ip link set dev "$name" down
              done
            '';
          };"""


def default_hyperhive_url() -> str:
    """This checkout as a flake input. ``git+file:`` copies only tracked files
    into the store (``path:`` would copy the venv too)."""
    root = Path(hyperhive.__file__).resolve().parents[2]
    return f"git+file://{root}" if (root / ".git").exists() else f"path:{root}"


def nix_system() -> str:
    machine = platform.machine()
    return NIX_SYSTEMS.get(machine, f"{machine}-linux")


def nix_string(value: str) -> str:
    """A Nix double-quoted string literal for any text (no interpolation)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


# Only these reach flake.nix, which lands world-readable in the Nix store; the
# rest (API keys, tokens) goes to <socket_dir>/env, 0600, read by the unit.
PUBLIC_ENV = frozenset(
    {
        "HYPERHIVE_AGENT_NAME",
        "HYPERHIVE_AGENT_ROLE",
        "HYPERHIVE_AGENT_MODEL",
        "HYPERHIVE_ENGINE",
        "HYPERHIVE_LOG_LEVEL",
    }
)


def public_env(spec: ContainerSpec) -> dict[str, str]:
    return {k: v for k, v in spec.env.items() if k in PUBLIC_ENV}


def secret_env_file(spec: ContainerSpec) -> str:
    """systemd EnvironmentFile text for everything not in :data:`PUBLIC_ENV`."""
    lines = []
    for key, value in sorted(spec.env.items()):
        if key in PUBLIC_ENV or "\n" in value:
            continue
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key}="{escaped}"\n')
    return "".join(lines)


def render_flake(
    spec: ContainerSpec,
    *,
    hyperhive_url: str,
    nixpkgs_url: str | None = None,
    system: str | None = None,
    with_agent_nix: bool,
) -> str:
    """``nixosConfigurations.container``: hyperhive's agent module, the applied
    ``agent.nix``, and the container glue (name, role, the claude-code opt-in)."""
    nixpkgs = (
        f"nixpkgs.url = {nix_string(nixpkgs_url)};"
        if nixpkgs_url
        # One nixpkgs for the host's hyperhive and every container: pinned by
        # hyperhive's flake.lock, nothing extra to download.
        else 'nixpkgs.follows = "hyperhive/nixpkgs";'
    )
    agent_nix = "\n        ./agent.nix" if with_agent_nix else ""
    offline = "" if spec.network else OFFLINE_UNIT
    uid = f"\n            uid = {spec.uid};" if spec.uid is not None else ""
    env = "".join(
        f"\n            {nix_string(key)} = {nix_string(value)};"
        for key, value in sorted(public_env(spec).items())
    )
    return f"""\
# Generated by hyperhive for {spec.container} (config {spec.config_sha}); do not edit.
{{
  description = {nix_string(f"hyperhive container {spec.container}")};

  inputs = {{
    hyperhive.url = {nix_string(hyperhive_url)};
    {nixpkgs}
  }};

  outputs = {{ self, nixpkgs, hyperhive, ... }}: {{
    nixosConfigurations.container = nixpkgs.lib.nixosSystem {{
      system = {nix_string(system or nix_system())};
      modules = [
        hyperhive.nixosModules.hive-agent{agent_nix}
        ({{ lib, pkgs, ... }}: {{
          boot.isContainer = true;
          networking.hostName = {nix_string(spec.container)};{offline}
          # claude-code is unfree: allowed here, for this one package only.
          nixpkgs.config.allowUnfreePredicate =
            pkg: builtins.elem (lib.getName pkg) [ "claude-code" ];
          services.hive-agent = {{
            enable = true;
            name = {nix_string(spec.name)};
            role = {nix_string(spec.role)};
            network = {"true" if spec.network else "false"};{uid}
            environment = {{{env}
            }};
          }};
        }})
      ];
    }};
  }};
}}
"""


def nspawn_flags(spec: ContainerSpec) -> str:
    """The bind mounts of DESIGN §2 (and the memory cap) as nspawn flags."""
    binds = [(spec.socket_dir, "/run/hive"), (spec.claude_dir, "/root/.claude")]
    binds.append((spec.state_dir, "/state"))
    if spec.work_dir is not None:
        binds.append((spec.work_dir, "/work"))
    if spec.role == "manager" and spec.agents_dir is not None:
        binds.append((spec.agents_dir, "/agents"))
    flags = [f"--bind={_safe(src)}:{dst}" for src, dst in binds]
    flags += [f"--bind-ro={_safe(p)}:{_safe(p)}" for p in spec.extra_ro_binds]
    if spec.memory_mb is not None:
        flags.append(f"--property=MemoryMax={spec.memory_mb}M")
    return " ".join(flags)


def _safe(path: Path) -> str:
    text = str(path)
    if not path.is_absolute() or not SAFE_PATH.fullmatch(text) or ":" in text:
        raise BackendError(
            f"cannot bind {text!r} into a nixos container: use a plain absolute path"
        )
    return text


def with_flags(conf: str, flags: str) -> str:
    """``conf`` with its EXTRA_NSPAWN_FLAGS line set to ``flags``; every other
    line (what nixos-container wrote: addresses, FLAKE=, …) kept as is."""
    line = f'{FLAGS_KEY}="{flags}"'
    lines = conf.splitlines()
    kept = [text for text in lines if not text.startswith(f"{FLAGS_KEY}=")]
    index = next((i for i, text in enumerate(lines) if text.startswith(f"{FLAGS_KEY}=")), None)
    if index is None:
        kept.append(line)
    else:
        kept.insert(min(index, len(kept)), line)
    return "\n".join(kept) + "\n"


def read_flags(conf: str) -> str | None:
    for text in conf.splitlines():
        if text.startswith(f"{FLAGS_KEY}="):
            return text.split("=", 1)[1].strip('"')
    return None
