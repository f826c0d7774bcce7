//! `vault rekey` follows no symbolic link inside the secrets repo. A hostile `secrets.nix`
//! plus a link (as the file, or as a folder on its path) to an age file elsewhere would
//! otherwise make vault decrypt that file with the user's identity and re-encrypt it, in the
//! repo, to whoever the rule names. Checked with the real `age` and `nix-instantiate`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_same, snapshot, vault_in as vault, write_identity};

/// A repo whose `secrets.nix` names `rule`, and outside it a private age file that the
/// user's identity (`admin.txt`) opens. `link` builds the link inside the repo.
fn refused(rule: &str, link: impl Fn(&Path, &Path)) {
    let (Some(age), Some(_)) = (
        common::require_tool("age"),
        common::require_tool("nix-instantiate"),
    ) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("repo");
    let outside = t.path().join("home");
    let secrets = root.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::create_dir_all(outside.join("private")).unwrap();
    let admin = write_identity(&root.join("admin.txt"));
    let attacker = write_identity(&t.path().join("attacker.txt"));
    let target = outside.join("private/db.age");
    let o = Command::new(&age)
        .args(["-e", "-r", &admin, "-o"])
        .arg(&target)
        .arg(root.join("admin.txt"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    link(&secrets, &outside);
    std::fs::write(
        secrets.join("secrets.nix"),
        format!("{{\n  \"{rule}\".publicKeys = [ \"{admin}\" \"{attacker}\" ];\n}}\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("vault.toml"),
        "version = 1\n\n[secrets]\nagenix_rules = \"secrets/secrets.nix\"\n",
    )
    .unwrap();
    let repo_before = snapshot(&root);
    let outside_before = snapshot(&outside);
    let links_before: Vec<_> = walk_links(&root);
    assert!(!links_before.is_empty());

    for args in [
        &["rekey", "--dry-run", "-i", "admin.txt"][..],
        &["rekey", "-i", "admin.txt"],
    ] {
        let out = vault(&root, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail: {stderr}");
        assert!(
            stderr.contains("symbolic link")
                && stderr.contains(&format!("secrets/{}", rule.split('/').next().unwrap())),
            "{args:?}: the message names the link: {stderr}"
        );
        assert_same(&snapshot(&root), &repo_before, "the repo must be unchanged");
        assert_same(
            &snapshot(&outside),
            &outside_before,
            "the target must be unchanged",
        );
        assert_eq!(
            walk_links(&root),
            links_before,
            "{args:?}: the links are still links"
        );
    }
}

fn walk_links(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            out.push(e.path());
        } else if ft.is_dir() {
            out.extend(walk_links(&e.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_linked_age_file_is_refused() {
    refused("db.age", |secrets, outside| {
        std::os::unix::fs::symlink(outside.join("private/db.age"), secrets.join("db.age")).unwrap();
    });
}

#[test]
fn a_linked_folder_on_the_path_is_refused() {
    refused("hosts/db.age", |secrets, outside| {
        std::os::unix::fs::symlink(outside.join("private"), secrets.join("hosts")).unwrap();
    });
}
