//! Hostile or odd files in the Secure Boot folder, and runs killed or interrupted mid-way:
//! a FIFO where a key belongs is refused without waiting for a writer, a key that is a link
//! (kept outside the repository) is refused rather than copied into it, and a `--rotate`
//! killed or interrupted at any step leaves the previous key set in place and usable.

use super::*;
use common::require_tool;
use std::os::unix::fs::OpenOptionsExt;

/// Runs `vault args` in `base`. While it runs, opens `fifo` for writing without blocking,
/// which succeeds only while a reader holds it open: then vault is waiting on the FIFO, and
/// is killed. Returns the output and whether that happened.
fn run_beside_fifo(base: &Path, fifo: &Path, args: &[&str]) -> (Output, bool) {
    let mut child = Command::new(vault_bin())
        .args(args)
        .current_dir(base)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vault");
    let blocked = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        let writer = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(fifo);
        if writer.is_ok() {
            let _ = child.kill();
            break true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (child.wait_with_output().unwrap(), blocked)
}

#[test]
fn a_fifo_where_a_key_belongs_is_refused_without_waiting_on_it() {
    let t = fleet_copy();
    let base = t.path();
    for file in ["GUID", "keys/KEK/KEK.key", "keys/db/db.pem"] {
        let path = pki(base).join(file);
        let kept = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        ok(run(Command::new("mkfifo").arg(&path)));
        let before = common::snapshot(base);
        let (o, blocked) = run_beside_fifo(
            base,
            &path,
            &["host", "add", HOST, "--secure-boot", "--rotate"],
        );
        assert!(
            !blocked,
            "{file}: vault opened the FIFO and waited for a writer"
        );
        let out = text(&o);
        assert_eq!(o.status.code(), Some(5), "{file}: {out}");
        assert!(
            out.contains(file) && out.contains("not a regular file"),
            "{file}: {out}"
        );
        common::assert_same(&before, &common::snapshot(base), file);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, kept).unwrap();
    }
}

#[test]
fn a_key_that_is_a_link_is_refused_not_copied_into_the_folder() {
    // A db key, or its whole folder, kept off the repository and linked in.
    for linked in ["keys/db/db.key", "keys/db"] {
        let t = fleet_copy();
        let base = t.path();
        let outside = tempfile::tempdir().unwrap();
        let at = pki(base).join(linked);
        let kept = outside.path().join("kept");
        std::fs::rename(&at, &kept).unwrap();
        std::os::unix::fs::symlink(&kept, &at).unwrap();
        let secret = std::fs::read(pki(base).join("keys/db/db.key")).unwrap();
        let before = common::snapshot(base);
        let o = vault(base, &["host", "add", HOST, "--secure-boot", "--rotate"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(5), "{linked}: {out}");
        assert!(
            out.contains(linked) && out.contains("symbolic link"),
            "{linked}: {out}"
        );
        common::assert_same(&before, &common::snapshot(base), linked);
        let copies: Vec<PathBuf> = common::snapshot(base)
            .into_iter()
            .filter(|(_, bytes)| *bytes == secret)
            .map(|(p, _)| p)
            .collect();
        assert!(
            copies.is_empty(),
            "{linked}: the key was copied to {copies:?}"
        );
        assert!(std::fs::symlink_metadata(&at)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

/// The temporaries (`.secure-boot.vault-…`) in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".vault-"))
        .collect()
}

#[test]
fn a_rotation_killed_at_either_step_leaves_a_whole_key_set_and_the_next_run_cleans_up() {
    if require_tool("strace").is_none() {
        return;
    }
    let rotate = ["host", "add", HOST, "--secure-boot", "--rotate"];
    // `renameat2`: killed just before the exchange, the old set in place. `unlinkat`: killed
    // just after it, removing the old folder: the new set in place, the old one in a
    // temporary.
    for (syscall, replaced) in [("renameat2", false), ("unlinkat", true)] {
        let t = fleet_copy();
        let base = t.path();
        let old_db = std::fs::read(pki(base).join("keys/db/db.key")).unwrap();
        let o = super::refusals::killed_at(base, syscall, &rotate);
        assert!(!o.status.success(), "{syscall}: not killed: {}", text(&o));
        assert!(
            !temporaries(&base.join("hosts/web1")).is_empty(),
            "{syscall}: the kill came before any temporary"
        );
        let h = Hierarchy::load(&pki(base)).unwrap_or_else(|e| panic!("{syscall}: {e}"));
        let db_now = std::fs::read(pki(base).join("keys/db/db.key")).unwrap();
        assert_eq!(
            db_now != old_db,
            replaced,
            "{syscall}: which db key is in place"
        );
        // The set in place signs what its certificate verifies (as lanzaboote uses it).
        if let Some(efi) = efi_binary() {
            let signed = t.path().join("signed.efi");
            sbsign(
                &layout::key_file(&pki(base), Role::Db),
                &layout::cert_file(&pki(base), Role::Db),
                &efi,
                &signed,
            );
            assert!(sbverify(&layout::cert_file(&pki(base), Role::Db), &signed));
        }
        drop(h);
        let o = vault(base, &rotate);
        let out = text(&o);
        assert!(o.status.success(), "{syscall}: {out}");
        assert!(
            out.contains("left by an interrupted run"),
            "{syscall}: {out}"
        );
        assert!(
            temporaries(&base.join("hosts/web1")).is_empty(),
            "{syscall}: {:?}",
            temporaries(&base.join("hosts/web1"))
        );
        Hierarchy::load(&pki(base)).unwrap_or_else(|e| panic!("{syscall}: {e}"));
    }
}

#[test]
fn an_interrupted_rotation_changes_nothing() {
    if require_tool("strace").is_none() {
        return;
    }
    // SIGINT as the run creates its 1st, 6th and 9th folder: the copy's start, the new db
    // key's folder, the new auth folder (the last step before the exchange).
    for n in [1, 6, 9] {
        let t = fleet_copy();
        let base = t.path();
        let before = common::snapshot(base);
        let o = run(Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e"])
            .arg(format!("inject=mkdir:signal=SIGINT:when={n}"))
            .arg(vault_bin())
            .args(["host", "add", HOST, "--secure-boot", "--rotate"])
            .current_dir(base));
        assert_eq!(o.status.code(), Some(130), "mkdir #{n}: {}", text(&o));
        assert!(text(&o).contains("SIGINT"), "mkdir #{n}: {}", text(&o));
        common::assert_same(&before, &common::snapshot(base), &format!("mkdir #{n}"));
        assert!(
            temporaries(&base.join("hosts/web1")).is_empty(),
            "mkdir #{n}: {:?}",
            temporaries(&base.join("hosts/web1"))
        );
    }
}

#[test]
fn an_interrupted_first_run_changes_nothing() {
    if require_tool("strace").is_none() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let base = t.path();
    ok(vault(base, &["init", "."]));
    ok(vault(base, &["host", "add", "db2"]));
    // SIGINT as the run creates its 1st and 7th folder: the temporary, and its auth folder
    // (the last step before vault.toml and the rename).
    for n in [1, 7] {
        let before = common::snapshot(base);
        let o = run(Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e"])
            .arg(format!("inject=mkdir:signal=SIGINT:when={n}"))
            .arg(vault_bin())
            .args(["host", "add", "db2", "--secure-boot"])
            .current_dir(base));
        assert_eq!(o.status.code(), Some(130), "mkdir #{n}: {}", text(&o));
        common::assert_same(&before, &common::snapshot(base), &format!("mkdir #{n}"));
        assert!(!base.join("hosts/db2/secure-boot").exists(), "mkdir #{n}");
        assert!(
            temporaries(&base.join("hosts/db2")).is_empty(),
            "mkdir #{n}: {:?}",
            temporaries(&base.join("hosts/db2"))
        );
    }
}

#[test]
fn damaged_or_swapped_key_files_are_refused_naming_the_file_and_printing_no_key() {
    let t = fleet_copy();
    let base = t.path();
    let key_text = std::fs::read_to_string(pki(base).join("keys/KEK/KEK.key")).unwrap();
    let half = |f: &str| {
        let s = std::fs::read_to_string(pki(base).join(f)).unwrap();
        s[..s.len() / 2].to_string()
    };
    let db_pem = std::fs::read_to_string(pki(base).join("keys/db/db.pem")).unwrap();
    // One key line altered: still base64, no longer a valid key.
    let lines: Vec<&str> = key_text.lines().collect();
    let altered = key_text.replacen(lines[5], &lines[5].chars().rev().collect::<String>(), 1);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "keys/KEK/KEK.key",
            half("keys/KEK/KEK.key"),
            "not an RSA private key",
        ),
        ("keys/KEK/KEK.key", altered, "not an RSA private key"),
        ("keys/KEK/KEK.key", String::new(), "no -----BEGIN line"),
        ("keys/PK/PK.pem", half("keys/PK/PK.pem"), "END CERTIFICATE"),
        (
            "keys/PK/PK.pem",
            "-----BEGIN \x1b[2J-----\n".into(),
            "not a certificate",
        ),
        ("keys/KEK/KEK.pem", db_pem, "does not belong"),
        (
            "keys/db/db.pem",
            "\u{0}\u{ff}".into(),
            "not a PEM certificate",
        ),
    ];
    for (file, content, why) in cases {
        let path = pki(base).join(file);
        let kept = std::fs::read(&path).unwrap();
        std::fs::write(&path, &content).unwrap();
        let before = common::snapshot(base);
        let o = vault(base, &["host", "add", HOST, "--secure-boot", "--rotate"]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(5), "{file} ({why}): {out}");
        assert!(
            out.contains(file) && out.contains(why),
            "{file} ({why}): {out}"
        );
        assert!(!out.contains('\x1b'), "{file}: a raw escape was printed");
        for line in key_text.lines().filter(|l| !l.starts_with("-----")) {
            assert!(
                !out.contains(line),
                "{file}: a line of the KEK key was printed"
            );
        }
        common::assert_same(&before, &common::snapshot(base), file);
        std::fs::write(&path, kept).unwrap();
    }
}

#[test]
fn a_rotation_writes_every_private_key_0600_whatever_the_checkout_gave_it() {
    let t = fleet_copy();
    let base = t.path();
    // What a `git clone` of the secrets repository leaves with umask 022: 0644 everywhere.
    for role in Role::ALL {
        let key = layout::key_file(&pki(base), role);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    ok(vault(
        base,
        &["host", "add", HOST, "--secure-boot", "--rotate"],
    ));
    let keys: Vec<PathBuf> = walkdir::WalkDir::new(sb_dir(base))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "key"))
        .collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    for key in keys {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
}

#[test]
fn a_rotation_keeps_the_users_own_files_beside_the_replaced_ones() {
    let t = fleet_copy();
    let base = t.path();
    // Files vault does not write: Microsoft's update kept with the host's, a DER copy of the
    // db certificate for a firmware screen.
    let ms = sb_dir(base).join("auth/ms-db-2023.auth");
    std::fs::write(&ms, b"vendor update").unwrap();
    let der = pki(base).join("keys/db/db.der");
    std::fs::write(&der, b"old db certificate, DER").unwrap();
    ok(vault(
        base,
        &["host", "add", HOST, "--secure-boot", "--rotate"],
    ));
    assert_eq!(std::fs::read(&ms).unwrap(), b"vendor update", "auth/");
    // The old db folder's files retire together: db.der describes the old key.
    assert!(!der.exists(), "db.der stayed beside the new key");
    let retired: Vec<PathBuf> = std::fs::read_dir(sb_dir(base).join("retired"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(retired.len(), 1, "{retired:?}");
    assert_eq!(
        std::fs::read(retired[0].join("db.der")).unwrap(),
        b"old db certificate, DER"
    );
    assert_eq!(mode(&retired[0].join("db.key")), 0o600);
    assert!(sb_dir(base).join("auth/db-add.auth").is_file());
}

#[test]
fn what_a_killed_rotation_left_beside_a_linked_folder_is_removed_by_any_later_run() {
    let t = fleet_copy();
    let base = t.path();
    let store = tempfile::tempdir().unwrap();
    let real = store.path().join("web1-secure-boot");
    std::fs::rename(sb_dir(base), &real).unwrap();
    std::os::unix::fs::symlink(&real, sb_dir(base)).unwrap();
    // What a SIGKILL just after the exchange leaves there: the old key set, whose writer is gone.
    let stale = store
        .path()
        .join(".secure-boot.vault-999999999-0123456789abcdef.tmp");
    std::fs::create_dir_all(stale.join("pki/keys/db")).unwrap();
    std::fs::write(stale.join("pki/keys/db/db.key"), "an old private key").unwrap();
    // A run that is refused (the keys exist) still sweeps, as it sweeps beside the link.
    let o = vault(base, &["host", "add", HOST, "--secure-boot"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        !stale.exists(),
        "the old key set is still beside {}",
        real.display()
    );
    Hierarchy::load(&real.join("pki")).unwrap();
}
