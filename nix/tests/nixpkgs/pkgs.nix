# The stand-in package set for one system. Derivations are real (`builtins.derivation`) so that
# `nix flake check` can instantiate them, but their builders only write a placeholder: nothing
# here is meant to be built. `rustcVersion` lets the checks play an older nixpkgs.
{ lib, system, nixos, rustcVersion ? "1.91.1", hostSystem ? system, isStatic ? false }:

let
  placeholder = name: extra: builtins.derivation ({
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" "echo stand-in > $out" ];
  } // extra);
  tool = name: placeholder name { } // { pname = name; meta.mainProgram = name; };

  pkgs = {
    inherit lib system;
    stdenv = rec {
      hostPlatform = {
        system = hostSystem;
        inherit isStatic;
        isLinux = lib.hasSuffix "-linux" hostSystem;
        isDarwin = lib.hasSuffix "-darwin" hostSystem;
      };
      # As nixpkgs: the build machine runs what is built for its own system.
      buildPlatform = {
        inherit system;
        canExecute = p: p.system == system;
      };
    };
    runtimeShell = "${pkgs.bash}/bin/bash";

    # As nixpkgs: a function's named arguments are taken from the package set, then `args`.
    callPackage = fn: args:
      let f = if builtins.isFunction fn then fn else import fn; in
      f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // args);

    rustc = tool "rustc" // { version = rustcVersion; };
    cargo = tool "cargo";
    rustPlatform = {
      # Checks at evaluation what buildRustPackage reads at evaluation: the lock file.
      buildRustPackage = attrs:
        if !(builtins.pathExists attrs.cargoLock.lockFile)
        then throw "buildRustPackage: ${toString attrs.cargoLock.lockFile} does not exist"
        else
          placeholder "${attrs.pname}-${attrs.version}" { inherit (attrs) src; postInstall = attrs.postInstall or ""; }
          // { inherit (attrs) pname version; meta = attrs.meta or { }; buildArgs = attrs; };
    };

    writeText = name: text: placeholder name { inherit text; };
    writeShellScript = name: text: placeholder name { inherit text; };
    writeShellScriptBin = name: text: placeholder name { inherit text; };
    runCommand = name: env: script: placeholder name (env // { inherit script; });
    mkShell = attrs: placeholder "shell" { } // { shellArgs = attrs; };
    installShellFiles = tool "install-shell-files";

    # As nixpkgs: the same packages linked statically (musl), natively and cross-compiled.
    pkgsStatic = import ./pkgs.nix { inherit lib system nixos rustcVersion hostSystem; isStatic = true; };
    pkgsCross.aarch64-multiplatform.pkgsStatic = import ./pkgs.nix {
      inherit lib system nixos rustcVersion;
      hostSystem = "aarch64-linux";
      isStatic = true;
    };

    # As nixpkgs' testers.runNixOSTest: the nodes are NixOS systems (evaluated, assertions
    # included, through the stand-in NixOS, with the test driver's qemu-vm options declared),
    # the test script is Python for the test driver. Nothing runs here: nix/tests/vm-unlock.nix's
    # bundle-disk script is run by tests/nix_files.rs.
    testers.runNixOSTest = { name, nodes, testScript, ... }:
      let
        qemuVm = { lib, ... }: {
          options.virtualisation.qemu.options = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; };
        };
        systems = builtins.mapAttrs
          (_: node: (nixos.evalNixos {
            modules = [ qemuVm node { nixpkgs.hostPlatform = system; } ];
            pkgsFor = _: pkgs;
            inherit system;
          }).config)
          nodes;
      in
      placeholder "vm-test-run-${name}" {
        inherit testScript;
        nodes = map (n: systems.${n}.system.build.toplevel) (builtins.attrNames systems);
      } // { inherit systems; };
  }
  // lib.genAttrs [
    "bash" "coreutils" "findutils" "gnugrep" "gnused" "systemd" "util-linux" "clippy" "rustfmt"
    "age" "rage" "sops" "nix" "xorriso" "qemu" "e2fsprogs" "nixfmt-tree" "tzdata" "glibcLocales"
  ] tool;
in
pkgs
