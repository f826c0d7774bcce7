# A stand-in for nixpkgs, for checking vault's flake offline (no nixpkgs, no network):
#   nix flake check --override-input nixpkgs path:./nix/tests/nixpkgs
# See lib.nix, modules.nix, nixos.nix and pkgs.nix for what it implements.
{
  description = "stand-in nixpkgs for vault's Nix checks";

  outputs = { self }:
    let
      lib = import ./lib.nix;
      nixos = import ./nixos.nix { inherit lib; nixpkgsPath = self.outPath; };
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      pkgsFor = system: import ./pkgs.nix { inherit lib system nixos; };
    in
    {
      lib = lib // {
        nixosSystem = { modules, system ? "x86_64-linux", ... }:
          nixos.evalNixos { inherit modules pkgsFor system; };
      };
      legacyPackages = lib.genAttrs systems pkgsFor;
    };
}
