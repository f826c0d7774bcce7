# sops-nix's options vault reads, as modules/sops/default.nix declares them (types, defaults,
# the sopsFile default from defaultSopsFile, the key defaults from services.openssh.hostKeys)
# and its assertion. Which keys sops-nix needs: it skips an sshKeyPaths entry it cannot read;
# a keyFile it cannot read is fatal. Without systemd activation (useSystemdActivation, set by
# systemd.sysusers or userborn) it reads them in an activation script, before impermanence's
# bind mounts.
{ config, options, lib, ... }:
let
  cfg = config.sops;
  defaultImportKeys = algo:
    if config.services.openssh.enable then
      map (e: e.path) (lib.filter (e: e.type == algo && !(lib.hasPrefix "/run/secrets" e.path)) config.services.openssh.hostKeys)
    else [ ];
  pathNotInStore = lib.mkOptionType {
    name = "pathNotInStore";
    description = "path not in the Nix store";
    check = x: builtins.isString x && !(lib.hasPrefix "${builtins.storeDir}/" x);
    merge = lib.mergeEqualOption;
  };
  secretType = lib.types.submodule ({ config, name, ... }: {
    config.sopsFile = lib.mkOptionDefault cfg.defaultSopsFile;
    options = {
      name = lib.mkOption { type = lib.types.str; default = name; };
      key = lib.mkOption { type = lib.types.str; default = name; };
      path = lib.mkOption { type = lib.types.str; default = if config.neededForUsers then "/run/secrets-for-users/${config.name}" else "/run/secrets/${config.name}"; };
      format = lib.mkOption { type = lib.types.enum [ "yaml" "json" "binary" "dotenv" "ini" ]; default = cfg.defaultSopsFormat; };
      sopsFile = lib.mkOption { type = lib.types.path; };
      neededForUsers = lib.mkOption { type = lib.types.bool; default = false; };
      owner = lib.mkOption { type = lib.types.nullOr lib.types.str; default = null; };
      mode = lib.mkOption { type = lib.types.str; default = "0400"; };
    };
  });
in
{
  options.sops = {
    secrets = lib.mkOption { type = lib.types.attrsOf secretType; default = { }; };
    defaultSopsFile = lib.mkOption { type = lib.types.path; };
    defaultSopsFormat = lib.mkOption { type = lib.types.str; default = "yaml"; };
    validateSopsFiles = lib.mkOption { type = lib.types.bool; default = true; };
    useSystemdActivation = lib.mkOption {
      type = lib.types.bool;
      default = (options.systemd ? sysusers && config.systemd.sysusers.enable)
        || (options.services ? userborn && config.services.userborn.enable);
    };
    age = {
      keyFile = lib.mkOption { type = lib.types.nullOr pathNotInStore; default = null; };
      generateKey = lib.mkOption { type = lib.types.bool; default = false; };
      sshKeyPaths = lib.mkOption { type = lib.types.listOf lib.types.path; default = defaultImportKeys "ed25519"; };
    };
    gnupg = {
      home = lib.mkOption { type = lib.types.nullOr lib.types.str; default = null; };
      sshKeyPaths = lib.mkOption { type = lib.types.listOf lib.types.path; default = defaultImportKeys "rsa"; };
    };
  };
  config = lib.mkIf (cfg.secrets != { }) {
    assertions = [
      {
        assertion = cfg.gnupg.home != null || cfg.gnupg.sshKeyPaths != [ ] || cfg.age.keyFile != null || cfg.age.sshKeyPaths != [ ];
        message = "No key source configured for sops. Either set services.openssh.enable or set sops.age.keyFile or sops.gnupg.home";
      }
    ];
  };
}
