//! Swapping one `age1…` recipient for another in an agenix rule (a reinstalled host's new key)
//! keeps the number of X25519 stanzas the same. vault must still re-encrypt the file: X25519
//! stanzas do not say whom they are for. Checked with the real `age`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ok, vault_in as vault, write_identity};

fn age_decrypt(age: &Path, file: &Path, key: &Path) -> Result<Vec<u8>, String> {
    common::run_decrypt(age, file, key)
}

#[test]
fn swapped_age1_recipient_is_rekeyed() {
    let (Some(age), Some(_)) = (
        common::require_tool("age"),
        common::require_tool("nix-instantiate"),
    ) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let secrets = root.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let admin = write_identity(&root.join("admin.txt"));
    let old_host = write_identity(&root.join("old.txt"));
    let new_host = write_identity(&root.join("new.txt"));

    let file = secrets.join("db.age");
    let o = Command::new(&age)
        .args(["-e", "-r", &admin, "-r", &old_host, "-o"])
        .arg(&file)
        .arg(root.join("admin.txt")) // any content will do; this is not secret here
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plain = age_decrypt(&age, &file, &root.join("old.txt")).unwrap();

    // The host was reinstalled: same number of recipients, one of them new.
    std::fs::write(
        secrets.join("secrets.nix"),
        format!("{{\n  \"db.age\".publicKeys = [ \"{admin}\" \"{new_host}\" ];\n}}\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("vault.toml"),
        "version = 1\n\n[secrets]\nagenix_rules = \"secrets/secrets.nix\"\n",
    )
    .unwrap();

    let check = vault(root, &["rekey", "--check"]);
    assert_eq!(
        check.status.code(),
        Some(8),
        "a swapped age1 key must not pass --check: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    ok(vault(root, &["rekey", "-i", "admin.txt"]));
    assert_eq!(
        age_decrypt(&age, &file, &root.join("new.txt")).unwrap(),
        plain,
        "the new host key must open the file"
    );
    assert!(
        age_decrypt(&age, &file, &root.join("old.txt")).is_err(),
        "the old host key must no longer open it"
    );
}
