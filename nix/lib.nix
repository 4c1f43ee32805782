# Pure helpers shared by the NixOS modules, written with builtins only so the
# tests can evaluate them with nothing but `nix-instantiate` (no nixpkgs).
rec {
  # nixpkgs' lib.getName: what an allowUnfreePredicate usually compares.
  getName = pkg: pkg.pname or (builtins.parseDrvName pkg.name).name;

  # nixpkgs' check-meta rule for "unfree": any license with free = false.
  # A string license is not judged, as check-meta does not judge it either.
  isUnfree =
    license:
    if builtins.isAttrs license then
      !(license.free or true)
    else if builtins.isList license then
      builtins.any isUnfree license
    else
      false;

  # Whether this nixpkgs config lets `pkg` evaluate, by the same rule
  # check-meta applies (allowUnfree, NIXPKGS_ALLOW_UNFREE=1 in impure
  # evaluation, allowUnfreePackages by name where nixpkgs has it,
  # allowUnfreePredicate). Mirrored rather than probed with
  # tryEval so that the assertion can explain itself before anything throws.
  unfreeAllowed =
    nixpkgsConfig: pkg:
    !(isUnfree (pkg.meta.license or [ ]))
    || (nixpkgsConfig.allowUnfree or false)
    || builtins.getEnv "NIXPKGS_ALLOW_UNFREE" == "1"
    || builtins.elem (getName pkg) (nixpkgsConfig.allowUnfreePackages or [ ])
    || (nixpkgsConfig.allowUnfreePredicate or (_: false)) pkg;

  # What the operator adds; the assertions quote it verbatim.
  unfreeSnippet = ''
    nixpkgs.config.allowUnfreePredicate =
      pkg: builtins.elem (lib.getName pkg) [ "claude-code" ];'';

  # A NixOS assertion: claude-code must be allowed by the operator's own
  # nixpkgs config; hyperhive never allows it for them.
  claudeCodeAssertion =
    {
      nixpkgsConfig,
      package,
      where,
    }:
    {
      assertion = unfreeAllowed nixpkgsConfig package;
      message = ''
        hyperhive: claude-code is unfree and ${where} does not allow it.
        hyperhive never allows unfree packages for you; opt in for this one package by adding

        ${unfreeSnippet}

        to ${where} (or set nixpkgs.config.allowUnfree = true, your call).'';
    };

  # "/var/lib/hyperhive" -> "hyperhive" when the path lies under `base`, so
  # systemd's StateDirectory=/RuntimeDirectory= can own it; null otherwise.
  systemdDirectory =
    base: path:
    let
      prefix = base + "/";
      rest = builtins.substring (builtins.stringLength prefix) (-1) path;
    in
    if builtins.substring 0 (builtins.stringLength prefix) path == prefix && rest != "" then
      rest
    else
      null;
}
