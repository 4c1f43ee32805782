# hyperhive as a Python application, built from pyproject.toml (setuptools).
# Name, version and the dependency list are read from pyproject.toml so the
# two cannot drift apart; tests/test_nix_packaging.py checks the mapping.
{ lib, python3Packages }:
let
  project = (builtins.fromTOML (builtins.readFile ../pyproject.toml)).project;
  ps = python3Packages;
  # "starlette>=0.40" -> "starlette": nixpkgs' attribute names are the PyPI names here.
  requirementName = spec: builtins.head (builtins.match "([A-Za-z0-9_.-]+).*" spec);
  dependency =
    name:
    ps.${name} or (throw ''
      hyperhive needs the Python package ${name}, which this nixpkgs lacks
      (python3Packages.${name}); use nixos-25.11 or newer, or add it with
      nixpkgs.overlays = [ (final: prev: { pythonPackagesExtensions =
        prev.pythonPackagesExtensions ++ [ (pyFinal: pyPrev: { ${name} = ...; }) ]; }) ];'');
in
ps.buildPythonApplication {
  pname = project.name;
  inherit (project) version;
  pyproject = true;

  # Only what the wheel is built from, so editing tests or docs rebuilds nothing.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../pyproject.toml
      ../README.md
      ../src
    ];
  };

  build-system = [ ps.setuptools ];
  dependencies = map (spec: dependency (requirementName spec)) project.dependencies;

  # The test suite needs a browser, bubblewrap and nix itself; it runs from
  # the dev shell in CI, not in the build sandbox.
  doCheck = false;
  pythonImportsCheck = [
    "hyperhive"
    "hyperhive.daemons.c0re"
    "hyperhive.daemons.ag3nt"
    "hyperhive.daemons.m1nd"
  ];

  meta = {
    inherit (project) description;
    license = lib.licenses.mit;
    mainProgram = "hive-c0re";
    platforms = lib.platforms.linux;
  };
}
