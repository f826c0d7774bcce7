# Evaluates flake.nix's outputs against a stub nixpkgs (nix/tests/stub-lib.nix and stub
# packages) and checks their shape: the package built from Cargo.lock, the app, the module, the
# dev shell and the example installer. Nothing is built. Run by scripts/check-nix:
#
#   nix-instantiate --eval --strict --json nix/tests/eval-flake.nix --arg flake ./flake.nix
#
# The result is { passed = [ names ]; failed = [ { name; got; } ]; }.
{ flake ? ../../flake.nix }:

let
  lib = import ./stub-lib.nix;
  inherit (builtins) attrNames elem filter functionArgs intersectAttrs map tryEval deepSeq;

  systems = [ "aarch64-linux" "x86_64-linux" ];
  stubDrv = name: { type = "derivation"; inherit name; outPath = "/nix/store/00000000000000000000000000000000-${name}"; };

  stubPkgs = system: rec {
    inherit lib;
    # Records what buildRustPackage was given, and stands in for its result.
    rustPlatform.buildRustPackage = attrs: stubDrv "${attrs.pname}-${attrs.version}" // { buildArgs = attrs; };
    mkShell = attrs: stubDrv "shell" // { shellArgs = attrs; };
    callPackage = path: args:
      let f = import path; in f (intersectAttrs (functionArgs f) { inherit lib rustPlatform; } // args);
  } // lib.genAttrs [ "cargo" "rustc" "clippy" "rustfmt" "age" "rage" "sops" "nix" "xorriso" "qemu" "e2fsprogs" ] stubDrv;

  nixpkgs = {
    outPath = "/nix/store/00000000000000000000000000000000-nixpkgs";
    lib = lib // { nixosSystem = args: { nixosSystemArgs = args; }; };
    legacyPackages = lib.genAttrs systems stubPkgs;
  };

  f = import flake;
  self = f.outputs { inherit self nixpkgs; };

  cargoToml = builtins.fromTOML (builtins.readFile ../../Cargo.toml);
  pkgArgs = self.packages.x86_64-linux.default.buildArgs;

  checks = {
    inputs-name-nixpkgs-only = attrNames f.inputs == [ "nixpkgs" ];

    systems = attrNames self.packages == systems
      && attrNames self.apps == systems
      && attrNames self.devShells == systems;

    package-is-built-from-cargo-lock =
      pkgArgs.pname == "vault"
      && pkgArgs.version == cargoToml.package.version
      && pkgArgs.cargoLock.lockFile == ../../Cargo.lock
      && builtins.pathExists pkgArgs.cargoLock.lockFile
      && pkgArgs.meta.mainProgram == "vault"
      && self.packages.aarch64-linux.default.buildArgs.pname == "vault";

    package-source-leaves-out-build-output =
      let filter = pkgArgs.src.filter; in
      !(filter /x/target "directory") && filter /x/src "directory" && filter /x/Cargo.lock "regular";

    default-is-vault = self.packages.x86_64-linux.default == self.packages.x86_64-linux.vault;

    app-runs-the-binary = self.apps.x86_64-linux.default == {
      type = "app";
      program = "/nix/store/00000000000000000000000000000000-vault-${cargoToml.package.version}/bin/vault";
    };

    modules = self.nixosModules.installer == ../installer.nix
      && self.nixosModules.default == self.nixosModules.installer;

    dev-shell-has-the-build-inputs-and-peers =
      let a = self.devShells.x86_64-linux.default.shellArgs; in
      a.inputsFrom == [ self.packages.x86_64-linux.vault ]
      && elem (stubDrv "sops") a.packages && elem (stubDrv "cargo") a.packages;

    checks-build-the-package-and-evaluate-the-installer =
      attrNames self.checks == systems
      && self.checks.x86_64-linux.vault == self.packages.x86_64-linux.vault
      && self.checks.x86_64-linux ? installer-eval
      && !(self.checks.aarch64-linux ? installer-eval);

    example-installer-uses-the-minimal-cd-and-the-module =
      let m = self.nixosConfigurations.installer.nixosSystemArgs.modules; in
      elem "${nixpkgs}/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix" m
      && elem self.nixosModules.installer m;
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
