# The packages the modules of this folder (and the real ones) name: placeholders whose store
# paths are plain strings, so that evaluating the options vault reads builds and copies nothing.
{ lib }:
let
  drv = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    drvPath = "/nix/store/00000000000000000000000000000000-${name}.drv";
    outputs = [ "out" ];
    meta = { };
    overrideAttrs = _: drv name;
  } // { out = drv name; };
  pkgs = {
    inherit lib;
    system = "x86_64-linux";
    stdenv.hostPlatform = { system = "x86_64-linux"; isLinux = true; isDarwin = false; };
    runtimeShell = "/nix/store/00000000000000000000000000000000-bash/bin/bash";
    callPackage = fn: args:
      let f = if builtins.isFunction fn then fn else import fn; in
      f (builtins.intersectAttrs (builtins.functionArgs f) (pkgs // { inherit pkgs; }) // args);
    # As nixpkgs' runCommand, but its output must never be needed: initrd-ssh.nix's runCommand
    # copies a private key into the store when its outPath is evaluated.
    runCommand = name: env: script: drv name // {
      inherit script;
      outPath = throw "the check evaluated the store path of runCommand ${name} (which would copy its inputs into the store)";
    };
    runCommandLocal = pkgs.runCommand;
    writeText = name: text: drv name;
    writeTextFile = { name, ... }: drv name;
    writeShellScript = name: text: drv name;
    writeShellScriptBin = name: text: drv name;
    writeShellApplication = { name, ... }: drv name;
    formats.yaml = _: { generate = name: _: drv name; type = lib.types.anything; };
    formats.json = _: { generate = name: _: drv name; type = lib.types.anything; };
    buildPackages = pkgs;
  };
in
pkgs // lib.genAttrs [
  "age" "bash" "coreutils" "findutils" "gnugrep" "gnused" "systemd" "util-linux" "gnupg"
  "sops-install-secrets" "sops-init-gpg-key" "rage" "sbctl" "sbsigntool" "lzbt" "openssh"
  "glibc" "shadow" "jq" "mount" "gawk" "sops" "tzdata" "glibcLocales"
] drv
