# Stand-in for nixpkgs' installer profile: what vault's module and docs rely on from it.
# installation-device.nix: the console logs in as `nixos`. iso-image.nix: the image's own file
# systems, kept in `lib.isoFileSystems` and set with mkImageMediaOverride (priority 60), which
# drops every plain `fileSystems` definition of the configuration.
{ config, lib, ... }:
{
  services.getty.autologinUser = "nixos";
  lib.isoFileSystems = {
    "/" = lib.mkImageMediaOverride { fsType = "tmpfs"; options = [ "mode=0755" ]; };
    "/iso" = lib.mkImageMediaOverride { device = "/dev/root"; neededForBoot = true; noCheck = true; };
    "/nix/.ro-store" = lib.mkImageMediaOverride {
      fsType = "squashfs";
      device = "/iso/nix-store.squashfs";
      options = [ "loop" ];
      neededForBoot = true;
    };
    "/nix/.rw-store" = lib.mkImageMediaOverride { fsType = "tmpfs"; options = [ "mode=0755" ]; neededForBoot = true; };
    "/nix/store" = lib.mkImageMediaOverride {
      fsType = "overlay";
      device = "overlay";
      options = [ "lowerdir=/nix/.ro-store" "upperdir=/nix/.rw-store/store" "workdir=/nix/.rw-store/work" ];
      depends = [ "/nix/.ro-store" "/nix/.rw-store/store" "/nix/.rw-store/work" ];
    };
  };
  fileSystems = lib.mkImageMediaOverride config.lib.isoFileSystems;
  swapDevices = lib.mkImageMediaOverride [ ];
}
