# A stand-in for nixpkgs, for checking vault's flake offline (no nixpkgs, no network):
#   nix flake check --override-input nixpkgs path:./nix/tests/nixpkgs
# See lib.nix, modules.nix, nixos.nix and pkgs.nix for what it implements.
{
  description = "stand-in nixpkgs for vault's Nix checks";

  outputs = { self }: import ./outputs.nix { inherit self; };
}
