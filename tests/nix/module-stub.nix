# The stub module system tests/test_nix_packaging.py evaluates hyperhive's
# flake and NixOS modules with, offline (its docstring says what it vouches
# for). `repo` is the checkout's absolute path, given with --argstr.
{ repo }:
let
  inherit (builtins)
    isAttrs isList isFunction isPath isString isBool isInt attrNames attrValues
    concatMap filter foldl' elem all any match replaceStrings listToAttrs;

  mkDrv = name: extra: {
    type = "derivation";
    inherit name;
    pname = (builtins.parseDrvName name).name;
    outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";
    meta = { };
  } // extra;

  lib = rec {
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = what: mkOption { type = types.bool; default = false; description = what; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    types = rec {
      mk = name: check: { inherit name check; };
      bool = mk "boolean" isBool;
      str = mk "string" isString;
      int = mk "integer" isInt;
      package = mk "package" (v: isAttrs v && (v.type or null) == "derivation");
      enum = values: mk "one of ${builtins.concatStringsSep ", " values}" (v: elem v values);
      strMatching = re: mk "string matching ${re}" (v: isString v && match re v != null);
      nullOr = t: mk "null or ${t.name}" (v: v == null || t.check v);
      listOf = t: mk "list of ${t.name}" (v: isList v && all t.check v);
      attrsOf = t: mk "attribute set of ${t.name}" (v: isAttrs v && all t.check (attrValues v));
    };
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    optionalAttrs = cond: set: if cond then set else { };
    genAttrs = names: f: listToAttrs (map (name: { inherit name; value = f name; }) names);
    getName = pkg: pkg.pname or (builtins.parseDrvName pkg.name).name;
    concatStringsSep = builtins.concatStringsSep;
    # nixpkgs' escapeShellArg, verbatim in behaviour.
    escapeShellArg = arg:
      let s = toString arg; in
      if match "[[:alnum:],._+:@%/-]+" s == null
      then "'${replaceStrings [ "'" ] [ "'\\''" ] s}'" else s;
    escapeShellArgs = args: builtins.concatStringsSep " " (map escapeShellArg args);
    hasInfix = infix: s: match ".*${infix}.*" s != null;
    fileset = {
      unions = files: files;
      toSource = { root, fileset }:
        { outPath = "/nix/store/00000000-source"; inherit root fileset; };
    };
    licenses.mit = { shortName = "mit"; free = true; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };

  pkgs = rec {
    inherit lib;
    config = { };
    callPackage = fn: args:
      let f = if isFunction fn then fn else import fn;
      in f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // args);
    python3Packages = {
      buildPythonApplication = args:
        mkDrv "${args.pname}-${args.version}"
          { inherit (args) pname version meta; passthru = args; };
      setuptools = mkDrv "setuptools-80.9.0" { };
      starlette = mkDrv "starlette-0.47.2" { };
      uvicorn = mkDrv "uvicorn-0.35.0" { };
      claude-agent-sdk = mkDrv "claude-agent-sdk-0.1.44" { };
      mcp = mkDrv "mcp-1.12.4" { };
      httpx = mkDrv "httpx-0.28.1" { };
      h11 = mkDrv "h11-0.16.0" { };
      prometheus-client = mkDrv "prometheus-client-0.22.1" { };
      psycopg = mkDrv "psycopg-3.2.9" { };
    };
    claude-code = mkDrv "claude-code-2.0.0"
      { meta.license = { shortName = "unfree"; free = false; }; };
    nix = mkDrv "nix-2.28.4" { };
    nixos-container = mkDrv "nixos-container" { };
    git = mkDrv "git-2.51.0" { };
    util-linux = mkDrv "util-linux-2.41" { };
    bubblewrap = mkDrv "bubblewrap-0.11.0" { };
    bash = mkDrv "bash-5.3" { };
    ripgrep = mkDrv "ripgrep-14.1.1" { };
    python311 = mkDrv "python3-3.11.13" { };
    mkShell = args: mkDrv "nix-shell" { passthru = args; };
    runCommand = name: env: script: mkDrv name { };
  };

  isOption = v: isAttrs v && (v._type or null) == "option";
  isPlainAttrs = v: isAttrs v && !(v ? _type) && !(v ? outPath);
  showPath = builtins.concatStringsSep ".";
  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];

  # mkIf / mkMerge / mkOverride unwrapped into plain definitions, each with the
  # conjunction of its conditions (left unevaluated) and its priority, so that
  # attribute names never depend on a condition: what keeps config lazy.
  expand = def:
    let v = def.value; kind = if isAttrs v then v._type or null else null; in
    if kind == "if" then expand (def // { cond = def.cond && v.condition; value = v.content; })
    else if kind == "merge" then concatMap (c: expand (def // { value = c; })) v.contents
    else if kind == "override" then expand (def // { prio = v.priority; value = v.content; })
    else [ def ];

  mergeValues = path: values:
    if builtins.length values == 1 then builtins.head values
    else if all isList values then builtins.concatLists values
    else if all isPlainAttrs values then foldl' (a: b: a // b) { } values
    else if all (v: v == builtins.head values) values then builtins.head values
    else throw "The option `${showPath path}' has conflicting definition values.";

  leaf = path: opt: defs:
    let
      active = filter (d: d.cond) defs;
      best = foldl' (m: d: if d.prio < m then d.prio else m) 10000 active;
      value =
        if active == [ ] then
          (if opt ? default then opt.default
           else throw "The option `${showPath path}' is used but not defined.")
        else mergeValues path (map (d: d.value) (filter (d: d.prio == best) active));
    in
    if opt ? type && !(opt.type.check value)
    then throw "A definition for option `${showPath path}' is not of type `${opt.type.name}'."
    else value;

  # prune drops undeclared attributes whose every definition is switched off:
  # the finished config, as the real module system would show it.
  merge = prune: path: decls: defs0:
    let defs = concatMap expand defs0; in
    if isOption decls then leaf path decls defs
    else if decls == null && !(all (d: isPlainAttrs d.value) defs) then leaf path { } defs
    else
      let
        declared = if decls == null then { } else decls;
        attrDefs = filter (d: isPlainAttrs d.value) defs;
        closed = path != [ ] && any isOption (attrValues declared);
        names = unique (attrNames declared ++ concatMap (d: attrNames d.value) attrDefs);
        sub = n: concatMap
          (d: if d.value ? ${n} then [ (d // { value = d.value.${n}; }) ] else [ ])
          attrDefs;
        check = n:
          if closed && !(declared ? ${n})
          then throw "The option `${showPath (path ++ [ n ])}' does not exist."
          else n;
        live = n: declared ? ${n} || any (d: d.cond) (concatMap expand (sub n));
      in
      listToAttrs (map
        (n: {
          name = check n;
          value = merge prune (path ++ [ n ]) (declared.${n} or null) (sub n);
        })
        (if prune then filter live names else names));

  mergeDecls = a: b:
    if isOption a || isOption b then throw "an option is declared twice"
    else a // builtins.mapAttrs (n: v: if a ? ${n} then mergeDecls a.${n} v else v) b;

  evalModules = { modules, pkgsFor }:
    let
      args = { inherit lib config; pkgs = pkgsFor config; };
      load = m:
        let
          v0 = if isPath m || isString m then import m else m;
          v = if isFunction v0
              then v0 (builtins.mapAttrs (n: _: args.${n}) (builtins.functionArgs v0))
              else v0;
          shorthand = !(v ? config || v ? options);
        in {
          imports = v.imports or [ ];
          options = v.options or { };
          config = if shorthand then removeAttrs v [ "imports" "_file" "key" ] else v.config or { };
        };
      collect = ms: concatMap (m: let l = load m; in [ l ] ++ collect l.imports) ms;
      loaded = collect modules;
      decls = foldl' mergeDecls { } (map (l: l.options) loaded);
      defs = map (l: { cond = true; prio = 100; value = l.config; }) loaded;
      config = merge false [ ] decls defs;
    in {
      inherit config;
      final = merge true [ ] decls defs;
    };

  # What every NixOS system has that the hyperhive modules read.
  base = { pkgs, lib, ... }: {
    options.assertions = lib.mkOption {
      type = lib.types.listOf (lib.types.mk "assertion" isAttrs);
      default = [ ];
    };
    config = {
      nix.package = lib.mkDefault pkgs.nix;
      nixpkgs.config = lib.mkDefault { };
    };
  };

  nixosSystem = { system, modules, ... }:
    let
      evaluated = evalModules {
        modules = [ base ] ++ modules;
        # pkgs is instantiated with the system's own nixpkgs.config, as in NixOS.
        pkgsFor = config: pkgs // { config = config.nixpkgs.config; inherit system; };
      };
    in { inherit system; config = evaluated.final; };

  nixpkgs = {
    lib = lib // { inherit nixosSystem; };
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (_: pkgs);
  };

  flake = import (/. + repo + "/flake.nix");
  # The flake's own outputs, with itself as `self` the way flakes see it.
  hyperhive = flake.outputs {
    self = hyperhive // { outPath = "/nix/store/00000000-hyperhive-source"; };
    inherit nixpkgs;
  };

  failed = config: map (a: a.message) (filter (a: !a.assertion) config.assertions);
  names = map lib.getName;
in {
  inherit lib pkgs nixpkgs nixosSystem hyperhive flake failed names;
  host = modules: (nixosSystem {
    system = "x86_64-linux";
    modules = [ hyperhive.nixosModules.hive-c0re ] ++ modules;
  }).config;
  agent = modules: (nixosSystem {
    system = "x86_64-linux";
    modules = [ hyperhive.nixosModules.hive-agent ] ++ modules;
  }).config;
}
