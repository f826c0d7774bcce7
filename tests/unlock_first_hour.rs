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

use common::{ok, text, vault_bin, FAST_KDF};
use expectrl::Eof;

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

/// A scratch folder with [`bundle`] and an empty target root `mnt`.
fn scene() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle(tmp.path());
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    (tmp, b, mnt)
}

/// `unlock BUNDLE --host laptop --stage root` into `mnt` with the passphrase in `pw`.
fn laptop_root_stage<'a>(b: &'a Path, mnt: &'a Path, pw: &'a Path) -> Vec<&'a str> {
    let s = |p: &'a Path| p.to_str().unwrap();
    let mut args = vec!["unlock", s(b), "--host", "laptop", "--stage", "root"];
    args.extend([
        "--root",
        s(mnt),
        "--root-not-mountpoint",
        "--passphrase-file",
        s(pw),
    ]);
    args
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

/// [`laptop_root_stage`] as user nobody, with `--dry-run` when `dry`.
fn laptop_as_nobody(d: &Path, b: &Path, mnt: &Path, pw: &Path, dry: bool) -> Option<Output> {
    let mut args = laptop_root_stage(b, mnt, pw);
    if dry {
        args.push("--dry-run");
    }
    as_nobody(d, &args)
}

#[test]
fn without_root_an_unwritable_target_is_refused_before_the_passphrase() {
    let (tmp, b, mnt) = scene();
    let d = tmp.path();
    std::fs::set_permissions(&mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A wrong passphrase: refused for the target, it is never tried (not exit 3).
    let wrong = d.join("wrong");
    std::fs::write(&wrong, "not it\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o644)).unwrap();
    for dry in [false, true] {
        let Some(o) = laptop_as_nobody(d, &b, &mnt, &wrong, dry) else {
            return;
        };
        let t = text(&o);
        assert_eq!(o.status.code(), Some(6), "dry run {dry}: {t}");
        assert!(t.contains("not writable") && t.contains("sudo"), "{t}");
        assert!(!t.contains("free space"), "{t}");
    }
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);
}

#[test]
fn without_root_the_lines_show_the_owner_the_files_get() {
    let (tmp, b, mnt) = scene();
    let d = tmp.path();
    std::os::unix::fs::chown(&mnt, Some(65534), Some(65534)).unwrap();
    let Some(o) = as_nobody(d, &laptop_root_stage(&b, &mnt, &d.join("pw"))) else {
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

/// Without root, a folder the files go into that this user may not write into, or a folder
/// on the way it may not search, is refused before anything is written by the dry run and
/// the real run alike (exit 6), naming the folder to fix: the dry run used to pass and the
/// real run to roll back (exit 7), and a folder that could not be searched was reported as
/// the one below it.
#[test]
fn without_root_a_folder_it_cannot_write_or_search_is_refused_by_the_dry_run_too() {
    use std::os::unix::fs::PermissionsExt;
    for (mode, culprit, needle) in [
        (
            0o555,
            "etc/ssh",
            "cannot be written into by this user (Permission denied",
        ),
        (
            0o000,
            "etc/ssh",
            "cannot be written into by this user (Permission denied",
        ),
        (0o000, "etc", "could not be opened (Permission denied"),
    ] {
        let (tmp, b, mnt) = scene();
        let d = tmp.path();
        std::fs::create_dir_all(mnt.join("etc/ssh")).unwrap();
        for p in [&mnt, &mnt.join("etc"), &mnt.join("etc/ssh")] {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        }
        let bad = mnt.join(culprit);
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(mode)).unwrap();
        let pw = d.join("pw");
        for dry in [true, false] {
            let Some(o) = laptop_as_nobody(d, &b, &mnt, &pw, dry) else {
                return;
            };
            let t = text(&o);
            let what = format!("{culprit} {mode:o}, dry run {dry}");
            assert_eq!(o.status.code(), Some(6), "{what}: {t}");
            let line = format!("{} {needle}", bad.display());
            assert!(t.contains(&line), "{what}: expected {line:?} in {t}");
        }
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            std::fs::read_dir(mnt.join("etc/ssh")).unwrap().count(),
            0,
            "{culprit}"
        );
    }
}

#[test]
fn several_hosts_without_host_are_asked_for_on_the_terminal() {
    let (tmp, b, mnt) = scene();
    let d = tmp.path();
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
    let mut p = common::pty::session(c);
    let mut seen = Vec::new();
    seen.extend_from_slice(p.expect("Passphrase for").unwrap().as_bytes());
    p.send_line(PASSPHRASE).unwrap();
    seen.extend_from_slice(p.expect("Host number (1-2)").unwrap().as_bytes());
    p.send_line("not a host").unwrap();
    seen.extend_from_slice(p.expect("not a number from 1 to 2").unwrap().as_bytes());
    seen.extend_from_slice(p.expect("Host number (1-2)").unwrap().as_bytes());
    p.send_line("2").unwrap();
    seen.extend_from_slice(p.expect(Eof).unwrap().as_bytes());
    let code = common::pty::exit_code(&mut p);
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
