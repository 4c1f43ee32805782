# Inside one agent container: the hyperhive harness (hive-ag3nt, or hive-m1nd
# for the manager) as a systemd service, with claude-code on its PATH.
#
# The container layout is hyperhive's (DESIGN §2), bind-mounted by the host:
# /run/hive (the agent's socket), /state (durable notes), /work (its
# workspace and cwd), /root/.claude (Claude credentials); the manager also
# gets /agents.
#
# systemd-nspawn leaves the container's root a wide capability set
# (CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, ...), enough to reach the
# host. So the harness never runs as that root: it runs as `hive-agent`, whose
# uid the core allocates and gives the binds to, with an empty capability
# bounding set and no-new-privileges, so neither it nor anything it starts
# (claude-code, its tools) can hold or regain a capability.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    ;
  hive = import ../lib.nix;
  cfg = config.services.hive-agent;
  command = if cfg.role == "manager" then "hive-m1nd" else "hive-ag3nt";
  nixpkgsConfig = pkgs.config or config.nixpkgs.config;
in
{
  options.services.hive-agent = {
    enable = mkEnableOption "the hyperhive agent harness";

    name = mkOption {
      type = types.strMatching "[a-z][a-z0-9-]{0,8}";
      example = "alice";
      description = "The agent's name (the container is h-<name>; the manager is hm1nd).";
    };

    role = mkOption {
      type = types.enum [
        "agent"
        "manager"
      ];
      default = "agent";
      description = "agent runs hive-ag3nt; manager runs hive-m1nd.";
    };

    network = mkOption {
      type = types.bool;
      default = true;
      description = ''
        false cuts the harness, and the claude-code it runs, off every network
        but its own loopback. The core's socket at /run/hive is a file, so
        the agent still talks to the hive.
      '';
    };

    uid = mkOption {
      type = types.nullOr types.int;
      default = null;
      example = 1900000001;
      description = ''
        The uid (and gid) of the `hive-agent` user the harness runs as: the
        owner of the agent's binds, allocated by hive-c0re. null runs the
        harness as the container's root, still without capabilities.
      '';
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      description = "Extra environment for the harness (lands in the store: no secrets).";
    };

    environmentFile = mkOption {
      type = types.nullOr types.str;
      default = "/run/hive/env";
      description = ''
        KEY=value lines read at start if the file exists: the place for secrets
        the host puts into the agent's socket directory, kept out of the store.
      '';
    };

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../package.nix { };
      defaultText = lib.literalExpression "hyperhive.packages.\${system}.default";
      description = "The hyperhive package that provides the harness.";
    };

    claudePackage = mkOption {
      type = types.package;
      default = pkgs.claude-code;
      defaultText = lib.literalExpression "pkgs.claude-code";
      description = "The Claude Code CLI the harness runs (unfree: the config must allow it).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      (hive.claudeCodeAssertion {
        inherit nixpkgsConfig;
        package = cfg.claudePackage;
        where = "this container's nixpkgs config";
      })
    ];

    users.users.hive-agent = mkIf (cfg.uid != null) {
      inherit (cfg) uid;
      group = "hive-agent";
      isSystemUser = true;
      home = "/root";
    };
    users.groups.hive-agent = mkIf (cfg.uid != null) { gid = cfg.uid; };

    # For an operator in `nixos-container root-login h-<name>`.
    environment.systemPackages = [
      cfg.package
      cfg.claudePackage
      pkgs.git
    ];

    systemd.services.hive-agent = {
      description = "hyperhive ${command} (${cfg.name})";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      # claude-code's own tools shell out to bash, git and ripgrep.
      path = [
        cfg.package
        cfg.claudePackage
        pkgs.bash
        pkgs.git
        pkgs.ripgrep
      ];
      environment = {
        HOME = "/root";
        HYPERHIVE_AGENT_NAME = cfg.name;
        HYPERHIVE_AGENT_SOCKET = "/run/hive/mcp.sock";
        HYPERHIVE_AGENT_STATE = "/state";
        HYPERHIVE_AGENT_WORK = "/work";
        CLAUDE_CONFIG_DIR = "/root/.claude";
        # nixpkgs' claude-code, not whatever CLI a Python SDK wheel bundles.
        HYPERHIVE_CLAUDE_CLI = "${cfg.claudePackage}/bin/claude";
        # Updates come with the container's rebuild, never from inside it.
        DISABLE_AUTOUPDATER = "1";
      }
      // cfg.environment;
      serviceConfig = {
        ExecStart = "${cfg.package}/bin/${command} serve";
        WorkingDirectory = "/work";
        Restart = "always";
        RestartSec = 2;
        KillMode = "mixed";
        TimeoutStopSec = 30;
        EnvironmentFile = mkIf (cfg.environmentFile != null) "-${cfg.environmentFile}";
        User = mkIf (cfg.uid != null) "hive-agent";
        Group = mkIf (cfg.uid != null) "hive-agent";
        # No capability, none to regain (setuid binaries included).
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        NoNewPrivileges = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        # A network namespace of its own holds for every process the harness
        # starts, claude-code and its tools included, whatever the container's
        # firewall backend; IPAddressDeny is the second lock on the same door.
        PrivateNetwork = !cfg.network;
        IPAddressDeny = mkIf (!cfg.network) "any";
        IPAddressAllow = mkIf (!cfg.network) "localhost";
      };
    };
  };
}
