# NixOS module for installer images: puts `vault` on the live system and, optionally, asks for
# the bundle passphrase on the console at boot. Reference: docs/NIXOS.md.
#
# Nothing secret enters the Nix store through this module. The bundle is found at run time on
# the boot medium (attached by `vault attach`, outside the image's store); the passphrase is typed
# on the console. There is deliberately no option for a passphrase or a passphrase file, and the
# `bundle` option only takes a run-time path: a Nix path literal or a store path is refused by an
# assertion, because anything in /nix/store is world-readable and is copied into the ISO.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types;

  cfg = config.programs.vault-installer;
  au = cfg.autoUnlock;

  # `toString` on a path literal gives its absolute name without copying it to the store, so
  # these checks (and the unit below) never import the file they are about to refuse. A
  # derivation is named, not forced: forcing it would write it to the store.
  bundleName =
    if lib.isDerivation au.bundle then "<derivation ${au.bundle.name}>" else toString au.bundle;

  bundleOutsideStore =
    au.bundle == null
    || !(builtins.isPath au.bundle
         || lib.isDerivation au.bundle
         || lib.hasPrefix builtins.storeDir bundleName);

  # Derivations are refused above; only say so once.
  bundleAbsolute = au.bundle == null || lib.isDerivation au.bundle || lib.hasPrefix "/" bundleName;

  vault = lib.getExe' cfg.package "vault";

  unlockArgs =
    [ "unlock" ]
    ++ (if au.stage == "disk" then [ "--stage" "disk" ] else [ "--root" au.root ])
    ++ lib.optionals (au.host != null) [ "--host" au.host ]
    ++ lib.optional (au.bundle != null) bundleName;

  unlockCommand = lib.escapeShellArgs ([ vault ] ++ unlockArgs);

  # The same command as the user would type it, for the message printed when unlocking fails.
  byHand = lib.concatStringsSep " " ([ "vault" ] ++ unlockArgs);

  # What the user reads on the console when the service ends.
  nextStep =
    if au.stage == "disk" then ''
      echo "vault: disk-stage files are in place; the rest waits in RAM (vault wipe discards it)."
      echo "vault: partition, format and mount the target at ${au.root}, then run:"
      echo "         vault place --root ${lib.escapeShellArg au.root}"
    '' else ''
      echo "vault: every file is in place under ${au.root}."
    '';
in
{
  options.programs.vault-installer = {
    enable = mkEnableOption "the vault CLI on this (installer) system";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage \"\${vault}/nix/package.nix\" { }";
      description = "The vault package to put on the installer.";
    };

    autoUnlock = {
      enable = mkEnableOption ''
        asking for the bundle passphrase on the console at boot, before the autologin shell
        starts there. The bundle is found on the boot medium unless `bundle` is set'';

      host = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "laptop";
        description = ''
          The host whose files to place (`vault unlock --host`). `null`: the bundle's only host,
          or vault asks when it holds several.
        '';
      };

      root = mkOption {
        type = types.str;
        default = "/mnt";
        description = ''
          The target root: where root-stage files go (`--root` with stage `all`; the directory
          named in the `vault place --root` hint with stage `disk`).
        '';
      };

      stage = mkOption {
        type = types.enum [ "all" "disk" ];
        default = "disk";
        description = ''
          `disk`: at boot, `vault unlock --stage disk` places the disk-stage files (e.g.
          `/tmp/disko-password`) and keeps the rest in a RAM-backed staging area; after
          partitioning and mounting, the user runs `vault place --root /mnt` (no second
          passphrase). This fits a freshly booted installer, where nothing is mounted yet.
          `all`: `vault unlock --root <root>` places everything at once; the unit waits for
          `root` to be mounted (RequiresMountsFor), so use it only when this system mounts the
          target itself (a `fileSystems` entry, or your own unit ordered before it).
        '';
      };

      bundle = mkOption {
        # Packages and paths are accepted by the type only so that the assertion below can
        # refuse them with a reason; `package` comes before `path` so that a derivation is
        # recognised without being forced (forcing it would write it to the store).
        type = types.nullOr (types.oneOf [ types.str types.package types.path ]);
        default = null;
        example = "/iso/vault/bundle";
        description = ''
          Where the bundle is on the running installer, as a string: a file (e.g. under `/iso`
          for `vault attach --iso-file`) or a block device. `null` (the default): vault searches
          the boot medium and then every block device. Never a Nix path (`./bundle`) or a store
          path: those put the bundle in the world-readable store and in the image; an assertion
          refuses them.
        '';
      };

      tty = mkOption {
        type = types.str;
        default = "tty1";
        example = "ttyS0";
        description = ''
          The console the passphrase is asked on; its getty starts after the question is
          answered or skipped. `ttyS0` for a serial console.
        '';
      };
    };
  };

  config = lib.mkMerge [
    {
      assertions = [
        {
          assertion = bundleOutsideStore;
          message = ''
            programs.vault-installer.autoUnlock.bundle = ${bundleName}: this is a Nix path or a
            store path. The bundle would be copied into the world-readable Nix store and into
            the installer image. Give the path where the bundle is on the running installer as
            a string (e.g. "/iso/vault/bundle"), or leave it null and attach the bundle with
            `vault attach`.
          '';
        }
        {
          assertion = bundleAbsolute;
          message = "programs.vault-installer.autoUnlock.bundle = ${bundleName}: must be an absolute path on the installer.";
        }
        {
          assertion = au.enable -> cfg.enable;
          message = "programs.vault-installer.autoUnlock.enable needs programs.vault-installer.enable.";
        }
        {
          assertion = lib.hasPrefix "/" au.root;
          message = "programs.vault-installer.autoUnlock.root = ${au.root}: must be an absolute path.";
        }
      ];
    }

    (mkIf cfg.enable {
      environment.systemPackages = [ cfg.package ];
    })

    (mkIf (cfg.enable && au.enable) {
      # A oneshot service that owns the console until the question is answered, then lets the
      # (autologin) getty start there. Why a TTY and not systemd-ask-password: docs/NIXOS.md.
      systemd.services.vault-unlock = {
        description = "Ask for the vault bundle passphrase and place the install secrets";
        wantedBy = [ "multi-user.target" ];
        # Ordering only: the getty still starts if unlocking fails or is skipped.
        before = [ "getty@${au.tty}.service" "autovt@${au.tty}.service" "serial-getty@${au.tty}.service" ];
        after = [ "systemd-user-sessions.service" "plymouth-quit-wait.service" ];
        unitConfig = lib.optionalAttrs (au.stage == "all") {
          RequiresMountsFor = au.root;
        };
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          StandardInput = "tty";
          StandardOutput = "tty";
          StandardError = "inherit";
          TTYPath = "/dev/${au.tty}";
          TTYReset = true;
          TTYVHangup = true;
          # The user may take minutes to find the passphrase.
          TimeoutStartSec = "infinity";
        };
        # The script holds the command line only: no secret, no bundle.
        script = ''
          # A handler (not an ignore) so that Ctrl-C still reaches vault and ends it, and this
          # script survives to print what to do next.
          trap 'true' INT
          echo
          echo "vault: unlocking the install secrets. Ctrl-C skips; run 'vault unlock' later."
          rc=0
          ${unlockCommand} || rc=$?
          if [ "$rc" -eq 0 ]; then
          ${nextStep}
          else
            echo "vault: unlock ended with exit code $rc (see above). To try again, log in and run:"
            echo ${lib.escapeShellArg "         ${byHand}"}
          fi
          exit "$rc"
        '';
      };
    })
  ];
}
