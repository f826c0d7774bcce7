# The stand-in NixOS: `nixosSystem`, the `utils` module argument, and declarations of the NixOS
# options vault's installer module sets, with nixpkgs' types and defaults (systemd services as
# in nixos/lib/systemd-unit-options.nix, rendered to unit text as nixos/lib/systemd-lib.nix
# does). The system's toplevel refuses failed assertions, as NixOS does.
{ lib, nixpkgsPath ? ./. }:

let
  inherit (lib) mkOption types;
  inherit (builtins) attrNames concatMap concatStringsSep filter isBool isList map toJSON;

  utils = {
    # As nixos/lib/utils.nix.
    escapeSystemdPath = s:
      let
        replacePrefix = p: r: s: if lib.hasPrefix p s then r + lib.removePrefix p s else s;
        trim = s: lib.removeSuffix "/" (lib.removePrefix "/" s);
        normalized = lib.normalizePath s;
      in
      builtins.replaceStrings [ "/" ] [ "-" ]
        (replacePrefix "." (lib.escapeC [ "." ] ".")
          (lib.escapeC (lib.stringToCharacters " !\"#$%&'()*+,;<=>=@[\\]^`{|}~-")
            (if normalized == "/" then normalized else trim normalized)));
  };

  listOpt = mkOption { type = types.listOf types.str; default = [ ]; };
  # As NixOS' unitOption: lists concatenate, anything else must agree.
  unitValue = types.anything // {
    description = "systemd option";
    merge = loc: defs:
      if builtins.any isList defs then concatMap (d: if isList d then d else [ d ]) defs
      else if builtins.all (d: d == builtins.head defs) defs then builtins.head defs
      else throw "The option `${concatStringsSep "." loc}' has conflicting definition values.";
  };

  serviceOptions = { name, config }: {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      description = mkOption { type = types.str; default = ""; };
      wantedBy = listOpt; requiredBy = listOpt; upheldBy = listOpt;
      wants = listOpt; requires = listOpt; after = listOpt; before = listOpt;
      bindsTo = listOpt; partOf = listOpt; conflicts = listOpt; requisite = listOpt;
      unitConfig = mkOption { type = types.attrsOf unitValue; default = { }; };
      serviceConfig = mkOption { type = types.attrsOf unitValue; default = { }; };
      environment = mkOption { type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ])); default = { }; };
      path = mkOption { type = types.listOf (types.oneOf [ types.package types.str ]); default = [ ]; };
      script = mkOption { type = types.lines; default = ""; };
      preStart = mkOption { type = types.lines; default = ""; };
      postStart = mkOption { type = types.lines; default = ""; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      reloadIfChanged = mkOption { type = types.bool; default = false; };
      stopIfChanged = mkOption { type = types.bool; default = true; };
      restartTriggers = mkOption { type = types.listOf types.anything; default = [ ]; };
      startLimitIntervalSec = mkOption { type = types.nullOr types.int; default = null; };
    };
  };

  toOption = v: if isBool v then (if v then "true" else "false") else toString v;
  attrsToSection = as: concatStringsSep "" (concatMap
    (n: map (x: "${n}=${toOption x}\n") (if isList as.${n} then as.${n} else [ as.${n} ]))
    (attrNames as));

  # The script as NixOS runs it: bash with `set -e` (systemd.enableStrictShellChecks adds
  # nounset and pipefail).
  jobScript = pkgs: text: "#!${pkgs.runtimeShell}\nset -e\n${text}";

  renderService = pkgs: name: s:
    let
      unitConfig = lib.filterAttrs (_: v: v != [ ] && v != "") {
        Description = s.description;
        Wants = s.wants; Requires = s.requires; After = s.after; Before = s.before;
        BindsTo = s.bindsTo; PartOf = s.partOf; Conflicts = s.conflicts; Requisite = s.requisite;
      } // s.unitConfig;
      pathEnv = "PATH=${lib.makeBinPath (s.path ++ [ pkgs.coreutils pkgs.findutils pkgs.gnugrep pkgs.gnused pkgs.systemd ])}";
      scriptFile = pkgs.writeShellScript "unit-script-${name}-start" (jobScript pkgs s.script);
      serviceConfig = lib.optionalAttrs (s.script != "") { ExecStart = "${scriptFile}"; } // s.serviceConfig;
    in
    "[Unit]\n${attrsToSection unitConfig}\n[Service]\n"
    + "Environment=${toJSON pathEnv}\n"
    + lib.optionalString (!s.restartIfChanged) "X-RestartIfChanged=false\n"
    + lib.optionalString (!s.stopIfChanged) "X-StopIfChanged=false\n"
    + attrsToSection serviceConfig;

  baseModule = { config, pkgs, ... }: {
    options = {
      assertions = mkOption { type = types.listOf types.attrs; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
      boot.kernelParams = mkOption { type = types.listOf types.str; default = [ ]; };
      services.getty.autologinUser = mkOption { type = types.nullOr types.str; default = null; };
      systemd.services = mkOption { type = types.attrsOf (types.submodule serviceOptions); default = { }; };
      systemd.units = mkOption { type = types.attrsOf types.attrs; default = { }; };
    };
    config = {
      systemd.units = lib.mapAttrs'
        (n: s: lib.nameValuePair "${n}.service" {
          text = renderService pkgs n s;
          wantedBy = s.wantedBy;
          script = jobScript pkgs s.script;
        })
        (lib.filterAttrs (_: s: s.enable) config.systemd.services);
      system.build.toplevel =
        let failed = map (a: a.message) (filter (a: !a.assertion) config.assertions); in
        if failed != [ ] then
          throw "\nFailed assertions:\n${concatStringsSep "\n" (map (m: "- ${m}") failed)}"
        else
          builtins.derivation {
            name = "nixos-system-stand-in";
            system = pkgs.system;
            builder = "/bin/sh";
            args = [ "-c" "echo stand-in > $out" ];
            units = toJSON (lib.mapAttrs' (n: u: lib.nameValuePair n u.text) config.systemd.units);
          };
    };
  };
in
{
  inherit utils renderService;
  modulesPath = "${nixpkgsPath}/nixos/modules";

  # As nixpkgs' lib.nixosSystem; `pkgsFor system` gives the stand-in packages.
  evalNixos = { modules, pkgsFor, system ? "x86_64-linux" }:
    let
      hostPlatform = (lib.evalModules { modules = [ { options = { }; } ] ++ modules; specialArgs = dummyArgs; }).config.nixpkgs.hostPlatform or system;
      dummyArgs = { pkgs = throw "pkgs"; inherit utils; modulesPath = "${nixpkgsPath}/nixos/modules"; };
      pkgs = pkgsFor hostPlatform;
    in
    lib.evalModules {
      modules = [ baseModule ] ++ modules;
      specialArgs = { inherit pkgs utils; modulesPath = "${nixpkgsPath}/nixos/modules"; };
    };
}
