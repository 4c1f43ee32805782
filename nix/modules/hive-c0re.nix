# The host side of hyperhive: the hive-c0re daemon as a systemd service, with
# what its container backends need (nixos-containers, flakes, NAT).
#
# This module never allows an unfree package. claude-code runs inside the
# agent containers, whose generated flakes opt in for that one package; the
# operator's consent is their own host config (see the assertion below).
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
  cfg = config.services.hive-c0re;

  # nixos-container only exists as a backend on NixOS with containers on.
  usesContainers = builtins.elem cfg.backend [
    "auto"
    "nixos"
  ];
  usesBwrap = builtins.elem cfg.backend [
    "auto"
    "bwrap"
  ];
  stateDirectory = hive.systemdDirectory "/var/lib" cfg.stateDir;
  runtimeDirectory = hive.systemdDirectory "/run" cfg.runDir;
  # pkgs.config is what this pkgs was really instantiated with (also when
  # nixpkgs.pkgs is set from outside); config.nixpkgs.config otherwise.
  nixpkgsConfig = pkgs.config or config.nixpkgs.config;
  claudeCode = hive.claudeCodeAssertion {
    inherit nixpkgsConfig;
    # A stand-in with claude-code's name and license where pkgs lacks it.
    package =
      pkgs.claude-code or {
        pname = "claude-code";
        meta.license.free = false;
      };
    where = "this host's nixpkgs config";
  };
in
{
  options.services.hive-c0re = {
    enable = mkEnableOption "the hyperhive core daemon (hive-c0re)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../package.nix { };
      defaultText = lib.literalExpression "hyperhive.packages.\${system}.default";
      description = "The hyperhive package that provides hive-c0re.";
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/hyperhive";
      description = "Durable state: hive.db, the agents' state and credentials, the config repos.";
    };

    runDir = mkOption {
      type = types.str;
      default = "/run/hyperhive";
      description = "Sockets: host.sock for the `hive` CLI and one directory per agent.";
    };

    listen = mkOption {
      type = types.str;
      default = "127.0.0.1:7000";
      description = ''
        HOST:PORT of the dashboard. It always requires the operator token:
        HYPERHIVE_OPERATOR_TOKEN (best set in `environmentFile`), else one
        generated into stateDir/operator-token; `hive dashboard-url` prints
        the login URL.
      '';
    };

    backend = mkOption {
      type = types.enum [
        "auto"
        "nixos"
        "bwrap"
        "process"
      ];
      default = "nixos";
      description = "How agents are contained: nixos-container (the default here), bubblewrap, or plain processes.";
    };

    manager = mkOption {
      type = types.bool;
      default = true;
      description = "Create and start the manager agent (hm1nd); false passes --no-manager.";
    };

    database = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "postgresql://hive@db.example.org/hive?sslmode=verify-full";
      description = ''
        The PostgreSQL database (a libpq URL) shared by the cores of several hosts
        (HYPERHIVE_DATABASE_URL); null keeps the embedded sqlite store. No password
        here: it would land in the world-readable store. Give it through a passfile
        (PGPASSFILE in environmentFile), or put the whole URL in environmentFile as
        HYPERHIVE_DATABASE_URL and leave this null.
      '';
    };

    hostName = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "rack-a";
      description = "This core's name among the hosts sharing the database (--host-name); null: the machine's hostname.";
    };

    advertiseUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://rack-a.example.org:7000";
      description = "The front door other hosts' dashboards link this host's agents to (--advertise-url); null: http://<listen>.";
    };

    environmentFile = mkOption {
      # A string, not a path: a Nix path would be copied into the world-readable store.
      type = types.nullOr types.str;
      default = null;
      example = "/etc/hyperhive/env";
      description = ''
        A file of KEY=value lines read by systemd at start, for secrets such as
        ANTHROPIC_API_KEY or HYPERHIVE_OPERATOR_TOKEN. Give it as a quoted
        absolute path string so that it never enters the Nix store.
      '';
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        HYPERHIVE_LOG_LEVEL = "DEBUG";
      };
      description = "Extra environment for the daemon (never put secrets here: it lands in the store).";
    };

    forwardEnv = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "HTTPS_PROXY" ];
      description = ''
        Names of further environment variables the daemon passes into every
        container (ANTHROPIC_* and CLAUDE_CODE_* always are); HYPERHIVE_FORWARD_ENV.
      '';
    };

    flakeUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = ''
        The hyperhive flake the per-agent container flakes import
        (HYPERHIVE_FLAKE_URL). The flake's own nixosModules.hive-c0re sets it to
        its source in the store, so containers run the same hyperhive as the host.
      '';
    };

    nat = {
      enable = mkOption {
        type = types.bool;
        default = usesContainers;
        defaultText = lib.literalExpression ''builtins.elem backend [ "auto" "nixos" ]'';
        description = ''
          NAT for the containers' private networks (the ve-* interfaces
          nixos-container creates), so agents reach the Claude API.
        '';
      };
      externalInterface = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "eth0";
        description = "The host's uplink for networking.nat.externalInterface (null: masquerade on any).";
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.environmentFile == null || builtins.substring 0 1 cfg.environmentFile == "/";
        message = "services.hive-c0re.environmentFile must be an absolute path, got ${toString cfg.environmentFile}";
      }
      {
        # user:password@ in the URL: a password in a Nix option is a password in the store.
        assertion = cfg.database == null || builtins.match "[a-z]+://[^/@]*:[^/@]*@.*" cfg.database == null;
        message = "services.hive-c0re.database must not carry a password (it would land in the Nix store): use a passfile or HYPERHIVE_DATABASE_URL in environmentFile";
      }
      # The containers' opt-in is written by the daemon into their flakes; the
      # host's own config is where the operator consents to it.
      (claudeCode // { assertion = !usesContainers || claudeCode.assertion; })
    ];

    boot.enableContainers = mkIf usesContainers true;
    nix.settings.experimental-features = [
      "nix-command"
      "flakes"
    ];

    networking.nat = mkIf cfg.nat.enable {
      enable = true;
      internalInterfaces = [ "ve-+" ];
      # Only when set: a null here would conflict with the operator's own value.
      externalInterface = mkIf (cfg.nat.externalInterface != null) cfg.nat.externalInterface;
    };
    # NetworkManager would otherwise try to manage the containers' veths.
    networking.networkmanager.unmanaged = mkIf cfg.nat.enable [ "interface-name:ve-*" ];

    systemd.tmpfiles.rules =
      lib.optional (stateDirectory == null) "d ${cfg.stateDir} 0700 root root -"
      ++ lib.optional (runtimeDirectory == null) "d ${cfg.runDir} 0700 root root -";

    systemd.services.hive-c0re = {
      description = "hyperhive core daemon";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [
        "network-online.target"
        "nix-daemon.socket"
      ]
      # A database on this very host must be up before the core opens it.
      ++ lib.optional (cfg.database != null && (config.services.postgresql.enable or false)) "postgresql.service";
      # What the backends and the config repos run; the unit's default PATH
      # (coreutils, findutils, grep, sed, systemd) comes on top.
      path = [
        cfg.package
        config.nix.package
        pkgs.nixos-container
        pkgs.git
        pkgs.util-linux
      ]
      ++ lib.optional usesBwrap pkgs.bubblewrap;
      environment = {
        # nix and git look for their caches and config under HOME; systemd sets
        # none for a unit without User=.
        HOME = "/root";
      }
      // lib.optionalAttrs (cfg.forwardEnv != [ ]) {
        HYPERHIVE_FORWARD_ENV = lib.concatStringsSep "," cfg.forwardEnv;
      }
      // lib.optionalAttrs (cfg.flakeUrl != null) { HYPERHIVE_FLAKE_URL = cfg.flakeUrl; }
      // lib.optionalAttrs (cfg.database != null) { HYPERHIVE_DATABASE_URL = cfg.database; }
      // cfg.environment;
      serviceConfig = {
        ExecStart = lib.escapeShellArgs (
          [
            "${cfg.package}/bin/hive-c0re"
            "serve"
            "--state-dir"
            cfg.stateDir
            "--run-dir"
            cfg.runDir
            "--listen"
            cfg.listen
            "--backend"
            cfg.backend
          ]
          ++ lib.optional (!cfg.manager) "--no-manager"
          ++ lib.optionals (cfg.hostName != null) [ "--host-name" cfg.hostName ]
          ++ lib.optionals (cfg.advertiseUrl != null) [ "--advertise-url" cfg.advertiseUrl ]
        );
        Restart = "on-failure";
        RestartSec = 5;
        # SIGTERM to the daemon alone lets it drain; whatever it started and
        # left behind gets SIGKILL when the timeout runs out. Containers are
        # units of their own (container@h-*) and outlive a daemon restart.
        KillMode = "mixed";
        # The cgroup is the daemon's to split: it moves itself to core/ and each
        # bwrap or process agent to agents/<name>, weighted below it
        # (hyperhive.backends.cpu_groups). nixos containers are units of their own.
        Delegate = "cpu";
        TimeoutStopSec = 90;
        UMask = "0077";
        # Every socket connection is a descriptor; the daemon sizes its connection
        # budget from this limit.
        LimitNOFILE = 65536;
        EnvironmentFile = mkIf (cfg.environmentFile != null) cfg.environmentFile;
        StateDirectory = mkIf (stateDirectory != null) stateDirectory;
        StateDirectoryMode = "0700";
        RuntimeDirectory = mkIf (runtimeDirectory != null) runtimeDirectory;
        RuntimeDirectoryMode = "0700";
        # The agents' socket directories are bind-mounted into running
        # containers; removing them on a daemon restart would cut those off.
        RuntimeDirectoryPreserve = "yes";
      };
    };
  };
}
