# impermanence's options vault reads, as nixos.nix, submodule-options.nix and
# home-manager.nix declare them: environment.persistence.<storage> with `directories` and
# `files` (a string or a submodule; dirPath/filePath are the path on the running system, the
# user's home prepended for `users.<name>` and Home Manager's home.persistence), each with its
# persistentStoragePath (the storage by default). The Home Manager module is added to
# home-manager.sharedModules, as impermanence does.
{ config, options, lib, ... }:
let
  inherit (lib) mkOption types;
  concatPaths = parts: "/" + lib.concatStringsSep "/" (lib.filter (p: p != "") (lib.concatMap (lib.splitString "/") parts));

  entries = { storage, home }: {
    directories = mkOption {
      type = types.listOf (types.coercedTo types.str (d: { directory = d; }) (types.submodule ({ config, ... }: {
        options = {
          directory = mkOption { type = types.str; };
          dirPath = mkOption { type = types.path; default = concatPaths [ (if home == null then "/" else home) config.directory ]; };
          persistentStoragePath = mkOption { type = types.path; default = storage; };
        };
      })));
      default = [ ];
    };
    files = mkOption {
      type = types.listOf (types.coercedTo types.str (f: { file = f; }) (types.submodule ({ config, ... }: {
        options = {
          file = mkOption { type = types.str; };
          filePath = mkOption { type = types.path; default = concatPaths [ (if home == null then "/" else home) config.file ]; };
          persistentStoragePath = mkOption { type = types.path; default = storage; };
        };
      })));
      default = [ ];
    };
  };

  users = config.users.users;
  hmModule = { config, ... }: let homeDir = config.home.homeDirectory; in {
    options.home.persistence = mkOption {
      default = { };
      type = types.attrsOf (types.submodule ({ name, config, ... }: {
        options = {
          enable = mkOption { type = types.bool; default = true; };
          persistentStoragePath = mkOption { type = types.path; default = name; };
        } // entries { storage = config.persistentStoragePath; home = homeDir; };
      }));
    };
  };
in
{
  options.environment.persistence = mkOption {
    default = { };
    type = types.attrsOf (types.submodule ({ name, config, ... }:
      let outer = config; in
      {
        options = {
          enable = mkOption { type = types.bool; default = true; };
          persistentStoragePath = mkOption { type = types.path; default = name; };
          hideMounts = mkOption { type = types.bool; default = false; };
          users = mkOption {
            default = { };
            type = types.attrsOf (types.submodule ({ name, ... }: {
              options = {
                home = mkOption { type = types.path; default = users.${name}.home; };
              } // entries { storage = outer.persistentStoragePath; home = users.${name}.home; };
            }));
          };
        } // entries { storage = config.persistentStoragePath; home = null; };
      }));
  };
  config = lib.optionalAttrs (options ? home-manager.sharedModules) {
    home-manager.sharedModules = [
      hmModule
    ];
  };
}
