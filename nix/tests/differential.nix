# The stand-in lib against the real nixpkgs lib: every function of nix/tests/nixpkgs/lib.nix
# and modules.nix that vault's Nix files, the stand-in NixOS and the tests use, on the same
# inputs; a case passes when both succeed with equal results or both fail. Run by
# `scripts/check-nix --real DIR` with `real` = the real lib (never in CI: it has no nixpkgs).
#
# Result: { passed = [ names ]; failed = [ { name; standIn; real; } ]; skipped = [ names ]; }.
{ real, standIn ? import ./nixpkgs/lib.nix, tree ? ./differential-tree }:

let
  inherit (builtins) attrNames deepSeq filter map tryEval toJSON;

  # `f lib` with either lib, as something comparable: { ok; value; } (value null on failure).
  run = lib: f:
    let r = tryEval (let v = f lib; in deepSeq v v); in
    { ok = r.success; value = if r.success then r.value else null; };

  strs = [ "" "abc" "it's" "a b" "$(x)" "/nix/store/0000-x" "a,b._+:@%/-=" "é" "tab\there" "x\ny" "\"q\"" "~/a" "-n" ];
  paths = [ "/" "/mnt" "/mnt/" "//mnt//x/" "/.hidden/a.b" "/dev/disk/by-label/VAULT-1" "/mnt/target disk" "/a?b" "/a/./b" "relative/p" ];

  # The evaluation of `modules` as JSON (failures compare as failures).
  evalJSON = modules: lib: toJSON (lib.evalModules { inherit modules; }).config;
  opt = lib: type: extra: lib.mkOption ({ inherit type; } // extra);

  drvLike = { type = "derivation"; name = "pkg"; outPath = "/nix/store/00000000000000000000000000000000-pkg"; };

  moduleCases = {
    priorities = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.str; default = "default"; }; })
      ({ lib, ... }: { a = lib.mkDefault "mkDefault"; })
      ({ lib, ... }: { a = "plain"; })
    ];
    priorities-force = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.str; }; })
      ({ lib, ... }: { a = lib.mkForce "forced"; })
      ({ lib, ... }: { a = "plain"; })
    ];
    conflicting-definitions = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.str; }; })
      { a = "one"; }
      { a = "two"; }
    ];
    image-media-override-drops-plain-attrs-definitions = evalJSON [
      ({ lib, ... }: { options.fs = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule ({ name, ... }: { options.dev = lib.mkOption { type = lib.types.str; default = name; }; })); default = { }; }; })
      ({ lib, ... }: { fs = lib.mkImageMediaOverride { "/" = { dev = "tmpfs"; }; "/iso" = { }; }; })
      { fs."/mnt".dev = "/dev/sda1"; }
    ];
    image-media-override-same-priority-merges = evalJSON [
      ({ lib, ... }: { options.fs = lib.mkOption { type = lib.types.attrsOf (lib.types.submodule { options.dev = lib.mkOption { type = lib.types.str; default = "x"; }; }); default = { }; }; })
      ({ lib, ... }: { fs = lib.mkImageMediaOverride { "/" = { dev = "tmpfs"; }; }; })
      ({ lib, ... }: { fs = lib.mkImageMediaOverride { "/mnt" = { dev = "/dev/sda1"; }; }; })
    ];
    attrs-type-merges-shallowly = evalJSON [
      ({ lib, ... }: { options.l = lib.mkOption { type = lib.types.attrsOf lib.types.attrs; default = { }; }; })
      { l.iso = { "/" = 1; }; }
      { l.iso = { "/mnt" = 2; }; }
    ];
    order = evalJSON [
      ({ lib, ... }: { options.l = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ "d" ]; }; })
      ({ lib, ... }: { l = lib.mkAfter [ "after" ]; })
      ({ lib, ... }: { l = [ "plain" ]; })
      ({ lib, ... }: { l = lib.mkBefore [ "before" ]; })
    ];
    apply = evalJSON [
      ({ lib, ... }: { options.l = lib.mkOption { type = lib.types.listOf (lib.types.either lib.types.str lib.types.path); default = [ ]; apply = map (p: if builtins.isPath p then "was a path" else p); }; })
      { l = [ "/etc/a" ./differential.nix ]; }
    ];
    mkIf-pushed-down-and-conditions-read-config = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.bool; default = false; }; options.b = lib.mkOption { type = lib.types.listOf lib.types.int; default = [ ]; }; })
      ({ config, lib, ... }: { config = lib.mkMerge [ { a = true; } (lib.mkIf config.a { b = [ 1 ]; }) (lib.mkIf false { b = [ 2 ]; }) ]; })
    ];
    mkIf-non-bool = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.int; default = 0; }; })
      ({ lib, ... }: { a = lib.mkIf "yes" 1; })
    ];
    undeclared-option-is-an-error = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.int; default = 0; }; })
      { b = 1; }
    ];
    undeclared-option-under-a-false-condition-is-an-error = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.int; default = 0; }; })
      ({ lib, ... }: { config = lib.mkIf false { b = 1; }; })
    ];
    undeclared-sub-option-is-an-error = evalJSON [
      ({ lib, ... }: { options.a.b = lib.mkOption { type = lib.types.int; default = 0; }; })
      { a.c = 1; }
    ];
    type-error = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.ints.unsigned; }; })
      { a = -1; }
    ];
    used-but-not-defined = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.str; }; })
    ];
    submodule-gets-name-config-and-args = evalJSON [
      ({ lib, ... }: {
        options.s = lib.mkOption {
          type = lib.types.attrsOf (lib.types.submodule ({ name, config, options, lib, ... }: {
            options.n = lib.mkOption { type = lib.types.str; default = name; };
            options.m = lib.mkOption { type = lib.types.str; default = "${config.n}!"; };
            options.d = lib.mkOption { type = lib.types.bool; default = options.n.isDefined; };
          }));
          default = { };
        };
      })
      { s.x = { }; s.y.n = "set"; }
    ];
    nullOr = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.nullOr lib.types.str; default = null; }; options.b = lib.mkOption { type = lib.types.nullOr lib.types.str; default = null; }; })
      { a = "x"; }
    ];
    nullOr-both = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.nullOr lib.types.str; }; })
      { a = "x"; }
      { a = null; }
    ];
    oneOf-does-not-force-a-derivation = lib: toJSON (builtins.attrNames (lib.evalModules { modules = [
      { options.a = lib.mkOption { type = lib.types.nullOr (lib.types.oneOf [ lib.types.str lib.types.package lib.types.path ]); default = null; }; }
      { a = { type = "derivation"; name = "b"; outPath = throw "forced"; }; }
    ]; }).config.a);
    path-type = lib: map (v: (lib.types.path.check v)) [ "/a" "a" ./differential.nix "" ];
    package-type = lib: map lib.types.package.check [ drvLike "/nix/store/00000000000000000000000000000000-x" "/tmp/x" { } ];
    lines-and-strMatching-and-enum = evalJSON [
      ({ lib, ... }: {
        options.l = lib.mkOption { type = lib.types.lines; default = ""; };
        options.s = lib.mkOption { type = lib.types.strMatching "tty[A-Za-z]*[0-9]+|hvc[0-9]+"; default = "tty1"; };
        options.e = lib.mkOption { type = lib.types.enum [ "all" "disk" ]; default = "disk"; };
        options.one = lib.mkOption { type = lib.types.singleLineStr; default = ""; };
      })
      { l = "a"; s = "ttyS0"; e = "all"; one = "x\n"; }
      { l = "b"; }
    ];
    strMatching-refuses = evalJSON [
      ({ lib, ... }: { options.s = lib.mkOption { type = lib.types.strMatching "tty[A-Za-z]*[0-9]+|hvc[0-9]+"; }; })
      { s = "tty 1"; }
    ];
    listOf-elements-with-mkIf = evalJSON [
      ({ lib, ... }: { options.l = lib.mkOption { type = lib.types.listOf lib.types.int; }; })
      ({ lib, ... }: { l = [ 1 (lib.mkIf false 2) 3 ]; })
    ];
    anything-lists-do-not-concatenate = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.anything; }; })
      { a = [ 1 ]; }
      { a = [ 2 ]; }
    ];
    anything-attrs-merge = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.anything; }; })
      { a.x = 1; }
      { a.y.z = 2; }
    ];
    freeform = evalJSON [
      ({ lib, ... }: { freeformType = lib.types.lazyAttrsOf (lib.types.uniq lib.types.unspecified); options.a = lib.mkOption { type = lib.types.int; default = 1; }; })
      { b = 2; c.d = 3; }
    ];
    derived-config = lib: toJSON (lib.evalModules { modules = [
      ({ config, options, ... }: {
        options.t = lib.mkOption { type = lib.types.nullOr lib.types.lines; default = null; };
        options.s = lib.mkOption { type = lib.types.str; };
        config.s = lib.mkIf (config.t != null) (lib.mkDerivedConfig options.t (t: "from ${t}"));
      })
      { t = "text"; }
    ]; }).config;
    imports-of-one-path-count-once = evalJSON [ ./differential-tree/module.nix ./differential-tree/module.nix { a = "x"; } ];
    special-args-and-module-args = lib: toJSON (lib.evalModules {
      specialArgs.sp = "special";
      modules = [
        ({ lib, sp, extra, ... }: { options.a = lib.mkOption { type = lib.types.str; default = "${sp}-${extra}"; }; })
        { _module.args.extra = "arg"; }
      ];
    }).config;
    unsupported-top-level-attribute = evalJSON [ { options = { }; foo = 1; } ];
    enable-and-package-options = lib: toJSON (lib.evalModules { modules = [
      ({ lib, ... }: {
        options.e = lib.mkEnableOption "the thing";
        options.d = lib.mkEnableOption "" // { default = true; };
        options.p = lib.mkPackageOption { hello = drvLike; } "hello" { };
      })
      { e = true; }
    ]; }).config;
    enable-option-attributes = lib: let o = lib.mkEnableOption "the thing"; in [ o.default o.example o.description o.type.name (lib.isOption o) (lib.isType "option" o) ];
    merge-functions = lib: map (f: builtins.tryEval (f [ "a" "b" ] [ { file = "x"; value = 1; } { file = "y"; value = 1; } ]))
      [ lib.mergeEqualOption lib.mergeOneOption (lib.mergeUniqueOption { message = "m"; }) lib.mergeDefaultOption ];
    merge-functions-differing = lib: map (f: (builtins.tryEval (f [ "a" ] [ { file = "x"; value = 1; } { file = "y"; value = 2; } ])).success)
      [ lib.mergeEqualOption lib.mergeOneOption (lib.mergeUniqueOption { message = "m"; }) ];
    custom-option-type = evalJSON [
      ({ lib, ... }: {
        options.u = lib.mkOption {
          type = lib.mkOptionType {
            name = "unit option";
            merge = loc: defs: if builtins.isList (builtins.head defs).value then builtins.concatMap (d: d.value) defs else lib.mergeEqualOption loc defs;
          };
        };
        options.v = lib.mkOption { type = lib.types.attrsOf (lib.mkOptionType { name = "x"; merge = lib.mergeEqualOption; }); default = { }; };
      })
      ({ lib, ... }: { u = [ "a" ]; v.k = lib.mkDefault "d"; })
      ({ lib, ... }: { u = [ "b" ]; v.k = "plain"; })
    ];
    option-default-and-overrides = evalJSON [
      ({ lib, ... }: { options.a = lib.mkOption { type = lib.types.str; default = "default"; }; options.b = lib.mkOption { type = lib.types.str; }; options.c = lib.mkOption { type = lib.types.int; }; })
      ({ lib, ... }: { a = lib.mkOptionDefault "optionDefault"; b = lib.mkOptionDefault "od"; c = lib.mkVMOverride 1; })
      ({ lib, ... }: { b = lib.mkOverride 900 "o900"; c = lib.mkOverride 20 2; })
    ];
    more-types = evalJSON [
      ({ lib, ... }: {
        options.port = lib.mkOption { type = lib.types.port; default = 22; };
        options.nes = lib.mkOption { type = lib.types.nonEmptyStr; default = "x"; };
        options.nel = lib.mkOption { type = lib.types.nonEmptyListOf lib.types.str; default = [ "d" ]; };
        options.commas = lib.mkOption { type = lib.types.commas; default = ""; };
        options.env = lib.mkOption { type = lib.types.envVar; default = ""; };
        options.sep = lib.mkOption { type = lib.types.separatedString ";"; default = ""; };
        options.coerced = lib.mkOption { type = lib.types.coercedTo lib.types.str (s: [ s ]) (lib.types.listOf lib.types.str); default = [ ]; };
        options.checked = lib.mkOption { type = lib.types.addCheck lib.types.int (i: i > 0); default = 1; };
        options.ext = lib.mkOption { type = lib.types.nullOr lib.types.externalPath; default = null; };
        options.raw = lib.mkOption { type = lib.types.raw; default = null; };
        options.sub = lib.mkOption { type = lib.types.submoduleWith { modules = [ { options.x = lib.mkOption { type = lib.types.int; default = 1; }; } ]; }; default = { }; };
      })
      { commas = "a"; env = "A"; sep = "x"; coerced = "one"; ext = "/var/lib/sbctl"; sub.x = 2; nel = [ "e" ]; }
      { commas = "b"; env = "B"; sep = "y"; }
    ];
    function-type-applied = lib: (lib.evalModules { modules = [
      ({ lib, ... }: { options.fn = lib.mkOption { type = lib.types.functionTo lib.types.str; default = _: "f"; }; })
    ]; }).config.fn 1;
    port-refuses = evalJSON [ ({ lib, ... }: { options.p = lib.mkOption { type = lib.types.port; }; }) { p = 65536; } ];
    non-empty-str-refuses = evalJSON [ ({ lib, ... }: { options.p = lib.mkOption { type = lib.types.nonEmptyStr; }; }) { p = " "; } ];
    non-empty-list-refuses = evalJSON [ ({ lib, ... }: { options.p = lib.mkOption { type = lib.types.nonEmptyListOf lib.types.str; }; }) { p = [ ]; } ];
    external-path-refuses-store = evalJSON [ ({ lib, ... }: { options.p = lib.mkOption { type = lib.types.externalPath; }; }) { p = "/nix/store/00000000000000000000000000000000-x"; } ];
    added-check-refuses = evalJSON [ ({ lib, ... }: { options.p = lib.mkOption { type = lib.types.addCheck lib.types.int (i: i > 0); }; }) { p = 0; } ];
    deferred-module = lib: toJSON (lib.evalModules { modules = [
      ({ lib, config, ... }: {
        options.m = lib.mkOption { type = lib.types.deferredModule; default = { }; };
        options.out = lib.mkOption { type = lib.types.attrs; default = (lib.evalModules { modules = [ config.m { options.y = lib.mkOption { type = lib.types.int; default = 0; }; } ]; }).config; };
      })
      { m = { y = 3; }; }
    ]; }).config.out;
  };


  # Every name the stand-in exports exists in the real lib (at the same place): a project file
  # using a stand-in-only name would pass CI and fail with nixpkgs.
  names = lib: {
    top = builtins.attrNames lib;
    types = builtins.attrNames lib.types;
    strings = builtins.attrNames lib.strings;
    fileset = builtins.attrNames lib.fileset;
  };
  missingNames =
    let s = names standIn; in
    builtins.mapAttrs (k: ns: builtins.filter (n: !(builtins.elem n (names real).${k})) ns) s;

  libCases = {
    escapeShellArg = lib: map lib.escapeShellArg strs;
    escapeShellArgs = lib: lib.escapeShellArgs strs;
    escapeC = lib: map (lib.strings.escapeC (lib.stringToCharacters " !\"#$%&'()*+,;<=>?@[\\]^`{|}~-")) (strs ++ paths);
    splitString = lib: map (lib.splitString "/") paths;
    prefixes = lib: map (s: [ (lib.hasPrefix "/" s) (lib.hasSuffix "/" s) (lib.removePrefix "/" s) (lib.removeSuffix "/" s) (lib.hasInfix "mnt" s) ]) paths;
    normalizePath = lib: map lib.strings.normalizePath paths;
    stringToCharacters = lib: lib.stringToCharacters "a b/é";
    optionals = lib: [ (lib.optional true 1) (lib.optional false 1) (lib.optionals true [ 1 2 ]) (lib.optionalAttrs true { a = 1; }) (lib.optionalString false "x") ];
    attrs = lib: [
      (lib.genAttrs [ "b" "a" ] (n: n + "!"))
      (lib.mapAttrs' (n: v: lib.nameValuePair "${n}.service" v) { a = 1; b = 2; })
      (lib.filterAttrs (n: v: v > 1) { a = 1; b = 2; })
      (lib.mapAttrsToList (n: v: "${n}=${toString v}") { b = 2; a = 1; })
      (lib.attrByPath [ "a" "b" ] "default" { a.b = 1; })
      (lib.attrByPath [ "a" "c" ] "default" { a.b = 1; })
      (lib.setAttrByPath [ "a" "b" ] 1)
      (lib.recursiveUpdate { a.b = 1; a.c = 2; d = 1; } { a.b = 3; d = { x = 1; }; })
      (lib.hasAttrByPath [ "a" "b" ] { a.b = null; })
    ];
    lists = lib: [
      (lib.unique [ 3 1 3 2 1 ])
      (lib.imap1 (i: v: "${toString i}${v}") [ "a" "b" ])
      (lib.drop 1 [ 1 2 3 ]) (lib.take 2 [ 1 2 3 ]) (lib.flatten [ 1 [ 2 [ 3 ] ] ]) (lib.toList 1) (lib.last [ 1 2 ])
      (lib.concatMapStringsSep "," (x: x + x) [ "a" "b" ])
    ];
    versions = lib: map (p: [ (lib.versionOlder (builtins.elemAt p 0) (builtins.elemAt p 1)) (lib.versionAtLeast (builtins.elemAt p 0) (builtins.elemAt p 1)) ])
      [ [ "1.86.0" "1.88" ] [ "1.91.1" "1.88" ] [ "1.88" "1.88" ] [ "1.88.0" "1.88" ] ];
    derivations = lib: [
      (lib.isDerivation drvLike) (lib.isDerivation { }) (lib.isStorePath "/nix/store/00000000000000000000000000000000-x")
      (lib.isStorePath "/nix/store/00000000000000000000000000000000-x/bin") (lib.isStringLike ./differential.nix)
      (lib.getExe' drvLike "vault") (lib.getExe (drvLike // { meta.mainProgram = "v"; }))
      (lib.makeBinPath [ drvLike ]) (lib.makeSearchPathOutput "bin" "sbin" [ drvLike ])
    ];
    importTOML = lib: (lib.importTOML ../../Cargo.toml).package.name;
    licenses = lib: [ lib.licenses.mit.spdxId lib.licenses.asl20.spdxId ];
    platforms = lib: map (p: [ (builtins.elem p lib.platforms.linux) (builtins.elem p lib.platforms.darwin) ]) [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
    literalExpression = lib: lib.literalExpression "x";
    more-lists-and-attrs = lib: [
      (lib.reverseList [ 1 2 3 ]) (lib.imap0 (i: v: i + v) [ 10 20 ])
      (lib.recursiveUpdateUntil (path: l: r: path == [ "a" ]) { a.b = 1; c.d = 1; } { a.e = 2; c.f = 2; })
      (lib.concatMapAttrs (n: v: { "${n}1" = v; "${n}2" = v; }) { x = 1; y = 2; })
      (lib.getAttrFromPath [ "a" "b" ] { a.b = 3; })
      (lib.toInt "42") (lib.mod 7 3) (lib.mod (-7) 3)
      (lib.escapeRegex "a.b*c[d]") (lib.showOption [ "a" "b c" "d" ])
      (lib.literalMD "x") (lib.id 1) (lib.const 1 2)
      (lib.concatStringsSep "," [ "a" "b" ]) (lib.concatStrings [ "a" "b" ])
      (lib.getBin drvLike)
    ];
    to-int-refuses = lib: lib.toInt "4x";
    clean-source = lib: toString (lib.cleanSource tree);
    clean-source-with = lib: toString (lib.cleanSourceWith { src = tree; filter = p: t: baseNameOf p != "other"; name = "named"; });
    cleanSourceFilter = lib: map (p: lib.cleanSourceFilter (builtins.elemAt p 0) (builtins.elemAt p 1))
      [ [ "/a/.git" "directory" ] [ "/a/x~" "regular" ] [ "/a/result" "symlink" ] [ "/a/src" "directory" ] [ "/a/.x.swp" "regular" ] [ "/a/o.o" "regular" ] ];
  };

  # lib.fileset reads file types with builtins.readFileType (Nix >= 2.14).
  filesetCases = {
    toSource-copies-the-set = lib: toString (lib.fileset.toSource { root = tree; fileset = lib.fileset.unions [ (tree + "/module.nix") (tree + "/dir") ]; });
    toSource-root-is-a-file = lib: toString (lib.fileset.toSource { root = tree + "/module.nix"; fileset = tree + "/module.nix"; });
    toSource-root-is-a-string = lib: toString (lib.fileset.toSource { root = toString tree; fileset = tree + "/module.nix"; });
    toSource-file-outside-root = lib: toString (lib.fileset.toSource { root = tree + "/dir"; fileset = tree + "/module.nix"; });
    toSource-missing-file = lib: toString (lib.fileset.toSource { root = tree; fileset = tree + "/missing"; });
    union-of-two = lib: toString (lib.fileset.toSource { root = tree; fileset = lib.fileset.union (tree + "/module.nix") (tree + "/dir"); });
    unions-of-a-string = lib: toString (lib.fileset.toSource { root = tree; fileset = lib.fileset.unions [ "${toString tree}/module.nix" ]; });
  };

  haveReadFileType = builtins ? readFileType;
  cases = moduleCases // libCases // (if haveReadFileType then filesetCases else { });

  results = map
    (name:
      let a = run standIn cases.${name}; b = run real cases.${name}; in
      { inherit name; ok = a.ok == b.ok && a.value == b.value; standIn = a; real = b; })
    (attrNames cases);
  namesOk = builtins.all (ns: ns == [ ]) (builtins.attrValues missingNames);
in
{
  passed = map (r: r.name) (filter (r: r.ok) results) ++ (if namesOk then [ "stand-in-names-exist-in-the-real-lib" ] else [ ]);
  failed = map (r: { inherit (r) name standIn real; }) (filter (r: !r.ok) results)
    ++ (if namesOk then [ ] else [ { name = "stand-in-names-exist-in-the-real-lib"; standIn = missingNames; real = null; } ]);
  skipped = if haveReadFileType then [ ] else map (n: "${n} (this Nix has no builtins.readFileType)") (attrNames filesetCases);
}
