//! `vault unlock` run the way a new user runs it: without root (as the installer's `nixos`
//! user forgets `sudo`), and on a bundle of several hosts without `--host`.
//!
//! Without root, a target root this user cannot write to is refused before the passphrase
//! and the key derivation, with `sudo` as the fix; one it can write to gets the files with
//! this user as owner, and the lines say so. With several hosts, the terminal asks which one
//! after the passphrase, instead of failing and wasting it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{ok, text, vault_bin, FAST_KDF};
use expectrl::{Eof, Session};

const PASSPHRASE: &str = "correct horse battery staple";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A bundle of the example manifest (hosts laptop and server) in a folder everyone may read.
fn bundle(d: &Path) -> PathBuf {
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pw = d.join("pw");
    std::fs::write(&pw, format!("{PASSPHRASE}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let b = d.join("example.bundle");
    let m = repo().join("keys-example/vault.toml");
    let mut args = vec!["pack", "-m", m.to_str().unwrap(), "-o", b.to_str().unwrap()];
    args.extend(["--passphrase-file", pw.to_str().unwrap()]);
    args.extend_from_slice(FAST_KDF);
    ok(common::vault_in(d, &args));
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o644)).unwrap();
    b
}

/// `vault ARGS` as user nobody (65534).
fn as_nobody(d: &Path, args: &[&str]) -> Option<Output> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: needs root to run vault as another user");
        return None;
    }
    common::require_tool("setpriv")?;
    Some(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(vault_bin())
            .args(args)
            .current_dir(d)
            .output()
            .unwrap(),
    )
}

#[test]
fn without_root_an_unwritable_target_is_refused_before_the_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let b = bundle(d);
    let mnt = d.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A wrong passphrase: refused for the target, it is never tried (not exit 3).
    let wrong = d.join("wrong");
    std::fs::write(&wrong, "not it\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o644)).unwrap();
    for dry in [false, true] {
        let mut args = vec![
            "unlock",
            b.to_str().unwrap(),
            "--host",
            "laptop",
            "--stage",
            "root",
            "--root",
            mnt.to_str().unwrap(),
            "--root-not-mountpoint",
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ];
        if dry {
            args.push("--dry-run");
        }
        let Some(o) = as_nobody(d, &args) else { return };
        let t = text(&o);
        assert_eq!(o.status.code(), Some(6), "dry run {dry}: {t}");
        assert!(t.contains("not writable") && t.contains("sudo"), "{t}");
        assert!(!t.contains("free space"), "{t}");
    }
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);
}

#[test]
fn without_root_the_lines_show_the_owner_the_files_get() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let b = bundle(d);
    let mnt = d.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::os::unix::fs::chown(&mnt, Some(65534), Some(65534)).unwrap();
    let Some(o) = as_nobody(
        d,
        &[
            "unlock",
            b.to_str().unwrap(),
            "--host",
            "laptop",
            "--stage",
            "root",
            "--root",
            mnt.to_str().unwrap(),
            "--root-not-mountpoint",
            "--passphrase-file",
            d.join("pw").to_str().unwrap(),
        ],
    ) else {
        return;
    };
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let placed: Vec<&str> = t.lines().filter(|l| l.starts_with("placed")).collect();
    assert!(!placed.is_empty(), "{t}");
    for l in &placed {
        assert!(l.contains(" 65534:65534, "), "{l}");
    }
    let key = mnt.join("etc/ssh/ssh_host_ed25519_key");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&key).unwrap().uid(), 65534);
}

#[test]
fn several_hosts_without_host_are_asked_for_on_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let b = bundle(d);
    let mnt = d.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut c = Command::new(vault_bin());
    c.current_dir(d).args([
        "unlock",
        b.to_str().unwrap(),
        "--stage",
        "root",
        "--root",
        mnt.to_str().unwrap(),
        "--root-not-mountpoint",
    ]);
    let mut p = Session::spawn(c).expect("spawn in a pty");
    p.set_expect_timeout(Some(Duration::from_secs(60)));
    let mut seen = Vec::new();
    seen.extend_from_slice(p.expect("Passphrase for").unwrap().as_bytes());
    p.send_line(PASSPHRASE).unwrap();
    seen.extend_from_slice(p.expect("Host number (1-2)").unwrap().as_bytes());
    p.send_line("not a host").unwrap();
    seen.extend_from_slice(p.expect("not a number from 1 to 2").unwrap().as_bytes());
    seen.extend_from_slice(p.expect("Host number (1-2)").unwrap().as_bytes());
    p.send_line("2").unwrap();
    seen.extend_from_slice(p.expect(Eof).unwrap().as_bytes());
    let code = match p.get_process().wait().expect("wait") {
        expectrl::WaitStatus::Exited(_, code) => code,
        other => panic!("vault did not exit normally: {other:?}"),
    };
    let t = String::from_utf8_lossy(&seen).into_owned();
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("1) laptop") && t.contains("2) server"), "{t}");
    assert!(t.contains("for host server"), "{t}");
    assert!(mnt.join("etc/ssh/ssh_host_ed25519_key").exists());
}

/// On the official installer the carried vault is `/run/vault-bin/vault` and no `vault` is on
/// PATH: the next step it prints names the binary that runs, not a `vault` that is not there.
#[test]
fn next_steps_name_the_vault_that_runs() {
    let Some(fs) = common::Tmpfs::new("size=8m") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let b = bundle(d);
    let carried = d.join("vault-bin/vault");
    std::fs::create_dir_all(carried.parent().unwrap()).unwrap();
    std::fs::copy(vault_bin(), &carried).unwrap();
    let disk = d.join("live");
    std::fs::create_dir(&disk).unwrap();
    let o = Command::new(&carried)
        .current_dir(d)
        .env("PATH", "/usr/bin:/bin")
        .args([
            "unlock",
            b.to_str().unwrap(),
            "--host",
            "laptop",
            "--stage",
            "disk",
            "--disk-root",
            disk.to_str().unwrap(),
            "--staging-dir",
            fs.path.to_str().unwrap(),
            "--passphrase-file",
            d.join("pw").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let hint = format!("{} place --root /mnt", carried.display());
    assert!(t.contains(&hint), "names {}: {t}", carried.display());
    assert!(
        !t.contains("`vault place") && !t.contains("sudo vault place"),
        "{t}"
    );
}
