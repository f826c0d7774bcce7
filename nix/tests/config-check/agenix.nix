# agenix's options vault reads, as modules/age.nix declares them: identityPaths defaults to the
# rsa and ed25519 services.openssh.hostKeys when sshd is enabled; agenix skips identities it
# cannot read. Without systemd.sysusers or userborn it decrypts in an activation script,
# before impermanence's bind mounts.
{ config, lib, ... }:
let
  secretType = lib.types.submodule ({ config, name, ... }: {
    options = {
      name = lib.mkOption { type = lib.types.str; default = name; };
      file = lib.mkOption { type = lib.types.path; };
      path = lib.mkOption { type = lib.types.str; default = "/run/agenix/${config.name}"; };
      mode = lib.mkOption { type = lib.types.str; default = "0400"; };
    };
  });
in
{
  options.age = {
    secrets = lib.mkOption { type = lib.types.attrsOf secretType; default = { }; };
    identityPaths = lib.mkOption {
      type = lib.types.listOf lib.types.path;
      default =
        if (config.services.openssh.enable or false) then
          map (e: e.path) (lib.filter (e: e.type == "rsa" || e.type == "ed25519") config.services.openssh.hostKeys)
        else [ ];
    };
  };
  config = lib.mkIf (config.age.secrets != { }) {
    assertions = [ { assertion = config.age.identityPaths != [ ]; message = "age.identityPaths must be set, for example by enabling openssh."; } ];
  };
}
