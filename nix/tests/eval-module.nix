# Evaluates nix/installer.nix against nix/tests/stub-lib.nix (no nixpkgs needed) and checks its
# option tree, the generated unit and its assertions. Run by scripts/check-nix:
#
#   nix-instantiate --eval --strict --json nix/tests/eval-module.nix
#
# The result is { passed = [ names ]; failed = [ { name; got; } ]; options = [ paths ]; }.
# `module` is a parameter so that tests/nix_files.rs can show these checks catch a broken module.
{ module ? ../installer.nix }:

let
  lib = import ./stub-lib.nix;
  inherit (builtins) attrNames concatMap filter hasContext isAttrs map tryEval deepSeq;

  # A package whose store path is a plain string: any string context in the generated unit can
  # then only come from something the module copied into the store.
  stubVault = {
    type = "derivation";
    name = "vault-0.1.0";
    outPath = "/nix/store/00000000000000000000000000000000-vault-0.1.0";
    meta.mainProgram = "vault";
  };
  pkgs = { callPackage = _path: _args: stubVault; };

  eval = user: lib.evalModule {
    inherit module pkgs;
    user = { programs.vault-installer = user; };
  };

  cfgOf = user: (eval user).config.programs.vault-installer;
  outOf = user: (eval user).out;
  failedAssertions = user: map (a: a.message) (filter (a: !a.assertion) ((outOf user).assertions or [ ]));
  unitOf = user: (outOf user).systemd.services.vault-unlock or null;
  scriptOf = user: (unitOf user).script;
  contains = needle: hay: builtins.match ".*${needle}.*" (builtins.replaceStrings [ "\n" ] [ " " ] hay) != null;
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

  checks = {
    defaults = cfgOf { } == {
      enable = false;
      package = stubVault;
      autoUnlock = {
        enable = false; host = null; root = "/mnt"; stage = "disk"; bundle = null; tty = "tty1";
      };
    };

    disabled-adds-nothing = let o = outOf { }; in
      failedAssertions { } == [ ] && !(o ? environment) && !(o ? systemd);

    enable-adds-the-package-only = let o = outOf { enable = true; }; in
      o.environment.systemPackages == [ stubVault ] && !(o ? systemd)
      && failedAssertions { enable = true; } == [ ];

    unit-owns-the-console-before-the-getty = let u = unitOf (auto { }); in
      u.serviceConfig == {
        Type = "oneshot";
        RemainAfterExit = true;
        StandardInput = "tty";
        StandardOutput = "tty";
        StandardError = "inherit";
        TTYPath = "/dev/tty1";
        TTYReset = true;
        TTYVHangup = true;
        TimeoutStartSec = "infinity";
      }
      && builtins.elem "getty@tty1.service" u.before
      && builtins.elem "autovt@tty1.service" u.before
      && u.wantedBy == [ "multi-user.target" ]
      && u.unitConfig == { }
      && failedAssertions (auto { }) == [ ];

    serial-console = let u = unitOf (auto { tty = "ttyS0"; }); in
      u.serviceConfig.TTYPath == "/dev/ttyS0" && builtins.elem "serial-getty@ttyS0.service" u.before;

    stage-disk-unlocks-disk-entries-and-hints-place =
      let s = scriptOf (auto { host = "laptop"; }); in
      contains "'/nix/store/00000000000000000000000000000000-vault-0.1.0/bin/vault' 'unlock' '--stage' 'disk' '--host' 'laptop' \\|\\| rc=" s
      && contains "vault place --root '/mnt'" s
      && !(contains "--root' '/mnt'" s);

    stage-all-places-under-root-after-it-is-mounted =
      let u = unitOf (auto { stage = "all"; root = "/target"; }); in
      contains "'unlock' '--root' '/target' \\|\\|" u.script
      && u.unitConfig == { RequiresMountsFor = "/target"; };

    no-host-means-no-host-flag = !(contains "--host" (scriptOf (auto { })));

    explicit-runtime-bundle-is-accepted =
      let user = auto { bundle = "/iso/vault/bundle"; }; in
      failedAssertions user == [ ]
      && contains "'--stage' 'disk' '/iso/vault/bundle' \\|\\|" (scriptOf user);

    bundle-path-literal-refused =
      let user = auto { bundle = bundleLiteral; }; fa = failedAssertions user; in
      builtins.length fa == 1
      && contains "Nix path or a.*store path" (builtins.head fa)
      # Refusing it did not copy it: nothing in the generated script refers to the store.
      && !(hasContext (scriptOf user));

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
}
