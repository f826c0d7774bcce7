# The stand-in module system, after nixpkgs' lib/modules.nix, lib/options.nix and lib/types.nix
# (the semantics, not the code): every definition must match a declared option (or the
# evaluation's freeformType); mkIf/mkMerge are pushed down without evaluating conditions;
# priorities (mkOverride, mkDefault, mkForce, mkImageMediaOverride, option defaults at 1500)
# keep only the highest-priority definitions of an option; mkOrder/mkBefore/mkAfter sort list
# definitions; `apply` is applied to the merged value; types merge `{ file; value; }`
# definitions; submodules are module evaluations of their own, whose modules get `name`,
# `config`, `options`, `lib` and `_module.args`. nix/tests/differential.nix compares it with the
# real lib on the inputs vault's Nix files and tests use.
{ lib }:

let
  inherit (builtins) all any attrNames concatLists concatMap concatStringsSep elem filter
    foldl' functionArgs head isAttrs isBool isFunction isInt isList isPath isString length
    listToAttrs mapAttrs match removeAttrs seq sort tail typeOf;

  isOption = v: isAttrs v && (v._type or null) == "option";
  isType = t: v: isAttrs v && (v._type or null) == t;

  # ---- properties ----
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  mkOrder = priority: content: { _type = "order"; inherit priority content; };
  defaultOverridePriority = 100;
  defaultOrderPriority = 1000;

  dischargeProperties = def:
    if isType "merge" def then concatMap dischargeProperties def.contents
    else if isType "if" def then
      (if !(isBool def.condition) then throw "mkIf called with a non-Boolean condition"
       else if def.condition then dischargeProperties def.content else [ ])
    else [ def ];

  pushDownProperties = cfg:
    if isType "merge" cfg then concatMap pushDownProperties cfg.contents
    else if isType "if" cfg then map (mapAttrs (n: v: mkIf cfg.condition v)) (pushDownProperties cfg.content)
    else if isType "override" cfg then map (mapAttrs (n: v: mkOverride cfg.priority v)) (pushDownProperties cfg.content)
    else [ cfg ];

  getPrio = def: if isType "override" def.value then def.value.priority else defaultOverridePriority;
  filterOverrides = defs:
    let
      highestPrio = foldl' (p: d: let q = getPrio d; in if q < p then q else p) 9999 defs;
      strip = def: if isType "override" def.value then def // { value = def.value.content; } else def;
    in
    { inherit highestPrio; values = concatMap (d: if getPrio d == highestPrio then [ (strip d) ] else [ ]) defs; };

  sortProperties = defs:
    let
      strip = def:
        if isType "order" def.value then def // { value = def.value.content; inherit (def.value) priority; }
        else def;
    in
    sort (a: b: (a.priority or defaultOrderPriority) < (b.priority or defaultOrderPriority)) (map strip defs);

  # ---- showing options and definitions in errors ----
  showOption = parts: concatStringsSep "." (map
    (p: if p == "*" || match "<.*>" p != null || match "[a-zA-Z_][a-zA-Z0-9_'-]*" p != null then p else builtins.toJSON p)
    parts);
  showValue = v:
    if isString v then builtins.toJSON v
    else if isPath v then toString v
    else if lib.isDerivation v then "<derivation ${v.name or "?"}>"
    else if isFunction v then "<function>"
    else if isAttrs v then "{ ${concatStringsSep " " (map (n: "${n} = …;") (attrNames v))} }"
    else if isList v then "[ … ]"
    else builtins.toJSON v;
  showDefs = defs: concatStringsSep "" (map (d: "\n- In `${d.file}': ${showValue d.value}") defs);
  showFiles = files: concatStringsSep ", " (map (f: "`${f}'") files);

  # ---- merge functions (lib/options.nix) ----
  getValues = map (d: d.value);
  mergeEqualOption = loc: defs:
    if defs == [ ] then abort "This case should never happen."
    else if length defs == 1 then (head defs).value
    else (foldl'
      (first: def:
        if def.value != first.value then
          throw "The option `${showOption loc}' has conflicting definition values:${showDefs [ first def ]}"
        else first)
      (head defs) (tail defs)).value;
  mergeUniqueOption = { message }: loc: defs:
    if length defs == 1 then (head defs).value
    else throw "The option `${showOption loc}' is defined multiple times while it's expected to be unique.\n${message}\nDefinition values:${showDefs defs}";
  mergeOneOption = mergeUniqueOption { message = ""; };
  mergeDefaultOption = loc: defs:
    let list = getValues defs; in
    if length list == 1 then head list
    else if all isFunction list then x: mergeDefaultOption loc (map (f: f x) list)
    else if all isList list then concatLists list
    else if all isAttrs list then foldl' (a: b: a // b) { } list
    else if all isBool list then any (x: x) list
    else if all isString list then concatStringsSep "" list
    else if all isInt list && all (x: x == head list) list then head list
    else throw "Cannot merge definitions of `${showOption loc}'. Definition values:${showDefs defs}";

  # One option's definitions ({ file; value; }): properties discharged, overrides filtered,
  # order sorted, checked by the type, merged.
  mergeDefinitions = loc: type: defs:
    let
      defs' = concatMap (m: map (value: { inherit (m) file; inherit value; }) (dischargeProperties m.value)) defs;
      filtered = filterOverrides defs';
      final =
        if any (d: isType "order" d.value) filtered.values then sortProperties filtered.values
        else filtered.values;
      isDefined = final != [ ];
      invalid = filter (d: !(type.check d.value)) final;
      mergedValue =
        if !isDefined then
          throw "The option `${showOption loc}' was accessed but has no value defined. Try setting the option."
        else if invalid != [ ] then
          throw "A definition for option `${showOption loc}' is not of type `${type.description}'. Definition values:${showDefs invalid}"
        else type.merge loc final;
    in
    {
      inherit isDefined mergedValue;
      inherit (filtered) highestPrio;
      defsFinal = final;
      optionalValue = if isDefined then { value = mergedValue; } else { };
    };

  evalOptionValue = loc: opt: defs:
    let
      defs' = lib.optional (opt ? default) { file = head (opt.declarations or [ "<unknown-file>" ]); value = mkOverride 1500 opt.default; } ++ defs;
      res = mergeDefinitions loc opt.type defs';
    in
    opt // {
      value = if opt ? apply then opt.apply res.mergedValue else res.mergedValue;
      inherit (res) isDefined highestPrio;
      definitions = map (d: d.value) res.defsFinal;
      files = map (d: d.file) res.defsFinal;
      definitionsWithLocations = res.defsFinal;
    };

  # ---- types ----
  mkOptionType =
    { name
    , description ? name
    , check ? (_: true)
    , merge ? mergeDefaultOption
    , getSubModules ? null
    , substSubModules ? null
    , nestedTypes ? { }
    , ...
    }@attrs:
    { _type = "option-type"; inherit name description check merge getSubModules substSubModules nestedTypes; }
    // removeAttrs attrs [ "name" "description" "check" "merge" "getSubModules" "substSubModules" "nestedTypes" ];

  types = rec {
    raw = mkOptionType { name = "raw"; description = "raw value"; merge = mergeOneOption; };
    unspecified = mkOptionType { name = "unspecified"; description = "unspecified value"; };
    anything = mkOptionType {
      name = "anything"; description = "anything";
      merge = loc: defs:
        let
          getType = v: if isAttrs v && lib.isStringLike v then "stringCoercibleSet" else typeOf v;
          common = foldl'
            (t: d: if getType d.value == t then t
              else throw "The option `${showOption loc}' has conflicting option types in ${showFiles (map (d: d.file) defs)}")
            (getType (head defs).value) defs;
        in
        ({
          set = (attrsOf anything).merge;
          stringCoercibleSet = mergeOneOption;
          lambda = loc: defs: arg: anything.merge (loc ++ [ "<function body>" ]) (map (d: { inherit (d) file; value = d.value arg; }) defs);
        }.${common} or mergeEqualOption) loc defs;
    };
    bool = mkOptionType { name = "bool"; description = "boolean"; check = isBool; merge = mergeEqualOption; };
    int = mkOptionType { name = "int"; description = "signed integer"; check = isInt; merge = mergeEqualOption; };
    ints = {
      between = lo: hi: addCheck int (x: x >= lo && x <= hi) // {
        name = "intBetween"; description = "integer between ${toString lo} and ${toString hi} (both inclusive)";
      };
      unsigned = addCheck int (x: x >= 0) // { name = "unsignedInt"; description = "unsigned integer, meaning >=0"; };
      positive = addCheck int (x: x > 0) // { name = "positiveInt"; description = "positive integer, meaning >0"; };
      u16 = ints.between 0 65535 // { name = "u16"; description = "16 bit unsigned integer; between 0 and 65535 (both inclusive)"; };
    };
    port = ints.u16;
    str = mkOptionType { name = "str"; description = "string"; check = isString; merge = mergeEqualOption; };
    nonEmptyStr = addCheck str (x: match "[ \t\n]*" x == null) // { name = "nonEmptyStr"; description = "non-empty string"; };
    singleLineStr = mkOptionType {
      name = "singleLineStr"; description = "(optionally newline-terminated) single-line string";
      check = x: isString x && match "[^\n\r]*\n?" x != null;
      merge = loc: defs: lib.removeSuffix "\n" (mergeEqualOption loc defs);
    };
    strMatching = pattern: mkOptionType {
      name = "strMatching ${builtins.toJSON pattern}";
      description = "string matching the pattern ${pattern}";
      check = x: isString x && match pattern x != null;
      merge = mergeEqualOption;
    };
    separatedString = sep: mkOptionType {
      name = "separatedString";
      description = if sep == "\n" then "strings concatenated with \"\\n\"" else "strings concatenated with ${builtins.toJSON sep}";
      check = isString;
      merge = loc: defs: concatStringsSep sep (getValues defs);
    };
    lines = separatedString "\n";
    commas = separatedString ",";
    envVar = separatedString ":";
    # As nixpkgs: an absolute path or a string starting with "/" (never read or copied).
    path = mkOptionType {
      name = "path"; description = "absolute path";
      check = x: lib.isStringLike x && builtins.substring 0 1 (toString x) == "/";
      merge = mergeEqualOption;
    };
    # As nixpkgs' types.externalPath: an absolute path as a string, not in the store.
    externalPath = mkOptionType {
      name = "path"; description = "absolute path not in the Nix store";
      check = x: isString x && builtins.substring 0 1 x == "/" && !(lib.hasPrefix "${builtins.storeDir}/" x);
      merge = mergeEqualOption;
    };
    # As nixpkgs: a derivation (recognised without forcing it) or a store path.
    package = mkOptionType {
      name = "package"; description = "package";
      check = x: lib.isDerivation x || lib.isStorePath x;
      merge = loc: defs: mergeOneOption loc defs;
    };
    attrs = mkOptionType {
      name = "attrs"; description = "attribute set"; check = isAttrs;
      merge = loc: foldl' (res: def: res // def.value) { };
    };
    enum = values: mkOptionType {
      name = "enum";
      description = "one of ${concatStringsSep ", " (map builtins.toJSON values)}";
      check = x: elem x values;
      merge = mergeEqualOption;
    };
    addCheck = elemType: check: elemType // { check = x: elemType.check x && check x; };
    uniq = elemType: elemType // { merge = mergeOneOption; };
    unique = { message }: elemType: elemType // { merge = mergeUniqueOption { inherit message; }; };
    nullOr = elemType: mkOptionType {
      name = "nullOr"; description = "null or ${elemType.description}";
      check = x: x == null || elemType.check x;
      merge = loc: defs:
        let nrNulls = length (filter (d: d.value == null) defs); in
        if nrNulls == length defs then null
        else if nrNulls != 0 then
          throw "The option `${showOption loc}' is defined both null and not null, in ${showFiles (map (d: d.file) defs)}."
        else elemType.merge loc defs;
      getSubModules = elemType.getSubModules;
      substSubModules = m: nullOr (elemType.substSubModules m);
      nestedTypes.elemType = elemType;
    };
    either = t1: t2: mkOptionType {
      name = "either"; description = "${t1.description} or ${t2.description}";
      check = x: t1.check x || t2.check x;
      merge = loc: defs:
        if all (d: t1.check d.value) defs then t1.merge loc defs
        else if all (d: t2.check d.value) defs then t2.merge loc defs
        else mergeOneOption loc defs;
    };
    oneOf = ts: if ts == [ ] then throw "types.oneOf needs to get at least one type in its argument"
      else foldl' either (head ts) (tail ts);
    coercedTo = coercedType: coerceFunc: finalType: mkOptionType {
      name = "coercedTo";
      description = "${finalType.description} or ${coercedType.description} convertible to it";
      check = x: (coercedType.check x && finalType.check (coerceFunc x)) || finalType.check x;
      merge = loc: defs:
        finalType.merge loc (map (d: d // { value = if finalType.check d.value then d.value else coerceFunc d.value; }) defs);
    };
    listOf = elemType: mkOptionType {
      name = "listOf"; description = "list of ${elemType.description}";
      check = isList;
      merge = loc: defs:
        map (x: x.value) (filter (x: x ? value) (concatLists (lib.imap1
          (n: def: lib.imap1
            (m: v: (mergeDefinitions (loc ++ [ "[definition ${toString n}-entry ${toString m}]" ]) elemType [ { inherit (def) file; value = v; } ]).optionalValue)
            def.value)
          defs)));
      getSubModules = elemType.getSubModules;
      substSubModules = m: listOf (elemType.substSubModules m);
      nestedTypes.elemType = elemType;
    };
    nonEmptyListOf = elemType: addCheck (listOf elemType) (l: l != [ ]) // { description = "non-empty ${(listOf elemType).description}"; };
    attrsOf = elemType: mkOptionType {
      name = "attrsOf"; description = "attribute set of ${elemType.description}";
      check = isAttrs;
      merge = loc: defs:
        let
          names = lib.unique (concatMap (d: attrNames d.value) defs);
          merged = n: mergeDefinitions (loc ++ [ n ]) elemType
            (concatMap (d: if d.value ? ${n} then [ { inherit (d) file; value = d.value.${n}; } ] else [ ]) defs);
        in
        listToAttrs (concatMap (n: let m = (merged n).optionalValue; in if m ? value then [ { name = n; inherit (m) value; } ] else [ ]) names);
      getSubModules = elemType.getSubModules;
      substSubModules = m: attrsOf (elemType.substSubModules m);
      nestedTypes.elemType = elemType;
    };
    # As nixpkgs: an attribute whose every definition is switched off is kept (its value
    # then throws when used); only the attribute names are strict.
    lazyAttrsOf = elemType: attrsOf elemType // {
      name = "lazyAttrsOf";
      substSubModules = m: lazyAttrsOf (elemType.substSubModules m); description = "lazy attribute set of ${elemType.description}";
      merge = loc: defs:
        let names = lib.unique (concatMap (d: attrNames d.value) defs); in
        listToAttrs (map (n: {
          name = n;
          value = (mergeDefinitions (loc ++ [ n ]) elemType
            (concatMap (d: if d.value ? ${n} then [ { inherit (d) file; value = d.value.${n}; } ] else [ ]) defs)).mergedValue;
        }) names);
    };
    functionTo = elemType: mkOptionType {
      name = "functionTo"; description = "function that evaluates to a(n) ${elemType.description}";
      check = isFunction;
      merge = loc: defs: fnArgs: (mergeDefinitions (loc ++ [ "<function body>" ]) elemType (map (d: { inherit (d) file; value = d.value fnArgs; }) defs)).mergedValue;
    };
    submoduleWith = { modules, specialArgs ? { }, shorthandOnlyDefinesConfig ? false, description ? null }:
      let
        allModules = defs: map
          ({ value, file }:
            if isAttrs value && shorthandOnlyDefinesConfig then { _file = file; config = value; }
            else { _file = file; imports = [ value ]; })
          defs;
        self = mkOptionType {
          name = "submodule";
          description = if description != null then description else "submodule";
          check = x: isAttrs x || isFunction x || isPath x;
          merge = loc: defs:
            (evalModules {
              modules = [ { _module.args.name = lib.last loc; } ] ++ modules ++ allModules defs;
              inherit specialArgs;
              prefix = loc;
            }).config;
          getSubModules = modules;
          substSubModules = m: submoduleWith { modules = m; inherit specialArgs shorthandOnlyDefinesConfig description; };
          getSubOptions = prefix: (evalModules { inherit modules specialArgs prefix; }).options;
        };
      in
      self;
    submodule = modules: submoduleWith {
      shorthandOnlyDefinesConfig = true;
      modules = if isList modules then modules else [ modules ];
    };
    deferredModule = mkOptionType {
      name = "deferredModule"; description = "module";
      check = x: isAttrs x || isFunction x || isPath x;
      merge = loc: defs: { imports = map (d: { _file = d.file; imports = [ d.value ]; }) defs; };
    };
  };

  # ---- modules ----
  # A module (path, function or attribute set) as { key; file; disabled; options; config; imports; }.
  unify = file: key: m:
    let
      structured = m ? config || m ? options;
      allowed = [ "_class" "_file" "key" "disabledModules" "imports" "options" "config" "meta" "freeformType" ];
      extra = filter (n: !(elem n allowed)) (attrNames m);
    in
    if structured && extra != [ ] then
      throw "Module `${file}' has an unsupported attribute `${head extra}'. This is caused by introducing a top-level `config' or `options' attribute. Add configuration attributes immediately on the top level instead, or move all of them (namely: ${concatStringsSep " " extra}) into the explicit `config' attribute."
    else {
      _file = m._file or file;
      key = toString (m.key or key);
      imports = m.imports or [ ];
      disabled = m.disabledModules or [ ];
      options = m.options or { };
      config =
        let c = if structured then m.config or { } else removeAttrs m [ "_class" "_file" "key" "disabledModules" "imports" "meta" "freeformType" ]; in
        if m ? freeformType then mkMerge [ c { _module.freeformType = m.freeformType; } ] else c;
    };

  applyArgs = args: config: key: f:
    let extra = mapAttrs (n: _: args.${n} or config._module.args.${n}) (functionArgs f); in
    f (args // extra);

  # Every module with its imports, as nixpkgs collects them: breadth first (builtins.genericClosure),
  # each key once.
  collect = args: config: modules:
    let
      load = parentFile: parentKey: i: m:
        let
          file = if isPath m || isString m then toString m else parentFile;
          key = if isPath m || isString m then toString m else "${parentKey}:anon-${toString i}";
          v0 = if isPath m || isString m then import m else m;
          v = if isFunction v0 then applyArgs args config key v0 else v0;
        in
        if !(isAttrs v) then throw "module ${file} must be a function or an attribute set"
        else let u = unify file key v; in { inherit (u) key; module = u; };
      children = item: lib.imap1 (load item.module._file item.module.key) item.module.imports;
    in
    map (item: item.module) (builtins.genericClosure {
      startSet = lib.imap1 (load "<unknown-file>" "") modules;
      operator = children;
    });

  internalModule = {
    _file = "lib/modules.nix";
    options._module = {
      args = { _type = "option"; type = types.lazyAttrsOf types.raw; internal = true; description = "Arguments passed to each module."; };
      check = { _type = "option"; type = types.bool; internal = true; default = true; };
      freeformType = { _type = "option"; type = types.nullOr (types.uniq types.unspecified // { check = _: true; }); internal = true; default = null; };
    };
  };

  # Option declarations of several modules, merged: an option may be declared once, except a
  # submodule-typed option, whose declarations' modules are combined (as nixpkgs' typeMerge).
  mergeDecls = loc: decls:
    let opts = filter (d: isOption d.value) decls; in
    if opts == [ ] then null
    else if length opts != length decls then
      throw "The option `${showOption loc}' in `${(head opts).file}' is a prefix of options in `${(head (filter (d: !(isOption d.value)) decls)).file}'."
    else if length opts == 1 then (head opts).value // { declarations = [ (head opts).file ]; }
    else
      let
        subs = filter (d: d.value.type.getSubModules or null != null) opts;
        typed = filter (d: d.value ? type) opts;
      in
      if length subs == length typed && subs != [ ] then
        foldl' (a: b: a // b) { } (map (d: d.value) opts) // {
          type = (head subs).value.type.substSubModules (concatMap (d: d.value.type.getSubModules) subs);
          declarations = map (d: d.file) opts;
        }
      else if length typed <= 1 then
        foldl' (a: b: a // b) { } (map (d: d.value) opts) // { declarations = map (d: d.file) opts; }
      else throw "The option `${showOption loc}' in `${(head opts).file}' is already declared in ${showFiles (map (d: d.file) (tail opts))}.";

  # Merges declarations and definitions below `loc`: { values; unmatched; }.
  mergeLevel = loc: decls: defs:
    let
      pushed = concatMap (d: map (c: { inherit (d) file; value = c; }) (pushDownProperties d.value)) defs;
      badDef = filter (d: !(isAttrs d.value)) pushed;
      declNames = lib.unique (concatMap (d: attrNames d.value) decls);
      defNames = lib.unique (concatMap (d: attrNames d.value) pushed);
      declsOf = n: concatMap (d: if d.value ? ${n} then [ { inherit (d) file; value = d.value.${n}; } ] else [ ]) decls;
      defsOf = n: concatMap (d: if d.value ? ${n} then [ { inherit (d) file; value = d.value.${n}; } ] else [ ]) pushed;
      node = n:
        let
          ds = declsOf n;
          opt = mergeDecls (loc ++ [ n ]) ds;
        in
        if opt != null then { option = evalOptionValue (loc ++ [ n ]) opt (defsOf n); unmatched = [ ]; }
        else let sub = mergeLevel (loc ++ [ n ]) ds (defsOf n); in { inherit (sub) values options unmatched; };
      nodes = listToAttrs (map (n: { name = n; value = node n; }) declNames);
      unmatchedHere = concatMap (n: map (d: d // { prefix = loc ++ [ n ]; }) (defsOf n)) (filter (n: !(elem n declNames)) defNames);
    # The options depend on declarations only: modules may read `options` to decide what to
    # define.
      checkDefs = if badDef != [ ] then throw "The option `${showOption loc}' is not an option set; it is defined as ${showValue (head badDef).value} in `${(head badDef).file}'." else null;
    in
    {
      values = seq checkDefs (mapAttrs (n: v: if v ? option then v.option.value else v.values) nodes);
      options = mapAttrs (n: v: if v ? option then v.option else v.options or { }) nodes;
      unmatched = seq checkDefs (unmatchedHere ++ concatMap (n: nodes.${n}.unmatched) declNames);
    };

  evalModules = { modules, specialArgs ? { }, prefix ? [ ] }:
    let
      args = { inherit lib options specialArgs; config = configWithout; _prefix = prefix; } // specialArgs;
      collected = collect args config ([ internalModule ] ++ modules);
      disabled = concatMap (m: map toString m.disabled) collected;
      used = filter (m: !(elem m.key disabled)) collected;
      # As nixpkgs, definitions are merged last module first (the order `lines` and lists of
      # equal order priority show).
      merged = mergeLevel prefix
        (map (m: { file = m._file; value = m.options; }) used)
        (lib.reverseList (map (m: { file = m._file; value = m.config; }) used));
      declared = merged.values;
      freeformType = declared._module.freeformType;
      freeform =
        if merged.unmatched == [ ] || freeformType == null then { }
        else freeformType.merge prefix (map (d: { inherit (d) file; value = lib.setAttrByPath (lib.drop (length prefix) d.prefix) d.value; }) merged.unmatched);
      checkUnmatched =
        if declared._module.check && freeformType == null && merged.unmatched != [ ] then
          let d = head merged.unmatched; in
          throw "The option `${showOption d.prefix}' does not exist. Definition values:${showDefs [ d ]}"
        else null;
      config = if freeformType == null then declared else lib.recursiveUpdate freeform declared;
      configWithout = config;
      options = merged.options;
    in
    {
      config = seq checkUnmatched (removeAttrs config [ "_module" ]);
      options = seq checkUnmatched options;
      _module = config._module;
    };
in
{
  inherit types mkIf mkMerge mkOverride mkOrder evalModules mkOptionType mergeEqualOption
    mergeOneOption mergeDefaultOption mergeUniqueOption showOption;
  mkDefault = mkOverride 1000;
  mkOptionDefault = mkOverride 1500;
  mkImageMediaOverride = mkOverride 60;
  mkForce = mkOverride 50;
  mkVMOverride = mkOverride 10;
  mkBefore = mkOrder 500;
  mkAfter = mkOrder 1500;
  isOption = isOption;
  mkDerivedConfig = opt: f: mkOverride (opt.highestPrio or defaultOverridePriority) (f opt.value);
  isType = t: v: isAttrs v && (v._type or null) == t;
  last = l: builtins.elemAt l (length l - 1);

  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: {
    _type = "option";
    type = types.bool;
    default = false;
    example = true;
    description = "Whether to enable ${name}.";
  };
  mkPackageOption = pkgs: name: { default ? [ name ], ... }@extra:
    let path = if isList default then default else [ default ]; in
    {
      _type = "option";
      type = types.package;
      default = lib.attrByPath path (throw "${concatStringsSep "." path} cannot be found in pkgs") pkgs;
      description = "The ${name} package to use.";
    } // removeAttrs extra [ "default" ];
}
