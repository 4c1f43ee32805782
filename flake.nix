{
  description = "hyperhive: a swarm of Claude Code agents on one Linux host";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: {
        default = pkgs.callPackage ./nix/package.nix { };
      });

      nixosModules = {
        # The host: hive-c0re as a systemd service. The containers it builds
        # import this very flake (its store copy), so both run the same code.
        hive-c0re =
          { lib, ... }:
          {
            imports = [ ./nix/modules/hive-c0re.nix ];
            services.hive-c0re.flakeUrl = lib.mkDefault "path:${self}";
          };
        # Inside each agent container; the per-agent flakes import it.
        hive-agent = ./nix/modules/hive-agent.nix;
        default = self.nixosModules.hive-c0re;
      };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.python311
            pkgs.git
            pkgs.bubblewrap
            pkgs.nix
          ];
          # The project's own venv, as CI builds it: pip install -e '.[test]'.
          shellHook = ''
            if [ ! -x .venv/bin/python ]; then
              python3.11 -m venv .venv && .venv/bin/pip install -q -e '.[test]'
            fi
            export PATH="$PWD/.venv/bin:$PATH"
          '';
        };
      });

      checks = nixpkgs.lib.genAttrs systems (
        system: import ./nix/checks.nix { inherit self nixpkgs system; }
      );
    };
}
