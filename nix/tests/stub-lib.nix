# A tiny stand-in for nixpkgs' `lib`, just enough to evaluate nix/installer.nix, nix/package.nix
# and flake.nix offline with Debian's nix-instantiate (no nixpkgs here). Semantics follow nixpkgs
# where the module relies on them; anything the module does not use is absent on purpose, so a
# new dependency on lib shows up as a failing check rather than passing silently.
let
  inherit (builtins) all any attrNames concatLists concatMap elem filter foldl' head isAttrs
    isBool isList isPath isString dirOf length listToAttrs replaceStrings substring stringLength
    toString typeOf;

  isDerivation = v: isAttrs v && (v.type or null) == "derivation";

  mkType = name: check: { inherit name check; _type = "option-type"; };

  types = {
    str = mkType "string" isString;
    bool = mkType "boolean" isBool;
    # As in nixpkgs: anything that coerces to a string starting with "/" (path values,
    # absolute strings, derivations).
    path = mkType "path" (v:
      (isPath v || isString v || isDerivation v) && substring 0 1 (toString v) == "/");
    # As in nixpkgs: a derivation (checked first, without forcing it) or a store path string.
    package = mkType "package" (v: isDerivation v
      || ((isString v || isPath v) && substring 0 1 (toString v) == "/"
          && dirOf (toString v) == builtins.storeDir));
    enum = values: mkType "one of ${builtins.toJSON values}" (v: elem v values);
    nullOr = t: mkType "null or ${t.name}" (v: v == null || t.check v);
    either = a: b: mkType "${a.name} or ${b.name}" (v: a.check v || b.check v);
    oneOf = ts: mkType (builtins.concatStringsSep " or " (map (t: t.name) ts)) (v: any (t: t.check v) ts);
  };
in
rec {
  inherit types isDerivation;

  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption {
    type = types.bool;
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
  };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  literalExpression = text: { _type = "literalExpression"; inherit text; };

  hasPrefix = pre: s: substring 0 (stringLength pre) s == pre;
  optional = c: x: if c then [ x ] else [ ];
  optionals = c: xs: if c then xs else [ ];
  optionalAttrs = c: as: if c then as else { };
  concatStringsSep = builtins.concatStringsSep;
  genAttrs = names: f: listToAttrs (map (n: { name = n; value = f n; }) names);
  # The always-quoting form (older nixpkgs); newer nixpkgs leaves safe words bare.
  escapeShellArg = arg: "'${replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
  escapeShellArgs = args: concatStringsSep " " (map escapeShellArg args);
  getExe' = pkg: bin: "${pkg}/bin/${bin}";
  importTOML = path: builtins.fromTOML (builtins.readFile path);

  # Source filtering is checked through its filter function, which the stub keeps.
  cleanSource = src: { _type = "cleanSource"; inherit src; };
  cleanSourceWith = { src, filter, name ? "source" }: { _type = "cleanSourceWith"; inherit src filter; };

  licenses = { mit = { spdxId = "MIT"; }; asl20 = { spdxId = "Apache-2.0"; }; };
  platforms = { linux = [ "x86_64-linux" "aarch64-linux" ]; };

  # ---- a minimal module evaluator: one module, its own options, user values ----

  # The option tree with user values checked against their types and defaults filled in.
  # Unknown user attributes are an error, as in NixOS.
  resolveOptions = prefix: opts: user:
    let
      unknown = filter (n: !(opts ? ${n})) (attrNames user);
    in
    if unknown != [ ] then
      throw "The option `${prefix}.${head unknown}' does not exist."
    else
      builtins.mapAttrs
        (n: o:
          let path = if prefix == "" then n else "${prefix}.${n}"; in
          if (o._type or null) == "option" then
            (if user ? ${n} then
              (if o.type.check user.${n} then user.${n}
               else throw "The option `${path}' is not of type `${o.type.name}'.")
            else if o ? default then o.default
            else throw "The option `${path}' is used but not defined.")
          else resolveOptions path o (user.${n} or { }))
        opts;

  # A module's `config` with mkIf/mkMerge pushed down and merged: attrsets by attribute, lists by
  # concatenation, anything else must agree.
  flattenDefs = v:
    if isAttrs v && (v._type or null) == "if" then (if v.condition then flattenDefs v.content else [ ])
    else if isAttrs v && (v._type or null) == "merge" then concatMap flattenDefs v.contents
    else [ v ];

  mergeDefs = path: defs0:
    let defs = concatMap flattenDefs defs0; in
    if defs == [ ] then null
    else if all (d: isAttrs d && !isDerivation d) defs then
      let names = foldl' (acc: d: acc ++ filter (n: !(elem n acc)) (attrNames d)) [ ] defs; in
      listToAttrs (map
        (n: { name = n; value = mergeDefs "${path}.${n}" (concatMap (d: if d ? ${n} then [ d.${n} ] else [ ]) defs); })
        (filter (n: any (d: d ? ${n} && flattenDefs d.${n} != [ ]) defs) names))
    else if all isList defs then concatLists defs
    else if all (d: d == head defs) defs then head defs
    else throw "conflicting definitions for ${path}";

  # Evaluates `module` (a path or function) with user settings `user` for the option tree under
  # the module's `options`; `pkgs` is whatever stub the caller provides.
  evalModule = { module, user, pkgs }:
    let
      fn = if isPath module || isString module then import module else module;
      result = fn { inherit config pkgs; lib = lib'; };
      lib' = import ./stub-lib.nix;
      config = resolveOptions "" result.options user;
      merged = mergeDefs "config" [ result.config ];
    in
    {
      options = result.options;
      inherit config;
      out = if merged == null then { } else merged;
    };
}
