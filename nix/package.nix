# The `vault` binary. Used by flake.nix (packages.<system>.default, overlays.default) and,
# without flakes, by the installer module's default `package` (`pkgs.callPackage ./package.nix { }`).
#
# Supported nixpkgs: 25.11 (nixos-25.11, rustc 1.91) and later, nixos-unstable included; they
# ship a rustc that meets Cargo.toml's `rust-version` (1.88: the highest any dependency in
# Cargo.lock declares). Older ones (nixos-25.05: rustc 1.86) are refused below with that
# message, before cargo would fail with its own.
{ lib, stdenv, rustPlatform, rustc, installShellFiles }:

let
  cargoToml = lib.importTOML ../Cargo.toml;
  inherit (cargoToml.package) version;
  needRustc = cargoToml.package.rust-version;
  # The rustc buildRustPackage uses by default (`rustPlatform.rust.rustc` is deprecated).
  haveRustc = rustc.version;
in
if lib.versionOlder haveRustc needRustc then
  throw ''
    vault ${version} needs rustc >= ${needRustc} (rust-version in Cargo.toml), and this nixpkgs
    has rustc ${haveRustc}. Use nixpkgs 25.11 (nixos-25.11) or later, or nixos-unstable: with
    flakes, `inputs.vault.inputs.nixpkgs.follows = "nixpkgs";` pointing at such a nixpkgs.''
else
rustPlatform.buildRustPackage {
  # Not `vault`: that is HashiCorp Vault in nixpkgs. The program is still `vault`.
  pname = "vault-bundle";
  inherit version;

  # Exactly what cargo needs to build the crate, from an allow-list: nothing else in the
  # checkout (bundles, install-secrets/, keys, target/) can be copied into the world-readable
  # store, tracked or not. benches/ is listed because Cargo.toml declares a [[bench]] target.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [ ../Cargo.toml ../Cargo.lock ../src ../benches ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ installShellFiles ];

  # Shell completions and man pages come from vault's own clap definitions
  # (`vault completions SHELL`, `vault man --out-dir DIR`: vault.1 and one page per
  # subcommand). Skipped when the built binary cannot run here (cross builds).
  postInstall = lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    installShellCompletion --cmd vault \
      --bash <("$out/bin/vault" completions bash) \
      --zsh <("$out/bin/vault" completions zsh) \
      --fish <("$out/bin/vault" completions fish)
    "$out/bin/vault" man --out-dir man
    installManPage man/*.1
  '';

  # The test suite drives real external tools (age, rage, sops, qemu, nix-instantiate,
  # systemd-ask-password as root) and is run by scripts/test in CI, not in the sandbox.
  doCheck = false;

  meta = {
    # nixpkgs' convention: no full stop at the end.
    description = lib.removeSuffix "." cargoToml.package.description;
    license = with lib.licenses; [ mit asl20 ];
    mainProgram = "vault";
    # The live-system commands (unlock, place, wipe, attach to a device) are Linux-only; the
    # workstation commands (init, pack, inspect, host, rekey, keys, attach --image) also build
    # on macOS.
    platforms = lib.platforms.linux ++ lib.platforms.darwin;
  };
}
