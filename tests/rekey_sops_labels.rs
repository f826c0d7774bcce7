//! A sops age entry's `recipient` is a label: nothing binds it to the `enc` beside it, and an
//! X25519 stanza cannot be matched to a public key without that key's secret. A repo writer
//! can swap the labels of a recipient that is about to be removed and one that stays; when
//! the rule then drops the first, `vault rekey` must not keep the entry labelled as the
//! second, or the removed recipient keeps the data key. Checked with the real `sops`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ok, vault_in as vault, write_identity};

fn sops_decrypt(sops: &Path, file: &Path, key: &Path, home: &Path) -> Result<Vec<u8>, String> {
    common::stdout_or_stderr(
        Command::new(sops)
            .arg("-d")
            .arg(file)
            .env("SOPS_AGE_KEY_FILE", key)
            .env_remove("SOPS_AGE_KEY")
            .env("HOME", home),
    )
}

#[test]
fn a_removal_rewraps_every_entry_whatever_the_labels_say() {
    let Some(sops) = common::require_tool("sops") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let admin = write_identity(&root.join("admin.txt"));
    let removed = write_identity(&root.join("removed.txt"));
    let kept = write_identity(&root.join("kept.txt"));
    let file = root.join("app.yaml");
    std::fs::write(&file, "password: hunter2\n").unwrap();
    let rule = |keys: &[&str]| {
        std::fs::write(
            root.join(".sops.yaml"),
            format!(
                "creation_rules:\n  - path_regex: app\\.yaml$\n    age: {}\n",
                keys.join(",")
            ),
        )
        .unwrap();
    };
    rule(&[&admin, &removed, &kept]);
    let o = Command::new(&sops)
        .args(["-e", "-i", "app.yaml"])
        .current_dir(root)
        .env("HOME", root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(
        root.join("vault.toml"),
        "version = 1\n[secrets]\nsops_config = \".sops.yaml\"\n",
    )
    .unwrap();

    // The entries of `removed` and `kept` swap labels; then the rule drops `removed`.
    let text = std::fs::read_to_string(&file).unwrap();
    let swapped = text
        .replace(&format!("recipient: {removed}"), "recipient: SWAP")
        .replace(
            &format!("recipient: {kept}"),
            &format!("recipient: {removed}"),
        )
        .replace("recipient: SWAP", &format!("recipient: {kept}"));
    assert_ne!(text, swapped);
    std::fs::write(&file, swapped).unwrap();
    rule(&[&admin, &kept]);
    let home = root;
    assert!(sops_decrypt(&sops, &file, &root.join("removed.txt"), home).is_ok());

    let check = vault(root, &["rekey", "--check"]);
    let said = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(8), "not current: {said}");

    ok(vault(root, &["rekey", "-i", "admin.txt"]));
    let plain = sops_decrypt(&sops, &file, &root.join("admin.txt"), home).unwrap();
    assert!(String::from_utf8_lossy(&plain).contains("hunter2"));
    assert_eq!(
        sops_decrypt(&sops, &file, &root.join("kept.txt"), home).unwrap(),
        plain,
        "the kept recipient opens the file"
    );
    assert!(
        sops_decrypt(&sops, &file, &root.join("removed.txt"), home).is_err(),
        "the removed recipient no longer opens the file"
    );
}
