# lanzaboote's options vault reads, as nix/modules/lanzaboote.nix declares them. The bootloader
# install (lzbt, inside nixos-install, with no impermanence bind mounts) signs with
# privateKeyFile and publicKeyFile, by default keys/db/db.{key,pem} in pkiBundle; with
# allowUnsigned (by default autoGenerateKeys.enable) it installs unsigned when neither exists.
# sbctl reads the bundle (its `keys` and `GUID`) only in units at boot: generate-sb-keys
# (autoGenerateKeys) and prepare-sb-auto-enroll (autoEnrollKeys).
{ config, lib, ... }:
let cfg = config.boot.lanzaboote; in
{
  options.boot.lanzaboote = {
    enable = lib.mkEnableOption "Enable the LANZABOOTE";
    pkiBundle = lib.mkOption { type = lib.types.nullOr lib.types.externalPath; };
    publicKeyFile = lib.mkOption { type = lib.types.path; default = "${cfg.pkiBundle}/keys/db/db.pem"; };
    privateKeyFile = lib.mkOption { type = lib.types.path; default = "${cfg.pkiBundle}/keys/db/db.key"; };
    allowUnsigned = lib.mkEnableOption "" // { default = cfg.autoGenerateKeys.enable; };
    autoGenerateKeys.enable = lib.mkEnableOption "generating keys at boot";
    autoEnrollKeys.enable = lib.mkEnableOption "enrolling keys at boot";
  };
}
