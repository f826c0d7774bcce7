# NixOS VM test (`nix flake check` on Linux, where Nix can build and run QEMU): an installer
# with the module and auto-unlock boots with a second disk carrying a bundle, as
# `vault attach --device` lays it out (docs/MEDIA.md); the test types a wrong passphrase, then
# the right one, at the prompt on tty1, and checks the placed files, the journal, and that the
# hint printed for the `nixos` user works as typed. Only evaluated on machines without a
# builder (docs/NIXOS.md).
{ pkgs, self }:

let
  vault = self.packages.${pkgs.stdenv.hostPlatform.system}.vault-bundle;
  passphrase = "correct horse battery staple";

  # Test-only secrets: keys-example holds throwaway keys that are public in the repository.
  # A weak KDF keeps the VM fast; pack refuses one without --weak-kdf, and this well-known
  # test passphrase without --weak-passphrase (exit code 6).
  bundleDisk = pkgs.runCommand "vault-test-bundle-disk" { nativeBuildInputs = [ vault ]; } ''
    printf '%s\n' ${pkgs.lib.escapeShellArg passphrase} > pass
    vault pack -m ${../../keys-example}/vault.toml -o bundle --host laptop --no-config-check \
      --passphrase-file pass --kdf-memory 8 --kdf-iterations 1 --kdf-parallelism 1 --weak-kdf \
      --weak-passphrase
    len=$(stat -c %s bundle)
    cp bundle $out
    chmod u+w $out
    truncate -s %512 $out
    printf 'vault-media v1\nlength %d\n' "$len" > trailer
    truncate -s 512 trailer
    cat trailer >> $out
  '';
in
# The bundle disk is exposed so that tests/nix_files.rs can run its script.
pkgs.testers.runNixOSTest {
  name = "vault-unlock";

  nodes.machine = { ... }: {
    imports = [ self.nixosModules.installer ];
    programs.vault-installer = {
      enable = true;
      package = vault;
      autoUnlock = {
        enable = true;
        host = "laptop";
        # A device path, so the unit also waits for udev to create it.
        bundle = "/dev/disk/by-id/virtio-vaultbundle";
      };
    };
    # As on the installer: the console logs in as `nixos`, who may sudo.
    services.getty.autologinUser = "nixos";
    users.users.nixos = { isNormalUser = true; extraGroups = [ "wheel" ]; };
    security.sudo.wheelNeedsPassword = false;
    virtualisation.qemu.options = [
      "-drive file=${bundleDisk},format=raw,if=none,id=vaultbundle,readonly=on"
      "-device virtio-blk-pci,drive=vaultbundle,serial=vaultbundle"
    ];
  };

  testScript = ''
    machine.start()
    machine.wait_until_tty_matches("1", "Passphrase")
    machine.send_chars("wrong passphrase\n")
    machine.wait_until_tty_matches("1", "try again")
    machine.send_chars("${passphrase}\n")
    machine.wait_for_unit("vault-unlock.service")
    machine.wait_until_tty_matches("1", "sudo vault place --root /mnt")

    # Disk stage: the disko password is in place, the root-stage files wait in RAM.
    machine.succeed("cmp /tmp/disko-password ${../../keys-example}/hosts/laptop/disko-password")
    machine.succeed("test \"$(stat -c %a /tmp/disko-password)\" = 600")
    machine.fail("test -e /mnt/etc/ssh/ssh_host_ed25519_key")

    # The hint, as the autologin user types it.
    machine.succeed("mkdir -p /mnt && mount -t tmpfs -o mode=0755 target /mnt")
    machine.succeed("su - nixos -c 'sudo vault place --root /mnt'")
    machine.succeed("cmp /mnt/etc/ssh/ssh_host_ed25519_key ${../../keys-example}/hosts/laptop/ssh_host_ed25519_key")
    machine.succeed("test \"$(stat -c %a /mnt/etc/ssh/ssh_host_ed25519_key)\" = 600")

    # The journal has vault's messages and the result, never the passphrase.
    machine.succeed("journalctl -u vault-unlock.service | grep -q 'disk-stage files are in place'")
    machine.succeed("journalctl -u vault-unlock.service | grep -qi 'wrong passphrase'")
    machine.fail("journalctl | grep -q '${passphrase}'")
  '';
}
// { inherit bundleDisk; }
