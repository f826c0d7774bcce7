//! The undo record of `vault host add/remove` beside `vault.toml` is trusted only for the files
//! a host command of this repository touches, and host commands on one `vault.toml` never run
//! at once.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{exits, vault_in as vault};

/// A record of a writer that is gone (no lock on RUN `0123456789abcdef`).
const RECORD: &str = ".vault-host-add.vault-4242-0123456789abcdef-0.tmp";

/// A repo (`ws/repo`, with `vault.toml` from `vault init`) and, beside it, a "home" folder
/// with files an attacker would like changed.
struct Ws {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    home: PathBuf,
}

fn ws() -> Ws {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/authorized_keys"), "admin's key\n").unwrap();
    std::fs::write(home.join("notes.txt"), "admin's notes\n").unwrap();
    std::fs::create_dir(home.join("empty")).unwrap();
    common::ok(vault(&repo, &["init"]));
    Ws {
        _tmp: tmp,
        repo,
        home,
    }
}

/// A path as the record keeps it: an array of its bytes.
fn b(p: impl AsRef<Path>) -> serde_json::Value {
    use std::os::unix::ffi::OsStrExt;
    serde_json::Value::from(p.as_ref().as_os_str().as_bytes().to_vec())
}

fn plant(repo: &Path, record: serde_json::Value) -> PathBuf {
    let p = repo.join(RECORD);
    std::fs::write(&p, serde_json::to_vec(&record).unwrap()).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// Runs `host add web` (and `host remove web` after it) with `record` planted: each is refused
/// (exit 6) naming the record and how to remove it, and nothing at all changes.
fn refused(w: &Ws, record: serde_json::Value) {
    let p = plant(&w.repo, record);
    let before = (common::snapshot(&w.repo), common::snapshot(&w.home));
    let dirs_before = w.home.join("empty").is_dir();
    for args in [&["host", "add", "web"][..], &["host", "remove", "web"]] {
        let t = exits(&vault(&w.repo, args), 6);
        assert!(t.contains(RECORD) && t.contains("rm "), "{t}");
        let after = (common::snapshot(&w.repo), common::snapshot(&w.home));
        common::assert_same(&before.0, &after.0, "the repo");
        common::assert_same(&before.1, &after.1, "the home folder");
        assert_eq!(w.home.join("empty").is_dir(), dirs_before);
        assert!(
            p.exists(),
            "the refused record stays for the user to inspect"
        );
    }
}

#[test]
fn a_planted_record_that_restores_a_file_outside_the_repo_is_refused() {
    let w = ws();
    let keys = w.home.join(".ssh/authorized_keys");
    refused(
        &w,
        serde_json::json!({"created": [], "dirs": [],
            "restore": [[b(&keys), "ssh-ed25519 AAAA attacker\n"]], "delete": []}),
    );
}

#[test]
fn a_planted_record_that_removes_a_file_or_folder_outside_the_repo_is_refused() {
    let w = ws();
    refused(
        &w,
        serde_json::json!({"created": [b(w.home.join("notes.txt"))], "dirs": [],
            "restore": [], "delete": []}),
    );
    let w = ws();
    refused(
        &w,
        serde_json::json!({"created": [], "dirs": [b(w.home.join("empty"))],
            "restore": [], "delete": []}),
    );
    // The "finish a host remove --delete-keys" form: its first file to delete is gone.
    let w = ws();
    refused(
        &w,
        serde_json::json!({"created": [], "dirs": [], "restore": [], "removes": "web",
            "delete": [b(w.home.join("gone")), b(w.home.join("notes.txt"))]}),
    );
}

#[test]
fn a_record_with_dot_dot_is_refused() {
    let w = ws();
    let up = w.repo.join("hosts/../../home/notes.txt");
    refused(
        &w,
        serde_json::json!({"created": [b(&up)], "dirs": [], "restore": [], "delete": []}),
    );
    let w = ws();
    refused(
        &w,
        serde_json::json!({"created": [], "dirs": [],
            "restore": [[b("../home/.ssh/authorized_keys"), "attacker\n"]], "delete": []}),
    );
}

#[test]
fn a_record_through_a_linked_folder_is_refused() {
    let w = ws();
    // hosts/web is a link out of the repo; the record names a "key" in it.
    std::fs::create_dir(w.repo.join("hosts")).unwrap();
    std::os::unix::fs::symlink(&w.home, w.repo.join("hosts/web")).unwrap();
    std::fs::write(w.home.join("ssh_host_ed25519_key"), "the user's file\n").unwrap();
    let key = w.repo.join("hosts/web/ssh_host_ed25519_key");
    refused(
        &w,
        serde_json::json!({"created": [b(&key), b("hosts/web/ssh_host_ed25519_key.pub")],
            "dirs": [], "restore": [], "delete": []}),
    );
    assert!(w.home.join("ssh_host_ed25519_key").exists());
}

/// A record that only puts back `vault.toml` (a file the record may name), but that the user
/// did not write: another user's, or one anybody could have written.
#[test]
fn a_record_not_owned_by_the_user_or_writable_by_others_is_refused() {
    let planted = |w: &Ws| {
        serde_json::json!({"created": [], "dirs": [], "delete": [],
            "restore": [[b(w.repo.join("vault.toml")), "version = 1\n# planted\n"]]})
    };
    let w = ws();
    let p = plant(&w.repo, planted(&w));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before = common::snapshot(&w.repo);
    let t = exits(&vault(&w.repo, &["host", "add", "web"]), 6);
    assert!(t.contains(RECORD), "{t}");
    common::assert_same(&before, &common::snapshot(&w.repo), "the repo");

    // Another owner: only root can give a file away.
    if !is_root() {
        return;
    }
    let w = ws();
    let p = plant(&w.repo, planted(&w));
    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    let before = common::snapshot(&w.repo);
    let t = exits(&vault(&w.repo, &["host", "add", "web"]), 6);
    assert!(t.contains(RECORD), "{t}");
    common::assert_same(&before, &common::snapshot(&w.repo), "the repo");
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A genuine record in the repo's own files (the key pair of a killed `host add`, vault.toml's
/// text before it) is still undone, and said so.
#[test]
fn a_record_of_the_repos_own_files_is_undone() {
    let w = ws();
    let text = std::fs::read_to_string(w.repo.join("vault.toml")).unwrap();
    std::fs::create_dir_all(w.repo.join("hosts/old")).unwrap();
    std::fs::write(w.repo.join("hosts/old/ssh_host_ed25519_key"), "half").unwrap();
    std::fs::write(w.repo.join("vault.toml"), format!("{text}[hosts.old]\n")).unwrap();
    plant(
        &w.repo,
        serde_json::json!({"created": [b(w.repo.join("hosts/old/ssh_host_ed25519_key")),
                b("hosts/old/ssh_host_ed25519_key.pub")],
            "dirs": [b("hosts"), b(w.repo.join("hosts/old"))],
            "restore": [[b("vault.toml"), text]], "delete": []}),
    );
    let t = exits(&vault(&w.repo, &["host", "add", "web"]), 0);
    assert!(t.contains("undid an interrupted"), "{t}");
    assert!(!w.repo.join("hosts/old").exists() && !w.repo.join(RECORD).exists());
    let now = std::fs::read_to_string(w.repo.join("vault.toml")).unwrap();
    assert!(
        now.contains("[hosts.web]") && !now.contains("[hosts.old]"),
        "{now}"
    );
}

/// Six `host add` at once on one vault.toml: each host is either in vault.toml with its key
/// pair, or refused (exit 6, naming the running command) with nothing of it written; never a
/// key pair whose host vault.toml lost.
#[test]
fn concurrent_host_adds_lose_no_host() {
    for _round in 0..3 {
        let w = ws();
        let children: Vec<_> = (1..=6)
            .map(|i| {
                std::process::Command::new(common::vault_bin())
                    .args(["host", "add", &format!("h{i}")])
                    .current_dir(&w.repo)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let manifest = std::fs::read_to_string(w.repo.join("vault.toml")).unwrap();
        let mut added = 0;
        for (i, o) in (1..=6).zip(&outs) {
            let t = common::text(o);
            let in_manifest = manifest.contains(&format!("[hosts.h{i}]"));
            let keys = w.repo.join(format!("hosts/h{i}")).exists();
            match o.status.code() {
                Some(0) => {
                    assert!(
                        in_manifest && keys,
                        "h{i} exited 0 but vault.toml lost it:\n{manifest}"
                    );
                    added += 1;
                }
                Some(6) => {
                    assert!(t.contains("another vault host command is running"), "{t}");
                    assert!(!in_manifest && !keys, "h{i} was refused but left changes");
                }
                c => panic!("h{i}: exit {c:?}: {t}"),
            }
        }
        assert!(added >= 1, "no host add succeeded");
    }
}
