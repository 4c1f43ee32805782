"""hyperhive's Nix packaging, checked offline with the real ``nix-instantiate``.

Nothing here can fetch nixpkgs, so the modules are evaluated by a small stub
module system (``tests/nix/module-stub.nix``) instead of nixpkgs' ``lib.evalModules``. It is
honest about what it does: options with defaults and type checks, ``mkIf`` /
``mkMerge`` / ``mkDefault`` pushed down the way the real module system pushes
them, lists concatenated, conflicting values refused, unknown options under a
declared namespace refused, and the module arguments a module asks for passed
to it. What it cannot vouch for is nixpkgs itself: that the NixOS options the
modules set exist with those types, and that the packages build (see
docs/nixos.md, "Checked offline").
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hyperhive.backends.base import ContainerSpec
from hyperhive.backends.nix_flake import render_flake
from hyperhive.daemons.ag3nt import build_parser as agent_parser
from hyperhive.daemons.c0re import build_parser as core_parser

REPO = Path(__file__).resolve().parents[1]
# The dummy store evaluates without a daemon or a writable store, as any user.
NIX = ("nix-instantiate", "--store", "dummy://", "--readonly-mode")
SKIP_DIRS = {".git", ".venv", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
SYSTEM = "x86_64-linux"
ALLOW_CLAUDE = (
    'nixpkgs.config.allowUnfreePredicate = pkg: builtins.elem (lib.getName pkg) [ "claude-code" ];'
)

# Fixed Nix files the tests evaluate with; paths reach them with --argstr.
NIX_DIR = Path(__file__).resolve().parent / "nix"
STUB = NIX_DIR / "module-stub.nix"
OPERATOR_AGENT_NIX = NIX_DIR / "agent.nix"
# Every expression is evaluated with ``stub`` (the stub system over this checkout)
# and ``repo`` (the checkout's absolute path) in scope.
WRAPPER = "{ repo, stubFile }: let stub = import stubFile { inherit repo; }; in "


def nix_env(**extra: str) -> dict[str, str]:
    # check-meta honours NIXPKGS_ALLOW_UNFREE, and so does the assertion:
    # the caller's environment must not decide a test.
    env = {k: v for k, v in os.environ.items() if k != "NIXPKGS_ALLOW_UNFREE"}
    return env | extra


def run_nix(tmp_path: Path, expr: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    args = ("--argstr", "repo", str(REPO), "--argstr", "stubFile", str(STUB))
    proc = subprocess.run(
        [*NIX, "--eval", "--strict", "--json", *args, "-E", WRAPPER + expr],
        capture_output=True, text=True, timeout=120, check=False,
        cwd=tmp_path, env=env or nix_env(),
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def nix_eval(tmp_path: Path, expr: str, env: dict[str, str] | None = None) -> Any:
    code, out, err = run_nix(tmp_path, expr, env)
    assert code == 0, err
    return json.loads(out)


def nix_error(tmp_path: Path, expr: str) -> str:
    code, _, err = run_nix(tmp_path, expr)
    assert code != 0, "evaluation succeeded where it must fail"
    return err


def service_expr(which: str, modules: str, service: str) -> str:
    """The parts of one systemd service (and the system around it) a test checks."""
    return f"""
      let c = stub.{which} [ {modules} ];
          s = c.systemd.services.{service};
      in {{
        inherit (s) description wantedBy after environment serviceConfig;
        path = stub.names s.path;
        failed = stub.failed c;
      }}"""


def host_expr(settings: str, *extra: str) -> str:
    modules = " ".join(
        [f"({{ lib, ... }}: {{ services.hive-c0re = {{ enable = true; {settings} }}; }})", *extra]
    )
    return f"""
      let c = stub.host [ {modules} ];
          s = c.systemd.services.hive-c0re;
      in {{
        inherit (s) description wantedBy wants after environment serviceConfig;
        path = stub.names s.path;
        failed = stub.failed c;
        containers = c.boot.enableContainers or null;
        features = c.nix.settings.experimental-features;
        nat = c.networking.nat or null;
        tmpfiles = c.systemd.tmpfiles.rules;
        nixpkgsConfig = builtins.attrNames c.nixpkgs.config;
      }}"""


ALLOW_HOST = f"({{ lib, ... }}: {{ {ALLOW_CLAUDE} }})"


def agent_expr(settings: str, *extra: str) -> str:
    modules = " ".join(
        [f"({{ lib, ... }}: {{ services.hive-agent = {{ enable = true; {settings} }}; }})", *extra]
    )
    return service_expr("agent", modules, "hive-agent")


def nix_files() -> list[Path]:
    found = []
    for path in REPO.rglob("*.nix"):
        if not SKIP_DIRS.intersection(path.relative_to(REPO).parts):
            found.append(path)
    return sorted(found)


def test_every_nix_file_in_the_repository_parses() -> None:
    files = nix_files()
    assert {REPO / "flake.nix", REPO / "nix" / "modules" / "hive-c0re.nix"} <= set(files)
    assert REPO / "nix" / "modules" / "hive-agent.nix" in files
    for path in files:
        parsed = subprocess.run(
            [*NIX, "--parse", str(path)], capture_output=True, text=True, timeout=60, check=False
        )
        assert parsed.returncode == 0, f"{path.relative_to(REPO)}: {parsed.stderr}"


def test_the_flake_offers_the_package_both_modules_a_dev_shell_and_checks(tmp_path: Path) -> None:
    result = nix_eval(
        tmp_path,
        """
        let out = stub.hyperhive; in {
          inputs = stub.flake.inputs;
          systems = builtins.attrNames out.packages;
          packages = builtins.attrNames out.packages.x86_64-linux;
          modules = builtins.attrNames out.nixosModules;
          agentModule = toString out.nixosModules.hive-agent;
          shells = builtins.attrNames out.devShells.x86_64-linux;
          shellPackages = stub.names out.devShells.x86_64-linux.default.passthru.packages;
          checks = builtins.attrNames out.checks.aarch64-linux;
        }""",
    )
    assert result["inputs"] == {"nixpkgs": {"url": "github:NixOS/nixpkgs/nixos-25.11"}}
    assert result["systems"] == ["aarch64-linux", "x86_64-linux"]
    assert result["packages"] == ["default"]
    assert result["modules"] == ["default", "hive-agent", "hive-c0re"]
    assert result["agentModule"] == str(REPO / "nix" / "modules" / "hive-agent.nix")
    assert result["shells"] == ["default"]
    assert result["shellPackages"] == ["python3", "git", "bubblewrap", "nix"]
    assert result["checks"] == ["hive-agent-unit", "hive-c0re-unit", "package", "unfree-assertion"]


def test_the_package_is_built_by_setuptools_from_pyproject_with_its_dependencies(
    tmp_path: Path,
) -> None:
    result = nix_eval(
        tmp_path,
        """
        let p = stub.hyperhive.packages.x86_64-linux.default.passthru;
        in {
          inherit (p) pname version pyproject doCheck pythonImportsCheck;
          buildSystem = stub.names p.build-system;
          dependencies = stub.names p.dependencies;
          src = map baseNameOf p.src.fileset;
          srcRoot = toString p.src.root;
          inherit (p.meta) mainProgram description;
        }""",
    )
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert (result["pname"], result["version"]) == (project["name"], project["version"])
    assert result["description"] == project["description"]
    assert result["buildSystem"] == ["setuptools"]
    assert result["dependencies"] == [
        "starlette",
        "uvicorn",
        "claude-agent-sdk",
        "mcp",
        "httpx",
        "h11",
        "prometheus-client",
        "psycopg",
    ]
    # A requirement's name is what comes before its extras and version: as package.nix reads it.
    names = [re.findall(r"^[A-Za-z0-9_.-]+", spec) for spec in project["dependencies"]]
    assert result["dependencies"] == [found[0] for found in names]
    assert result["pyproject"] is True
    assert result["src"] == ["pyproject.toml", "README.md", "src"]
    assert result["srcRoot"] == str(REPO)
    assert result["mainProgram"] == "hive-c0re"
    assert result["doCheck"] is False
    assert "hyperhive.daemons.c0re" in result["pythonImportsCheck"]


def test_a_python_dependency_missing_from_nixpkgs_is_named_with_the_fix(tmp_path: Path) -> None:
    err = nix_error(
        tmp_path,
        """
        let ps = removeAttrs stub.pkgs.python3Packages [ "claude-agent-sdk" ];
            p = stub.pkgs.callPackage (/. + repo + "/nix/package.nix") { python3Packages = ps; };
        in map (d: d.name) p.passthru.dependencies""",
    )
    assert "hyperhive needs the Python package claude-agent-sdk" in err
    assert "pythonPackagesExtensions" in err


def test_the_host_module_runs_hive_c0re_as_the_operator_configured_it(tmp_path: Path) -> None:
    result = nix_eval(
        tmp_path,
        host_expr(
            """
            environmentFile = "/etc/hyperhive/env";
            environment = { HYPERHIVE_LOG_LEVEL = "DEBUG"; };
            forwardEnv = [ "HTTPS_PROXY" "NO_PROXY" ];
            nat.externalInterface = "eth0";
            """,
            ALLOW_HOST,
        ),
    )
    package = "/nix/store/" + nix_eval(
        tmp_path, "builtins.baseNameOf stub.hyperhive.packages.x86_64-linux.default"
    )
    service = result["serviceConfig"]
    assert service["ExecStart"] == (
        f"{package}/bin/hive-c0re serve --state-dir /var/lib/hyperhive "
        "--run-dir /run/hyperhive --listen 127.0.0.1:7000 --backend nixos"
    )
    assert result["path"] == ["hyperhive", "nix", "nixos-container", "git", "util-linux"]
    assert result["environment"] == {
        "HOME": "/root",
        "HYPERHIVE_FORWARD_ENV": "HTTPS_PROXY,NO_PROXY",
        "HYPERHIVE_FLAKE_URL": "path:/nix/store/00000000-hyperhive-source",
        "HYPERHIVE_LOG_LEVEL": "DEBUG",
    }
    assert service == {
        "ExecStart": service["ExecStart"],
        "EnvironmentFile": "/etc/hyperhive/env",
        "KillMode": "mixed",
        "Delegate": "cpu",
        "LimitNOFILE": 65536,
        "Restart": "on-failure",
        "RestartSec": 5,
        "RuntimeDirectory": "hyperhive",
        "RuntimeDirectoryMode": "0700",
        "RuntimeDirectoryPreserve": "yes",
        "StateDirectory": "hyperhive",
        "StateDirectoryMode": "0700",
        "TimeoutStopSec": 90,
        "UMask": "0077",
    }
    assert result["wantedBy"] == ["multi-user.target"]
    assert result["after"] == ["network-online.target", "nix-daemon.socket"]
    assert result["failed"] == []
    assert result["containers"] is True
    assert result["features"] == ["nix-command", "flakes"]
    assert result["nat"] == {
        "enable": True,
        "internalInterfaces": ["ve-+"],
        "externalInterface": "eth0",
    }
    assert result["tmpfiles"] == []
    default_nat = nix_eval(tmp_path, host_expr("", ALLOW_HOST))["nat"]
    assert default_nat == {"enable": True, "internalInterfaces": ["ve-+"]}


def test_the_daemon_accepts_the_command_line_the_module_gives_it(tmp_path: Path) -> None:
    result = nix_eval(
        tmp_path,
        host_expr(
            'stateDir = "/srv/hive state"; runDir = "/srv/hive-run"; '
            'listen = "0.0.0.0:7443"; backend = "bwrap"; manager = false;'
        ),
    )
    argv = shlex.split(result["serviceConfig"]["ExecStart"])
    args = core_parser().parse_args(argv[1:])
    assert (args.state_dir, args.run_dir, args.listen) == (
        "/srv/hive state",
        "/srv/hive-run",
        "0.0.0.0:7443",
    )
    assert (args.backend, args.no_manager) == ("bwrap", True)
    # Outside /var/lib and /run systemd cannot own the directories: tmpfiles does.
    assert "StateDirectory" not in result["serviceConfig"]
    assert "RuntimeDirectory" not in result["serviceConfig"]
    assert result["tmpfiles"] == [
        "d /srv/hive state 0700 root root -",
        "d /srv/hive-run 0700 root root -",
    ]
    assert result["path"][-1] == "bubblewrap"
    # bwrap needs neither nixos-containers, their NAT, nor claude-code on the host.
    assert result["containers"] is None or result["containers"] is False
    assert result["nat"] is None
    assert result["failed"] == []


def test_the_host_module_never_allows_unfree_and_asks_for_the_operators_opt_in(
    tmp_path: Path,
) -> None:
    refused = nix_eval(tmp_path, host_expr(""))
    assert refused["nixpkgsConfig"] == []
    [message] = refused["failed"]
    assert "claude-code is unfree and this host's nixpkgs config does not allow it" in message
    assert ALLOW_CLAUDE.replace(" pkg: ", "\n  pkg: ") in message
    allowed = nix_eval(tmp_path, host_expr("", ALLOW_HOST))
    assert allowed["failed"] == []
    assert allowed["nixpkgsConfig"] == ["allowUnfreePredicate"]


def test_the_host_module_does_nothing_until_enabled(tmp_path: Path) -> None:
    result = nix_eval(
        tmp_path,
        """
        let c = stub.host [ ]; in {
          services = builtins.attrNames (c.systemd.services or { });
          failed = stub.failed c;
          enable = c.services.hive-c0re.enable;
          top = builtins.attrNames c;
        }""",
    )
    assert result == {"services": [], "failed": [], "enable": False, "top": result["top"]}
    assert "networking" not in result["top"]
    assert "boot" not in result["top"]


def test_the_host_module_refuses_a_secrets_file_given_as_a_nix_path(tmp_path: Path) -> None:
    # A path literal would be copied into the world-readable store.
    err = nix_error(tmp_path, host_expr("environmentFile = ./env;", ALLOW_HOST))
    assert "services.hive-c0re.environmentFile' is not of type `null or string'" in err
    relative = nix_eval(tmp_path, host_expr('environmentFile = "etc/env";', ALLOW_HOST))
    assert relative["failed"] == [
        "services.hive-c0re.environmentFile must be an absolute path, got etc/env"
    ]


def test_an_unknown_host_option_is_refused_by_name(tmp_path: Path) -> None:
    err = nix_error(tmp_path, host_expr("stateDirectory = /var/lib/x;", ALLOW_HOST))
    assert "The option `services.hive-c0re.stateDirectory' does not exist." in err


def test_the_agent_module_runs_hive_ag3nt_with_the_container_layout(tmp_path: Path) -> None:
    result = nix_eval(
        tmp_path,
        agent_expr('name = "alice"; environment = { HYPERHIVE_ENGINE = "fake"; };', ALLOW_HOST),
    )
    package = nix_eval(tmp_path, "stub.hyperhive.packages.x86_64-linux.default")
    claude = nix_eval(tmp_path, "stub.pkgs.claude-code")
    assert result["serviceConfig"]["ExecStart"] == f"{package}/bin/hive-ag3nt serve"
    assert result["path"] == ["hyperhive", "claude-code", "bash", "git", "ripgrep"]
    assert result["environment"] == {
        "HOME": "/root",
        "HYPERHIVE_AGENT_NAME": "alice",
        "HYPERHIVE_AGENT_SOCKET": "/run/hive/mcp.sock",
        "HYPERHIVE_AGENT_STATE": "/state",
        "HYPERHIVE_AGENT_WORK": "/work",
        "CLAUDE_CONFIG_DIR": "/root/.claude",
        "HYPERHIVE_CLAUDE_CLI": f"{claude}/bin/claude",
        "DISABLE_AUTOUPDATER": "1",
        "HYPERHIVE_ENGINE": "fake",
    }
    assert result["serviceConfig"] == {
        "ExecStart": f"{package}/bin/hive-ag3nt serve",
        "WorkingDirectory": "/work",
        "EnvironmentFile": "-/run/hive/env",
        "Restart": "always",
        "RestartSec": 2,
        "KillMode": "mixed",
        "TimeoutStopSec": 30,
        "PrivateNetwork": False,
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "NoNewPrivileges": True,
        "RestrictSUIDSGID": True,
        "LockPersonality": True,
    }
    assert result["failed"] == []
    assert agent_parser("hive-ag3nt").parse_args(["serve"]).command == "serve"


def test_a_manager_without_network_runs_hive_m1nd_in_its_own_network_namespace(
    tmp_path: Path,
) -> None:
    result = nix_eval(
        tmp_path, agent_expr('name = "hm1nd"; role = "manager"; network = false;', ALLOW_HOST)
    )
    service = result["serviceConfig"]
    assert service["ExecStart"].endswith("/bin/hive-m1nd serve")
    assert result["description"] == "hyperhive hive-m1nd (hm1nd)"
    assert (service["PrivateNetwork"], service["IPAddressDeny"]) == (True, "any")
    assert service["IPAddressAllow"] == "localhost"


def test_an_agent_name_the_core_would_refuse_is_refused_by_the_module_too(tmp_path: Path) -> None:
    err = nix_error(tmp_path, agent_expr('name = "Alice_1";', ALLOW_HOST))
    assert "services.hive-agent.name' is not of type `string matching" in err


@pytest.mark.parametrize(
    ("opt_in", "env", "allowed"),
    [
        pytest.param("", {}, False, id="nothing"),
        pytest.param(ALLOW_CLAUDE, {}, True, id="the-predicate"),
        pytest.param("nixpkgs.config.allowUnfree = true;", {}, True, id="allow-unfree"),
        pytest.param(
            'nixpkgs.config.allowUnfreePackages = [ "claude-code" ];',
            {},
            True,
            id="allow-unfree-packages",
        ),
        pytest.param(
            'nixpkgs.config.allowUnfreePredicate = pkg: lib.getName pkg == "vscode";',
            {},
            False,
            id="a-predicate-for-another-package",
        ),
        pytest.param("", {"NIXPKGS_ALLOW_UNFREE": "1"}, True, id="impure-env"),
    ],
)
def test_the_agent_module_asserts_with_the_snippet_unless_claude_code_is_allowed(
    tmp_path: Path, opt_in: str, env: dict[str, str], allowed: bool
) -> None:
    result = nix_eval(
        tmp_path,
        agent_expr('name = "alice";', f"({{ lib, ... }}: {{ {opt_in} }})"),
        env=nix_env(**env),
    )
    if allowed:
        assert result["failed"] == []
        return
    [message] = result["failed"]
    assert message.startswith(
        "hyperhive: claude-code is unfree and this container's nixpkgs config does not allow it."
    )
    assert "hyperhive never allows unfree packages for you" in message
    assert ALLOW_CLAUDE.replace(" pkg: ", "\n  pkg: ") in message
    assert "nixpkgs.config.allowUnfree = true" in message


def test_the_unfree_rule_reads_licenses_as_nixpkgs_check_meta_does(tmp_path: Path) -> None:
    result = nix_eval(
        tmp_path,
        """
        let hive = import (/. + repo + "/nix/lib.nix");
            unfree = { free = false; };
            allowed = hive.unfreeAllowed { };
        in {
          free = allowed { pname = "x"; meta.license = { free = true; }; };
          noLicense = allowed { pname = "x"; };
          stringLicense = allowed { pname = "x"; meta.license = "unfree"; };
          single = allowed { pname = "x"; meta.license = unfree; };
          list = allowed { pname = "x"; meta.license = [ { free = true; } unfree ]; };
          byName = hive.unfreeAllowed
            { allowUnfreePredicate = p: hive.getName p == "claude-code"; }
            { name = "claude-code-2.0.0"; meta.license = unfree; };
        }""",
    )
    assert result == {
        "free": True,
        "noLicense": True,
        "stringLicense": True,
        "single": False,
        "list": False,
        "byName": True,
    }


def test_a_generated_per_agent_flake_evaluates_with_the_real_agent_module(
    tmp_path: Path,
) -> None:
    spec = ContainerSpec(
        name="alice",
        role="agent",
        socket_dir=Path("/run/hyperhive/agents/alice"),
        state_dir=Path("/var/lib/hyperhive/agents/alice/state"),
        claude_dir=Path("/var/lib/hyperhive/agents/alice/claude"),
        config_dir=Path("/var/lib/hyperhive/applied/alice"),
        config_sha="c0ffee",
        command=("hive-ag3nt", "serve"),
        env={"HYPERHIVE_ENGINE": "fake", "HYPERHIVE_AGENT_MODEL": "claude-sonnet-4-5"},
        network=False,
        uid=1_900_000_007,
    )
    (tmp_path / "flake.nix").write_text(
        render_flake(spec, hyperhive_url="path:/opt/hyperhive", system=SYSTEM, with_agent_nix=True)
    )
    # An operator's agent.nix, adding to what the module sets.
    shutil.copyfile(OPERATOR_AGENT_NIX, tmp_path / "agent.nix")
    result = nix_eval(
        tmp_path,
        """
        let generated = (import ./flake.nix).outputs {
              self = { }; inherit (stub) nixpkgs hyperhive;
            };
            c = generated.nixosConfigurations.container.config;
            s = c.systemd.services.hive-agent;
        in {
          inherit (s) environment;
          inherit (s.serviceConfig) ExecStart PrivateNetwork User CapabilityBoundingSet;
          user = c.users.users.hive-agent;
          group = c.users.groups.hive-agent;
          path = stub.names s.path;
          failed = stub.failed c;
          hostName = c.networking.hostName;
          isContainer = c.boot.isContainer;
          systemPackages = stub.names c.environment.systemPackages;
        }""",
    )
    assert result["failed"] == []
    assert result["ExecStart"].endswith("-hyperhive-0.1.0/bin/hive-ag3nt serve")
    assert result["PrivateNetwork"] is True
    # The harness runs as the uid the core gave the binds to, with no capability.
    assert (result["User"], result["CapabilityBoundingSet"]) == ("hive-agent", "")
    assert result["user"]["uid"] == 1_900_000_007 == result["group"]["gid"]
    assert "claude-code" in result["path"]
    assert result["environment"]["HYPERHIVE_AGENT_NAME"] == "alice"
    assert result["environment"]["HYPERHIVE_ENGINE"] == "fake"
    assert result["environment"]["HYPERHIVE_AGENT_MODEL"] == "claude-sonnet-4-5"
    assert (result["hostName"], result["isContainer"]) == ("h-alice", True)
    assert result["systemPackages"] == ["hyperhive", "claude-code", "git", "ripgrep"]


def unit_file(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_the_plain_systemd_unit_runs_the_same_daemon_as_the_nixos_module(
    tmp_path: Path,
) -> None:
    unit = unit_file(REPO / "packaging" / "systemd" / "hive-c0re.service")
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/hyperhive/bin/hive-c0re"
    args = core_parser().parse_args(argv[1:])
    module = nix_eval(tmp_path, host_expr("", ALLOW_HOST))["serviceConfig"]
    assert shlex.split(module["ExecStart"])[1:] == [*argv[1:-2], "--backend", "nixos"]
    assert (args.state_dir, args.run_dir, args.listen) == (
        "/var/lib/hyperhive",
        "/run/hyperhive",
        "127.0.0.1:7000",
    )
    assert args.backend == "auto"
    for key in ("KillMode", "Delegate", "Restart", "StateDirectory", "RuntimeDirectory", "UMask"):
        assert service[key] == str(module[key]), key
    assert service["RuntimeDirectoryPreserve"] == "yes"
    # The leading "-" lets the daemon start before the operator writes secrets.
    assert service["EnvironmentFile"] == "-/etc/hyperhive/env"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_host_module_shares_a_database_under_a_host_name_and_refuses_a_password(
    tmp_path: Path,
) -> None:
    url = "postgresql://hive@db.example.org/hive?sslmode=verify-full"
    result = nix_eval(
        tmp_path,
        host_expr(
            f'database = "{url}"; hostName = "rack-a"; '
            'advertiseUrl = "https://rack-a.example.org:7000";',
            ALLOW_HOST,
        ),
    )
    assert result["failed"] == []
    assert result["environment"]["HYPERHIVE_DATABASE_URL"] == url
    argv = shlex.split(result["serviceConfig"]["ExecStart"])
    args = core_parser().parse_args(argv[1:])
    assert (args.host_name, args.advertise_url) == ("rack-a", "https://rack-a.example.org:7000")
    assert args.database is None  # from the environment: never on a command line
    leaked = nix_eval(
        tmp_path, host_expr('database = "postgresql://hive:s3cret@db/hive";', ALLOW_HOST)
    )
    assert any("must not carry a password" in m for m in leaked["failed"]), leaked["failed"]
