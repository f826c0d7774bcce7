# The configuration check's view of configurations (src/config_check/apply.nix), through the
# stand-in modules of this folder and through the real sources: the same configuration must
# give the same values. Run by `scripts/check-nix --real` with `sources` (absolute paths,
# any of lib, sops-nix, agenix, impermanence, lanzaboote).
#
# Result: { passed = [ names ]; failed = [ { name; standIn; real; } ]; }.
{ sources }:

let
  apply = import ../../../src/config_check/apply.nix;
  standIn = import ./. { sources = { }; };
  real = import ./. { inherit sources; };
  view = h: modules:
    let r = builtins.tryEval (let v = builtins.toJSON (apply (h.nixosSystem modules).config); in builtins.seq v v); in
    if r.success then r.value else "evaluation failed";

  configs = {
    nothing = [ { } ];
    sshd-defaults = [ { services.openssh.enable = true; } ];
    sshd-off-keys-still-declared = [ { services.openssh.hostKeys = [ { type = "ed25519"; path = "/k"; } ]; } ];
    sops-defaults-from-sshd = [ { services.openssh.enable = true; sops.secrets.a.sopsFile = "/s/a.yaml"; } ];
    sops-key-file-and-formats = [
      {
        sops.age.keyFile = "/var/lib/sops-nix/key.txt";
        sops.age.sshKeyPaths = [ ];
        sops.defaultSopsFile = "/s/default.yaml";
        sops.secrets.a = { };
        sops.secrets.b = { sopsFile = "/s/b.json"; format = "json"; };
      }
    ];
    sops-systemd-activation = [ { systemd.sysusers.enable = true; sops.age.keyFile = "/k"; sops.secrets.a.sopsFile = "/s/a.yaml"; } ];
    sops-for-users = [ { sops.useSystemdActivation = true; sops.age.keyFile = "/k"; sops.secrets.a = { sopsFile = "/s/a.yaml"; neededForUsers = true; }; sops.secrets.b.sopsFile = "/s/b.yaml"; } ];
    sops-generate-key = [ { sops.age.keyFile = "/var/lib/sops-nix/key.txt"; sops.age.generateKey = true; sops.secrets.a.sopsFile = "/s/a.yaml"; } ];
    sops-userborn = [ { services.userborn.enable = true; sops.age.keyFile = "/k"; sops.secrets.a.sopsFile = "/s/a.yaml"; } ];
    agenix-defaults-from-sshd = [ { services.openssh.enable = true; age.secrets.r.file = "/s/r.age"; } ];
    agenix-identities = [ { age.identityPaths = [ "/a" "/b" ]; age.secrets.r.file = "/s/r.age"; } ];
    agenix-sysusers = [ { systemd.sysusers.enable = true; age.identityPaths = [ "/a" ]; age.secrets.r.file = "/s/r.age"; } ];
    agenix-userborn = [ { services.userborn.enable = true; age.identityPaths = [ "/a" ]; age.secrets.r.file = "/s/r.age"; } ];
    impermanence = [
      {
        users.users.alice.isNormalUser = true;
        environment.persistence."/persist" = {
          directories = [ "/etc/ssh" { directory = "/var/lib/sbctl"; } ];
          files = [ "/etc/machine-id" { file = "/var/lib/sops-nix/key.txt"; } ];
          users.alice = { directories = [ ".ssh" ]; files = [ ".config/sops/age/keys.txt" ]; };
        };
        environment.persistence."/off" = { enable = false; directories = [ "/x" ]; };
      }
    ];
    home-manager-persistence = [
      {
        users.users.alice.isNormalUser = true;
        home-manager.users.alice.home.persistence."/persist" = { directories = [ ".gnupg" ]; files = [ ".age" ]; };
      }
    ];
    lanzaboote = [ { boot.lanzaboote = { enable = true; pkiBundle = "/var/lib/sbctl"; }; } ];
    lanzaboote-auto-generate = [ { boot.lanzaboote = { enable = true; pkiBundle = "/var/lib/sbctl"; autoGenerateKeys.enable = true; }; } ];
    lanzaboote-unsigned = [ { boot.lanzaboote = { enable = true; pkiBundle = "/var/lib/sbctl"; allowUnsigned = true; }; } ];
    lanzaboote-keys-and-enroll = [
      { boot.lanzaboote = { enable = true; pkiBundle = "/persist/sbctl"; privateKeyFile = "/k/db.key"; autoEnrollKeys.enable = true; }; }
    ];
    initrd-ssh-strings = [
      { boot.initrd.network = { enable = true; ssh = { enable = true; hostKeys = [ "/etc/secrets/initrd/k" ]; }; }; }
    ];
    initrd-ssh-off = [ { boot.initrd.network.ssh = { enable = true; hostKeys = [ "/etc/secrets/initrd/k" ]; }; } ];
    initrd-ssh-path-literal = [
      { boot.initrd.network = { enable = true; ssh = { enable = true; hostKeys = [ ./differential.nix ]; }; }; }
    ];
  };

  results = map
    (name:
      let a = view standIn configs.${name}; b = view real configs.${name}; in
      { inherit name; ok = a == b && a != "evaluation failed"; standIn = a; real = b; })
    (builtins.attrNames configs);
in
{
  passed = map (r: r.name) (builtins.filter (r: r.ok) results);
  failed = map (r: { inherit (r) name standIn real; }) (builtins.filter (r: !r.ok) results);
}
