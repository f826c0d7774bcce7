# lanzaboote's options vault reads, as nix/modules/lanzaboote.nix declares them: the bootloader
# install (inside nixos-install, with no impermanence bind mounts) signs with privateKeyFile
# and publicKeyFile, by default keys/db/db.{key,pem} in pkiBundle, whose `keys` and `GUID`
# sbctl also reads (sbctl.conf); autoEnrollKeys also uses the PK and KEK keys there.
{ config, lib, ... }:
let cfg = config.boot.lanzaboote; in
{
  options.boot.lanzaboote = {
    enable = lib.mkEnableOption "Enable the LANZABOOTE";
    pkiBundle = lib.mkOption { type = lib.types.nullOr lib.types.externalPath; };
    publicKeyFile = lib.mkOption { type = lib.types.path; default = "${cfg.pkiBundle}/keys/db/db.pem"; };
    privateKeyFile = lib.mkOption { type = lib.types.path; default = "${cfg.pkiBundle}/keys/db/db.key"; };
    autoGenerateKeys.enable = lib.mkEnableOption "generating keys at boot";
    autoEnrollKeys.enable = lib.mkEnableOption "enrolling keys at boot";
  };
}
