# Home Manager's NixOS module, as far as impermanence uses it: `home-manager.users.<name>`
# are module evaluations with `home.username`, `home.homeDirectory` and the shared modules
# (impermanence adds its home-manager.nix there).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  hmModule = types.submoduleWith {
    specialArgs = { inherit pkgs; };
    modules = [
      ({ name, ... }: {
        options = {
          home.username = mkOption { type = types.str; default = name; };
          home.homeDirectory = mkOption { type = types.path; default = "/home/${name}"; };
          assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
          warnings = mkOption { type = types.listOf types.str; default = [ ]; };
        };
      })
    ] ++ config.home-manager.sharedModules;
  };
in
{
  options.home-manager = {
    users = mkOption { type = types.attrsOf hmModule; default = { }; };
    sharedModules = mkOption { type = types.listOf types.raw; default = [ ]; };
  };
}
