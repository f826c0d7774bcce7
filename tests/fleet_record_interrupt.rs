//! Real signals sent to `vault host add NAME --identity FILE` while it writes `vault.toml`:
//! the file is exactly as it was or fully updated, never half; SIGINT, SIGTERM and SIGHUP
//! leave no temporary beside it and exit 128 + n; what SIGKILL leaves the next edit removes.
//!
//! The slow point is a `vault.toml` long enough (comments) that writing and syncing its new
//! copy takes a while: the test waits until the copy exists, then signals. Should the run
//! finish before the test saw it, the test repeats with a longer file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::text;
use rustix::process::Signal;

const IDENTITY: &str =
    "product_uuid = \"6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f\"\nmacs = [\"00:00:5e:00:53:01\"]\n";

/// Everything beside `vault.toml` that is not a file the test made: vault's temporaries.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".vault.toml"))
        .map(|n| dir.join(n))
        .collect()
}

/// Host alpha in `dir/vault.toml`, followed by `mib` MiB of comments.
fn setup(dir: &Path, mib: usize) -> Vec<u8> {
    std::fs::write(dir.join("vault.toml"), "version = 1\n# the fleet\n").unwrap();
    common::ok(common::vault_in(dir, &["host", "add", "alpha"]));
    let mut t = std::fs::read(dir.join("vault.toml")).unwrap();
    let line = format!("# {}\n", "x".repeat(98));
    for _ in 0..(mib << 20) / line.len() {
        t.extend_from_slice(line.as_bytes());
    }
    std::fs::write(dir.join("vault.toml"), &t).unwrap();
    std::fs::write(dir.join("alpha.id"), IDENTITY).unwrap();
    t
}

fn record_cmd(dir: &Path) -> Command {
    let mut c = Command::new(common::vault_bin());
    c.current_dir(dir)
        .args(["host", "add", "alpha", "--identity", "alpha.id"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Starts the edit and waits until its new copy of `vault.toml` exists: the child, still
/// running, or its output if it finished first.
fn start_and_wait_for_copy(dir: &Path) -> Result<Child, Output> {
    let mut child = record_cmd(dir).spawn().expect("spawn vault");
    loop {
        if !leftovers(dir).is_empty() {
            return Ok(child);
        }
        if child.try_wait().expect("wait").is_some() {
            return Err(child.wait_with_output().expect("output"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Signals an edit in flight (growing `vault.toml` until one is caught); returns its output
/// and the manifest as it was before.
fn interrupt(dir: &Path, sig: Signal) -> (Output, Vec<u8>) {
    for mib in [16, 64, 160] {
        let before = setup(dir, mib);
        match start_and_wait_for_copy(dir) {
            Ok(child) => {
                rustix::process::kill_process(rustix::process::Pid::from_child(&child), sig)
                    .expect("kill");
                return (child.wait_with_output().expect("wait"), before);
            }
            Err(done) => {
                assert!(done.status.success(), "{}", text(&done));
                eprintln!("the edit of {mib} MiB finished before it was seen; retrying longer");
                for p in [
                    "vault.toml",
                    "hosts/alpha/ssh_host_ed25519_key",
                    "hosts/alpha/ssh_host_ed25519_key.pub",
                ] {
                    std::fs::remove_file(dir.join(p)).unwrap();
                }
            }
        }
    }
    panic!("every edit finished before it could be interrupted");
}

/// `vault.toml` is the one from before, or that one with the identity recorded.
fn as_before_or_recorded(dir: &Path, before: &[u8]) {
    let now = std::fs::read(dir.join("vault.toml")).unwrap();
    if now != before {
        let now = String::from_utf8(now).unwrap();
        assert!(
            now.contains("[hosts.alpha.identity]\nproduct_uuid = \"6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f\"\nmacs = [\"00:00:5e:00:53:01\"]\n"),
            "vault.toml is neither as it was nor fully updated"
        );
        // Everything before the host's table is kept as `host add` left it.
        let before = String::from_utf8_lossy(before);
        let head = &before[..before.find("[hosts.alpha]").unwrap()];
        assert!(now.starts_with(head), "the head of vault.toml changed");
    }
}

#[test]
fn a_signal_while_recording_leaves_vault_toml_whole_and_no_temporary() {
    for (sig, code) in [(Signal::INT, 130), (Signal::TERM, 143), (Signal::HUP, 129)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (o, before) = interrupt(dir, sig);
        as_before_or_recorded(dir, &before);
        assert_eq!(
            leftovers(dir),
            Vec::<PathBuf>::new(),
            "{sig:?} left a temporary: {}",
            text(&o)
        );
        // A signal that came just after the rename is a finished run.
        assert!(
            o.status.code() == Some(code) || o.status.success(),
            "{sig:?}: {:?} {}",
            o.status,
            text(&o)
        );
    }
}

#[test]
fn what_a_killed_recording_left_the_next_one_removes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_, before) = interrupt(dir, Signal::KILL);
    as_before_or_recorded(dir, &before);
    assert!(!leftovers(dir).is_empty(), "SIGKILL left nothing to sweep");
    common::ok(common::vault_in(
        dir,
        &["host", "add", "alpha", "--identity", "alpha.id"],
    ));
    assert_eq!(leftovers(dir), Vec::<PathBuf>::new());
    let now = std::fs::read_to_string(dir.join("vault.toml")).unwrap();
    assert!(now.contains("[hosts.alpha.identity]"));
}
