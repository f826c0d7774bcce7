//! The fault corpus of placement: the real `vault` binary killed or interrupted at the
//! points that matter, then run again (tests/faults_target.rs has the hostile targets,
//! tests/kill_campaign.rs kills at random points). Every case checks the same three promises:
//! nothing decrypted is left behind once a later run swept, the target is either as it was or
//! complete, and success is never claimed for what did not happen. One class of fault per
//! section; a new class gets a section.

mod common;
mod hostile;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{leftovers, noise, Ramfs};
use hostile::*;

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vault")
}

fn kill(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process(pid, sig);
}

/// Polls `ready` until it holds (then `Ok(child)`), or the child exited first (its output).
fn wait_until(mut child: Child, mut ready: impl FnMut() -> bool) -> Result<Child, Output> {
    loop {
        if ready() {
            return Ok(child);
        }
        if child.try_wait().expect("wait").is_some() {
            return Err(child.wait_with_output().expect("output"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn place_cmd(s: &Scratch, staging: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(vault_bin());
    c.arg("place")
        .arg("--root")
        .arg(s.mnt())
        .arg("--root-not-mountpoint")
        .arg("--staging-dir")
        .arg(staging)
        .args(extra);
    c
}

fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().expect("run vault")
}

fn wipe(staging: &Path) -> Output {
    let mut w = Command::new(vault_bin());
    w.args(["wipe", "--staging-dir"]).arg(staging);
    run(w)
}

fn stage_disk(s: &Scratch, bundle: &[u8], staging: &Path) -> Output {
    s.unlock(
        bundle,
        &[
            "--stage",
            "disk",
            "--staging-dir",
            staging.to_str().unwrap(),
        ],
    )
}

/// `parts` files of `size` bytes under /var/lib/mirror, a host key, and a disk-stage item.
fn mirror(parts: u32, size: usize) -> Vec<(vault::archive::Item, Option<Vec<u8>>)> {
    let mut items = vec![
        (
            disk_item("/tmp/disko-password", b"luks"),
            Some(b"luks".to_vec()),
        ),
        (dir_item("/var/lib/mirror"), None),
    ];
    for i in 0..parts {
        let d = noise(size, i + 1);
        items.push((file_item(&format!("/var/lib/mirror/part{i}"), &d), Some(d)));
    }
    items.push((
        file_item("/etc/ssh/ssh_host_ed25519_key", b"host key\n"),
        Some(b"host key\n".to_vec()),
    ));
    items
}

/// Whether every root-stage file of `items` is in `mnt` with its contents.
fn complete(s: &Scratch, items: &[(vault::archive::Item, Option<Vec<u8>>)]) -> bool {
    items
        .iter()
        .filter(|(i, _)| i.stage == vault::manifest::Stage::Root)
        .all(|(i, d)| match d {
            Some(d) => std::fs::read(s.mnt().join(&i.target[1..])).ok().as_ref() == Some(d),
            None => s.mnt().join(&i.target[1..]).is_dir(),
        })
}

// --- SIGKILL during `vault place` -----------------------------------------------------------

/// A `vault place` killed while it writes leaves its decrypted temporaries beside the targets;
/// the next `vault place` removes them before placing, and says so.
#[test]
fn temporaries_of_a_killed_place_are_removed_by_the_next_place() {
    let Some(ram) = Ramfs::new() else { return };
    for size in [16 << 20, 64 << 20] {
        let s = Scratch::new();
        let items = mirror(4, size);
        let o = stage_disk(&s, &honest(items.clone()), &ram.path);
        assert!(o.status.success(), "{}", text(&o));
        let child = spawn(&mut place_cmd(&s, &ram.path, &[]));
        let child = match wait_until(child, || !leftovers(&s.mnt()).is_empty()) {
            Ok(c) => c,
            Err(done) => {
                assert!(done.status.success(), "{}", text(&done));
                eprintln!("place finished before it could be killed; again, bigger");
                wipe(&ram.path);
                continue;
            }
        };
        kill(&child, rustix::process::Signal::KILL);
        let _ = child.wait_with_output();
        let left = leftovers(&s.mnt());
        assert!(
            !left.is_empty(),
            "nothing to sweep: the test proves nothing"
        );
        let o = run(place_cmd(&s, &ram.path, &[]));
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        for t in &left {
            assert!(
                out.contains(&t.display().to_string()),
                "not reported: {t:?}\n{out}"
            );
        }
        assert_eq!(leftovers(&s.mnt()), Vec::<PathBuf>::new(), "{out}");
        assert!(complete(&s, &items), "{out}");
        assert_eq!(std::fs::read_dir(&ram.path).unwrap().count(), 0, "{out}");
        return;
    }
    panic!("vault place finished every run before it could be killed");
}

/// A `vault place` killed just after its commit, while it wipes the staging area, leaves an
/// area the next run handles: `vault place` again succeeds with everything in place, or finds
/// nothing staged (and wipes what the killed run left); either way the area ends empty and
/// the target complete. A half-wiped area, which no later command could read, would keep
/// the other secrets in RAM.
#[test]
fn a_place_killed_while_it_wipes_leaves_no_half_wiped_area() {
    let Some(ram) = Ramfs::new() else { return };
    let s = Scratch::new();
    // One big staged file: the wipe zeroes it for a while.
    let items = mirror(1, 96 << 20);
    let o = stage_disk(&s, &honest(items.clone()), &ram.path);
    assert!(o.status.success(), "{}", text(&o));
    let staged = ram.path.join("staged");
    let big = (0..items.len())
        .map(|i| staged.join(i.to_string()))
        .max_by_key(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .unwrap();
    // The wipe has begun: the staged folder is gone (renamed away to be wiped) or its big
    // file is being zeroed.
    let wiping = || {
        !staged.exists()
            || std::fs::File::open(&big).is_ok_and(|mut f| {
                let mut b = [0u8; 64];
                std::io::Read::read_exact(&mut f, &mut b).is_ok() && b == [0u8; 64]
            })
    };
    let child = spawn(&mut place_cmd(&s, &ram.path, &[]));
    let child = match wait_until(child, wiping) {
        Ok(c) => c,
        Err(done) => panic!(
            "place finished before the test saw the wipe: {}",
            text(&done)
        ),
    };
    kill(&child, rustix::process::Signal::KILL);
    let _ = child.wait_with_output();
    assert!(complete(&s, &items), "killed before its commit");
    let o = run(place_cmd(&s, &ram.path, &[]));
    let out = text(&o);
    assert!(
        o.status.success() || (o.status.code() == Some(6) && out.contains("nothing is staged")),
        "{out}"
    );
    assert_eq!(std::fs::read_dir(&ram.path).unwrap().count(), 0, "{out}");
    assert!(complete(&s, &items), "{out}");
    assert_eq!(leftovers(&s.mnt()), Vec::<PathBuf>::new());
}

// --- --force killed mid-commit ----------------------------------------------------------------

/// `unlock --force` killed while it renames: a file it had already replaced keeps its original
/// beside it until the commit is complete. The next run must put that original back (it is
/// the user's, possibly a key that exists nowhere else), not sweep it as a stale temporary:
/// after a run without `--force`, every original is byte-identical and nothing of vault's is
/// left.
#[test]
fn a_force_run_killed_mid_commit_loses_no_original() {
    const N: usize = 1500;
    let new = |i: usize| format!("new key {i}\n").into_bytes();
    let old = |i: usize| format!("original key {i}\n").into_bytes();
    for attempt in 0..20 {
        let s = Scratch::new();
        std::fs::create_dir_all(s.path("mnt/etc/keys")).unwrap();
        let mut items = Vec::new();
        for i in 0..N {
            std::fs::write(s.path(&format!("mnt/etc/keys/k{i:04}")), old(i)).unwrap();
            items.push((
                file_item(&format!("/etc/keys/k{i:04}"), &new(i)),
                Some(new(i)),
            ));
        }
        let before = same_files(s.state());
        std::fs::write(s.path("b.vault"), honest(items)).unwrap();
        let first = s.path("mnt/etc/keys/k0000");
        let ino = std::fs::metadata(&first).unwrap().ino();
        let mut cmd = Command::new(vault_bin());
        cmd.arg("unlock")
            .arg(s.path("b.vault"))
            .arg("--root")
            .arg(s.mnt())
            .args(["--root-not-mountpoint", "--force", "--passphrase-file"])
            .arg(s.path("pw"))
            .arg("--disk-root")
            .arg(s.live());
        let child = spawn(&mut cmd);
        let moved = || std::fs::symlink_metadata(&first).is_ok_and(|m| m.ino() != ino);
        let Ok(child) = wait_until(child, moved) else {
            continue;
        };
        kill(&child, rustix::process::Signal::KILL);
        let _ = child.wait_with_output();
        let replaced = (0..N)
            .filter(|i| {
                std::fs::read(s.path(&format!("mnt/etc/keys/k{i:04}"))).ok() == Some(new(*i))
            })
            .count();
        if replaced == 0 || replaced == N {
            eprintln!("attempt {attempt}: killed outside the commit ({replaced} replaced)");
            continue;
        }
        // The same command without --force: the originals are back, so it refuses them.
        let o = s.unlock_file(&s.path("b.vault"), &[]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(6), "{out}");
        assert_eq!(
            same_files(s.state()),
            before,
            "an original was lost or a temporary left\n{out}"
        );
        return;
    }
    panic!("no kill landed inside the commit in 20 attempts");
}

/// A listing without directory sizes (a directory that held temporaries stays larger).
fn same_files(
    state: std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    state
        .into_iter()
        .map(|(k, v)| match v.starts_with("dir ") {
            true => (
                k,
                v.rsplit_once(' ').map_or(v.clone(), |(a, _)| a.to_owned()),
            ),
            false => (k, v),
        })
        .collect()
}

// --- whose temporary is it? -------------------------------------------------------------------

/// A temporary whose writer is dead is swept even when its process id now belongs to another
/// running process (PIDs are reused; pid_max is 32768 on many systems).
#[test]
fn a_dead_writers_temporary_is_swept_though_its_pid_was_reused() {
    let s = Scratch::new();
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = other.id();
    let names = [
        format!(".vault-{pid}-00ff00ff00ff00ff.tmp"),
        format!(".vault-{pid}-00ff00ff00ff00ff-7.tmp"),
    ];
    for n in &names {
        std::fs::write(s.path(&format!("mnt/etc/ssh/{n}")), b"decrypted").unwrap();
    }
    let b = honest(vec![(
        file_item("/etc/ssh/ssh_host_ed25519_key", b"k\n"),
        Some(b"k\n".to_vec()),
    )]);
    let o = s.unlock(&b, &[]);
    let _ = other.kill();
    let _ = other.wait();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(leftovers(&s.mnt()), Vec::<PathBuf>::new(), "{out}");
}

// --- a signal after the commit ----------------------------------------------------------------

/// A signal after the commit: SIGINT sent the moment the last file becomes visible, and
/// again while vault prints what it placed. Every run either finished (exit 0, every file
/// placed, a note that the signal came too late) or was rolled back (exit 130, the target as
/// it was). Never 130 with the files placed, which tells an installer script that nothing
/// happened.
#[test]
fn a_signal_after_the_commit_never_undoes_or_denies_it() {
    use std::io::BufRead;
    let mut items = mirror(2, 4 << 20);
    for i in 0..1000 {
        let d = format!("key {i}\n").into_bytes();
        items.push((file_item(&format!("/etc/many/k{i:04}"), &d), Some(d)));
    }
    let key = b"host key\n".to_vec();
    items.push((file_item("/etc/ssh/zz_last", &key), Some(key)));
    let bundle = honest(items.clone());
    let mut seen = std::collections::BTreeMap::new();
    for attempt in 0..8 {
        let s = Scratch::new();
        std::fs::write(s.path("b.vault"), &bundle).unwrap();
        let before = s.state();
        let last = s.mnt().join("etc/ssh/zz_last");
        let mut cmd = Command::new(vault_bin());
        cmd.arg("unlock")
            .arg(s.path("b.vault"))
            .arg("--root")
            .arg(s.mnt())
            .arg("--root-not-mountpoint")
            .arg("--disk-root")
            .arg(s.live())
            .arg("--passphrase-file")
            .arg(s.path("pw"));
        let mut child = spawn(&mut cmd);
        let o = if attempt % 2 == 0 {
            match wait_until(child, || last.exists()) {
                Ok(c) => {
                    kill(&c, rustix::process::Signal::INT);
                    c.wait_with_output().unwrap()
                }
                Err(o) => o,
            }
        } else {
            // While it prints: after its commit, before it exits.
            let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let first = lines.next();
            kill(&child, rustix::process::Signal::INT);
            let rest: Vec<String> = lines.map_while(Result::ok).collect();
            let mut o = child.wait_with_output().unwrap();
            o.stdout = format!("{first:?}\n{}", rest.join("\n")).into_bytes();
            o
        };
        let out = text(&o);
        match o.status.code() {
            Some(0) => {
                assert!(
                    complete(&s, &items),
                    "attempt {attempt}: exit 0 but incomplete\n{out}"
                );
                assert_eq!(leftovers(&s.mnt()), Vec::<PathBuf>::new());
            }
            Some(130) => assert_eq!(
                same_files(s.state()),
                same_files(before),
                "attempt {attempt}: exit 130 but the target changed\n{}",
                &out[out.len().saturating_sub(400)..]
            ),
            other => panic!("attempt {attempt}: exit {other:?}\n{out}"),
        }
        *seen.entry(o.status.code()).or_insert(0) += 1;
    }
    eprintln!("exit codes: {seen:?}");
}
