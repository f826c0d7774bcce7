{
  description = "vault: passphrase-encrypted secrets bundles for NixOS installs";

  # No flake.lock is committed yet: it cannot be produced offline. `nix flake lock` creates it
  # (docs/NIXOS.md). Consumers usually make this follow their own nixpkgs.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (system: pkgs: rec {
        vault = pkgs.callPackage ./nix/package.nix { };
        default = vault;
      });

      apps = forAllSystems (system: pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${system}.vault}/bin/vault";
        };
      });

      # The installer module. Its `package` defaults to the same nix/package.nix, built with the
      # importing system's pkgs, so it works for any architecture that system runs on.
      nixosModules.installer = ./nix/installer.nix;
      nixosModules.default = self.nixosModules.installer;

      devShells = forAllSystems (system: pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${system}.vault ];
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            # Real peers the test suite drives (scripts/test installs them on Debian CI).
            age
            rage
            sops
            nix
            xorriso
            qemu
            e2fsprogs
          ];
        };
      });

      # `nix flake check`: the package builds, and (x86_64) the example installer evaluates
      # through the real NixOS module system — assertions included, since instantiating the
      # system's toplevel checks them — and its vault-unlock unit renders. Nothing is booted.
      checks = forAllSystems (system: pkgs:
        { vault = self.packages.${system}.vault; }
        // lib.optionalAttrs (system == "x86_64-linux") {
          installer-eval =
            let config = self.nixosConfigurations.installer.config; in
            pkgs.writeText "vault-installer-eval" ''
              toplevel: ${builtins.unsafeDiscardStringContext config.system.build.toplevel.drvPath}
              ${config.systemd.units."vault-unlock.service".text}
            '';
        });

      # An example installer ISO with the module and auto-unlock (docs/NIXOS.md):
      #   nix build .#nixosConfigurations.installer.config.system.build.isoImage
      nixosConfigurations.installer = lib.nixosSystem {
        modules = [
          { nixpkgs.hostPlatform = "x86_64-linux"; }
          "${nixpkgs}/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix"
          self.nixosModules.installer
          {
            programs.vault-installer = {
              enable = true;
              autoUnlock.enable = true;
            };
          }
        ];
      };
    };
}
