# The `vault` binary. Used by flake.nix (packages.<system>.default) and, without flakes, by the
# installer module's default `package` (`pkgs.callPackage ./package.nix { }`).
{ lib, rustPlatform }:

let
  cargoToml = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "vault";
  inherit (cargoToml.package) version;

  # The repository minus build output and VCS data, so that `target/` from a local cargo build
  # neither bloats the source nor changes its hash.
  src = lib.cleanSourceWith {
    src = lib.cleanSource ../.;
    filter = path: type:
      let base = baseNameOf (toString path);
      in !(type == "directory" && (base == "target" || base == ".ci"));
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The test suite drives real external tools (age, rage, sops, qemu, nix-instantiate,
  # systemd-ask-password as root) and is run by scripts/test in CI, not in the sandbox.
  doCheck = false;

  meta = {
    description = cargoToml.package.description;
    license = with lib.licenses; [ mit asl20 ];
    mainProgram = "vault";
    platforms = lib.platforms.linux;
  };
}
