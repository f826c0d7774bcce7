//! Real signals sent to a real `vault` process part way through its work: SIGINT, SIGTERM
//! and SIGHUP roll back like any other error and exit 128 + n; what SIGKILL leaves (it cannot
//! be caught) is removed by the next run, which says so.
//!
//! The slow point is a bundle large enough to take a while to place: the test waits until a
//! temporary exists (placement has begun), then signals. Should the machine be so fast that
//! the run finished before the test saw a temporary, the test repeats with a bigger bundle.

mod common;
mod hostile;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hostile::*;

use common::noise;

/// `parts` files of 8 MiB under /var/lib/mirror, plus a host key.
fn big_bundle(parts: u32) -> Vec<u8> {
    let mut items = vec![(dir_item("/var/lib/mirror"), None)];
    for i in 0..parts {
        let d = noise(8 << 20, i + 1);
        items.push((file_item(&format!("/var/lib/mirror/part{i}"), &d), Some(d)));
    }
    items.push((
        file_item("/etc/ssh/ssh_host_ed25519_key", b"host key\n"),
        Some(b"host key\n".to_vec()),
    ));
    honest(items)
}

/// Every vault temporary under `dir` (any depth).
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy();
            n.contains(".vault-") && n.ends_with(".tmp")
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Starts `cmd` and waits until a temporary exists under `watch`: the child, still running,
/// or its output if it exited first.
fn start_and_wait_for_temp(cmd: &mut Command, watch: &Path) -> Result<Child, std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vault");
    loop {
        if !temporaries(watch).is_empty() {
            return Ok(child);
        }
        if child.try_wait().expect("wait").is_some() {
            return Err(child.wait_with_output().expect("output"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, sig).expect("kill");
}

/// Runs `make_cmd` (given the bundle size) until a temporary was seen, growing the bundle
/// when the run was faster than the test; then sends `sig` and returns the output.
fn interrupt_once(
    s: &Scratch,
    watch: &Path,
    sig: rustix::process::Signal,
    mut make_cmd: impl FnMut(&Scratch, u32) -> Command,
) -> std::process::Output {
    for parts in [8, 32, 96] {
        let before = s.state();
        let mut cmd = make_cmd(s, parts);
        let done = match start_and_wait_for_temp(&mut cmd, watch) {
            Ok(child) => {
                signal(&child, sig);
                return child.wait_with_output().expect("wait");
            }
            Err(done) => done,
        };
        assert!(done.status.success(), "{}", text(&done));
        eprintln!(
            "the run with {parts} parts finished before it could be interrupted; retrying bigger"
        );
        // Undo the completed run for the next try.
        for p in ["mnt/var/lib/mirror", "mnt/var"] {
            let _ = std::fs::remove_dir_all(s.path(p));
        }
        let _ = std::fs::remove_file(s.path("mnt/etc/ssh/ssh_host_ed25519_key"));
        let _ = std::fs::remove_file(s.path("out/b.vault"));
        assert_eq!(s.state(), before);
    }
    panic!("vault finished every run before a temporary could be seen");
}

fn unlock_cmd(s: &Scratch, parts: u32) -> Command {
    std::fs::write(s.path("b.vault"), big_bundle(parts)).unwrap();
    let mut c = Command::new(vault_bin());
    c.arg("unlock")
        .arg(s.path("b.vault"))
        .arg("--root")
        .arg(s.mnt())
        .arg("--root-not-mountpoint")
        .arg("--disk-root")
        .arg(s.live())
        .arg("--passphrase-file")
        .arg(s.path("pw"))
        // Above the in-memory limit: files stream into temporaries beside their targets.
        .args(["--staging-memory", "0"]);
    c
}

#[test]
fn a_signal_during_unlock_rolls_back_and_exits_128_plus_n() {
    use rustix::process::Signal;
    for (sig, code, name) in [
        (Signal::INT, 130, "SIGINT"),
        (Signal::TERM, 143, "SIGTERM"),
        (Signal::HUP, 129, "SIGHUP"),
    ] {
        let s = Scratch::new();
        let before = s.state();
        let o = interrupt_once(&s, &s.mnt(), sig, unlock_cmd);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(code), "{name}: {:?} {out}", o.status);
        assert!(out.contains(&format!("interrupted by {name}")), "{out}");
        assert!(out.contains("removed again"), "{out}");
        assert_eq!(temporaries(&s.mnt()), Vec::<PathBuf>::new(), "{name}");
        assert_eq!(s.state(), before, "{name}: the target changed");
    }
}

#[test]
fn temporaries_a_sigkill_left_are_removed_by_the_next_run() {
    let s = Scratch::new();
    let o = interrupt_once(&s, &s.mnt(), rustix::process::Signal::KILL, unlock_cmd);
    assert_eq!(o.status.code(), None, "SIGKILL cannot be caught");
    let left = temporaries(&s.mnt());
    assert!(
        !left.is_empty(),
        "nothing to sweep: the test proves nothing"
    );
    // A new bundle that places into the same directory.
    let key = b"new host key\n".to_vec();
    let small = honest(vec![
        (dir_item("/var/lib/mirror"), None),
        (
            file_item("/var/lib/mirror/part0", b"small"),
            Some(b"small".to_vec()),
        ),
        (file_item("/etc/ssh/ssh_host_ed25519_key", &key), Some(key)),
    ]);
    let o = s.unlock(&small, &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for t in &left {
        assert!(
            out.contains(&t.display().to_string()),
            "not reported: {t:?}\n{out}"
        );
    }
    assert!(out.contains("interrupted earlier run"), "{out}");
    assert_eq!(temporaries(&s.mnt()), Vec::<PathBuf>::new());
}

fn pack_cmd(s: &Scratch, parts: u32) -> Command {
    let src = s.path("src");
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir(&src).unwrap();
    for i in 0..parts {
        std::fs::write(src.join(format!("part{i}")), noise(8 << 20, i + 1)).unwrap();
    }
    std::fs::write(
        s.path("vault.toml"),
        "version = 1\n[hosts.h]\n[[hosts.h.entry]]\nsource = \"src\"\ntarget = \"/var/lib/mirror\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(s.path("out")).unwrap();
    let mut c = Command::new(vault_bin());
    c.current_dir(s.dir.path())
        .args(["pack", "-m", "vault.toml", "-o", "out/b.vault"])
        .args(["--passphrase-file", "pw"])
        .args(common::FAST_KDF);
    c
}

#[test]
fn a_signal_during_pack_removes_the_partial_bundle() {
    let s = Scratch::new();
    let o = interrupt_once(&s, &s.path("out"), rustix::process::Signal::INT, pack_cmd);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(130), "{out}");
    assert!(out.contains("interrupted by SIGINT"), "{out}");
    assert_eq!(
        std::fs::read_dir(s.path("out")).unwrap().count(),
        0,
        "a partial bundle or an output was left"
    );
}

#[test]
fn a_partial_bundle_a_sigkill_left_is_removed_by_the_next_pack() {
    let s = Scratch::new();
    let o = interrupt_once(&s, &s.path("out"), rustix::process::Signal::KILL, pack_cmd);
    assert_eq!(o.status.code(), None);
    let left = temporaries(&s.path("out"));
    assert_eq!(left.len(), 1, "{left:?}");
    let o = pack_cmd(&s, 1).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("interrupted earlier run"), "{out}");
    assert!(
        out.contains(&left[0].file_name().unwrap().to_string_lossy().to_string()),
        "{out}"
    );
    let names: Vec<String> = std::fs::read_dir(s.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["b.vault".to_owned()]);
}

#[test]
fn a_killed_stage_disk_run_leaves_an_area_the_next_run_wipes() {
    // The staging area must be on ramfs: needs root to mount one.
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: needs root to mount a ramfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ram = dir.path().join("ram");
    std::fs::create_dir(&ram).unwrap();
    let st = Command::new("mount")
        .args(["-t", "ramfs", "-o", "mode=0700", "ramfs"])
        .arg(&ram)
        .status()
        .unwrap();
    assert!(st.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(ram.clone());
    let s = Scratch::new();
    // A root-stage file big enough to be copied for a while, then a disk-stage one.
    let big = noise(64 << 20, 7);
    let bundle = honest(vec![
        (file_item("/var/lib/big", &big), Some(big)),
        (
            disk_item("/tmp/disko-password", b"luks"),
            Some(b"luks".to_vec()),
        ),
    ]);
    std::fs::write(s.path("b.vault"), &bundle).unwrap();
    let mut cmd = Command::new(vault_bin());
    cmd.arg("unlock")
        .arg(s.path("b.vault"))
        .args(["--stage", "disk", "--root-not-mountpoint"])
        .arg("--root")
        .arg(s.mnt())
        .arg("--disk-root")
        .arg(s.live())
        .arg("--passphrase-file")
        .arg(s.path("pw"))
        .arg("--staging-dir")
        .arg(&ram);
    let mut child = cmd.stdin(Stdio::null()).spawn().unwrap();
    // Wait until the incoming area holds the start of the big file.
    let incoming = loop {
        let found = std::fs::read_dir(&ram)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("incoming-"));
        if let Some(e) = found {
            if std::fs::metadata(e.path().join("0")).is_ok() {
                break e.path();
            }
        }
        if child.try_wait().unwrap().is_some() {
            eprintln!("SKIP: the run finished before it could be killed");
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    signal(&child, rustix::process::Signal::KILL);
    let _ = child.wait();
    assert!(incoming.exists());
    let o = s.unlock_file(
        &s.path("b.vault"),
        &["--stage", "disk", "--staging-dir", ram.to_str().unwrap()],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("interrupted earlier run"), "{out}");
    assert!(!incoming.exists(), "{out}");
}
