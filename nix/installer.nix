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

  # The unit name systemd gives a path (`systemd-escape --path`). Not utils.escapeSystemdPath:
  # nixpkgs before 26.05 leaves "?" unescaped, and every version leaves non-ASCII bytes as
  # they are, where systemd escapes them; such a unit would never appear. Paths with characters
  # outside printable ASCII are refused by an assertion below, so this list is complete.
  unitPath =
    p:
    let
      parts = lib.filter (c: c != "" && c != ".") (lib.splitString "/" p);
      path = if parts == [ ] then "/" else lib.concatStringsSep "/" parts;
      escaped = lib.strings.escapeC (lib.stringToCharacters " !\"#$%&'()*+,;<=>?@[\\]^`{|}~-") path;
    in
    builtins.replaceStrings [ "/" ] [ "-" ] (
      if lib.hasPrefix "." escaped then "\\x2e" + lib.removePrefix "." escaped else escaped
    );
  printableAscii = p: builtins.match "[ -~]*" p != null && !(lib.elem ".." (lib.splitString "/" p));

  # A bundle on a device (/dev/disk/by-label/…): the unit waits for udev to create it.
  bundleDevice = lib.optional (
    au.bundle != null && bundleOutsideStore && lib.hasPrefix "/dev/" bundleName
  ) "${unitPath bundleName}.device";

  # Stage `all`: the unit waits for the target's mount unit, if there is one, and checks the
  # mount itself, so that a blank target disk can neither hold up nor fail the boot.
  rootMount = lib.optional (au.stage == "all") "${unitPath au.root}.mount";

  # What the unit printed last (the result and the next step), kept where the user looks after
  # the console is cleared: the getty of the console disallocates it (TTYVTDisallocate=yes) when
  # it starts, so the unit's output on it is gone by the time the login prompt appears.
  # `result` as printed, for the login shell; `issue` for agetty, which reads backslashes in
  # issue files as escapes (`\\` is one backslash).
  resultFile = "/run/vault-unlock/result";
  issueFile = "/run/vault-unlock/issue";

  vault = lib.getExe' cfg.package "vault";

  unlockArgs =
    [ "unlock" ]
    ++ (if au.stage == "disk" then [ "--stage" "disk" ] else [ "--root" au.root ])
    ++ lib.optionals (au.host != null) [ "--host" au.host ]
    ++ lib.optional (au.bundle != null) bundleName;

  # At the prompt, `timeout` ends vault after `autoUnlock.timeout` seconds (exit code 124);
  # --foreground keeps vault in the console's foreground process group so it can read it.
  unlockCommand = lib.escapeShellArgs (
    lib.optionals (au.timeout > 0) [ (lib.getExe' pkgs.coreutils "timeout") "--foreground" (toString au.timeout) ]
    ++ [ vault ] ++ unlockArgs);

  # Commands as the user types them on the installer, where the autologin user is `nixos`:
  # unlocking and placing need root.
  asUser = args: "sudo " + lib.escapeShellArgs ([ "vault" ] ++ args);
  retry = asUser unlockArgs;

  say = text: "say ${lib.escapeShellArg text}";
  # A line of the result: on the console, in the journal and in the file shown at login.
  tell = text: "tell ${lib.escapeShellArg text}";

  # What the user reads on the console (and the journal) when the service ends.
  nextStep =
    if au.stage == "disk" then ''
      ${tell "vault: disk-stage files are in place; the rest waits in RAM (sudo vault wipe discards it)."}
      ${tell "vault: partition, format and mount the target at ${au.root}, then run:"}
      ${tell "         ${asUser [ "place" "--root" au.root ]}"}
    '' else ''
      ${tell "vault: every file is in place under ${au.root}."}
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
        starts there. The bundle is found on the boot medium unless `bundle` is set. The
        kernel command line option `vault.skip` skips the question'';

      host = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "laptop";
        description = ''
          The host whose files to place (`vault unlock --host`): it always wins, with a warning
          when this machine contradicts the host's recorded identity. `null`: vault recognises
          the machine. It places the bundle's only host, unless this machine contradicts its
          recorded identity; among several hosts, the one whose recorded identity
          (`[hosts.NAME.identity]`, from `vault host identify`) alone matches this machine's
          product UUID, serials and MACs (disks never decide). Otherwise the host menu on the
          console asks for a number (docs/guide/fleet.md).
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
          partitioning and mounting, the user runs `sudo vault place --root /mnt` (no second
          passphrase). This fits a freshly booted installer, where nothing is mounted yet.
          `all`: `vault unlock --root <root>` places everything at once. The unit waits for
          `root`'s mount unit (if this system has one, e.g. a `fileSystems` entry with
          `nofail`); if `root` is still not mounted, it says so and asks nothing.
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
          for `vault attach --iso-file`) or a block device (the unit then waits for the device
          to appear). `null` (the default): vault searches the boot medium and then every block
          device. Never a Nix path (`./bundle`) or a store path: those put the bundle in the
          world-readable store and in the image; an assertion refuses them.
        '';
      };

      tty = mkOption {
        type = types.strMatching "tty[A-Za-z]*[0-9]+|hvc[0-9]+";
        default = "tty1";
        example = "ttyS0";
        description = ''
          The console the passphrase is asked on, a device name under /dev (`tty1`, `ttyS0`,
          `hvc0`); its getty starts after the question is answered, skipped or timed out.
        '';
      };

      timeout = mkOption {
        type = types.ints.unsigned;
        default = 300;
        description = ''
          Seconds to wait for the passphrase; then the unit gives up cleanly, prints how to
          unlock by hand, and the boot goes on. `0`: wait for ever.
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
        {
          # systemd names units after the path's bytes; the unit the service waits for would
          # not be the one systemd creates.
          assertion = printableAscii au.root && (au.bundle == null || lib.isDerivation au.bundle || printableAscii bundleName);
          message = "programs.vault-installer.autoUnlock: root = ${au.root}, bundle = ${bundleName}: use paths of printable ASCII characters without \"..\" (e.g. /dev/disk/by-uuid/… or /dev/disk/by-partlabel/… for a label with other characters).";
        }
      ];
      # Stage "all" waits for the mount unit of `root`, which NixOS makes from fileSystems. On
      # an installer ISO, installation-cd-base.nix sets fileSystems with mkImageMediaOverride,
      # which drops a plain `fileSystems."/mnt"`: then no mount unit exists.
      warnings = lib.optional (cfg.enable && au.enable && au.stage == "all" && !(config.fileSystems ? ${au.root})) ''
        programs.vault-installer.autoUnlock.stage = "all", but fileSystems has no entry for ${au.root}: nothing mounts it at boot, and the unit will only say so. On an installer ISO (installation-cd-*.nix), add it to the image's own file systems, which take precedence over plain fileSystems definitions: lib.isoFileSystems."${au.root}" = { device = "/dev/disk/by-label/nixos"; fsType = "ext4"; options = [ "nofail" "x-systemd.device-timeout=10s" ]; };'';
    }

    (mkIf cfg.enable {
      environment.systemPackages = [ cfg.package ];
    })

    (mkIf (cfg.enable && au.enable) {
      # The result, before the login prompt (agetty shows /etc/issue.d/*.issue) and after the
      # login on that console.
      environment.etc."issue.d/vault-unlock.issue".source = issueFile;
      environment.loginShellInit = ''
        if [ -r ${resultFile} ] && [ "$(tty 2>/dev/null)" = /dev/${au.tty} ]; then cat ${resultFile}; fi
      '';
      # A oneshot service that owns the console until the question is answered, then lets the
      # (autologin) getty start there. Why a TTY and not systemd-ask-password: docs/NIXOS.md.
      systemd.services.vault-unlock = {
        description = "Ask for the vault bundle passphrase and place the install secrets";
        wantedBy = [ "multi-user.target" ];
        # Ordering only: the getty still starts if unlocking fails or is skipped.
        before = [ "getty@${au.tty}.service" "autovt@${au.tty}.service" "serial-getty@${au.tty}.service" ];
        after = [ "systemd-user-sessions.service" "plymouth-quit-wait.service" ] ++ rootMount ++ bundleDevice;
        # Wants, not Requires: a mount or device that never comes fails only itself, and the
        # script then says what to do.
        wants = rootMount ++ bundleDevice;
        unitConfig.ConditionKernelCommandLine = "!vault.skip";
        # switch-to-configuration must not restart a unit that waits on the console (as for
        # nixpkgs' gettys).
        restartIfChanged = false;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          StandardInput = "tty";
          StandardOutput = "tty";
          # The script's standard error is the journal; `say` writes to both.
          StandardError = "journal";
          SyslogIdentifier = "vault-unlock";
          TTYPath = "/dev/${au.tty}";
          TTYReset = true;
          TTYVHangup = true;
          # /run/vault-unlock: the result shown at login (kept after the unit stops).
          RuntimeDirectory = "vault-unlock";
          RuntimeDirectoryPreserve = "yes";
          # The prompt has its own timeout (autoUnlock.timeout).
          TimeoutStartSec = "infinity";
        };
        # The script holds the command line only: no secret, no bundle.
        # One brace group, so that the directive covers it all: with
        # systemd.enableStrictShellChecks, NixOS runs shellcheck on the script, which flags
        # host names and paths holding ' or $( (quoted with escapeShellArg: literal on purpose).
        script = ''
          # shellcheck disable=SC1003,SC2016
          {
          # Standard output is the console, standard error the journal.
          say() { printf '%s\n' "$1"; printf '%s\n' "$1" >&2; }
          result="''${RUNTIME_DIRECTORY:-/run/vault-unlock}/result"
          issue="''${RUNTIME_DIRECTORY:-/run/vault-unlock}/issue"
          : > "$result"
          : > "$issue"
          # Shown long after the console was cleared (maybe after an unlock by hand): the
          # first line says whose result it is.
          tell() {
            say "$1"
            if [ ! -s "$result" ]; then
              printf '%s\n' "vault-unlock.service at boot:" >> "$result"
              printf '%s\n' "vault-unlock.service at boot:" >> "$issue"
            fi
            printf '%s\n' "$1" >> "$result"
            printf '%s\n' "''${1//\\/\\\\}" >> "$issue"
          }
          # Copies vault's messages (its standard error) to both. Never the passphrase: vault
          # reads it from /dev/tty without echo. INT is ignored here so that the Ctrl-C which
          # ends vault does not also cut its last words.
          copy_log() {
            trap "" INT
            local line
            while IFS= read -r line || [ -n "$line" ]; do
              printf '%s\n' "$line"
              printf '%s\n' "$line" >&2
            done
          }
          # A handler (not an ignore) so that Ctrl-C still reaches vault and ends it, and this
          # script survives to print what to do next.
          trap 'true' INT
          echo
          ${say "vault: unlocking the install secrets. Ctrl-C skips; to unlock later, run: ${retry}"}
          ${lib.optionalString (au.stage == "all") ''
            if ! ${lib.getExe' pkgs.util-linux "mountpoint"} -q ${lib.escapeShellArg au.root}; then
              ${tell "vault: ${au.root} is not mounted (no mount for it, or the target disk is still blank); nothing was asked."}
              ${tell "vault: partition, format and mount the target at ${au.root}, then run:"}
              ${tell "         ${retry}"}
              exit 0
            fi
          ''}
          # vault's standard output goes to the console (fd 3), its standard error through copy_log.
          exec 3>&1
          set +e
          ${unlockCommand} 2>&1 >&3 3>&- | copy_log
          rc=''${PIPESTATUS[0]}
          set -e
          if [ "$rc" -eq 0 ]; then
          ${nextStep}
          ${lib.optionalString (au.timeout > 0) ''
          elif [ "$rc" -eq 124 ]; then
            ${tell "vault: no passphrase within ${toString au.timeout} seconds; going on without the install secrets. To unlock, log in and run:"}
            ${tell "         ${retry}"}
            exit 0
          ''}
          else
            tell "vault: unlock ended with exit code $rc (see above, or: journalctl -u vault-unlock). To try again, run:"
            ${tell "         ${retry}"}
          fi
          exit "$rc"
          }
        '';
      };
    })
  ];
}
