# nixpkgs' services.openssh options vault reads, as nixos/modules/services/networking/ssh/sshd.nix
# declares them (types and defaults).
{ lib, ... }:
{
  options.services.openssh = {
    enable = lib.mkOption { type = lib.types.bool; default = false; };
    hostKeys = lib.mkOption {
      type = lib.types.listOf lib.types.attrs;
      default = [
        { type = "rsa"; bits = 4096; path = "/etc/ssh/ssh_host_rsa_key"; }
        { type = "ed25519"; path = "/etc/ssh/ssh_host_ed25519_key"; }
      ];
    };
    settings = lib.mkOption { type = lib.types.attrsOf lib.types.anything; default = { }; };
  };
}
