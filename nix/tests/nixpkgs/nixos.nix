# The stand-in NixOS: `nixosSystem`, the `utils` module argument, and declarations of the NixOS
# options vault's module, its tests and the example installer use, with nixpkgs' types,
# defaults and `apply` (read from nixpkgs' nixos/lib/systemd-unit-options.nix,
# nixos/lib/systemd-lib.nix, nixos/lib/utils.nix, nixos/modules/system/boot/systemd.nix,
# services/ttys/getty.nix, system/etc/etc.nix, tasks/filesystems.nix, initrd-ssh.nix and
# services/networking/ssh/sshd.nix; docs/NIXOS.md lists the revisions). Every other option is
# undeclared, so defining it is an error, as in NixOS. Units render as systemd-lib.nix renders
# them ([Unit] with one `After=` line, [Install] when wantedBy is set). The system's toplevel
# refuses failed assertions, as NixOS does. Written against the lib interface only, so that it
# runs with the stand-in lib and with the real one (scripts/check-nix --real).
{ lib, nixpkgsPath ? ./. }:

let
  inherit (lib) mkOption types mkIf mkMerge;
  inherit (builtins) attrNames concatMap concatStringsSep filter isList map toJSON;

  utils = {
    # As nixos/lib/utils.nix: "/" becomes "-", every character but ASCII letters, digits, ":",
    # "_" and "." (and "/") as \xNN, a leading "." too; "." components and repeated slashes
    # dropped. Like nixpkgs, it leaves non-ASCII bytes as they are (systemd escapes them):
    # the installer module refuses such paths.
    escapeSystemdPath = s:
      let
        isAbsolute = lib.hasPrefix "/" s;
        raw = filter (c: c != "" && c != ".") (lib.splitString "/" s);
        simplified = builtins.foldl'
          (acc: c:
            if c == ".." then
              (if isAbsolute && acc.components == [ ] then acc else acc // { normalized = false; })
            else acc // { components = acc.components ++ [ c ]; })
          { components = [ ]; normalized = true; }
          raw;
        notNormalized = throw "escapeSystemdPath: ${s} is not a normalized path";
        path =
          if !simplified.normalized then notNormalized
          else if simplified.components != [ ] then concatStringsSep "/" simplified.components
          else if isAbsolute || s == "" then "/"
          else notNormalized;
        escaped = lib.strings.escapeC (lib.stringToCharacters " !\"#$%&'()*+,;<=>?@[\\]^`{|}~-") path;
      in
      builtins.replaceStrings [ "/" ] [ "-" ]
        (if lib.hasPrefix "." escaped then lib.strings.escapeC [ "." ] "." + lib.removePrefix "." escaped else escaped);
  };

  # As systemd-unit-options.nix.
  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      if isList (builtins.head defs).value then
        concatMap (d: if isList d.value then d.value else throw "The definitions for systemd unit options should be either all lists, representing repeatable options, or all non-lists, but for the option ${concatStringsSep "." loc}, the definitions are a mix of list and non-list") defs
      else lib.mergeEqualOption loc defs;
  };
  units = mkOption { type = types.listOf unitNameType; default = [ ]; };

  # A service as systemd.services.<name> declares it, with the [Unit] entries and the job
  # script that systemd-lib.nix and systemd.nix derive from it.
  serviceModule = pkgs: nixosConfig: { name, config, options, ... }: {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      name = mkOption { type = types.str; };
      description = mkOption { type = types.singleLineStr; default = ""; };
      documentation = mkOption { type = types.listOf types.str; default = [ ]; };
      wantedBy = units; requiredBy = units; upheldBy = units; aliases = units;
      requires = units; wants = units; upholds = units; after = units; before = units;
      bindsTo = units; partOf = units; conflicts = units; requisite = units;
      onFailure = units; onSuccess = units;
      overrideStrategy = mkOption { type = types.enum [ "asDropinIfExists" "asDropin" ]; default = "asDropinIfExists"; };
      unitConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
      serviceConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
      startLimitBurst = mkOption { type = types.int; };
      startLimitIntervalSec = mkOption { type = types.int; };
      environment = mkOption { type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ])); default = { }; };
      path = mkOption { type = types.listOf (types.oneOf [ types.package types.str ]); default = [ ]; };
      script = mkOption { type = types.lines; default = ""; };
      scriptArgs = mkOption { type = types.str; default = ""; };
      preStart = mkOption { type = types.lines; default = ""; };
      postStart = mkOption { type = types.lines; default = ""; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      reloadIfChanged = mkOption { type = types.bool; default = false; };
      stopIfChanged = mkOption { type = types.bool; default = true; };
      restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      enableStrictShellChecks = mkOption { type = types.bool; };
      jobScripts = mkOption { type = types.listOf types.unspecified; internal = true; default = [ ]; };
    };
    config = mkMerge [
      {
        name = "${name}.service";
        enableStrictShellChecks = lib.mkOptionDefault nixosConfig.systemd.enableStrictShellChecks;
        path = lib.mkAfter [ pkgs.coreutils pkgs.findutils pkgs.gnugrep pkgs.gnused pkgs.systemd ];
        environment.PATH = mkIf (config.path != [ ]) "${lib.makeBinPath config.path}:${lib.makeSearchPathOutput "bin" "sbin" config.path}";
        unitConfig =
          lib.optionalAttrs (config.requires != [ ]) { Requires = toString config.requires; }
          // lib.optionalAttrs (config.wants != [ ]) { Wants = toString config.wants; }
          // lib.optionalAttrs (config.upholds != [ ]) { Upholds = toString config.upholds; }
          // lib.optionalAttrs (config.after != [ ]) { After = toString config.after; }
          // lib.optionalAttrs (config.before != [ ]) { Before = toString config.before; }
          // lib.optionalAttrs (config.bindsTo != [ ]) { BindsTo = toString config.bindsTo; }
          // lib.optionalAttrs (config.partOf != [ ]) { PartOf = toString config.partOf; }
          // lib.optionalAttrs (config.conflicts != [ ]) { Conflicts = toString config.conflicts; }
          // lib.optionalAttrs (config.requisite != [ ]) { Requisite = toString config.requisite; }
          // lib.optionalAttrs (config.description != "") { Description = config.description; }
          // lib.optionalAttrs (config.documentation != [ ]) { Documentation = toString config.documentation; }
          // lib.optionalAttrs (config.onFailure != [ ]) { OnFailure = toString config.onFailure; }
          // lib.optionalAttrs (config.onSuccess != [ ]) { OnSuccess = toString config.onSuccess; }
          // lib.optionalAttrs options.startLimitIntervalSec.isDefined { StartLimitIntervalSec = toString config.startLimitIntervalSec; }
          // lib.optionalAttrs options.startLimitBurst.isDefined { StartLimitBurst = toString config.startLimitBurst; };
      }
      (mkIf (config.script != "") {
        jobScripts = [ (makeJobScript pkgs "${name}-start" config.script config.enableStrictShellChecks) ];
        serviceConfig.ExecStart = "${(makeJobScript pkgs "${name}-start" config.script config.enableStrictShellChecks).exe} ${config.scriptArgs}";
      })
    ];
  };

  # As systemd-lib.nix's makeJobScript: writeShellScriptBin with `set -e`, or, with
  # enableStrictShellChecks, writeShellApplication (errexit, nounset, pipefail, and shellcheck
  # at build time, which tests/nix_unit.rs runs on the rendered scripts).
  makeJobScript = pkgs: name: text: strict:
    let
      scriptName = builtins.replaceStrings [ "\\" "@" ] [ "-" "_" ] name;
      body =
        if strict then "#!${pkgs.runtimeShell}\nset -o errexit\nset -o nounset\nset -o pipefail\n\n${text}"
        else "#!${pkgs.runtimeShell}\nset -e\n\n${text}";
      drv = pkgs.writeShellScript "unit-script-${scriptName}" body;
    in
    { inherit body strict; exe = "${drv}/bin/${scriptName}"; };

  toOption = x: if x == true then "true" else if x == false then "false" else toString x;
  attrsToSection = as: lib.concatStrings (concatMap
    (n: map (x: "${n}=${toOption x}\n") (if isList as.${n} then as.${n} else [ as.${n} ]))
    (attrNames as));

  # As systemd-lib.nix's serviceToUnit and commonUnitText.
  serviceToUnit = globalEnvironment: def:
    let env = globalEnvironment // def.environment; in
    {
      inherit (def) wantedBy requiredBy upheldBy enable;
      text =
        "[Unit]\n${attrsToSection def.unitConfig}\n"
        + "[Service]\n"
        + lib.concatStrings (map (n: lib.optionalString (env.${n} != null) "Environment=${toJSON "${n}=${env.${n}}"}\n") (attrNames env))
        + (if def.reloadIfChanged then "X-ReloadIfChanged=true\n"
           else if !def.restartIfChanged then "X-RestartIfChanged=false\n" else "")
        + lib.optionalString (!def.stopIfChanged) "X-StopIfChanged=false\n"
        + attrsToSection def.serviceConfig
        + lib.optionalString (def.wantedBy != [ ]) "\n[Install]\nWantedBy=${concatStringsSep " " def.wantedBy}\n";
      # Not in NixOS: the job script's text, for tests/nix_unit.rs to run.
      scripts = map (s: s.body) def.jobScripts;
    };

  fileSystemModule = { name, config, ... }: {
    options = {
      mountPoint = mkOption { type = types.nonEmptyStr; default = name; };
      device = mkOption { type = types.nullOr types.nonEmptyStr; default = null; };
      label = mkOption { type = types.nullOr types.nonEmptyStr; default = null; };
      fsType = mkOption { type = types.nonEmptyStr; default = "auto"; };
      options = mkOption { type = types.nonEmptyListOf types.nonEmptyStr; default = [ "defaults" ]; };
      depends = mkOption { type = types.listOf types.nonEmptyStr; default = [ ]; };
      neededForBoot = mkOption { type = types.bool; default = false; };
      noCheck = mkOption { type = types.bool; default = false; };
      autoFormat = mkOption { type = types.bool; default = false; };
      autoResize = mkOption { type = types.bool; default = false; };
    };
  };

  etcModule = pkgs: { name, config, options, ... }: {
    options = {
      enable = mkOption { type = types.bool; default = true; };
      target = mkOption { type = types.str; default = name; };
      text = mkOption { type = types.nullOr types.lines; default = null; };
      source = mkOption { type = types.path; };
      mode = mkOption { type = types.str; default = "symlink"; };
    };
    config.source = mkIf (config.text != null) (lib.mkDerivedConfig options.text (pkgs.writeText "etc-${builtins.replaceStrings [ "/" ] [ "-" ] name}"));
  };

  userModule = { name, ... }: {
    options = {
      name = mkOption { type = types.str; default = name; };
      isNormalUser = mkOption { type = types.bool; default = false; };
      extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
      home = mkOption { type = types.path; default = if name == "root" then "/root" else "/home/${name}"; };
      openssh.authorizedKeys.keys = mkOption { type = types.listOf types.singleLineStr; default = [ ]; };
      openssh.authorizedKeys.keyFiles = mkOption { type = types.listOf types.path; default = [ ]; };
    };
  };

  baseModule = { config, pkgs, ... }: {
    options = {
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; internal = true; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; internal = true; };
      lib = mkOption { type = types.attrsOf types.attrs; default = { }; };
      nixpkgs.hostPlatform = mkOption { type = types.either types.str types.attrs; };
      environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
      environment.etc = mkOption { type = types.attrsOf (types.submodule (etcModule pkgs)); default = { }; };
      environment.loginShellInit = mkOption { type = types.lines; default = ""; };
      environment.interactiveShellInit = mkOption { type = types.lines; default = ""; };
      boot.kernelParams = mkOption { type = types.listOf (types.strMatching "([^\"[:space:]]|\"[^\"]*\")+"); default = [ ]; };
      fileSystems = mkOption { type = types.attrsOf (types.submodule fileSystemModule); default = { }; };
      swapDevices = mkOption { type = types.listOf types.attrs; default = [ ]; };
      services.getty.autologinUser = mkOption { type = types.nullOr types.str; default = null; };
      services.getty.helpLine = mkOption { type = types.lines; default = ""; };
      users.users = mkOption { type = types.attrsOf (types.submodule userModule); default = { }; };
      security.sudo.wheelNeedsPassword = mkOption { type = types.bool; default = true; };
      system.stateVersion = mkOption { type = types.str; default = "26.05"; };
      system.build = mkOption {
        type = types.submoduleWith { modules = [ { freeformType = types.lazyAttrsOf (types.uniq types.unspecified); } ]; };
        default = { };
      };
      systemd.enableStrictShellChecks = mkOption { type = types.bool; default = false; };
      systemd.globalEnvironment = mkOption { type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ])); default = { }; };
      systemd.services = mkOption { type = types.attrsOf (types.submodule (serviceModule pkgs config)); default = { }; };
      systemd.units = mkOption { type = types.attrsOf types.attrs; default = { }; };
    };
    config = {
      # As config/locale.nix and config/i18n.nix: every unit gets these.
      systemd.globalEnvironment = {
        TZDIR = "${pkgs.tzdata}/share/zoneinfo";
        LOCALE_ARCHIVE = "${pkgs.glibcLocales}/lib/locale/locale-archive";
      };
      systemd.units = lib.mapAttrs'
        (n: s: lib.nameValuePair "${n}.service" (serviceToUnit config.systemd.globalEnvironment s))
        config.systemd.services;
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
  inherit utils baseModule;
  modulesPath = "${nixpkgsPath}/nixos/modules";

  # As nixpkgs' lib.nixosSystem; `pkgsFor system` gives the package set. `extraModules` are
  # declarations a caller brings (the test driver's virtualisation options, a stand-in of a
  # module from another flake).
  evalNixos = { modules, pkgsFor, system ? "x86_64-linux", specialArgs ? { } }:
    let
      platform = (lib.evalModules {
        modules = [ { options.nixpkgs.hostPlatform = mkOption { type = types.unspecified; default = system; }; config._module.check = false; } ] ++ modules;
        specialArgs = { pkgs = throw "pkgs"; inherit utils; modulesPath = "${nixpkgsPath}/nixos/modules"; } // specialArgs;
      }).config.nixpkgs.hostPlatform;
      pkgs = pkgsFor (platform.system or platform);
    in
    lib.evalModules {
      modules = [ baseModule { _module.args = { inherit pkgs utils; }; nixpkgs.hostPlatform = lib.mkDefault system; } ] ++ modules;
      specialArgs = { modulesPath = "${nixpkgsPath}/nixos/modules"; } // specialArgs;
    };
}
