# A stand-in for nixpkgs' `lib`: the functions vault's Nix files use, written to behave like
# nixpkgs' (same semantics and error cases where vault relies on them), so that the checks under
# nix/tests test what NixOS would do. Anything vault does not use is absent on purpose: a new
# dependency on lib then shows up as a failing check instead of passing silently.
let
  inherit (builtins) all any attrNames concatLists concatMap elem filter foldl' head isAttrs
    isBool isFunction isInt isList isPath isString dirOf length listToAttrs match
    replaceStrings substring stringLength tail toString typeOf;

  lib = rec {
    isDerivation = v: isAttrs v && (v.type or null) == "derivation";
    isStringLike = v: isString v || isPath v || v ? outPath || v ? __toString;
    # As nixpkgs: a string-like value naming a direct child of the store directory.
    isStorePath = v:
      if !(isList v) && isStringLike v then
        let s = toString v; in substring 0 1 s == "/" && dirOf s == builtins.storeDir
      else false;

    # ---- lists, attrsets, strings ----
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    optionalAttrs = c: as: if c then as else { };
    optionalString = c: s: if c then s else "";
    genAttrs = names: f: listToAttrs (map (n: { name = n; value = f n; }) names);
    mapAttrs' = f: set: listToAttrs (map (n: f n set.${n}) (attrNames set));
    nameValuePair = name: value: { inherit name value; };
    filterAttrs = pred: set:
      listToAttrs (concatMap (n: if pred n set.${n} then [ { name = n; value = set.${n}; } ] else [ ]) (attrNames set));
    mapAttrsToList = f: set: map (n: f n set.${n}) (attrNames set);
    unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
    concatStringsSep = builtins.concatStringsSep;
    splitLines = s: builtins.filter builtins.isString (builtins.split "\n" s);
    concatMapStringsSep = sep: f: xs: builtins.concatStringsSep sep (map f xs);
    hasPrefix = pre: s: substring 0 (stringLength pre) s == pre;
    hasInfix = infix: s: builtins.match ".*${lib.escapeRegex infix}.*" (replaceStrings [ "\n" ] [ " " ] s) != null;
    escapeRegex = replaceStrings (lib.stringToCharacters "\\[{()^$?*+|.") (map (c: "\\${c}") (lib.stringToCharacters "\\[{()^$?*+|."));
    hasSuffix = suf: s:
      let ls = stringLength s; lf = stringLength suf; in ls >= lf && substring (ls - lf) lf s == suf;
    removePrefix = pre: s:
      if hasPrefix pre s then substring (stringLength pre) (stringLength s - stringLength pre) s else s;
    removeSuffix = suf: s:
      if hasSuffix suf s then substring 0 (stringLength s - stringLength suf) s else s;
    stringToCharacters = s: builtins.genList (i: substring i 1 s) (stringLength s);
    versionOlder = a: b: builtins.compareVersions a b < 0;
    versionAtLeast = a: b: !(versionOlder a b);
    toInt = s:
      let m = match "[0-9]+" s; in if m == null then throw "Could not convert ${s} to int." else builtins.fromJSON s;

    # As nixpkgs (lib/strings.nix): a word made only of these characters is left bare; anything
    # else is put in single quotes, with ' written as '\''.
    escapeShellArg = arg:
      let s = toString arg; in
      if match "[[:alnum:],._+:@%/-]+" s == null
      then "'${replaceStrings [ "'" ] [ "'\\''" ] s}'"
      else s;
    escapeShellArgs = args: builtins.concatStringsSep " " (map escapeShellArg args);

    # As nixpkgs: each listed character as \xNN (lower-case hex).
    _escapeC = chars: replaceStrings chars (map (c: "\\x${toLowerHex c}") chars);
    toLowerHex = c:
      let
        code = lib.charCode c;
        digits = lib.stringToCharacters "0123456789abcdef";
      in
      builtins.elemAt digits (code / 16) + builtins.elemAt digits (lib.mod code 16);
    mod = a: b: a - (a / b) * b;
    # The printable ASCII characters by code, enough for the characters escapeC is given.
    charCode = c:
      let
        table = lib.stringToCharacters " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
        idx = lib.findFirstIndex (x: x == c) null table;
      in
      if idx == null then throw "stand-in lib: no code for ${c}" else 32 + idx;
    findFirstIndex = pred: default: list:
      let go = i: if i >= length list then default else if pred (builtins.elemAt list i) then i else go (i + 1);
      in go 0;
    # As nixpkgs: repeated slashes collapse into one.
    normalizePath = s:
      let r = replaceStrings [ "//" ] [ "/" ] s; in if r == s then s else normalizePath r;

    getExe' = pkg: bin: assert lib.isDerivation pkg; "${lib.getBin pkg}/bin/${bin}";
    getExe = pkg: lib.getExe' pkg (pkg.meta.mainProgram or (throw "getExe: ${pkg.name} has no meta.mainProgram"));
    getBin = pkg: pkg.bin or pkg.out or pkg;
    makeSearchPathOutput = output: subDir: pkgs:
      builtins.concatStringsSep ":" (map (p: "${p.${output} or p.out or p}/${subDir}") pkgs);
    makeBinPath = pkgs: builtins.concatStringsSep ":" (map (p: "${lib.getBin p}/bin") pkgs);

    importTOML = path: builtins.fromTOML (builtins.readFile path);

    # ---- lib.fileset: unions of existing files and directories, copied with toSource ----
    fileset = rec {
      _coerce = context: i: v:
        if isAttrs v && (v._type or null) == "fileset" then v.paths
        else if isPath v then
          (if builtins.pathExists v then [ (toString v) ]
           else throw "${context}: Element ${toString i} (${toString v}) is a path that does not exist.")
        else if isString v then
          throw "${context}: Element ${toString i} (\"${v}\") is a string-like value, but it should be a file set or a path instead."
        else throw "${context}: Element ${toString i} is of type ${typeOf v}, but it should be a file set or a path instead.";
      unions = list:
        if !(isList list) then throw "lib.fileset.unions: Argument is of type ${typeOf list}, but it should be a list instead."
        else {
          _type = "fileset";
          paths = concatLists (builtins.genList (i: _coerce "lib.fileset.unions" i (builtins.elemAt list i)) (length list));
        };
      union = a: b: unions [ a b ];
      # Copies exactly the files of `fileset` (and the directories leading to them) from `root`.
      toSource = { root, fileset }:
        let
          rootStr = toString root;
          paths = _coerce "lib.fileset.toSource: `fileset`" 0 fileset;
          outside = filter (p: !(p == rootStr || lib.hasPrefix "${rootStr}/" p)) paths;
          keep = p: _type:
            let s = toString p; in
            any (e: s == e || lib.hasPrefix "${e}/" s || lib.hasPrefix "${s}/" e) paths;
        in
        if !(isPath root) then
          (if lib.isStringLike root
           then throw "lib.fileset.toSource: `root` (${toString root}) is a string-like value, but it should be a path instead."
           else throw "lib.fileset.toSource: `root` is of type ${typeOf root}, but it should be a path instead.")
        else if !(builtins.pathExists root) then
          throw "lib.fileset.toSource: `root` (${rootStr}) is a path that does not exist."
        # As nixpkgs: the root must be a directory (a file there would become the whole source).
        else if !(builtins.pathExists "${rootStr}/.") then
          throw "lib.fileset.toSource: `root` (${rootStr}) is a file, but it should be a directory instead."
        else if outside != [ ] then
          throw "lib.fileset.toSource: `fileset` could contain files in ${head outside}, which is not under the `root` (${rootStr})."
        else builtins.path { name = "source"; path = root; filter = keep; };
    };

    # As nixpkgs (lib/sources.nix): the filter that `cleanSource` applies. It keeps untracked
    # and ignored files; only VCS data, editor backups, objects and `result` links go.
    cleanSourceFilter = name: type:
      let baseName = baseNameOf (toString name); in
      !((type == "directory" && elem baseName [ ".git" ".svn" "CVS" ".hg" ".jj" ])
        || lib.hasSuffix "~" baseName
        || match "^\\.sw[a-z]$" baseName != null
        || match "^\\..*\\.sw[a-z]$" baseName != null
        || lib.hasSuffix ".o" baseName
        || lib.hasSuffix ".so" baseName
        || (type == "symlink" && lib.hasPrefix "result" baseName)
        || type == "unknown");
    cleanSourceWith = { src, filter ? _: _: true, name ? null }:
      let
        orig = if isAttrs src && src ? _isLibCleanSourceWith then src
          else { origSrc = src; filter = _: _: true; name = "source"; };
        both = path: type: filter path type && orig.filter path type;
        name' = if name != null then name else orig.name;
      in
      {
        _isLibCleanSourceWith = true;
        inherit (orig) origSrc;
        filter = both;
        name = name';
        outPath = builtins.path { name = name'; path = orig.origSrc; filter = both; };
      };
    cleanSource = src: lib.cleanSourceWith { filter = lib.cleanSourceFilter; inherit src; };

    # ---- more lists and attribute sets, as nixpkgs ----
    imap1 = f: list: builtins.genList (i: f (i + 1) (builtins.elemAt list i)) (length list);
    imap0 = f: list: builtins.genList (i: f i (builtins.elemAt list i)) (length list);
    drop = n: list: let l = length list; in if n >= l then [ ] else builtins.genList (i: builtins.elemAt list (i + n)) (l - n);
    take = n: list: let l = length list; in builtins.genList (i: builtins.elemAt list i) (if n < l then n else l);
    flatten = x: if isList x then concatMap lib.flatten x else [ x ];
    reverseList = xs: let l = length xs; in builtins.genList (n: builtins.elemAt xs (l - n - 1)) l;
    toList = x: if isList x then x else [ x ];
    id = x: x;
    const = x: _: x;
    mapAttrs = builtins.mapAttrs;
    attrByPath = path: default: set:
      if path == [ ] then set
      else if isAttrs set && set ? ${head path} then lib.attrByPath (tail path) default set.${head path}
      else default;
    getAttrFromPath = path: set: lib.attrByPath path (throw "cannot find attribute `${builtins.concatStringsSep "." path}'") set;
    hasAttrByPath = path: set:
      path == [ ] || (isAttrs set && set ? ${head path} && lib.hasAttrByPath (tail path) set.${head path});
    setAttrByPath = path: value:
      if path == [ ] then value else { ${head path} = lib.setAttrByPath (tail path) value; };
    recursiveUpdateUntil = pred: lhs: rhs:
      let f = attrPath: builtins.zipAttrsWith (n: values:
        let here = attrPath ++ [ n ]; in
        if length values == 1 || pred here (builtins.elemAt values 1) (head values) then head values
        else f here values);
      in f [ ] [ rhs lhs ];
    recursiveUpdate = lib.recursiveUpdateUntil (path: lhs: rhs: !(isAttrs lhs && isAttrs rhs));
    concatMapAttrs = f: set: foldl' (a: b: a // b) { } (lib.mapAttrsToList f set);
    attrValues = builtins.attrValues;
    isList = builtins.isList;
    isAttrs = builtins.isAttrs;
    isString = builtins.isString;
    elem = builtins.elem;
    head = builtins.head;
    concatMap = builtins.concatMap;
    concatLists = builtins.concatLists;
    filter = builtins.filter;
    all = builtins.all;
    any = builtins.any;
    attrNames = builtins.attrNames;
    listToAttrs = builtins.listToAttrs;
    concatStrings = builtins.concatStringsSep "";
    replaceStrings = builtins.replaceStrings;
    splitString = sep: s: builtins.filter builtins.isString (builtins.split (lib.escapeRegex sep) s);

    # Only under lib.strings in nixpkgs (not at the top level).
    strings = { inherit (lib) escapeShellArg escapeShellArgs escapeRegex hasPrefix hasSuffix removePrefix removeSuffix splitString normalizePath; escapeC = lib._escapeC; };

    licenses = { mit = { spdxId = "MIT"; }; asl20 = { spdxId = "Apache-2.0"; }; };
    platforms = {
      linux = [ "x86_64-linux" "aarch64-linux" ];
      darwin = [ "x86_64-darwin" "aarch64-darwin" ];
    };

    literalExpression = text: { _type = "literalExpression"; inherit text; };
    literalMD = text: { _type = "literalMD"; inherit text; };
  }
  // import ./modules.nix { inherit lib; };
in
# Helpers of the functions above that nixpkgs' lib does not export stay inside (its
# differential test checks that every name exported here exists in the real lib).
removeAttrs lib [ "_escapeC" "charCode" "findFirstIndex" "normalizePath" "splitLines" "toLowerHex" ]
// { fileset = removeAttrs lib.fileset [ "_coerce" ]; }
