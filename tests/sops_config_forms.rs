//! `.sops.yaml` files that sops 3.11 accepts are accepted by `vault host add/remove` and
//! `vault rekey`: several YAML documents (sops reads the first), CRLF line endings, one-line
//! flow lists of aliases. After each edit the real `sops` must still read the file and encrypt
//! with it to the new host, and `vault host remove` must give back the original bytes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ok, vault_in as vault};

fn sops() -> Option<PathBuf> {
    let s = common::require_tool("sops")?;
    common::require_tool("age")?;
    Some(s)
}

fn run_sops(sops: &Path, dir: &Path, args: &[&str], key: &Path) -> std::process::Output {
    Command::new(sops)
        .args(args)
        .current_dir(dir)
        .env("SOPS_AGE_KEY_FILE", key)
        .env("HOME", dir)
        .output()
        .unwrap()
}

/// Builds a repo with `config` (ADMIN replaced by a fresh key), one sops file encrypted to the
/// admin only, runs `host add web1` and `rekey`, and checks with sops that web1 opens the old
/// file and a new one sops encrypts with the edited config. Returns (dir, original, edited).
fn add_and_check(config: &str) -> (tempfile::TempDir, String, String) {
    let sops = sops().expect("checked by the caller");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let admin_key = dir.join("admin.txt");
    let admin = common::write_identity(&admin_key);
    let original = config.replace("ADMIN", &admin);
    std::fs::write(dir.join(".sops.yaml"), &original).unwrap();
    std::fs::write(
        dir.join("vault.toml"),
        "version = 1\n[secrets]\nsops_config = \".sops.yaml\"\n",
    )
    .unwrap();
    // sops accepts the file as it is.
    std::fs::write(dir.join("old.yaml"), "a: 1\n").unwrap();
    let o = run_sops(&sops, dir, &["-e", "-i", "old.yaml"], &admin_key);
    assert!(
        o.status.success(),
        "sops rejects the original: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = vault(dir, &["host", "add", "web1"]);
    assert!(
        o.status.success(),
        "host add: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let edited = std::fs::read_to_string(dir.join(".sops.yaml")).unwrap();
    let web1_key = dir.join("web1.txt");
    std::fs::write(
        &web1_key,
        ok(vault(
            dir,
            &["keys", "convert", "hosts/web1/ssh_host_ed25519_key"],
        )),
    )
    .unwrap();
    // sops reads the edited file and encrypts a new file to web1 with it.
    std::fs::write(dir.join("new.yaml"), "b: 2\n").unwrap();
    let o = run_sops(&sops, dir, &["-e", "-i", "new.yaml"], &admin_key);
    assert!(
        o.status.success(),
        "sops rejects the edited file: {}\n{edited}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run_sops(&sops, dir, &["-d", "new.yaml"], &web1_key);
    assert!(
        o.status.success(),
        "web1 cannot open a file sops made with the edited config:\n{edited}"
    );
    // vault reads it too: the old file is rekeyed to web1.
    ok(vault(dir, &["rekey", "-i", admin_key.to_str().unwrap()]));
    let o = run_sops(&sops, dir, &["-d", "old.yaml"], &web1_key);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a: 1\n");
    (tmp, original, edited)
}

fn remove_gives_back(dir: &Path, original: &str) {
    ok(vault(dir, &["host", "remove", "web1"]));
    assert_eq!(
        std::fs::read_to_string(dir.join(".sops.yaml")).unwrap(),
        original
    );
}

#[test]
fn several_yaml_documents() {
    if sops().is_none() {
        return;
    }
    let cfg = "---\nkeys:\n  - &admin ADMIN\ncreation_rules:\n  - path_regex: .*\\.yaml$\n    age:\n      - *admin\n---\n# notes for humans, ignored by sops\nowner: ops\n";
    let (tmp, original, edited) = add_and_check(cfg);
    assert!(
        edited.ends_with("---\n# notes for humans, ignored by sops\nowner: ops\n"),
        "the second document stays as it was:\n{edited}"
    );
    remove_gives_back(tmp.path(), &original);
}

#[test]
fn crlf_line_endings() {
    if sops().is_none() {
        return;
    }
    let cfg = "keys:\r\n  - &admin ADMIN\r\ncreation_rules:\r\n  - path_regex: .*\\.yaml$\r\n    age:\r\n      - *admin\r\n";
    let (tmp, original, edited) = add_and_check(cfg);
    assert!(
        edited.split_inclusive('\n').all(|l| l.ends_with("\r\n")),
        "every line keeps CRLF: {edited:?}"
    );
    assert!(edited.contains("      - *web1\r\n"), "{edited:?}");
    remove_gives_back(tmp.path(), &original);
}

#[test]
fn flow_lists_of_aliases() {
    if sops().is_none() {
        return;
    }
    let cfg = "keys:\n  - &admin ADMIN\ncreation_rules:\n  - path_regex: .*\\.yaml$\n    age: [*admin] # everyone [ops too]\n";
    let (tmp, original, edited) = add_and_check(cfg);
    assert!(
        edited.contains("    age: [*admin, *web1] # everyone [ops too]\n"),
        "{edited}"
    );
    remove_gives_back(tmp.path(), &original);
}

#[test]
fn a_rule_that_matches_nothing_lists_the_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = "keys:\n  - &admin age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\ncreation_rules:\n  - path_regex: ^hosts/web/\n    age:\n      - *admin\n  - path_regex: ^shared/\n    age:\n      - *admin\n";
    std::fs::write(dir.join(".sops.yaml"), cfg).unwrap();
    std::fs::write(
        dir.join("vault.toml"),
        "version = 1\n[secrets]\nsops_config = \".sops.yaml\"\n",
    )
    .unwrap();
    let o = vault(dir, &["host", "add", "web1", "--rule", "^nope/"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains("rule 1: ^hosts/web/") && err.contains("rule 2: ^shared/"),
        "lists the rules: {err}"
    );
    assert!(!dir.join("hosts").exists(), "nothing written");
    assert_eq!(
        std::fs::read_to_string(dir.join(".sops.yaml")).unwrap(),
        cfg
    );
}
