# NixOS configurations for the configuration check's tests (tests/config_check.rs): the test
# flakes call `nixosSystem [ modules ]`, which evaluates them through a module system with the
# modules vault reads options of. Without real sources, the stand-in lib, the stand-in NixOS
# (../nixpkgs) and stand-ins of sops-nix, agenix, impermanence (its NixOS and Home Manager
# modules), lanzaboote and nixpkgs' sshd and initrd-ssh options (in this folder; each says what
# it follows). `sources` (scripts/check-nix --real, through VAULT_REAL_NIX_SOURCES) replaces
# them with real checkouts: { lib; sops-nix; agenix; impermanence; lanzaboote; } (any subset),
# paths inside the test flake.
{ sources ? { } }:

let
  lib = if sources ? lib then import (sources.lib + "/lib") else import ../nixpkgs/lib.nix;
  nixos = import ../nixpkgs/nixos.nix { inherit lib; };
  pkgs = import ./pkgs.nix { inherit lib; };
  pick = name: real: standIn: if sources ? ${name} then real sources.${name} else standIn;
in
{
  inherit lib;
  nixosSystem = modules: nixos.evalNixos {
    pkgsFor = _: pkgs;
    modules = [
      ./nixos-options.nix
      ./sshd.nix
      ./initrd-ssh.nix
      ./home-manager.nix
      (pick "sops-nix" (d: d + "/modules/sops") ./sops-nix.nix)
      (pick "agenix" (d: d + "/modules/age.nix") ./agenix.nix)
      (pick "impermanence" (d: d + "/nixos.nix") ./impermanence.nix)
      (pick "lanzaboote" (d: d + "/nix/modules/lanzaboote.nix") ./lanzaboote.nix)
      { system.stateVersion = "26.05"; }
    ] ++ modules;
  };
}
