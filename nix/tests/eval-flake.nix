# Evaluates flake.nix's outputs against the stand-in nixpkgs (nix/tests/nixpkgs) and checks
# their shape: the package built from Cargo.lock, the overlay, the app, the formatter, the
# module, the dev shell, the checks and the example installer. Nothing is built. Run by
# scripts/check-nix (which also runs a real `nix flake check` against the same stand-in):
#
#   nix-instantiate --eval --strict --json nix/tests/eval-flake.nix --arg flake ./flake.nix
#
# The result is { passed = [ names ]; failed = [ { name; got; } ]; }.
{ flake ? ../../flake.nix }:

let
  inherit (builtins) attrNames elem filter map tryEval deepSeq;

  standInFlake = import ./nixpkgs/flake.nix;
  nixpkgs = standInFlake.outputs { self = nixpkgs; } // { outPath = ./nixpkgs; };
  inherit (nixpkgs) lib;

  systems = [ "aarch64-darwin" "aarch64-linux" "x86_64-darwin" "x86_64-linux" ];

  f = import flake;
  self = f.outputs { inherit self nixpkgs; };

  cargoToml = builtins.fromTOML (builtins.readFile ../../Cargo.toml);
  pkg = self.packages.x86_64-linux.default;
  pkgArgs = pkg.buildArgs;

  checks = {
    inputs-name-nixpkgs-only = attrNames f.inputs == [ "nixpkgs" ];

    systems-include-darwin = attrNames self.packages == systems
      && attrNames self.apps == systems
      && attrNames self.devShells == systems
      && attrNames self.formatter == systems
      && self.packages.aarch64-darwin.default.buildArgs.pname == "vault";

    package-is-built-from-cargo-lock =
      pkgArgs.pname == "vault"
      && pkgArgs.version == cargoToml.package.version
      && pkgArgs.cargoLock.lockFile == ../../Cargo.lock
      && pkgArgs.meta.mainProgram == "vault"
      && elem "aarch64-darwin" pkgArgs.meta.platforms;

    package-source-is-an-allow-list =
      let src = "${pkgArgs.src}"; in
      builtins.attrNames (builtins.readDir src) == [ "Cargo.lock" "Cargo.toml" "benches" "src" ];

    package-installs-completions-and-man-page =
      lib.hasInfix "installShellCompletion" pkgArgs.postInstall
      && lib.hasInfix "installManPage" pkgArgs.postInstall;

    default-is-vault = self.packages.x86_64-linux.default == self.packages.x86_64-linux.vault;

    overlay-adds-vault =
      let o = self.overlays.default (nixpkgs.legacyPackages.x86_64-linux // o) nixpkgs.legacyPackages.x86_64-linux; in
      o.vault.buildArgs.pname == "vault";

    app-runs-the-binary = self.apps.x86_64-linux.default == {
      type = "app";
      program = "${self.packages.x86_64-linux.vault}/bin/vault";
    };

    formatter-is-nixfmt = self.formatter.x86_64-linux.pname == "nixfmt-rfc-style";

    # A module value (Nix < 2.13's `nix flake check` refuses a path here) that names its file.
    modules = self.nixosModules.installer.imports == [ ../installer.nix ]
      && self.nixosModules.installer._file == toString ../installer.nix
      && self.nixosModules.default == self.nixosModules.installer;

    dev-shell-has-the-build-inputs-and-peers =
      let a = self.devShells.x86_64-linux.default.shellArgs; in
      a.inputsFrom == [ self.packages.x86_64-linux.vault ]
      && elem nixpkgs.legacyPackages.x86_64-linux.sops a.packages;

    checks-build-evaluate-and-boot-on-linux =
      attrNames self.checks == systems
      && self.checks.x86_64-linux.vault == self.packages.x86_64-linux.vault
      && self.checks.x86_64-linux ? installer-eval
      && self.checks.aarch64-linux ? vm-unlock
      && lib.isDerivation self.checks.x86_64-linux.module-checks
      && !(self.checks.aarch64-darwin ? installer-eval)
      && lib.isDerivation self.checks.x86_64-linux.installer-eval;

    vm-test-boots-the-module-with-a-bundle-disk =
      let
        t = self.checks.x86_64-linux.vm-unlock;
        m = t.systems.machine;
      in
      m.systemd.services.vault-unlock.serviceConfig.TTYPath == "/dev/tty1"
      && elem "dev-disk-by\\x2did-virtio\\x2dvaultbundle.device" m.systemd.services.vault-unlock.after
      && lib.hasInfix "wait_until_tty_matches(\"1\", \"Passphrase\")" t.testScript
      && lib.isDerivation m.system.build.toplevel;

    example-installer-uses-the-minimal-cd-and-the-module =
      let c = self.nixosConfigurations.installer.config; in
      c.services.getty.autologinUser == "nixos"
      && c.programs.vault-installer.autoUnlock.enable
      && c.systemd.services ? vault-unlock;
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
}
