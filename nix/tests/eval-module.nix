# Evaluates nix/installer.nix through the stand-in NixOS (nix/tests/nixpkgs: nixpkgs' option
# types, mkIf/mkMerge semantics, systemd service options and unit rendering) and checks its
# options, the unit it generates and its assertions. Run by scripts/check-nix:
#
#   nix-instantiate --eval --strict --json nix/tests/eval-module.nix
#
# The result is { passed = [ names ]; failed = [ { name; got; } ]; options = [ paths ];
# scripts = { scenario = text }; units = { scenario = text }; }. The scripts are what systemd
# runs (bash, `set -e` first, as NixOS writes them); tests/nix_files.rs runs them through a
# shell and a pty with a fake `vault` at `vaultOut`/bin/vault. `module` is a parameter so that
# tests/nix_files.rs can show these checks catch a broken module.
#
# `lib` is the stand-in's (nix/tests/nixpkgs/lib.nix) unless given: scripts/check-nix --real
# passes the real nixpkgs lib, under which the same checks run.
{ module ? ../installer.nix
, vaultOut ? "/nix/store/00000000000000000000000000000000-vault-bundle-0.1.0"
, toolsOut ? "/nix/store/00000000000000000000000000000000-tools"
, lib ? import ./nixpkgs/lib.nix
}:

let
  nixos = import ./nixpkgs/nixos.nix { inherit lib; };
  isoProfile = ./nixpkgs/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix;
  inherit (builtins) attrNames concatMap elem filter hasContext isAttrs map tryEval deepSeq;

  # A package whose store path is a plain string: any string context in the generated unit can
  # then only come from something the module copied into the store.
  stubVault = {
    type = "derivation";
    name = "vault-bundle-0.1.0";
    outPath = vaultOut;
    meta.mainProgram = "vault";
  };
  tool = name: { type = "derivation"; inherit name; outPath = toolsOut; };
  pkgs = {
    callPackage = _path: _args: stubVault;
    runtimeShell = "/bin/bash";
    writeShellScript = name: text: "/nix/store/00000000000000000000000000000000-${name}";
    writeText = name: text: "/nix/store/00000000000000000000000000000000-${name}";
  } // lib.genAttrs [ "coreutils" "findutils" "gnugrep" "gnused" "systemd" "util-linux" "tzdata" "glibcLocales" ] tool;

  eval = user: evalWith [ ] user;
  evalWith = extra: user: nixos.evalNixos {
    modules = [ module { programs.vault-installer = user; } ] ++ extra;
    pkgsFor = _: pkgs;
  };

  cfgOf = user: (eval user).config.programs.vault-installer;
  configOf = user: (eval user).config;
  failedAssertions = user: map (a: a.message) (filter (a: !a.assertion) (configOf user).assertions);
  unitOf = user: (configOf user).systemd.services.vault-unlock or null;
  unitTextOf = user: (configOf user).systemd.units."vault-unlock.service".text;
  scriptOf = user: builtins.head (configOf user).systemd.units."vault-unlock.service".scripts;
  strictScriptOf = user: builtins.head ((evalWith [ { systemd.enableStrictShellChecks = true; } ] user).config.systemd.units."vault-unlock.service".scripts);
  contains = needle: hay: builtins.match ".*${needle}.*" (builtins.replaceStrings [ "\n" ] [ " " ] hay) != null;
  splitLines = s: filter builtins.isString (builtins.split "\n" s);
  hasLine = line: text: elem line (splitLines text);
  # Whether evaluating `v` fully fails (a type error or throw).
  fails = v: !(tryEval (deepSeq v v)).success;

  # Every option path, for the docs check in tests/nix_files.rs.
  optionPaths = prefix: opts: concatMap
    (n:
      let o = opts.${n}; p = "${prefix}.${n}"; in
      if (o._type or null) == "option" then [ p ] else optionPaths p o)
    (attrNames opts);

  # A bundle file next to this test: a path literal, as a user might write `./bundle.age`.
  bundleLiteral = ./eval-module.nix;

  auto = extra: { enable = true; autoUnlock = { enable = true; } // extra; };

  # The configurations whose scripts tests/nix_files.rs runs.
  scenarios = {
    default = auto { };
    host-and-bundle = auto { host = "it's me"; bundle = "/iso/my bundle;$(x)\\n"; timeout = 0; };
    stage-all = auto { stage = "all"; root = "/"; host = "laptop"; };
    stage-all-unmounted = auto { stage = "all"; root = "/nonexistent/target dir"; };
    short-timeout = auto { timeout = 1; };
  };

  checks = {
    defaults = cfgOf { } == {
      enable = false;
      package = stubVault;
      autoUnlock = {
        enable = false; host = null; root = "/mnt"; stage = "disk"; bundle = null; tty = "tty1";
        timeout = 300;
      };
    };

    disabled-adds-nothing = let c = configOf { }; in
      failedAssertions { } == [ ] && c.environment.systemPackages == [ ]
      && !(c.systemd.services ? vault-unlock);

    enable-adds-the-package-only = let c = configOf { enable = true; }; in
      c.environment.systemPackages == [ stubVault ] && !(c.systemd.services ? vault-unlock)
      && failedAssertions { enable = true; } == [ ];

    unit-owns-the-console-before-the-getty = let u = unitOf (auto { }); in
      removeAttrs u.serviceConfig [ "ExecStart" ] == {
        Type = "oneshot";
        RemainAfterExit = true;
        StandardInput = "tty";
        StandardOutput = "tty";
        StandardError = "journal";
        SyslogIdentifier = "vault-unlock";
        TTYPath = "/dev/tty1";
        TTYReset = true;
        TTYVHangup = true;
        TimeoutStartSec = "infinity";
        RuntimeDirectory = "vault-unlock";
        RuntimeDirectoryPreserve = "yes";
      }
      && lib.hasSuffix "-unit-script-vault-unlock-start/bin/vault-unlock-start " u.serviceConfig.ExecStart
      && elem "getty@tty1.service" u.before
      && elem "autovt@tty1.service" u.before
      && u.wantedBy == [ "multi-user.target" ]
      && failedAssertions (auto { }) == [ ];

    # As systemd-lib.nix writes it: one line per dependency list, and an [Install] section
    # for wantedBy (the symlink in multi-user.target.wants is what starts it).
    unit-text-as-nixos-writes-it = let t = unitTextOf (auto { }); in
      hasLine "Before=getty@tty1.service autovt@tty1.service serial-getty@tty1.service" t
      && hasLine "After=systemd-user-sessions.service plymouth-quit-wait.service" t
      && hasLine "StandardError=journal" t
      && hasLine "[Install]" t && hasLine "WantedBy=multi-user.target" t
      && builtins.length (filter (lib.hasPrefix "After=") (splitLines t)) == 1;

    # The getty of the console clears it (TTYVTDisallocate=yes) when it starts: the result is
    # kept in /run/vault-unlock (`issue`, escaped for agetty, which shows it before the login
    # prompt through /etc/issue.d; `result`, which the login shell on that console prints).
    result-survives-the-console-being-cleared =
      let c = configOf (auto { }); u = c.systemd.services.vault-unlock; in
      c.environment.etc."issue.d/vault-unlock.issue".source == "/run/vault-unlock/issue"
      && u.serviceConfig.RuntimeDirectory == "vault-unlock"
      && u.serviceConfig.RuntimeDirectoryPreserve == "yes"
      && contains "cat /run/vault-unlock/result" c.environment.loginShellInit
      && contains "= /dev/tty1" c.environment.loginShellInit;

    switch-does-not-restart-the-prompt =
      (unitOf (auto { })).restartIfChanged == false
      && hasLine "X-RestartIfChanged=false" (unitTextOf (auto { }));

    kernel-command-line-skips = let u = unitOf (auto { }); in
      u.unitConfig.ConditionKernelCommandLine == "!vault.skip"
      && hasLine "ConditionKernelCommandLine=!vault.skip" (unitTextOf (auto { }));

    timeout-is-an-unsigned-number =
      fails (cfgOf (auto { timeout = -1; })) && fails (cfgOf (auto { timeout = "5m"; }));

    serial-console = let u = unitOf (auto { tty = "ttyS0"; }); in
      u.serviceConfig.TTYPath == "/dev/ttyS0" && elem "serial-getty@ttyS0.service" u.before;

    tty-is-a-device-name =
      fails (cfgOf (auto { tty = "tty 1"; })) && fails (cfgOf (auto { tty = "/dev/tty1"; }))
      && !(fails (cfgOf (auto { tty = "hvc0"; })));

    stage-disk-has-no-mount-dependency = let u = unitOf (auto { }); in
      !(elem "mnt.mount" u.after) && !(u.unitConfig ? RequiresMountsFor);

    # Wants + After: waits for the target's mount unit when there is one, and neither fails
    # nor holds up the boot when it is missing or fails (RequiresMountsFor would).
    stage-all-waits-for-the-mount-without-requiring-it =
      let u = unitOf (auto { stage = "all"; root = "/mnt/target-disk"; }); in
      elem "mnt-target\\x2ddisk.mount" u.after && elem "mnt-target\\x2ddisk.mount" u.wants
      && !(u.unitConfig ? RequiresMountsFor) && u.requires == [ ];

    device-bundle-waits-for-udev =
      let u = unitOf (auto { bundle = "/dev/disk/by-label/VAULT-1"; }); in
      elem "dev-disk-by\\x2dlabel-VAULT\\x2d1.device" u.after
      && elem "dev-disk-by\\x2dlabel-VAULT\\x2d1.device" u.wants;

    # systemd escapes "?" (nixpkgs before 26.05 does not) and every non-ASCII byte (nixpkgs
    # does not): the module names the unit itself and refuses what it cannot name.
    device-label-with-a-question-mark =
      let u = unitOf (auto { bundle = "/dev/disk/by-label/WHY?"; }); in
      elem "dev-disk-by\\x2dlabel-WHY\\x3f.device" u.after
      && failedAssertions (auto { bundle = "/dev/disk/by-label/WHY?"; }) == [ ];

    non-ascii-paths-refused =
      let fa = failedAssertions (auto { bundle = "/dev/disk/by-label/CLÉ"; }); in
      builtins.length fa == 1 && contains "printable ASCII" (builtins.head fa)
      && builtins.length (failedAssertions (auto { stage = "all"; root = "/mnt/ç"; })) == 1;

    # installation-cd-base.nix sets fileSystems with mkImageMediaOverride: a plain
    # fileSystems."/mnt" is dropped (no mnt.mount), the module warns; added to
    # lib.isoFileSystems, it survives and the warning goes.
    stage-all-on-an-installer-iso =
      let
        mnt = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; options = [ "nofail" ]; };
        plain = (evalWith [ isoProfile { fileSystems."/mnt" = mnt; } ] (auto { stage = "all"; })).config;
        iso = (evalWith [ isoProfile { lib.isoFileSystems."/mnt" = mnt; } ] (auto { stage = "all"; })).config;
        override = (evalWith [ isoProfile { fileSystems = lib.mkImageMediaOverride { "/mnt" = mnt; }; } ] (auto { stage = "all"; })).config;
      in
      !(plain.fileSystems ? "/mnt") && plain.fileSystems ? "/iso"
      && builtins.length plain.warnings == 1 && contains "lib.isoFileSystems" (builtins.head plain.warnings)
      && iso.fileSystems."/mnt".device == "/dev/disk/by-label/nixos" && iso.fileSystems ? "/iso"
      && iso.warnings == [ ]
      && override.fileSystems ? "/mnt" && override.fileSystems ? "/iso";

    file-bundle-waits-for-no-device =
      let u = unitOf (auto { bundle = "/iso/vault/bundle"; }); in
      !(builtins.any (lib.hasSuffix ".device") (u.after ++ u.wants));

    explicit-runtime-bundle-is-accepted =
      failedAssertions (auto { bundle = "/iso/vault/bundle"; }) == [ ];

    bundle-path-literal-refused =
      let user = auto { bundle = bundleLiteral; }; fa = failedAssertions user; in
      builtins.length fa == 1
      && contains "Nix path or a.*store path" (builtins.head fa)
      # Refusing it did not copy it: nothing in the generated script refers to the store.
      && !(hasContext (unitOf user).script)
      # And NixOS refuses to build the system.
      && fails (configOf user).system.build.toplevel;

    bundle-store-path-string-refused =
      let fa = failedAssertions (auto { bundle = "/nix/store/0000-bundle"; }); in
      builtins.length fa == 1 && contains "world-readable Nix store" (builtins.head fa);

    bundle-derivation-refused-without-forcing-it =
      let
        drv = { type = "derivation"; name = "bundle"; outPath = throw "forced the derivation"; };
        fa = failedAssertions (auto { bundle = drv; });
      in
      builtins.length fa == 1 && contains "<derivation bundle>" (builtins.head fa);

    bundle-relative-refused =
      builtins.length (failedAssertions (auto { bundle = "bundle.age"; })) == 1;

    root-relative-refused =
      builtins.length (failedAssertions (auto { root = "mnt"; })) == 1;

    auto-unlock-needs-enable =
      let fa = failedAssertions { autoUnlock.enable = true; }; in
      builtins.length fa == 1 && contains "needs programs.vault-installer.enable" (builtins.head fa)
      && unitOf { autoUnlock.enable = true; } == null;

    stage-root-is-not-an-option-value = fails (cfgOf (auto { stage = "root"; }));

    unknown-option-refused = fails (cfgOf { autoUnlok = { }; });

    no-passphrase-option = !((eval { }).options.programs.vault-installer.autoUnlock ? passphraseFile)
      && !((eval { }).options.programs.vault-installer ? passphrase);

    system-evaluates = lib.isDerivation (configOf (auto { })).system.build.toplevel;

    # The option types come from the module system: a definition of another type is refused,
    # priorities decide between definitions, and a definition nothing declares is an error.
    priorities-decide = (evalWith [ { programs.vault-installer.autoUnlock.timeout = lib.mkForce 7; } ] (auto { timeout = 30; })).config.programs.vault-installer.autoUnlock.timeout == 7;
    undeclared-nixos-option-refused = fails (evalWith [ { services.nonexistent.enable = true; } ] (auto { })).config.systemd.services;
  };

  results = map
    (name:
      let r = tryEval (deepSeq checks.${name} checks.${name}); in
      { inherit name; ok = r.success && r.value == true; got = if r.success then r.value else "evaluation error"; })
    (attrNames checks);
in
{
  passed = map (r: r.name) (filter (r: r.ok) results);
  failed = map (r: { inherit (r) name got; }) (filter (r: !r.ok) results);
  options = optionPaths "programs" { vault-installer = (eval { }).options.programs.vault-installer; };
  scripts = builtins.mapAttrs (_: scriptOf) scenarios;
  strictScripts = builtins.mapAttrs (_: strictScriptOf) scenarios;
  loginShellInit = (configOf (auto { })).environment.loginShellInit;
  units = builtins.mapAttrs (_: unitTextOf) scenarios;
}
