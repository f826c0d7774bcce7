{
  description = "vault: passphrase-encrypted secrets bundles for NixOS installs";

  # No flake.lock is committed yet: it cannot be produced offline. `nix flake lock` creates it
  # (docs/NIXOS.md). Consumers usually make this follow their own nixpkgs. Supported: nixpkgs
  # 25.11 and later (nix/package.nix refuses older ones with that message), Nix 2.18 and later.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      linuxSystems = [ "x86_64-linux" "aarch64-linux" ];
      # macOS builds the workstation commands (init, pack, inspect, host, rekey, keys,
      # attach --image); unlock, place and wipe run on the Linux installer.
      systems = linuxSystems ++ [ "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      # `vault-bundle`, not `vault`: nixpkgs' `vault` is HashiCorp Vault (services.vault runs
      # `${pkgs.vault}/bin/vault server`), which the overlay must never replace.
      packages = forAllSystems (system: pkgs: rec {
        vault-bundle = pkgs.callPackage ./nix/package.nix { };
        default = vault-bundle;
      } // lib.optionalAttrs (builtins.elem system linuxSystems) {
        # Statically linked (musl, no program interpreter): the binary `vault attach` carries
        # onto a stick for the official NixOS ISO (docs/MEDIA.md), for this system's
        # architecture ...
        vault-static = pkgs.pkgsStatic.callPackage ./nix/package.nix { };
      } // lib.optionalAttrs (system == "x86_64-linux") {
        # ... and, cross-compiled, for aarch64 installers.
        vault-static-aarch64 =
          pkgs.pkgsCross.aarch64-multiplatform.pkgsStatic.callPackage ./nix/package.nix { };
      });

      # Adds `vault-bundle`; every package nixpkgs has (`vault` among them) stays as it is.
      overlays.default = final: prev: {
        vault-bundle = final.callPackage ./nix/package.nix { };
      };

      apps = forAllSystems (system: pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${system}.vault-bundle}/bin/vault";
          meta.description = self.packages.${system}.vault-bundle.meta.description;
        };
      });

      # `nix fmt`: nixfmt-tree formats the whole tree (nixfmt-rfc-style is a deprecated alias).
      formatter = forAllSystems (system: pkgs: pkgs.nixfmt-tree);

      # The installer module, as a module value (not a bare path, which `nix flake check` of
      # Nix before 2.13 refuses). Its `package` defaults to nix/package.nix built with the
      # importing system's pkgs, so it works for any architecture that system runs on.
      nixosModules.installer = {
        _file = "${toString ./nix/installer.nix}";
        imports = [ ./nix/installer.nix ];
      };
      nixosModules.default = self.nixosModules.installer;

      devShells = forAllSystems (system: pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${system}.vault-bundle ];
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

      # `nix flake check`: the package builds; on Linux the example installer evaluates
      # through the NixOS module system (assertions included, since instantiating the system's
      # toplevel checks them) and its vault-unlock unit renders; the module checks pass; and a
      # NixOS VM test boots an installer with a bundle disk and answers the prompt
      # (nix/tests/vm-unlock.nix; it needs a builder that runs VMs).
      checks = forAllSystems (system: pkgs:
        { vault-bundle = self.packages.${system}.vault-bundle; }
        // lib.optionalAttrs (builtins.elem system linuxSystems) {
          installer-eval =
            let
              config = (lib.nixosSystem {
                modules = [
                  { nixpkgs.hostPlatform = system; }
                  "${nixpkgs}/nixos/modules/installer/cd-dvd/installation-cd-minimal.nix"
                  self.nixosModules.installer
                  { programs.vault-installer = { enable = true; autoUnlock.enable = true; }; }
                ];
              }).config;
            in
            pkgs.writeText "vault-installer-eval" ''
              toplevel: ${builtins.unsafeDiscardStringContext config.system.build.toplevel.drvPath}
              ${config.systemd.units."vault-unlock.service".text}
            '';
          # The module checks of scripts/check-nix (self-contained: they evaluate the module
          # through the stand-in NixOS in nix/tests/nixpkgs).
          module-checks =
            let r = import ./nix/tests/eval-module.nix { }; in
            if r.failed == [ ] then pkgs.writeText "vault-module-checks" (builtins.toJSON r.passed)
            else throw "nix/tests/eval-module.nix: failed checks: ${builtins.toJSON r.failed}";
          vm-unlock = import ./nix/tests/vm-unlock.nix { inherit pkgs self; };
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
