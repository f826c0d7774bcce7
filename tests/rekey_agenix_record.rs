//! agenix files whose rules list `age1…` recipients: the rekey record (`.vault-rekey.json`)
//! lets a second `vault rekey` change no byte and `--check` pass, while a file re-encrypted
//! behind vault's back (by the real `age`), or a record entry edited by someone who cannot
//! decrypt the file, is stale, never trusted.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::repo::SecretsRepo;
use common::{assert_same, ok, snapshot, text, write_identity};

struct Repo {
    repo: SecretsRepo,
    age: std::path::PathBuf,
}

impl std::ops::Deref for Repo {
    type Target = SecretsRepo;
    fn deref(&self) -> &SecretsRepo {
        &self.repo
    }
}

/// vault with an empty HOME, so only `-i` identities count.
fn vault(r: &Repo, args: &[&str]) -> Output {
    r.command(&common::vault_bin()).args(args).output().unwrap()
}

fn age_encrypt(r: &Repo, recipients: &[&str], armor: bool, input: &Path, out: &Path) {
    let mut c = Command::new(&r.age);
    c.arg("-e");
    if armor {
        c.arg("-a");
    }
    for rc in recipients {
        c.args(["-r", rc]);
    }
    let o = c.arg("-o").arg(out).arg(input).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// Two agenix files (one armored) for an admin and a host, both `age1…`, made by `age`.
fn setup() -> Option<Repo> {
    let (Some(age), Some(_)) = (
        common::require_tool("age"),
        common::require_tool("nix-instantiate"),
    ) else {
        return None;
    };
    let r = Repo {
        repo: SecretsRepo::new(),
        age,
    };
    let secrets = r.secrets.clone();
    std::fs::write(r.root.join("plain"), "db password\n").unwrap();
    for (name, armor) in [("db.age", false), ("api.age", true)] {
        age_encrypt(
            &r,
            &[&r.admin, &r.host],
            armor,
            &r.root.join("plain"),
            &secrets.join(name),
        );
    }
    std::fs::write(
        secrets.join("secrets.nix"),
        format!(
            "let admin = \"{}\"; host = \"{}\"; in {{\n  \"db.age\".publicKeys = [ admin host ];\n  \"api.age\" = {{ publicKeys = [ host admin ]; armor = true; }};\n}}\n",
            r.admin, r.host
        ),
    )
    .unwrap();
    r.agenix_manifest();
    Some(r)
}

fn check(r: &Repo) -> Output {
    vault(r, &["rekey", "--check", "-i", "admin.txt"])
}

#[test]
fn a_second_rekey_changes_no_byte_and_check_passes() {
    let Some(r) = setup() else { return };
    let secrets = r.root.join("secrets");
    // Made by age: nothing proves them current yet.
    let o = check(&r);
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));
    assert!(text(&o).contains("encrypted outside vault"), "{}", text(&o));

    ok(vault(&r, &["rekey", "-i", "admin.txt"]));
    assert!(secrets.join(".vault-rekey.json").is_file());
    let after = snapshot(&secrets);

    let o = check(&r);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = vault(&r, &["rekey", "-i", "admin.txt"]);
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));
    ok(o);
    assert_same(&snapshot(&secrets), &after, "second rekey changed bytes");

    // Without an identity the record cannot be verified: stale, and --check says why.
    let o = vault(&r, &["rekey", "--check"]);
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));
    assert!(text(&o).contains("-i"), "{}", text(&o));

    // The results open with the real age, for both recipients.
    for name in ["db.age", "api.age"] {
        for key in ["admin.txt", "host.txt"] {
            let plain =
                common::run_decrypt(&r.age, &secrets.join(name), &r.root.join(key)).unwrap();
            assert_eq!(plain, b"db password\n", "{name} with {key}");
        }
    }

    // A changed rule makes the file stale again.
    let nix = std::fs::read_to_string(secrets.join("secrets.nix")).unwrap();
    std::fs::write(
        secrets.join("secrets.nix"),
        nix.replace(
            "\"db.age\".publicKeys = [ admin host ]",
            "\"db.age\".publicKeys = [ admin ]",
        ),
    )
    .unwrap();
    let o = check(&r);
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));
    assert!(text(&o).contains("db.age"), "{}", text(&o));
    ok(vault(&r, &["rekey", "-i", "admin.txt"]));
    assert_eq!(check(&r).status.code(), Some(0));
    assert!(
        common::run_decrypt(&r.age, &secrets.join("db.age"), &r.root.join("host.txt")).is_err()
    );
}

#[test]
fn a_file_reencrypted_behind_vaults_back_is_stale() {
    let Some(r) = setup() else { return };
    let secrets = r.root.join("secrets");
    ok(vault(&r, &["rekey", "-i", "admin.txt"]));
    assert_eq!(check(&r).status.code(), Some(0));

    // Someone re-encrypts db.age with age for the admin and their own key instead of the
    // host's: as many X25519 stanzas as before, so the header alone cannot tell.
    let intruder = write_identity(&r.root.join("intruder.txt"));
    age_encrypt(
        &r,
        &[&r.admin, &intruder],
        false,
        &r.root.join("plain"),
        &secrets.join("db.age"),
    );
    let o = check(&r);
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));
    assert!(text(&o).contains("db.age"), "{}", text(&o));
    assert!(!text(&o).contains("api.age"), "{}", text(&o));
    assert!(
        text(&o).contains("changed since vault encrypted it"),
        "{}",
        text(&o)
    );

    // They also rewrite its record entry's digest (they cannot compute the MAC): still stale.
    let record_path = secrets.join(".vault-rekey.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(
        std::fs::read(secrets.join("db.age")).unwrap(),
    ));
    record["files"]["db.age"]["sha256"] = digest.into();
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
    let o = check(&r);
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));
    assert!(text(&o).contains("does not verify"), "{}", text(&o));

    // Or copy api.age's entry and bytes over db.age's: bound to the name, still stale.
    std::fs::copy(secrets.join("api.age"), secrets.join("db.age")).unwrap();
    record["files"]["db.age"] = record["files"]["api.age"].clone();
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();
    let o = check(&r);
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));

    // vault rekey re-encrypts it; the intruder's key no longer opens it.
    ok(vault(&r, &["rekey", "-i", "admin.txt"]));
    assert_eq!(check(&r).status.code(), Some(0));
    assert!(common::run_decrypt(
        &r.age,
        &secrets.join("db.age"),
        &r.root.join("intruder.txt")
    )
    .is_err());
}

#[test]
fn a_damaged_record_is_a_clear_error_and_changes_nothing() {
    let Some(r) = setup() else { return };
    let secrets = r.root.join("secrets");
    std::fs::write(secrets.join(".vault-rekey.json"), "{ not json").unwrap();
    let before = snapshot(&secrets);
    let o = vault(&r, &["rekey", "-i", "admin.txt"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(text(&o).contains(".vault-rekey.json"), "{}", text(&o));
    assert!(text(&o).contains("remove the file"), "{}", text(&o));
    assert_same(&snapshot(&secrets), &before, "a failed rekey changed bytes");
}
