# nixpkgs' boot.initrd.network.ssh, as nixos/modules/system/boot/initrd-ssh.nix declares it:
# `hostKeys` takes strings or paths, and its `apply` turns a path into a derivation that copies
# the key into the Nix store (pkgs.runCommand "${baseNameOf path}" … "cp ${path} $out"); when
# enabled, every key also becomes a boot.initrd.secrets entry.
{ config, lib, pkgs, ... }:
let
  cfg = config.boot.initrd.network.ssh;
  enabled = (config.boot.initrd.network.enable || config.boot.initrd.systemd.network.enable) && cfg.enable;
  initrdKeyPath = path:
    if builtins.isString path then path
    else let name = baseNameOf path; in builtins.unsafeDiscardStringContext ("/etc/ssh/" + builtins.substring 1 (builtins.stringLength name) name);
in
{
  options.boot.initrd.network.ssh = {
    enable = lib.mkOption { type = lib.types.bool; default = false; };
    port = lib.mkOption { type = lib.types.port; default = 22; };
    hostKeys = lib.mkOption {
      type = lib.types.listOf (lib.types.either lib.types.str lib.types.path);
      default = [ ];
      apply = map (path:
        if builtins.isPath path then pkgs.runCommand (baseNameOf path) { } "cp ${path} $out" else path);
    };
    authorizedKeys = lib.mkOption { type = lib.types.listOf lib.types.str; default = config.users.users.root.openssh.authorizedKeys.keys; };
  };
  config = lib.mkIf enabled {
    boot.initrd.secrets = lib.listToAttrs (map (path: lib.nameValuePair (initrdKeyPath path) path) cfg.hostKeys);
  };
}
