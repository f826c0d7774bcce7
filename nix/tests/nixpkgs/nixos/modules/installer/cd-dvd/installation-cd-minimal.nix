# Stand-in for nixpkgs' installer profile: what vault's module relies on from it, the
# autologin user of the installer console (nixos/modules/profiles/installation-device.nix).
{ ... }:
{
  services.getty.autologinUser = "nixos";
}
