//! An outside review of what a killed or failing placement leaves, and of what a later run's
//! sweep does with it (docs/SECURITY.md, "A crash mid-commit, swept later"): the sweep puts a
//! displaced original back only over what a dead run of this placement put there, never over a
//! file it cannot account for; and an original `--force` displaced keeps a name the sweep puts
//! back, whatever the length of its target's name. The real `vault` binary, killed with a
//! real SIGKILL where that matters.

mod common;
mod hostile;

use std::path::PathBuf;
use std::process::Command;

use common::{leftovers, Tmpfs};
use hostile::*;

/// What a displaced original of a dead run is called (RUN 1: no process holds its lock).
fn planted(target: &str) -> String {
    format!(".vault-1-0000000000000001-0.was.{target}")
}

/// A file named like a displaced original whose target this bundle does not place (a
/// previous install's leftover, or a name someone chose) is never renamed over that target:
/// the user's `/etc/passwd` stays as it is, the leftover is kept and named.
#[test]
fn a_displaced_name_never_replaces_a_file_the_bundle_does_not_place() {
    let s = Scratch::new();
    let passwd = s.path("mnt/etc/passwd");
    std::fs::write(&passwd, "root:x:0:0::/root:/bin/sh\n").unwrap();
    let leftover = s.path(&format!("mnt/etc/{}", planted("passwd")));
    std::fs::write(&leftover, "mallory::0:0::/:/bin/sh\n").unwrap();
    let b = honest(vec![(
        file_item("/etc/machine-secret", b"s\n"),
        Some(b"s\n".to_vec()),
    )]);
    let o = s.unlock(&b, &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(
        std::fs::read_to_string(&passwd).unwrap(),
        "root:x:0:0::/root:/bin/sh\n",
        "a file the bundle does not place was replaced\n{out}"
    );
    assert!(leftover.exists(), "the leftover was removed\n{out}");
    assert!(
        out.contains(&leftover.display().to_string()),
        "the kept leftover is not named\n{out}"
    );
}

/// A displaced original whose target now holds neither the bundle's file nor nothing (a
/// file written there after the killed run) is not renamed over it either: both stay, the
/// run refuses the existing file as usual (exit 6), and the leftover is named.
#[test]
fn a_displaced_name_never_replaces_a_target_holding_something_else() {
    let s = Scratch::new();
    let key = s.path("mnt/etc/ssh/ssh_host_ed25519_key");
    std::fs::write(&key, "the key written after the killed run\n").unwrap();
    let leftover = s.path(&format!("mnt/etc/ssh/{}", planted("ssh_host_ed25519_key")));
    std::fs::write(&leftover, "an older key\n").unwrap();
    let b = honest(vec![(
        file_item("/etc/ssh/ssh_host_ed25519_key", b"bundle key\n"),
        Some(b"bundle key\n".to_vec()),
    )]);
    for dry in [false, true] {
        let o = s.unlock(&b, if dry { &["--dry-run"] } else { &[] });
        let out = text(&o);
        assert_eq!(o.status.code(), Some(6), "dry run {dry}: {out}");
        assert_eq!(
            std::fs::read_to_string(&key).unwrap(),
            "the key written after the killed run\n",
            "dry run {dry}: the file at the target was replaced\n{out}"
        );
        assert_eq!(
            std::fs::read_to_string(&leftover).unwrap(),
            "an older key\n",
            "dry run {dry}\n{out}"
        );
        assert!(
            out.contains(&leftover.display().to_string()),
            "dry run {dry}: the kept leftover is not named\n{out}"
        );
    }
}

/// Runs `vault unlock` under strace, which sends it SIGKILL as it enters its `n`th `syncfs`.
fn unlock_killed_at_syncfs(s: &Scratch, n: u32, extra: &[&str]) -> std::process::Output {
    Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=syncfs", "-e"])
        .arg(format!("inject=syncfs:signal=KILL:when={n}"))
        .arg(vault_bin())
        .arg("unlock")
        .arg(s.path("b.vault"))
        .arg("--root")
        .arg(s.mnt())
        .arg("--root-not-mountpoint")
        .arg("--disk-root")
        .arg(s.live())
        .arg("--passphrase-file")
        .arg(s.path("pw"))
        .args(extra)
        .output()
        .expect("run strace")
}

/// A `--json` run ended by a caught signal still prints its one JSON document: the error
/// object, kind `interrupted`, with the exit code the process ends with.
#[test]
fn a_json_run_ended_by_a_signal_prints_its_error_document() {
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "strace is missing");
        eprintln!("skipped: no strace");
        return;
    }
    let s = Scratch::new();
    let b = honest(vec![(
        file_item("/etc/ssh/ssh_host_ed25519_key", b"bundle key\n"),
        Some(b"bundle key\n".to_vec()),
    )]);
    std::fs::write(s.path("b.vault"), &b).unwrap();
    let o = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=syncfs", "-e"])
        .arg("inject=syncfs:signal=INT:when=1")
        .arg(vault_bin())
        .arg("unlock")
        .arg(s.path("b.vault"))
        .arg("--root")
        .arg(s.mnt())
        .arg("--root-not-mountpoint")
        .arg("--disk-root")
        .arg(s.live())
        .arg("--passphrase-file")
        .arg(s.path("pw"))
        .arg("--json")
        .output()
        .expect("run strace");
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", text(&o)));
    assert_eq!(doc["error"]["kind"], "interrupted", "{doc}");
    assert_eq!(doc["error"]["exit_code"], 130, "{doc}");
    assert!(!s.mnt().join("etc/ssh/ssh_host_ed25519_key").exists());
}

/// `unlock --force` replacing a file whose name leaves no room for `.vault-…was.NAME`,
/// SIGKILLed after its renames (at the `syncfs` that makes them durable): the original must
/// still have a name a later run puts back. Under a temporary's name the next run's sweep
/// would delete it as decrypted debris, and with it the only copy of the user's file.
#[test]
fn a_force_run_killed_after_replacing_a_long_named_file_loses_no_original() {
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "strace is missing");
        eprintln!("skipped: no strace");
        return;
    }
    let s = Scratch::new();
    let name = "k".repeat(250);
    let target = s.path(&format!("mnt/etc/ssh/{name}"));
    std::fs::write(&target, "the original\n").unwrap();
    let item = file_item(&format!("/etc/ssh/{name}"), b"from the bundle\n");
    let members = [
        Member::gnu_long_name(item.archive_path().as_bytes()),
        Member::file("placeholder", b"from the bundle\n"),
    ];
    std::fs::write(s.path("b.vault"), bundle(&manifest(vec![item]), &members)).unwrap();
    // syncfs 1: the contents, before the renames; 2: the renames.
    let o = unlock_killed_at_syncfs(&s, 2, &["--force"]);
    assert!(!o.status.success(), "not killed: {}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "from the bundle\n",
        "killed before the rename: the test proves nothing"
    );
    // The same command without --force: the original is back, so it is refused.
    let o = s.unlock_file(&s.path("b.vault"), &[]);
    let out = text(&o);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "the original\n",
        "the original was lost\n{out}"
    );
    assert_eq!(o.status.code(), Some(6), "{out}");
    assert_eq!(leftovers(&s.mnt()), Vec::<PathBuf>::new(), "{out}");
}

/// A target root mounted read-only fails every placement: the real run and the dry run both
/// refuse it before the passphrase (exit 6, a wrong passphrase is not even asked about),
/// naming the remount; not a dry run that says everything would be placed and a real run that
/// fails after the key derivation (exit 7).
#[test]
fn a_read_only_target_is_refused_before_the_passphrase_dry_run_too() {
    let Some(ro) = Tmpfs::new("ro,size=1m") else {
        return;
    };
    let s = Scratch::new();
    std::fs::write(
        s.path("b.vault"),
        honest(vec![(
            file_item("/etc/ssh/ssh_host_ed25519_key", b"k\n"),
            Some(b"k\n".to_vec()),
        )]),
    )
    .unwrap();
    std::fs::write(s.path("wrong"), "not the passphrase\n").unwrap();
    for dry in [true, false] {
        let mut c = Command::new(vault_bin());
        c.arg("unlock")
            .arg(s.path("b.vault"))
            .arg("--root")
            .arg(&ro.path)
            .arg("--disk-root")
            .arg(s.live())
            .arg("--passphrase-file")
            .arg(s.path("wrong"));
        if dry {
            c.arg("--dry-run");
        }
        let o = c.output().unwrap();
        let out = text(&o);
        assert_eq!(o.status.code(), Some(6), "dry run {dry}: {out}");
        assert!(out.contains("read-only"), "dry run {dry}: {out}");
        assert!(out.contains("remount"), "dry run {dry}: {out}");
    }
}

/// `vault place` where no staging area exists (a fresh boot, another `--staging-dir`) says
/// that nothing is staged and what to run first (exit 6), as for an empty area; not an I/O
/// error about the folder it would have swept.
#[test]
fn place_without_a_staging_area_says_nothing_is_staged() {
    let s = Scratch::new();
    let o = Command::new(vault_bin())
        .arg("place")
        .arg("--root")
        .arg(s.mnt())
        .arg("--root-not-mountpoint")
        .arg("--staging-dir")
        .arg(s.path("no-such-area"))
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(6), "{out}");
    assert!(out.contains("nothing is staged"), "{out}");
    assert!(out.contains("--stage disk"), "{out}");
    assert!(!s.path("no-such-area").exists(), "{out}");
}

/// A signal during the key derivation ends the run at once (nothing to roll back): a `--json`
/// run still prints its error document, kind `interrupted`, exit code 130.
#[test]
fn a_json_run_stopped_during_the_key_derivation_prints_its_error_document() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("key"), "k\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[[entry]]\nsource = \"key\"\ntarget = \"/etc/key\"\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "pw\n").unwrap();
    // 256 MiB and many passes: the derivation lasts long enough to be caught inside it.
    let o = common::vault_in(
        d,
        &[
            "pack",
            "-o",
            "b.vault",
            "--passphrase-file",
            "pw",
            "--weak-passphrase",
            "--weak-kdf",
            "--kdf-memory",
            "256",
            "--kdf-iterations",
            "40",
            "--kdf-parallelism",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::create_dir(d.join("mnt")).unwrap();
    let child = Command::new(vault_bin())
        .current_dir(d)
        .args([
            "unlock",
            "b.vault",
            "--root",
            "mnt",
            "--root-not-mountpoint",
            "--passphrase-file",
            "pw",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Inside the derivation once its 256 MiB of work memory are resident.
    let status = format!("/proc/{}/status", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let rss_kib = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        if rss_kib > 128 << 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never reached the derivation"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", text(&o)));
    assert_eq!(doc["error"]["kind"], "interrupted", "{doc}");
    assert_eq!(doc["error"]["exit_code"], 130, "{doc}");
}
