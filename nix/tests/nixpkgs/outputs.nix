# The stand-in nixpkgs' flake outputs, on its own lib or (scripts/check-nix --real) on the
# real nixpkgs lib given as `realLib`.
{ self, realLib ? null }:
let
  lib = if realLib == null then import ./lib.nix else realLib;
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
}
