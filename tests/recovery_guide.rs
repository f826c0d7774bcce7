//! docs/guide/recovery.md, "Rotate a host key and rekey", run as written (its `$ ` lines, by
//! bash, with HOME in a temporary folder) in a repo with sops files and agenix files whose
//! public keys live in a `keys.nix` that vault remembers. Afterwards the real `age` decides:
//! the lost key opens no sops entry and no agenix file; the new key opens exactly the files
//! the host should read, and nothing of the other host's.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ok;

struct Tools {
    sops: PathBuf,
    age: PathBuf,
}

fn tools() -> Option<Tools> {
    let sops = common::require_tool("sops")?;
    let age = common::require_tool("age")?;
    common::require_tool("nix-instantiate")?;
    common::require_tool("ssh-keygen")?;
    Some(Tools { sops, age })
}

const SOPS_YAML: &str = r#"# fleet secrets
keys:
  - &admin ADMIN # my laptop's age key
creation_rules:
  # server1's own secrets
  - path_regex: ^secrets/hosts/server1/
    age:
      - *admin
  - path_regex: ^secrets/hosts/laptop/
    age:
      - *admin
  # everything else is shared
  - path_regex: ^secrets/[^/]+\.yaml$
    age:
      - *admin
"#;

const SECRETS_NIX: &str = r#"let
  keys = import ./keys.nix;
in
{
  "shared.age".publicKeys = builtins.attrValues keys;
  "server1-wg.age".publicKeys = [ keys.admin keys.server1 ];
  "laptop-wg.age".publicKeys = [ keys.admin keys.laptop ];
}
"#;

/// Runs `vault` with HOME set, in `dir`.
fn vault(home: &Path, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(common::vault_bin())
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env_remove("SOPS_AGE_KEY_FILE")
        .output()
        .unwrap()
}

/// The `$ ` lines of the first `count` sh blocks of the section titled `heading`.
fn guide_commands(doc: &str, heading: &str, count: usize) -> Vec<String> {
    let section = doc
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("no {heading:?} in the guide"));
    let mut out = Vec::new();
    let mut blocks = 0;
    let mut inside = false;
    for line in section.lines() {
        let t = line.trim();
        if t == "```sh" {
            inside = true;
        } else if t == "```" && inside {
            inside = false;
            blocks += 1;
            if blocks == count {
                break;
            }
        } else if inside {
            if let Some(cmd) = t.strip_prefix("$ ") {
                out.push(cmd.to_string());
            }
        }
    }
    assert_eq!(blocks, count, "the guide's section has {count} sh blocks");
    out
}

/// Every `enc` of a sops YAML file's age entries, each an armored age file.
fn sops_entries(path: &Path) -> Vec<(String, String)> {
    let doc: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["sops"]["age"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["recipient"].as_str().unwrap().to_string(),
                e["enc"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether the real `age` opens `file` with `identity`.
fn age_opens(t: &Tools, file: &Path, identity: &Path) -> bool {
    common::run_decrypt(&t.age, file, identity).is_ok()
}

/// Whether any age entry of a sops file opens with `identity`, tried with the real `age`.
fn sops_entry_opens(t: &Tools, file: &Path, identity: &Path, scratch: &Path) -> bool {
    sops_entries(file).iter().any(|(_, enc)| {
        std::fs::write(scratch, enc).unwrap();
        age_opens(t, scratch, identity)
    })
}

fn sops_decrypts(t: &Tools, file: &Path, age_key: &Path, home: &Path) -> bool {
    Command::new(&t.sops)
        .arg("-d")
        .arg(file)
        .env("SOPS_AGE_KEY_FILE", age_key)
        .env("HOME", home)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn recovery_guide_rotates_the_key_for_sops_and_agenix() {
    let Some(t) = tools() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let ws = home.join("install-secrets");
    let repo = home.join("nix-config");
    let secrets = repo.join("secrets");
    std::fs::create_dir_all(secrets.join("hosts/server1")).unwrap();
    std::fs::create_dir_all(secrets.join("hosts/laptop")).unwrap();
    std::fs::create_dir_all(home.join(".config/sops/age")).unwrap();
    std::fs::create_dir_all(&ws).unwrap();
    let admin_key = home.join(".config/sops/age/keys.txt");
    let admin = common::write_identity(&admin_key);
    std::fs::write(repo.join(".sops.yaml"), SOPS_YAML.replace("ADMIN", &admin)).unwrap();
    // The admin's SSH key, agenix's usual identity.
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let admin_ssh = home.join(".ssh/id_ed25519");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "admin", "-f"])
        .arg(&admin_ssh)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let admin_pub = std::fs::read_to_string(home.join(".ssh/id_ed25519.pub")).unwrap();
    let admin_pub: Vec<&str> = admin_pub.split_whitespace().take(2).collect();
    std::fs::write(
        secrets.join("keys.nix"),
        format!(
            "# agenix public keys\n{{\n  admin = \"{}\";\n}}\n",
            admin_pub.join(" ")
        ),
    )
    .unwrap();
    std::fs::write(secrets.join("secrets.nix"), SECRETS_NIX).unwrap();
    std::fs::write(
        ws.join("vault.toml"),
        "version = 1\n\n[secrets]\nsops_config = \"../nix-config/.sops.yaml\"\nagenix_rules = \"../nix-config/secrets/secrets.nix\"\n",
    )
    .unwrap();

    // The fleet as `vault host add` builds it; the keys file is given once and remembered.
    ok(vault(
        &home,
        &ws,
        &[
            "host",
            "add",
            "server1",
            "--agenix-keys",
            "../nix-config/secrets/keys.nix",
            // laptop is not known yet, so its rule would look shared: choose explicitly.
            "--rule",
            "server1",
            "--rule",
            "yaml",
        ],
    ));
    let toml = std::fs::read_to_string(ws.join("vault.toml")).unwrap();
    assert!(
        toml.contains("agenix_keys = \"../nix-config/secrets/keys.nix\""),
        "the keys file is remembered like .sops.yaml:\n{toml}"
    );
    let o = vault(&home, &ws, &["host", "add", "laptop"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{said}");
    // laptop joins its own rule and the shared one, not server1's.
    assert!(
        said.contains("^secrets/hosts/laptop/") && said.contains(r"^secrets/[^/]+\.yaml$"),
        "says which rules it joined: {said}"
    );
    let cfg = std::fs::read_to_string(repo.join(".sops.yaml")).unwrap();
    let server1_rule = cfg
        .split("- path_regex: ^secrets/hosts/server1/")
        .nth(1)
        .unwrap()
        .split("- path_regex:")
        .next()
        .unwrap();
    assert!(
        !server1_rule.contains("*laptop"),
        "laptop must not join server1's private rule:\n{cfg}"
    );
    let keys_nix = std::fs::read_to_string(secrets.join("keys.nix")).unwrap();
    assert!(
        keys_nix.contains("laptop = \"ssh-ed25519 "),
        "the remembered keys file got laptop:\n{keys_nix}"
    );

    // Secrets: three sops files, three agenix files, first encrypted to the admin only.
    for (name, body) in [
        ("secrets/hosts/server1/db.yaml", "db: server1-only\n"),
        ("secrets/hosts/laptop/wifi.yaml", "psk: laptop-only\n"),
        ("secrets/shared.yaml", "smtp: everyone\n"),
    ] {
        std::fs::write(repo.join(name), body).unwrap();
        let o = Command::new(&t.sops)
            .args(["-e", "-i", name])
            .current_dir(&repo)
            .env("HOME", &home)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for name in ["shared.age", "server1-wg.age", "laptop-wg.age"] {
        let plain = tmp.path().join("plain");
        std::fs::write(&plain, format!("{name} content\n")).unwrap();
        let o = Command::new(&t.age)
            .arg("-e")
            .arg("-R")
            .arg(home.join(".ssh/id_ed25519.pub"))
            .arg("-o")
            .arg(secrets.join(name))
            .arg(&plain)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    ok(vault(
        &home,
        &ws,
        &[
            "rekey",
            "-i",
            admin_key.to_str().unwrap(),
            "-i",
            admin_ssh.to_str().unwrap(),
        ],
    ));

    // The lost key, as an SSH identity (agenix) and its ssh-to-age identity (sops-nix).
    let old_ssh = tmp.path().join("old_ssh_key");
    std::fs::copy(ws.join("hosts/laptop/ssh_host_ed25519_key"), &old_ssh).unwrap();
    let old_age = tmp.path().join("old.agekey");
    std::fs::write(
        &old_age,
        ok(vault(
            &home,
            &ws,
            &["keys", "convert", old_ssh.to_str().unwrap()],
        )),
    )
    .unwrap();
    let scratch = tmp.path().join("entry.age");
    // Before: the key opens laptop's secrets (so the checks below can fail).
    assert!(sops_entry_opens(
        &t,
        &secrets.join("hosts/laptop/wifi.yaml"),
        &old_age,
        &scratch
    ));
    assert!(age_opens(&t, &secrets.join("laptop-wg.age"), &old_ssh));

    // The guide, as written: steps 1 and 2.
    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide/recovery.md"),
    )
    .unwrap();
    let commands = guide_commands(&guide, "### Rotate a host key and rekey", 2);
    assert!(commands.iter().any(|c| c.starts_with("vault host remove")));
    let script = format!("set -ex\n{}\n", commands.join("\n"));
    let bin_dir = common::vault_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&home)
        .env("HOME", &home)
        .env("PATH", path)
        .env_remove("SOPS_AGE_KEY_FILE")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the guide's commands failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    let new_ssh = ws.join("hosts/laptop/ssh_host_ed25519_key");
    let new_age = tmp.path().join("new.agekey");
    std::fs::write(
        &new_age,
        ok(vault(
            &home,
            &ws,
            &["keys", "convert", new_ssh.to_str().unwrap()],
        )),
    )
    .unwrap();
    let old_pub =
        std::fs::read_to_string(ws.join("hosts/laptop/ssh_host_ed25519_key.pub.lost")).unwrap();
    let new_pub =
        std::fs::read_to_string(ws.join("hosts/laptop/ssh_host_ed25519_key.pub")).unwrap();
    let bare = |l: &str| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let keys_nix = std::fs::read_to_string(secrets.join("keys.nix")).unwrap();
    assert!(
        !keys_nix.contains(&bare(&old_pub)) && keys_nix.contains(&bare(&new_pub)),
        "keys.nix must trade the old key for the new one:\n{keys_nix}"
    );

    // The lost key opens nothing: no sops entry, no agenix file, in either form.
    for name in [
        "secrets/hosts/server1/db.yaml",
        "secrets/hosts/laptop/wifi.yaml",
        "secrets/shared.yaml",
    ] {
        assert!(
            !sops_entry_opens(&t, &repo.join(name), &old_age, &scratch),
            "the lost key still opens {name}"
        );
    }
    for name in ["shared.age", "server1-wg.age", "laptop-wg.age"] {
        let f = secrets.join(name);
        assert!(!age_opens(&t, &f, &old_ssh), "the lost key opens {name}");
        assert!(!age_opens(&t, &f, &old_age), "the lost key opens {name}");
    }
    // The new key opens laptop's and the shared secrets, and nothing of server1's.
    for (name, should) in [
        ("secrets/hosts/server1/db.yaml", false),
        ("secrets/hosts/laptop/wifi.yaml", true),
        ("secrets/shared.yaml", true),
    ] {
        let f = repo.join(name);
        assert_eq!(
            sops_entry_opens(&t, &f, &new_age, &scratch),
            should,
            "new key and {name}"
        );
        // A HOME without the admin's keys.txt, which sops would also try.
        assert_eq!(
            sops_decrypts(&t, &f, &new_age, tmp.path()),
            should,
            "sops -d {name}"
        );
    }
    for (name, should) in [
        ("shared.age", true),
        ("server1-wg.age", false),
        ("laptop-wg.age", true),
    ] {
        assert_eq!(
            age_opens(&t, &secrets.join(name), &new_ssh),
            should,
            "new key and {name}"
        );
    }
    // The repo is current, and the pack preflight sees the agenix files.
    assert_eq!(
        vault(&home, &ws, &["rekey", "--check"]).status.code(),
        Some(0)
    );
    let m = vault::manifest::Manifest::load(&ws.join("vault.toml")).unwrap();
    let rep = &vault::rekey::preflight(&m, &["laptop".to_string()]).unwrap()[0];
    assert_eq!((rep.sops_listed, rep.sops_ok), (2, 2), "{}", rep.summary());
    assert_eq!(
        (rep.agenix_listed, rep.agenix_ok),
        (2, 2),
        "{}",
        rep.summary()
    );
}

/// docs/guide/recovery.md, "Forgot a bundle's passphrase", its recovery-key commands run as
/// written (bash on a real pseudo-terminal, the new passphrase typed) on a bundle an attacker
/// made: knowing only the victim's recovery recipient (a public key), they packed their own
/// host key and `authorized_keys` with their own age key as a second recovery recipient.
/// The victim is told the recovery key proves nothing about who made it, every item that
/// differs from their sources is named, and the bundle they end with holds their own files
/// and opens with their key only, never the attacker's.
#[test]
fn the_guides_recovery_on_a_forged_bundle_keeps_the_attacker_out() {
    use expectrl::{Eof, Session};
    let Some(t) = tools() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let ws = home.join("install-secrets");
    std::fs::create_dir_all(home.join("offline")).unwrap();
    std::fs::create_dir_all(ws.join("hosts/laptop")).unwrap();
    let keygen = |path: &Path| {
        let o = Command::new("age-keygen")
            .arg("-o")
            .arg(path)
            .output()
            .unwrap();
        assert!(o.status.success());
        let o = Command::new("age-keygen")
            .arg("-y")
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let victim = keygen(&home.join("offline/vault-recovery.txt"));
    let attacker = keygen(&tmp.path().join("attacker.txt"));
    let own_key = b"the victim's own host key\n";
    std::fs::write(ws.join("hosts/laptop/ssh_host_ed25519_key"), own_key).unwrap();
    std::fs::write(
        ws.join("vault.toml"),
        format!(
            "version = 1\nrecovery_recipients = [\"{victim}\"]\n\n[hosts.laptop]\n\n\
             [[hosts.laptop.entry]]\nsource = \"hosts/laptop/ssh_host_ed25519_key\"\n\
             target = \"/etc/ssh/ssh_host_ed25519_key\"\nmode = \"0600\"\n"
        ),
    )
    .unwrap();

    // The attacker's bundle, in place of the victim's laptop.bundle.
    let evil = tmp.path().join("evil");
    std::fs::create_dir(&evil).unwrap();
    std::fs::write(evil.join("key"), b"ATTACKER'S HOST KEY\n").unwrap();
    std::fs::write(evil.join("ak"), b"ssh-ed25519 AAAA attacker\n").unwrap();
    std::fs::write(evil.join("pw"), "the attacker's passphrase\n").unwrap();
    std::fs::write(
        evil.join("vault.toml"),
        "version = 1\n[hosts.laptop]\n[[hosts.laptop.entry]]\nsource = \"key\"\n\
         target = \"/etc/ssh/ssh_host_ed25519_key\"\nmode = \"0600\"\n\
         [[hosts.laptop.entry]]\nsource = \"ak\"\ntarget = \"/root/.ssh/authorized_keys\"\n",
    )
    .unwrap();
    let mut pack: Vec<String> = [
        "pack",
        "-o",
        ws.join("laptop.bundle").to_str().unwrap(),
        "--passphrase-file",
        "pw",
        "--no-config-check",
        "--recovery-recipient",
        &victim,
        "--recovery-recipient",
        &attacker,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    pack.extend(common::FAST_KDF.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = pack.iter().map(String::as_str).collect();
    ok(vault(&home, &evil, &refs));

    let guide = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guide/recovery.md"),
    )
    .unwrap();
    let mut commands = guide_commands(&guide, "## Forgot a bundle's passphrase", 1);
    assert!(
        commands.iter().any(|c| c.starts_with("vault repack")),
        "{commands:?}"
    );
    // The block ends by attaching the new bundle to an installer image; this workspace has
    // none (tests/media.rs attaches), so the guide's commands run up to the repack.
    let before_attach = commands
        .iter()
        .position(|c| c.starts_with("vault attach"))
        .unwrap_or(commands.len());
    commands.truncate(before_attach);
    let bin_dir = common::vault_bin().parent().unwrap().to_path_buf();
    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(format!("set -e\n{}\n", commands.join("\n")))
        .current_dir(&ws)
        .env("HOME", &home)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    let mut s = Session::spawn(bash).expect("spawn in a pty");
    s.set_expect_timeout(Some(std::time::Duration::from_secs(120)));
    let new_pass = "orbit velvet canyon pickle lantern drizzle";
    let mut shown = Vec::new();
    for prompt in ["New passphrase for laptop-new.bundle", "Repeat it:"] {
        shown.extend_from_slice(s.expect(prompt).unwrap().as_bytes());
        s.send_line(new_pass).unwrap();
    }
    shown.extend_from_slice(s.expect(Eof).unwrap().as_bytes());
    let shown = String::from_utf8_lossy(&shown).into_owned();
    match s.get_process().wait().expect("wait") {
        expectrl::WaitStatus::Exited(_, 0) => {}
        other => panic!("the guide's commands failed: {other:?}\n{shown}"),
    }
    assert!(
        shown.contains("proves nothing about who made it"),
        "{shown}"
    );
    assert!(
        shown.contains("differs: /etc/ssh/ssh_host_ed25519_key"),
        "{shown}"
    );
    assert!(
        shown.contains("dropped: /root/.ssh/authorized_keys"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("not kept: recovery recipient {attacker}")),
        "{shown}"
    );

    // The result: the attacker's key opens nothing; the victim's does, and it holds the
    // victim's own host key alone.
    let new = ws.join("laptop-new.bundle");
    assert!(!age_opens(&t, &new, &tmp.path().join("attacker.txt")));
    assert!(age_opens(
        &t,
        &new,
        &home.join("offline/vault-recovery.txt")
    ));
    std::fs::write(tmp.path().join("new-pw"), format!("{new_pass}\n")).unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    ok(vault(
        &home,
        &ws,
        &[
            "unlock",
            new.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--root-not-mountpoint",
            "--passphrase-file",
            tmp.path().join("new-pw").to_str().unwrap(),
        ],
    ));
    assert_eq!(
        std::fs::read(root.join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        own_key
    );
    assert!(!root.join("root/.ssh/authorized_keys").exists());
}
