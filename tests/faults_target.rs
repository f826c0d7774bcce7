//! The hostile-target half of the placement fault corpus (tests/faults.rs has the kills
//! and signals): folders vault could not clean up after itself in, a disk that fails at
//! write-back while another process flushes it, and what docs/CLI.md says `--force` does.
//! The same promises: nothing decrypted left behind, the target as it was or complete, no
//! false success.

mod common;
mod hostile;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{leftovers, noise, require_tool};
use hostile::*;

// --- append-only and immutable directories ----------------------------------------------------

/// `chattr +a` / `+i` on a folder, undone when dropped (or the scratch folder cannot go).
struct Attr(PathBuf);

impl Attr {
    fn set(path: &Path, flag: &str) -> Option<Attr> {
        let chattr = require_tool("chattr")?;
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIP: chattr +a/+i needs root");
            return None;
        }
        let st = Command::new(chattr)
            .arg(format!("+{flag}"))
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "chattr +{flag} {}", path.display());
        Some(Attr(path.to_path_buf()))
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .args(["-a", "-i"])
            .arg(&self.0)
            .status();
    }
}

/// A directory vault could write into but never remove from (append-only), or not write into
/// at all (immutable), is refused before any byte is decrypted into it: exit 6, nothing
/// written, the folder named.
#[test]
fn an_append_only_or_immutable_directory_is_refused_before_writing() {
    for flag in ["a", "i"] {
        let s = Scratch::new();
        let b = honest(vec![
            (
                file_item("/etc/ssh/ssh_host_ed25519_key", b"private\n"),
                Some(b"private\n".to_vec()),
            ),
            (
                file_item("/etc/ssh/ssh_host_ed25519_key.pub", b"public\n"),
                Some(b"public\n".to_vec()),
            ),
        ]);
        let Some(_attr) = Attr::set(&s.path("mnt/etc/ssh"), flag) else {
            return;
        };
        for mode in [&[][..], &["--staging-memory", "0"][..]] {
            s.expect_refused(&format!("+{flag} {mode:?}"), &b, mode, 6, "mnt/etc/ssh");
            assert_eq!(leftovers(&s.mnt()), Vec::<PathBuf>::new());
        }
    }
}

// --- the documentation of --force -------------------------------------------------------------

/// `--force` over a file while the bundle also places `NAME.vault-backup`: the bundle's two
/// files are placed, nothing else is kept or left, and a failure after the first rename puts
/// the original back (tests in src/place/tests.rs). docs/CLI.md describes exactly that: no
/// `.vault-backup` copies and no `--no-backup` flag.
#[test]
fn force_beside_a_vault_backup_name_places_both_and_keeps_no_copy() {
    let s = Scratch::new();
    std::fs::write(s.path("mnt/etc/ssh/key"), b"original\n").unwrap();
    let b = honest(vec![
        (file_item("/etc/ssh/key", b"new\n"), Some(b"new\n".to_vec())),
        (
            file_item("/etc/ssh/key.vault-backup", b"the bundle's own\n"),
            Some(b"the bundle's own\n".to_vec()),
        ),
    ]);
    let o = s.unlock(&b, &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(s.path("mnt/etc/ssh/key")).unwrap(), b"new\n");
    assert_eq!(
        std::fs::read(s.path("mnt/etc/ssh/key.vault-backup")).unwrap(),
        b"the bundle's own\n"
    );
    assert_eq!(std::fs::read_dir(s.path("mnt/etc/ssh")).unwrap().count(), 2);
    let cli =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CLI.md")).unwrap();
    for command in ["unlock", "place"] {
        let help = text(
            &Command::new(vault_bin())
                .args([command, "--help"])
                .output()
                .unwrap(),
        );
        let section = format!("### `vault {command}`");
        let start = cli.find(&section).unwrap();
        let end = cli[start + 4..]
            .find("\n### ")
            .map_or(cli.len(), |e| start + 4 + e);
        let text = &cli[start..end];
        assert!(
            !text.contains("vault-backup"),
            "{section} still describes backups"
        );
        for flag in text.split('`').filter(|w| w.starts_with("--")) {
            let flag = flag.split([' ', '=']).next().unwrap();
            assert!(
                help.contains(flag),
                "{section} documents {flag}, which {command} does not have"
            );
        }
    }
}

// --- write-back errors ----------------------------------------------------------------------

/// An ext4 on a loop device whose backing file cannot grow: a sparse file on a tmpfs smaller
/// than the file system, so writes to the file system's free blocks fail at write-back with
/// EIO. Unmounted and detached when dropped.
struct FailingDisk {
    _backing: common::Tmpfs,
    dev: String,
    mnt: tempfile::TempDir,
}

impl FailingDisk {
    /// `room` MiB of tmpfs under a `fs` MiB file system.
    fn new(room: u32, fs: u32) -> Option<FailingDisk> {
        for t in ["losetup", "mkfs.ext4", "mount", "umount"] {
            require_tool(t)?;
        }
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIP: loop devices need root");
            return None;
        }
        let backing = common::Tmpfs::new(&format!("size={room}m"))?;
        let img = backing.path.join("disk.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(u64::from(fs) << 20)
            .unwrap();
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(o.status.success(), "losetup: {}", text(&o));
        let dev = String::from_utf8(o.stdout).unwrap().trim().to_owned();
        let disk = FailingDisk {
            _backing: backing,
            dev,
            mnt: tempfile::tempdir().unwrap(),
        };
        let o = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
            .arg(&disk.dev)
            .output()
            .unwrap();
        assert!(o.status.success(), "mkfs: {}", text(&o));
        disk.mount();
        Some(disk)
    }

    fn mount(&self) {
        let o = Command::new("mount")
            .arg(&self.dev)
            .arg(self.mnt.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "mount: {}", text(&o));
    }

    /// Unmounts and mounts again: what is read afterwards came from the device, not the page
    /// cache.
    fn remount(&self) {
        let _ = Command::new("umount").arg(self.mnt.path()).status();
        self.mount();
    }
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt.path()).status();
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Runs `sync` in a loop until dropped: another process flushing the target's file system
/// while vault places (as the kernel's flusher also does).
struct Syncer(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Option<std::thread::JoinHandle<()>>,
);

impl Syncer {
    fn start(fs: &Path) -> Syncer {
        let fs = fs.to_path_buf();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || {
            // sync(2), then syncfs(2) of the target's file system.
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = Command::new("sync").status();
                let _ = Command::new("sync").arg("-f").arg(&fs).status();
            }
        });
        Syncer(stop, Some(t))
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

/// Placement onto a disk that fails at write-back, while another process flushes it: never
/// exit 0 unless every file reads back from the device as placed.
#[test]
fn a_write_back_error_is_never_reported_as_success() {
    let items: Vec<_> = (0..6u32)
        .map(|i| {
            let d = noise(8 << 20, i + 1);
            (file_item(&format!("/var/lib/part{i}"), &d), Some(d))
        })
        .collect();
    let bundle = honest(items.clone());
    for (mode, extra) in [
        ("streamed", &["--staging-memory", "0"][..]),
        ("in memory", &["--staging-memory", "200000000"][..]),
    ] {
        let Some(disk) = FailingDisk::new(40, 128) else {
            return;
        };
        let s = Scratch::new();
        std::fs::write(s.path("b.vault"), &bundle).unwrap();
        let o = {
            let _syncer = Syncer::start(disk.mnt.path());
            Command::new(vault_bin())
                .arg("unlock")
                .arg(s.path("b.vault"))
                .arg("--root")
                .arg(disk.mnt.path())
                .arg("--disk-root")
                .arg(s.live())
                .arg("--passphrase-file")
                .arg(s.path("pw"))
                .args(extra)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let out = text(&o);
        if o.status.success() {
            disk.remount();
            for (i, d) in &items {
                let got = std::fs::read(disk.mnt.path().join(&i.target[1..])).ok();
                assert!(
                    got.as_ref() == d.as_ref(),
                    "{mode}: exit 0 but {} does not hold what was placed\n{out}",
                    i.target
                );
            }
        } else {
            // 7: rolled back; 9: the file system turned read-only, and the rollback names what
            // it could not remove.
            assert!(matches!(o.status.code(), Some(7 | 9)), "{mode}: {out}");
            assert!(
                !out.contains("removed again") || o.status.code() == Some(7),
                "{mode}: {out}"
            );
        }
    }
}
