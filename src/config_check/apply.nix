# The function `vault pack` applies to `nixosConfigurations.<name>.config` (nix eval --apply;
# src/config_check/eval.rs): the options a NixOS configuration reads at first boot, as JSON-able
# values. Only `sopsFile`/`defaultSopsFile` are wrapped in `tryEval`: sops-nix makes an unset
# `defaultSopsFile` throw, which is not an error of a configuration whose secrets all name
# their file. Every other failure is the configuration's own and is reported as it is.
# nix/tests/config-check/differential.nix applies it to configurations evaluated through the
# stand-in modules and through the real ones.
cfg:
let
  inherit (builtins) typeOf isAttrs isList map mapAttrs tryEval filter concatMap attrNames attrValues;
  str = v: let t = typeOf v; in if t == "string" || t == "path" then toString v else null;
  tryStr = v: let r = tryEval (str v); in if r.success then r.value else null;
  strs = l: if isList l then map str l else [ ];
  isDrv = v: isAttrs v && (v.type or null) == "derivation";
  under = home: p: if home == null || p == null then p else if builtins.substring 0 1 p == "/" then home + p else home + "/" + p;
  items = key: full: storage: home: l: if isList l then map (i:
      if isAttrs i then { path = str (i.${full} or (under home (str (i.${key} or null)))); storage = str (i.persistentStoragePath or storage); }
      else { path = under home (str i); inherit storage; }) l else [ ];
  entries = storage: home: p: {
    directories = items "directory" "dirPath" storage home (p.directories or [ ]);
    files = items "file" "filePath" storage home (p.files or [ ]);
  };
  sshd = cfg.services.openssh or { };
  sops = cfg.sops or null;
  age = cfg.age or null;
  # sops-nix and agenix read their keys in an activation script unless systemd-sysusers or
  # userborn make them use a unit (ordered after the mounts).
  systemdActivation = (cfg.systemd.sysusers.enable or false) || (cfg.services.userborn.enable or false);
  initrdNet = cfg.boot.initrd.network or { };
  initrdSsh = initrdNet.ssh or { };
  initrdSshOn = (initrdSsh.enable or false) && ((initrdNet.enable or false) || (cfg.boot.initrd.systemd.network.enable or false));
  initrdKeys = let l = initrdSsh.hostKeys or [ ]; in if isList l then l else [ ];
  # A key given as a Nix path: initrd-ssh.nix's apply made it a derivation that copies it into
  # the store. Only its name is read: its outPath would copy the key (here, too).
  storeKeys = filter isDrv initrdKeys;
  persistence = cfg.environment.persistence or null;
  users = cfg.users.users or { };
  lz = cfg.boot.lanzaboote or { };
in {
  sshd_enabled = sshd.enable or false;
  openssh_host_keys = map (k:
      if isAttrs k then { path = str (k.path or null); type = str (k.type or null); }
      else { path = str k; type = null; })
    (let l = sshd.hostKeys or [ ]; in if isList l then l else [ ]);
  sops = if sops == null then null else {
    key_file = str (sops.age.keyFile or null);
    generate_key = sops.age.generateKey or false;
    ssh_key_paths = strs (sops.age.sshKeyPaths or [ ]);
    default_sops_file = tryStr (sops.defaultSopsFile or null);
    systemd_activation = sops.useSystemdActivation or systemdActivation;
    # neededForUsers secrets: their own activation script or unit, chosen by sysusers or
    # userborn only (secrets-for-users/default.nix ignores useSystemdActivation).
    users_systemd_activation = systemdActivation;
    secrets = mapAttrs (n: s: {
        file = tryStr (s.sopsFile or sops.defaultSopsFile or null);
        format = str (s.format or null);
        needed_for_users = s.neededForUsers or false;
      }) (sops.secrets or { });
  };
  age = if age == null then null else {
    identity_paths = strs (age.identityPaths or [ ]);
    systemd_activation = systemdActivation;
    secrets = mapAttrs (n: s: str (s.file or null)) (age.secrets or { });
  };
  initrd_ssh = {
    enabled = initrdSshOn;
    host_keys = if initrdSshOn then map (k: if isDrv k then { store_copy = str (k.name or "key"); } else { path = str k; }) initrdKeys else [ ];
  };
  initrd_secrets = if initrdSshOn && storeKeys != [ ] then { } else mapAttrs (n: v: if isDrv v then null else str v) (cfg.boot.initrd.secrets or { });
  persistence = if persistence == null then null else mapAttrs (root: p:
    let storage = str (p.persistentStoragePath or root); userEntries = map (u: entries storage (str (u.home or null)) u) (attrValues (p.users or { })); in {
      enable = if (p.enable or true) == false then false else true;
      inherit storage;
      directories = (entries storage null p).directories ++ concatMap (e: e.directories) userEntries;
      files = (entries storage null p).files ++ concatMap (e: e.files) userEntries;
    }) persistence;
  # Home Manager's home.persistence (impermanence's module), per user.
  home_persistence = concatMap (u: let home = str (u.home.homeDirectory or null); in
      concatMap (root: let p = u.home.persistence.${root}; storage = str (p.persistentStoragePath or root); in
        if (p.enable or true) == false then [ ] else [ ({ inherit storage; } // entries storage home p) ])
      (attrNames (u.home.persistence or { })))
    (attrValues (cfg.home-manager.users or { }));
  lanzaboote = if (lz.enable or false) != true then null else {
    pki_bundle = tryStr (lz.pkiBundle or null);
    private_key_file = tryStr (lz.privateKeyFile or null);
    public_key_file = tryStr (lz.publicKeyFile or null);
    auto_enroll = lz.autoEnrollKeys.enable or false;
    auto_generate = lz.autoGenerateKeys.enable or false;
    allow_unsigned = lz.allowUnsigned or false;
  };
}
