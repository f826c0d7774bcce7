//! The first minutes with `vault init` and `vault host add`: the file `init` writes stays
//! editable by its own instructions after `host add` filled it in, and `host add` only tells
//! the next steps that apply to what `vault.toml` configures.

mod common;

use std::path::Path;

use common::{ok, vault_in as vault};

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `init`, then `host add` twice: the template's instructions still hold. Its recovery
/// paragraph says `recovery_recipients` goes at the top level, before any table, where the
/// paragraph stands; a `[hosts.*]` table written above the paragraph would swallow it.
#[test]
fn the_init_template_stays_editable_after_host_add() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(vault(d, &["init"]));
    ok(vault(d, &["host", "add", "laptop"]));
    ok(vault(d, &["host", "add", "server1"]));
    let text = std::fs::read_to_string(d.join("vault.toml")).unwrap();
    let comments = text
        .find("# Recovery keys")
        .expect("the recovery paragraph");
    let first_table = text.find("\n[").expect("a table");
    assert!(
        comments < first_table,
        "the template's comments come before the hosts:\n{text}"
    );
    // Uncomment the example line the paragraph offers, with a real recipient.
    let line = text
        .lines()
        .find(|l| l.starts_with("# recovery_recipients = "))
        .unwrap_or_else(|| panic!("the template offers a line to uncomment:\n{text}"));
    let edited = text.replacen(line, &format!("recovery_recipients = [\"{RECIPIENT}\"]"), 1);
    std::fs::write(d.join("vault.toml"), &edited).unwrap();
    let m = vault::manifest::Manifest::load(&d.join("vault.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{edited}"));
    assert_eq!(m.recovery_recipients, vec![RECIPIENT.to_string()]);
    assert_eq!(m.hosts.len(), 2);
    // And `[secrets]` uncommented where the template shows it is a table of its own.
    let edited = edited
        .replace("# [secrets]\n", "[secrets]\n")
        .replace("# sops_config = ", "sops_config = ");
    std::fs::write(d.join("vault.toml"), &edited).unwrap();
    let m = vault::manifest::Manifest::load(&d.join("vault.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{edited}"));
    assert!(m.secrets.sops_config.is_some());
    assert_eq!(m.hosts.len(), 2);
}

/// No secrets repository configured: no agenix instruction, no `vault rekey`.
#[test]
fn host_add_without_a_secrets_repo_says_what_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(vault(d, &["init"]));
    let o = vault(d, &["host", "add", "laptop"]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(!e.contains("secrets.nix"), "no agenix instruction: {e}");
    assert!(!e.contains("vault rekey"), "{e}");
    assert!(e.contains("no secrets repository"), "{e}");
    assert!(e.contains("vault pack"), "{e}");
}

/// With a `.sops.yaml` only: `vault rekey` is next; nothing about agenix.
#[test]
fn host_add_with_sops_points_to_rekey_only() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(vault(d, &["init"]));
    std::fs::write(
        d.join(".sops.yaml"),
        format!("keys:\n  - &admin {RECIPIENT}\ncreation_rules:\n  - path_regex: secrets/.*\n    age:\n      - *admin\n"),
    )
    .unwrap();
    let o = vault(d, &["host", "add", "web1", "--sops-config", ".sops.yaml"]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("vault rekey"), "{e}");
    assert!(!e.contains("secrets.nix"), "no agenix instruction: {e}");
    assert!(Path::new(&d.join("hosts/web1/ssh_host_ed25519_key")).exists());
}
