# Evaluates flake.nix's outputs against the stand-in nixpkgs (nix/tests/nixpkgs) and checks
# their shape: the package built from Cargo.lock, the overlay, the app, the formatter, the
# module, the dev shell, the checks and the example installer. Nothing is built. Run by
# scripts/check-nix (which also runs a real `nix flake check` against the same stand-in):
#
#   nix-instantiate --eval --strict --json nix/tests/eval-flake.nix --arg flake ./flake.nix
#
# The result is { passed = [ names ]; failed = [ { name; got; } ]; }.
{ flake ? ../../flake.nix, lib ? null }:

let
  inherit (builtins) attrNames elem filter map tryEval deepSeq;

  # With `lib` given (scripts/check-nix --real), the stand-in nixpkgs runs on the real lib.
  nixpkgs = import ./nixpkgs/outputs.nix { self = nixpkgs; realLib = lib; } // { outPath = ./nixpkgs; };
  lib' = nixpkgs.lib;

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
      && self.packages.aarch64-darwin.default.buildArgs.pname == "vault-bundle";

    package-is-built-from-cargo-lock =
      pkgArgs.pname == "vault-bundle"
      && pkgArgs.version == cargoToml.package.version
      && pkgArgs.cargoLock.lockFile == ../../Cargo.lock
      && pkgArgs.meta.mainProgram == "vault"
      && elem "aarch64-darwin" pkgArgs.meta.platforms;

    # As nixpkgs asks of meta.description: a capitalised phrase without an article in front
    # and without a full stop at the end.
    package-description-as-nixpkgs-asks =
      let d = pkgArgs.meta.description; in
      builtins.match "[A-Z].*" d != null
      && builtins.match "(A|An|The) .*" d == null
      && !(lib'.hasSuffix "." d);

    package-source-is-an-allow-list =
      let src = "${pkgArgs.src}"; in
      builtins.attrNames (builtins.readDir src) == [ "Cargo.lock" "Cargo.toml" "benches" "src" ];

    package-installs-completions-and-man-page =
      lib'.hasInfix "installShellCompletion" pkgArgs.postInstall
      && lib'.hasInfix "installManPage" pkgArgs.postInstall;

    default-is-vault-bundle = self.packages.x86_64-linux.default == self.packages.x86_64-linux.vault-bundle;

    # nixpkgs' `vault` is HashiCorp Vault (services.vault runs its `vault server`): the overlay
    # adds `vault-bundle` and leaves every existing attribute as it is.
    overlay-adds-and-never-shadows =
      let
        prev = nixpkgs.legacyPackages.x86_64-linux // { vault = { type = "derivation"; name = "hashicorp-vault"; }; };
        o = self.overlays.default (prev // o) prev;
      in
      o.vault-bundle.buildArgs.pname == "vault-bundle"
      && builtins.attrNames o == [ "vault-bundle" ] && !(prev ? vault-bundle);

    app-runs-the-binary =
      let a = self.apps.x86_64-linux.default; in
      a.type == "app"
      && a.program == "${self.packages.x86_64-linux.vault-bundle}/bin/vault"
      && a.meta.description == self.packages.x86_64-linux.vault-bundle.meta.description;

    formatter-is-nixfmt-tree = self.formatter.x86_64-linux.pname == "nixfmt-tree";

    # A module value (Nix < 2.13's `nix flake check` refuses a path here) that names its file.
    modules = self.nixosModules.installer.imports == [ ../installer.nix ]
      && self.nixosModules.installer._file == toString ../installer.nix
      && self.nixosModules.default == self.nixosModules.installer;

    dev-shell-has-the-build-inputs-and-peers =
      let a = self.devShells.x86_64-linux.default.shellArgs; in
      a.inputsFrom == [ self.packages.x86_64-linux.vault-bundle ]
      && elem nixpkgs.legacyPackages.x86_64-linux.sops a.packages;

    checks-build-evaluate-and-boot-on-linux =
      attrNames self.checks == systems
      && self.checks.x86_64-linux.vault-bundle == self.packages.x86_64-linux.vault-bundle
      && self.checks.x86_64-linux ? installer-eval
      && self.checks.aarch64-linux ? vm-unlock
      && lib'.isDerivation self.checks.x86_64-linux.module-checks
      && !(self.checks.aarch64-darwin ? installer-eval)
      && lib'.isDerivation self.checks.x86_64-linux.installer-eval;

    vm-test-boots-the-module-with-a-bundle-disk =
      let
        t = self.checks.x86_64-linux.vm-unlock;
        m = t.systems.machine;
      in
      m.systemd.services.vault-unlock.serviceConfig.TTYPath == "/dev/tty1"
      && elem "dev-disk-by\\x2did-virtio\\x2dvaultbundle.device" m.systemd.services.vault-unlock.after
      && lib'.hasInfix "wait_until_tty_matches(\"1\", \"Passphrase\")" t.testScript
      # The bundle disk is packed with the weak test KDF that pack only accepts with
      # --weak-kdf, and /mnt exists before the test mounts on it.
      && lib'.hasInfix "--weak-kdf" t.bundleDisk.script
      && lib'.hasInfix "mkdir -p /mnt && mount" t.testScript
      && lib'.isDerivation m.system.build.toplevel;

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
