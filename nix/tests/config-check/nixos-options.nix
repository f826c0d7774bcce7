# NixOS options the modules of this folder and the real sops-nix, agenix, impermanence and
# lanzaboote modules define or read, beyond ../nixpkgs/nixos.nix: declared with nixpkgs' types
# where vault reads them (boot.initrd.network, boot.initrd.secrets, systemd.sysusers,
# services.userborn), loosely where only the third-party modules write them.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  loose = mkOption { type = types.attrsOf types.anything; default = { }; };
  looseList = mkOption { type = types.listOf types.anything; default = [ ]; };
  userModule = { name, ... }: {
    options = {
      group = mkOption { type = types.str; default = if name == "root" then "root" else "users"; };
      uid = mkOption { type = types.nullOr types.int; default = null; };
    };
  };
in
{
  options = {
    boot.initrd.network.enable = mkOption { type = types.bool; default = false; };
    boot.initrd.systemd.enable = mkOption { type = types.bool; default = false; };
    boot.initrd.systemd.network.enable = mkOption { type = types.bool; default = false; };
    boot.initrd.systemd.mounts = looseList;
    boot.initrd.systemd.services = loose;
    boot.initrd.systemd.suppressedUnits = looseList;
    boot.initrd.postMountCommands = mkOption { type = types.lines; default = ""; };
    boot.initrd.secrets = mkOption { type = types.attrsOf (types.nullOr types.path); default = { }; };
    boot.loader = loose;
    boot.bootspec = loose;
    systemd.sysusers.enable = mkOption { type = types.bool; default = false; };
    services.userborn.enable = mkOption { type = types.bool; default = false; };
    services.fwupd = loose;
    systemd.mounts = looseList;
    systemd.additionalUpstreamSystemUnits = looseList;
    systemd.packages = looseList;
    systemd.targets = loose;
    systemd.tmpfiles = loose;
    systemd.package = mkOption { type = types.unspecified; default = { outPath = "/nix/store/00000000000000000000000000000000-systemd"; }; };
    system.activationScripts = loose;
    system.extraSystemBuilderCmds = mkOption { type = types.lines; default = ""; };
    users.groups = loose;
    users.users = mkOption { type = types.attrsOf (types.submodule userModule); };
    environment.variables = loose;
  };
  config.users.users.root = { };
}
