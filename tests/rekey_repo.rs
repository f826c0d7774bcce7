//! A realistic secrets repo, built with the real tools: `.sops.yaml` with anchors, aliases and
//! comments; 13 sops files (YAML, JSON, binary, dotenv, INI; one rule with two key groups); agenix
//! files made by `age` with rules importing a `keys.nix`. Then `vault host add` + `vault
//! rekey`, checked with the real `sops -d` and `age -d`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Tools {
    sops: PathBuf,
    age: PathBuf,
    rage: PathBuf,
}

fn tools() -> Option<Tools> {
    let sops = common::require_tool("sops")?;
    let age = common::require_tool("age")?;
    let rage = common::require_tool("rage")?;
    common::require_tool("nix-instantiate")?;
    Some(Tools { sops, age, rage })
}

use common::vault_in as vault;

use common::ok;

use common::write_identity;

use common::{assert_same, snapshot};

fn sops_type(path: &Path) -> &'static [&'static str] {
    match path.extension().and_then(|e| e.to_str()) {
        Some("env") => &["--input-type", "dotenv", "--output-type", "dotenv"],
        Some("ini") => &["--input-type", "ini", "--output-type", "ini"],
        _ => &[],
    }
}

fn sops_decrypt(t: &Tools, file: &Path, key: &Path, home: &Path) -> Result<Vec<u8>, String> {
    common::stdout_or_stderr(
        Command::new(&t.sops)
            .arg("-d")
            .args(sops_type(file))
            .arg(file)
            .env("SOPS_AGE_KEY_FILE", key)
            .env_remove("SOPS_AGE_KEY")
            .env("HOME", home),
    )
}

fn age_decrypt(t: &Tools, file: &Path, key: &Path) -> Result<Vec<u8>, String> {
    run_decrypt(&t.age, file, key)
}

/// The same with rage, the Rust implementation (interop both ways).
fn rage_decrypt(t: &Tools, file: &Path, key: &Path) -> Result<Vec<u8>, String> {
    run_decrypt(&t.rage, file, key)
}

use common::run_decrypt;

/// The lines holding `mac` / `lastmodified` (any format), which rekey must not touch.
/// Matched as keys, not substrings: base64 in a new age entry may well contain "mac".
fn mac_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let key = l
                .trim_start()
                .trim_start_matches('"')
                .trim_start_matches("sops_")
                .trim_start_matches("sops.");
            ["mac", "lastmodified"].iter().any(|k| {
                key.strip_prefix(k)
                    .is_some_and(|rest| rest.starts_with(['"', ':', '=', ' ']))
            })
        })
        .collect()
}

/// The part of a sops file before its metadata, which rekey must not touch.
fn data_part(path: &Path, text: &str) -> String {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml") => text.split("\nsops:\n").next().unwrap().to_string(),
        Some("json") => text.split("\t\"sops\": {").next().unwrap().to_string(),
        Some("env") => text.lines().filter(|l| !l.starts_with("sops_")).collect(),
        Some("ini") => text.split("[sops]").next().unwrap().to_string(),
        Some("bin") => text.split("\t\"sops\": {").next().unwrap().to_string(),
        _ => unreachable!(),
    }
}

const SOPS_YAML: &str = r#"# Secrets of the fleet. Keep admins first.
keys:
  # people
  - &admin ADMIN # laptop
  - &ops OPS
creation_rules:
  # per-host secrets
  - path_regex: hosts/[^/]+\.(yaml|json|bin)$
    age:
      - *admin
      - *ops # on-call
  # two key groups: both shares are needed
  - path_regex: ^vault/.*
    key_groups:
      - age:
          - *admin
      - age:
          - *ops
  - path_regex: .*\.(yaml|json|env|ini)$
    age:
      - *admin
"#;

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    secrets: PathBuf,
    /// sops file -> plaintext as `sops -d` printed it before.
    sops_plain: BTreeMap<PathBuf, Vec<u8>>,
    /// agenix file -> plaintext.
    age_plain: BTreeMap<PathBuf, Vec<u8>>,
    both_keys: PathBuf,
    admin_key: PathBuf,
    user1: PathBuf,
}

fn build(t: &Tools) -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let secrets = root.join("secrets");
    for d in ["hosts", "vault", "shared", "agenix"] {
        std::fs::create_dir_all(secrets.join(d)).unwrap();
    }
    let admin_key = root.join("admin.txt");
    let ops_key = root.join("ops.txt");
    let admin = write_identity(&admin_key);
    let ops = write_identity(&ops_key);
    let both_keys = root.join("both.txt");
    let both = format!(
        "{}{}",
        std::fs::read_to_string(&admin_key).unwrap(),
        std::fs::read_to_string(&ops_key).unwrap()
    );
    std::fs::write(&both_keys, both).unwrap();
    std::fs::write(
        secrets.join(".sops.yaml"),
        SOPS_YAML.replace("ADMIN", &admin).replace("OPS", &ops),
    )
    .unwrap();

    let files: Vec<(&str, String)> = vec![
        (
            "hosts/web.yaml",
            "db_password: s3cret\nlist:\n  - a\n  - b\nnested:\n  key: value # note\n".into(),
        ),
        ("hosts/db.yaml", "root: \"pw\"\nport: 5432\n".into()),
        (
            "hosts/mail.json",
            "{\"dkim\": \"k\", \"n\": 3, \"arr\": [1, 2]}".into(),
        ),
        ("hosts/cache.json", "{\"token\": \"t\"}".into()),
        ("vault/unseal.yaml", "unseal_key: abc\n".into()),
        ("vault/root.json", "{\"root_token\": \"r\"}".into()),
        ("shared/wifi.yaml", "psk: hunter2\n".into()),
        ("shared/smtp.yaml", "user: a\npass: b\n".into()),
        (
            "shared/api.json",
            "{\"api\": {\"key\": \"x\", \"secret\": \"y\"}}".into(),
        ),
        ("shared/backup.env", "RESTIC_PASSWORD=pw\nB2_KEY=k\n".into()),
        ("shared/app.ini", "[db]\nuser = u\npass = p\n".into()),
        (
            "shared/tls.yaml",
            "cert: |\n  -----BEGIN CERT-----\n  abc\n  -----END CERT-----\n".into(),
        ),
        // sops's "binary" store: any other extension.
        ("hosts/web-luks.bin", "raw key material\n".into()),
    ];
    let mut sops_plain = BTreeMap::new();
    for (name, content) in &files {
        let path = secrets.join(name);
        std::fs::write(&path, content).unwrap();
        let o = Command::new(&t.sops)
            .args(["-e", "-i"])
            .args(sops_type(&path))
            .arg(name)
            .current_dir(&secrets)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "sops -e {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        sops_plain.insert(
            path.clone(),
            sops_decrypt(t, &path, &both_keys, &root).unwrap(),
        );
    }

    // agenix: keys in keys.nix, every rule uses all of them.
    let user1 = root.join("user1");
    let key = vault::keys::HostKey::generate("user1").unwrap();
    key.write_pair(&user1, &root.join("user1.pub")).unwrap();
    let agenix = secrets.join("agenix");
    std::fs::write(
        agenix.join("keys.nix"),
        format!(
            "# public keys of people and hosts\n{{\n  user1 = \"{}\";\n}}\n",
            key.public_openssh_bare()
        ),
    )
    .unwrap();
    std::fs::write(
        agenix.join("secrets.nix"),
        "let\n  keys = import ./keys.nix;\n  all = builtins.attrValues keys;\nin\n{\n  \"wg.age\".publicKeys = all;\n  \"root-pw.age\".publicKeys = all;\n  \"armored.age\" = { publicKeys = all; armor = true; };\n}\n",
    )
    .unwrap();
    let mut age_plain = BTreeMap::new();
    for (name, armor, content) in [
        ("wg.age", false, b"wireguard private key\n".to_vec()),
        ("root-pw.age", false, vec![0u8, 1, 2, 255, 254]),
        ("armored.age", true, b"armored secret".to_vec()),
    ] {
        let path = agenix.join(name);
        let plain = root.join("plain");
        std::fs::write(&plain, &content).unwrap();
        let mut cmd = Command::new(&t.age);
        cmd.arg("-e").arg("-R").arg(root.join("user1.pub"));
        if armor {
            cmd.arg("-a");
        }
        let o = cmd.arg("-o").arg(&path).arg(&plain).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        age_plain.insert(path, content);
    }
    std::fs::write(
        root.join("vault.toml"),
        "# my fleet\nversion = 1\n\n[secrets]\nsops_config = \"secrets/.sops.yaml\"\nagenix_rules = \"secrets/agenix/secrets.nix\"\n",
    )
    .unwrap();
    Repo {
        _tmp: tmp,
        root,
        secrets,
        sops_plain,
        age_plain,
        both_keys,
        admin_key,
        user1,
    }
}

#[test]
fn host_add_then_rekey_opens_everything_with_the_new_host_key() {
    let Some(t) = tools() else {
        return;
    };
    let started = std::time::Instant::now();
    let r = build(&t);
    let root = &r.root;
    let before = snapshot(&r.secrets);
    let sops_yaml = r.secrets.join(".sops.yaml");
    let config_before = std::fs::read_to_string(&sops_yaml).unwrap();

    // Fresh repo: --check says so.
    assert_eq!(vault(root, &["rekey", "--check"]).status.code(), Some(0));

    ok(vault(
        root,
        &[
            "host",
            "add",
            "web1",
            "--agenix-keys",
            "secrets/agenix/keys.nix",
        ],
    ));
    let key = root.join("hosts/web1/ssh_host_ed25519_key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // .sops.yaml gained lines, nothing else: dropping the new lines gives the old file.
    let config_after = std::fs::read_to_string(&sops_yaml).unwrap();
    let added: Vec<&str> = config_after
        .lines()
        .filter(|l| l.contains("web1"))
        .collect();
    assert_eq!(
        added.len(),
        1 + 1 + 2 + 1,
        "anchor + alias per rule/group:\n{config_after}"
    );
    let kept: Vec<&str> = config_after
        .lines()
        .filter(|l| !l.contains("web1"))
        .collect();
    assert_eq!(kept, config_before.lines().collect::<Vec<_>>());

    let manifest = std::fs::read_to_string(root.join("vault.toml")).unwrap();
    assert!(manifest.starts_with("# my fleet\n"), "comments survive");
    assert!(
        manifest.contains("[hosts.web1]") && manifest.contains("/etc/ssh/ssh_host_ed25519_key")
    );

    // Stale now; a dry run changes nothing.
    let o = vault(root, &["rekey", "--check"]);
    assert_eq!(
        o.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let staged = snapshot(&r.secrets);
    ok(vault(root, &["rekey", "--dry-run"]));
    assert_same(&snapshot(&r.secrets), &staged, "--dry-run wrote something");

    let t0 = std::time::Instant::now();
    ok(vault(
        root,
        &[
            "rekey",
            "-i",
            r.both_keys.to_str().unwrap(),
            "-i",
            r.user1.to_str().unwrap(),
        ],
    ));
    eprintln!("rekey of 16 files: {:?}", t0.elapsed());

    // The host's sops identity, as sops-nix derives it at boot.
    let host_age = root.join("web1.agekey");
    std::fs::write(
        &host_age,
        ok(vault(root, &["keys", "convert", key.to_str().unwrap()])),
    )
    .unwrap();
    for (path, plain) in &r.sops_plain {
        let name = path.strip_prefix(&r.secrets).unwrap().display().to_string();
        assert_eq!(
            &sops_decrypt(&t, path, &host_age, root).unwrap(),
            plain,
            "{name} with web1"
        );
        assert_eq!(
            &sops_decrypt(&t, path, &r.both_keys, root).unwrap(),
            plain,
            "{name} with old keys"
        );
        let old = String::from_utf8(before[path].clone()).unwrap();
        let new = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            mac_lines(&old).len(),
            2,
            "{name}: mac and lastmodified lines"
        );
        assert_eq!(
            mac_lines(&old),
            mac_lines(&new),
            "{name}: mac/lastmodified changed"
        );
        assert_eq!(
            data_part(path, &old),
            data_part(path, &new),
            "{name}: values changed"
        );
    }
    // The single-group files also still open with the admin key alone.
    let web = r.secrets.join("hosts/web.yaml");
    assert!(sops_decrypt(&t, &web, &r.admin_key, root).is_ok());
    for (path, plain) in &r.age_plain {
        assert_eq!(
            &age_decrypt(&t, path, &key).unwrap(),
            plain,
            "{} with web1",
            path.display()
        );
        assert_eq!(
            &age_decrypt(&t, path, &r.user1).unwrap(),
            plain,
            "{} with user1",
            path.display()
        );
        assert_eq!(
            &rage_decrypt(&t, path, &key).unwrap(),
            plain,
            "rage: {} with web1",
            path.display()
        );
        let armored = std::fs::read(path).unwrap().starts_with(b"-----BEGIN AGE");
        assert_eq!(
            armored,
            path.ends_with("armored.age"),
            "armor of {}",
            path.display()
        );
    }

    // Fresh again, and a second rekey changes no byte.
    let after = snapshot(&r.secrets);
    assert_eq!(vault(root, &["rekey", "--check"]).status.code(), Some(0));
    ok(vault(root, &["rekey", "-i", r.both_keys.to_str().unwrap()]));
    assert_same(&snapshot(&r.secrets), &after, "second rekey changed bytes");

    // Preflight, as `vault pack` calls it.
    let m = vault::manifest::Manifest::load(&root.join("vault.toml")).unwrap();
    let reports = vault::rekey::preflight(&m, &["web1".to_string()]).unwrap();
    let rep = &reports[0];
    assert_eq!((rep.sops_listed, rep.sops_ok), (13, 13), "{rep:?}");
    assert_eq!((rep.agenix_listed, rep.agenix_ok), (3, 3), "{rep:?}");
    assert!(rep.all_ok(), "{}", rep.summary());

    // host list / remove: .sops.yaml back to the byte, key files kept.
    assert!(ok(vault(root, &["host", "list"])).contains("web1"));
    ok(vault(
        root,
        &[
            "host",
            "remove",
            "web1",
            "--agenix-keys",
            "secrets/agenix/keys.nix",
        ],
    ));
    assert_eq!(std::fs::read_to_string(&sops_yaml).unwrap(), config_before);
    assert!(
        key.exists(),
        "remove must keep key files without --delete-keys"
    );
    let keys_nix = std::fs::read_to_string(r.secrets.join("agenix/keys.nix")).unwrap();
    assert!(
        !keys_nix.contains("web1") && keys_nix.contains("user1"),
        "{keys_nix}"
    );
    assert_eq!(
        vault(root, &["rekey", "--check"]).status.code(),
        Some(8),
        "removal makes the repo stale"
    );
    eprintln!("whole test: {:?}", started.elapsed());
}

/// The lines of a sops YAML file without its `age:` list.
fn without_age_list(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_age = false;
    for l in text.lines() {
        if l == "    age:" {
            in_age = true;
            continue;
        }
        if in_age && l.starts_with("        ") {
            continue;
        }
        in_age = false;
        out.push(l);
    }
    out
}

/// sops-nix's fixture, written by sops 3.7 with PGP and age entries: adding a recipient
/// re-wraps every age entry of the group (one per recipient, in the rule's order: a kept
/// entry's label proves nothing); the PGP entries, values and MAC stay byte for byte.
#[test]
fn sops_nix_fixture_gains_exactly_one_entry() {
    let Some(fx) = common::fixtures("sops-nix") else {
        return;
    };
    let Some(t) = tools() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let file = root.join("secrets.yaml");
    let old = std::fs::read_to_string(fx.join("secrets.yaml")).unwrap();
    std::fs::write(&file, &old).unwrap();
    let new_key = root.join("new.txt");
    let new = write_identity(&new_key);
    std::fs::write(
        root.join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: secrets\\.yaml$\n    age: >-\n      age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw,\n      age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs,\n      {new}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("vault.toml"),
        "version = 1\n[secrets]\nsops_config = \".sops.yaml\"\n",
    )
    .unwrap();
    ok(vault(
        root,
        &["rekey", "-i", fx.join("age-keys.txt").to_str().unwrap()],
    ));
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(without_age_list(&text), without_age_list(&old));
    let recipients: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("        - recipient: "))
        .collect();
    assert_eq!(
        recipients,
        [
            "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw",
            "age1a8pk4akrdamj7nvqy3zywgtny8dxz7t5xzu7u8v9mhrayp9freqsqatyrs",
            new.as_str()
        ]
    );
    // Every age entry is new: no line of the old age armor is left.
    let age_armor = |t: &str| -> Vec<String> {
        let mut inside = false;
        let mut out = Vec::new();
        for l in t.lines() {
            if l.contains("-----BEGIN AGE ENCRYPTED FILE-----") {
                inside = true;
            } else if l.contains("-----END AGE ENCRYPTED FILE-----") {
                inside = false;
            } else if inside {
                out.push(l.to_string());
            }
        }
        out
    };
    let new_armor = age_armor(&text);
    assert!(age_armor(&old).iter().all(|l| !new_armor.contains(l)));
    let want = sops_decrypt(&t, &file, &fx.join("age-keys.txt"), root).unwrap();
    assert_eq!(sops_decrypt(&t, &file, &new_key, root).unwrap(), want);
}
