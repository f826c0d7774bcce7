# The stand-in module system: option types, mkIf/mkMerge and evalModules, after nixpkgs'
# lib/types.nix and lib/modules.nix. Like NixOS, mkIf and mkMerge are pushed down into attribute
# sets before any condition is evaluated, so a module's `config` may read `config`; definitions
# are type-checked, merged by type, and a definition for an undeclared option under a declared
# option set is an error. Where nixpkgs declares an option this stand-in does not (most of
# NixOS), definitions merge freely: attribute sets by attribute, lists by concatenation.
{ lib }:

let
  inherit (builtins) all any attrNames concatLists concatMap elem filter foldl' head isAttrs
    isBool isFunction isInt isList isPath isString length listToAttrs match typeOf;

  isOption = v: isAttrs v && (v._type or null) == "option";
  isIf = d: isAttrs d && (d._type or null) == "if";
  isMerge = d: isAttrs d && (d._type or null) == "merge";
  isPlainAttrs = d: isAttrs d && !(lib.isDerivation d) && !(d ? _type);

  mkType = attrs: { _type = "option-type"; merge = mergeEqual; } // attrs;

  showLoc = builtins.concatStringsSep ".";

  # As nixpkgs' mergeEqualOption: one definition is taken as it is (never compared, which
  # would force a derivation's outPath).
  mergeEqual = loc: defs:
    if length defs == 1 then head defs
    else if all (d: d == head defs) defs then head defs
    else throw "The option `${showLoc loc}' has conflicting definition values.";

  # The definitions for attribute `n` inside definition `d`, with mkIf/mkMerge pushed down
  # (no condition evaluated).
  pushAttr = n: d:
    if isIf d then map (c: { _type = "if"; condition = d.condition; content = c; }) (pushAttr n d.content)
    else if isMerge d then concatMap (pushAttr n) d.contents
    else if isPlainAttrs d && d ? ${n} then [ d.${n} ]
    else [ ];
  defNames = d:
    if isIf d then defNames d.content
    else if isMerge d then concatMap defNames d.contents
    else if isPlainAttrs d then attrNames d
    else [ ];
  # A definition with its conditions evaluated: the list of values it contributes.
  discharge = d:
    if isIf d then (if d.condition then discharge d.content else [ ])
    else if isMerge d then concatMap discharge d.contents
    else [ d ];

  types = rec {
    str = mkType { name = "str"; description = "string"; check = isString; };
    bool = mkType { name = "bool"; description = "boolean"; check = isBool; };
    int = mkType { name = "int"; description = "signed integer"; check = isInt; };
    ints = {
      unsigned = mkType { name = "unsignedInt"; description = "unsigned integer, meaning >=0"; check = v: isInt v && v >= 0; };
      positive = mkType { name = "positiveInt"; description = "positive integer, meaning >0"; check = v: isInt v && v > 0; };
    };
    # As nixpkgs: anything string-like whose string form starts with "/".
    path = mkType {
      name = "path"; description = "path";
      check = v: lib.isStringLike v && builtins.substring 0 1 (toString v) == "/";
    };
    # As nixpkgs: a derivation (recognised without forcing it) or a store path.
    package = mkType {
      name = "package"; description = "package";
      check = v: lib.isDerivation v || lib.isStorePath v;
    };
    strMatching = pattern: mkType {
      name = "strMatching ${builtins.toJSON pattern}";
      description = "string matching the pattern ${pattern}";
      check = v: isString v && match pattern v != null;
    };
    lines = mkType {
      name = "lines"; description = "strings concatenated with \"\\n\""; check = isString;
      merge = loc: defs: builtins.concatStringsSep "\n" defs;
    };
    enum = values: mkType {
      name = "enum";
      description = "one of ${builtins.concatStringsSep ", " (map builtins.toJSON values)}";
      check = v: elem v values;
    };
    nullOr = t: mkType {
      name = "nullOr"; description = "null or ${t.description}";
      check = v: v == null || t.check v;
      merge = loc: defs:
        if all (d: d == null) defs then null
        else if any (d: d == null) defs then throw "The option `${showLoc loc}' is defined both null and not null."
        else t.merge loc defs;
    };
    either = a: b: mkType {
      name = "either"; description = "${a.description} or ${b.description}";
      check = v: a.check v || b.check v;
    };
    oneOf = ts: if ts == [ ] then throw "types.oneOf needs at least one type" else foldl' either (head ts) (builtins.tail ts);
    listOf = t: mkType {
      name = "listOf"; description = "list of ${t.description}";
      check = isList;
      merge = loc: defs: concatLists defs;
    };
    attrsOf = t: mkType {
      name = "attrsOf"; description = "attribute set of ${t.description}";
      check = isAttrs;
      merge = loc: defs:
        let
          names = lib.unique (concatMap attrNames defs);
          elemDefs = n: concatMap (d: if d ? ${n} then discharge d.${n} else [ ]) defs;
          present = filter (n: elemDefs n != [ ]) names;
        in
        listToAttrs (map (n: { name = n; value = mergeDefs t (loc ++ [ n ]) (elemDefs n); }) present);
    };
    attrs = mkType {
      name = "attrs"; description = "attribute set"; check = isAttrs;
      merge = loc: foldl' (a: b: a // b) { };
    };
    anything = mkType {
      name = "anything"; description = "anything"; check = _: true;
      merge = loc: defs: freeform loc defs;
    };
    submodule = opts: mkType {
      name = "submodule"; description = "submodule"; check = isAttrs;
      # `opts` is a function of the submodule's name (the attribute it is under) and config.
      merge = loc: defs:
        let
          decl = opts { name = lib.last loc; inherit config; };
          config = resolve loc decl.options (defs ++ [ (decl.config or { }) ]);
        in
        config;
    };
  };

  # Definitions of one option: type-checked after their conditions are evaluated, then merged.
  mergeDefs = type: loc: defs:
    let bad = filter (d: !(type.check d)) defs; in
    if bad != [ ] then
      throw "A definition for option `${showLoc loc}' is not of type `${type.description}'. Definition values: ${builtins.toJSON (map valueText bad)}"
    else type.merge loc defs;
  valueText = v: if lib.isDerivation v then "<derivation ${v.name}>" else if isFunction v then "<function>" else if isPath v then toString v else v;

  mergeOption = loc: opt: defs:
    let values = concatMap discharge defs; in
    if values == [ ] then
      (if opt ? default then opt.default
       else throw "The option `${showLoc loc}' is used but not defined.")
    else mergeDefs opt.type loc values;

  # Values for an option set. A set that declares options itself refuses unknown names, as
  # NixOS does; other sets (those this stand-in does not declare) merge freely.
  resolve = loc: opts: defs:
    let
      strict = loc != [ ] && any (n: isOption opts.${n}) (attrNames opts);
      names = lib.unique (attrNames opts ++ concatMap defNames defs);
      value = n:
        let sub = concatMap (pushAttr n) defs; l = loc ++ [ n ]; in
        if opts ? ${n} then
          (if isOption opts.${n} then mergeOption l opts.${n} sub else resolve l opts.${n} sub)
        else if strict then throw "The option `${showLoc l}' does not exist."
        else freeform l sub;
    in
    listToAttrs (map (n: { name = n; value = value n; }) names);

  # Undeclared definitions: attribute sets merge by attribute (leaving out those whose every
  # definition is switched off), lists concatenate, anything else must agree.
  freeform = loc: defs:
    let values = concatMap discharge defs; in
    if values == [ ] then null
    else if all isPlainAttrs values then
      let
        names = lib.unique (concatMap attrNames values);
        sub = n: concatMap (d: if d ? ${n} then discharge d.${n} else [ ]) values;
      in
      listToAttrs (map (n: { name = n; value = freeform (loc ++ [ n ]) (sub n); }) (filter (n: sub n != [ ]) names))
    else if all isList values then concatLists values
    else mergeEqual loc values;

  mergeOptionDecls = a: b:
    listToAttrs (map
      (n: {
        name = n;
        value =
          if !(a ? ${n}) then b.${n}
          else if !(b ? ${n}) then a.${n}
          else if isOption a.${n} || isOption b.${n} then throw "The option `${n}' is declared twice."
          else mergeOptionDecls a.${n} b.${n};
      })
      (lib.unique (attrNames a ++ attrNames b)));

  # A module (path, function or attribute set) with its imports, as { options; config; }s.
  collect = args: m:
    let
      file = if isPath m || isString m then toString m else "<unknown-file>";
      f = if isPath m || isString m then import m else m;
      v = if isFunction f then f args else f;
      structured = v ? options || v ? config;
      own = {
        inherit file;
        options = v.options or { };
        config = if structured then v.config or { } else removeAttrs v [ "_file" "key" "imports" "meta" ];
      };
    in
    if !(isAttrs v) then throw "module ${file} must be a function or an attribute set"
    else [ own ] ++ concatMap (collect args) (v.imports or [ ]);
in
{
  inherit types;
  last = l: builtins.elemAt l (length l - 1);

  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: lib.mkOption {
    type = types.bool;
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
  };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };

  # As nixpkgs' evalModules: { config; options; }.
  evalModules = { modules, specialArgs ? { } }:
    let
      args = specialArgs // { inherit config options lib; };
      collected = concatMap (collect args) modules;
      options = foldl' mergeOptionDecls { } (map (m: m.options) collected);
      config = resolve [ ] options (map (m: m.config) collected);
    in
    { inherit config options; };
}
