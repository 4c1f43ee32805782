# `nix flake check`: the package builds, and both modules evaluate inside a
# real NixOS system to their systemd units with every assertion holding,
# while the agent module's unfree assertion fires without the opt-in.
# These need nixpkgs itself; tests/test_nix_packaging.py checks the same
# modules offline against stubs.
{
  self,
  nixpkgs,
  system,
}:
let
  pkgs = nixpkgs.legacyPackages.${system};
  inherit (nixpkgs) lib;
  allowClaude = {
    nixpkgs.config.allowUnfreePredicate = pkg: builtins.elem (lib.getName pkg) [ "claude-code" ];
  };
  evalSystem =
    modules:
    (lib.nixosSystem {
      inherit system;
      modules = [
        {
          boot.isContainer = true;
          system.stateVersion = "25.11";
        }
      ]
      ++ modules;
    }).config;
  failed = config: map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  # The unit file, built only when the system's assertions hold.
  unitOf =
    config: name:
    let
      errors = failed config;
    in
    if errors == [ ] then
      config.systemd.units."${name}.service".unit
    else
      throw (builtins.concatStringsSep "\n" errors);
  host = evalSystem [
    self.nixosModules.hive-c0re
    allowClaude
    { services.hive-c0re.enable = true; }
  ];
  agent = evalSystem [
    self.nixosModules.hive-agent
    allowClaude
    {
      services.hive-agent = {
        enable = true;
        name = "alice";
        network = false;
      };
    }
  ];
  withoutOptIn = evalSystem [
    self.nixosModules.hive-agent
    {
      services.hive-agent = {
        enable = true;
        name = "alice";
      };
    }
  ];
in
{
  package = self.packages.${system}.default;
  hive-c0re-unit = unitOf host "hive-c0re";
  hive-agent-unit = unitOf agent "hive-agent";
  unfree-assertion =
    assert lib.any (lib.hasInfix "allowUnfreePredicate") (failed withoutOptIn);
    pkgs.runCommand "hive-agent-unfree-assertion" { } "touch $out";
}
