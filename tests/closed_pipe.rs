//! Output into a pipe whose reader has gone (`vault inspect B | head -1`, `| true`): vault
//! stops printing and carries on, quietly. A command that only reads exits 0 as if printed; a
//! command that writes files does all of its work (never half of it) and exits with the work's
//! own code. A full disk behind `>` is an error, said on stderr once the work is done.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{ok, vault_bin, vault_in, FAST_KDF};

/// The write end of a pipe whose read end is already closed: every write to it fails with
/// EPIPE, at once and every time.
fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let end = reader.stdin.take().unwrap();
    reader.wait().unwrap();
    Stdio::from(end)
}

/// Runs vault in `d` with stdout (and, if `stderr_too`, stderr) into a closed pipe.
fn into_closed_pipe(d: &Path, args: &[&str], stderr_too: bool) -> Output {
    let mut c = Command::new(vault_bin());
    c.args(args)
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(closed_pipe());
    if stderr_too {
        c.stderr(closed_pipe());
    }
    c.output().unwrap()
}

fn quiet_success(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(!err.to_lowercase().contains("broken pipe"), "{what}: {err}");
    assert_eq!(o.status.code(), Some(0), "{what}: {err}");
}

/// A one-host vault.toml with its key, a passphrase file, a packed bundle `b.bundle`, a target
/// root `mnt`, and a 4 MiB image with an MBR and no bundle.
fn workdir(d: &Path) -> PathBuf {
    std::fs::write(d.join("key"), "host key\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[hosts.h]\n[[hosts.h.entry]]\nsource = \"key\"\ntarget = \"/etc/ssh/key\"\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "correct horse battery staple\n").unwrap();
    std::fs::create_dir(d.join("mnt")).unwrap();
    let mut args = vec!["pack", "-o", "b.bundle", "--passphrase-file", "pw"];
    args.extend(FAST_KDF);
    ok(vault_in(d, &args));
    let mut img = vec![0u8; 4 << 20];
    img[510] = 0x55;
    img[511] = 0xAA;
    std::fs::write(d.join("plain.img"), img).unwrap();
    d.join("b.bundle")
}

#[test]
fn commands_that_read_exit_quietly_into_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    workdir(d);
    for args in [
        &["inspect", "b.bundle"][..],
        &["inspect", "b.bundle", "--passphrase-file", "pw"],
        &["inspect", "b.bundle", "--json"],
        &["host", "list"],
        &["host", "list", "--json"],
        &["completions", "bash"],
        &["man"],
        &["detach", "--image", "plain.img"],
        &["detach", "--discover", "--json"],
        &["--help"],
    ] {
        quiet_success(&into_closed_pipe(d, args, false), &format!("{args:?}"));
        quiet_success(
            &into_closed_pipe(d, args, true),
            &format!("{args:?}, stderr closed too"),
        );
    }
}

#[test]
fn commands_that_write_finish_their_work_into_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    workdir(d);
    // unlock: every file placed, exit 0.
    let o = into_closed_pipe(
        d,
        &[
            "unlock",
            "b.bundle",
            "--root",
            "mnt",
            "--root-not-mountpoint",
            "--passphrase-file",
            "pw",
        ],
        true,
    );
    quiet_success(&o, "unlock");
    assert_eq!(
        std::fs::read(d.join("mnt/etc/ssh/key")).unwrap(),
        b"host key\n"
    );
    // pack: the bundle written whole, and it unlocks.
    let mut args = vec![
        "pack",
        "-o",
        "c.bundle",
        "--passphrase-file",
        "pw",
        "--json",
    ];
    args.extend(FAST_KDF);
    quiet_success(&into_closed_pipe(d, &args, false), "pack");
    std::fs::remove_dir_all(d.join("mnt/etc")).unwrap();
    ok(vault_in(
        d,
        &[
            "unlock",
            "c.bundle",
            "--root",
            "mnt",
            "--root-not-mountpoint",
            "--passphrase-file",
            "pw",
        ],
    ));
    // init writes its file.
    quiet_success(&into_closed_pipe(d, &["init", "new"], true), "init");
    assert!(d.join("new/vault.toml").exists());
}

#[test]
fn a_full_disk_behind_stdout_is_an_error_said_after_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    workdir(d);
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let o = Command::new(vault_bin())
        .args(["inspect", "b.bundle"])
        .current_dir(d)
        .stdout(full())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot write to standard output"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A command that writes: its work is done, and it says so.
    let o = Command::new(vault_bin())
        .args([
            "unlock",
            "b.bundle",
            "--root",
            "mnt",
            "--root-not-mountpoint",
            "--passphrase-file",
            "pw",
        ])
        .current_dir(d)
        .stdout(full())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("the command itself completed"), "{err}");
    assert!(d.join("mnt/etc/ssh/key").exists());
}
