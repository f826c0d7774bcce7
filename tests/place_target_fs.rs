//! Placement against what else is mounted in or under the target tree (docs/SECURITY.md,
//! "Hostile target tree"): a later run's sweep never reaches into a file system mounted inside
//! a dead run's temporary folder, and a target without room for the placement is refused by
//! the dry run and the real run alike, before anything is written. Real mounts (the tests run
//! as root): a bind mount, a tmpfs, an ext4 on a loop device.

mod common;
mod hostile;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Ext4;
use hostile::*;

/// `mount ARGS on`; unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn new(args: &[&std::ffi::OsStr], on: &Path) -> Option<Mount> {
        if !rustix::process::geteuid().is_root() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI runs as root"
            );
            eprintln!("SKIP: mounting needs root");
            return None;
        }
        let o = Command::new("mount").args(args).arg(on).output().unwrap();
        assert!(o.status.success(), "mount {args:?}: {}", text(&o));
        Some(Mount(on.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn key_bundle() -> Vec<u8> {
    honest(vec![(
        file_item("/etc/ssh/ssh_host_ed25519_key", b"k\n"),
        Some(b"k\n".to_vec()),
    )])
}

/// A folder of another file system (here a bind mount of a folder on the same one, and a
/// tmpfs) mounted inside a dead run's temporary folder: the sweep removes what the dead run
/// left around it but never reads into the mount, leaves the mount point in place, and names
/// the folder it could not remove; the run itself places as usual.
#[test]
fn the_sweep_never_crosses_into_a_mounted_file_system() {
    for kind in ["bind", "tmpfs"] {
        let s = Scratch::new();
        let dead = s.path("mnt/etc/.vault-111-00000000000000aa-0.tmp");
        std::fs::create_dir_all(dead.join("m")).unwrap();
        std::fs::write(dead.join("secret"), "a dead run's decrypted key\n").unwrap();
        let other = s.path("otherfs");
        std::fs::create_dir_all(&other).unwrap();
        let args: Vec<&std::ffi::OsStr> = match kind {
            "bind" => vec!["--bind".as_ref(), other.as_os_str()],
            _ => vec!["-t".as_ref(), "tmpfs".as_ref(), "tmpfs".as_ref()],
        };
        let Some(_mount) = Mount::new(&args, &dead.join("m")) else {
            return;
        };
        // Where the mounted file system's contents can be seen other than through the mount.
        let data = if kind == "bind" {
            other
        } else {
            dead.join("m")
        };
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/file"), "user data\n").unwrap();
        let o = s.unlock(&key_bundle(), &[]);
        let out = text(&o);
        assert!(o.status.success(), "{kind}: {out}");
        assert_eq!(
            std::fs::read_to_string(data.join("sub/file")).unwrap_or_default(),
            "user data\n",
            "{kind}: the sweep deleted another file system's contents\n{out}"
        );
        assert!(
            dead.join("m/sub/file").exists(),
            "{kind}: the mount point was removed or emptied\n{out}"
        );
        assert!(
            !dead.join("secret").exists(),
            "{kind}: what the dead run left beside the mount was kept\n{out}"
        );
        assert!(
            out.contains(&format!("could not remove {}", dead.display())),
            "{kind}: the folder left behind is not named\n{out}"
        );
        assert!(out.contains("mount point"), "{kind}: {out}");
        assert_eq!(
            std::fs::read_to_string(s.path("mnt/etc/ssh/ssh_host_ed25519_key")).unwrap(),
            "k\n",
            "{kind}: {out}"
        );
    }
}

/// A target file system with 2 KiB free: the dry run and the real run refuse it alike (exit
/// 6, naming the file system and what is needed), before writing anything, in both placement
/// paths; the same bundle on a file system with room is placed.
#[test]
fn a_full_target_is_refused_by_the_dry_run_and_the_real_run_alike() {
    let data = common::noise(20 * 1024, 1);
    let bundle = honest(vec![
        (dir_item("/var/lib/app"), None),
        (file_item("/var/lib/app/blob", &data), Some(data.clone())),
        (
            file_item("/etc/ssh/ssh_host_ed25519_key", b"k\n"),
            Some(b"k\n".to_vec()),
        ),
    ]);
    let Some(full) = Ext4::new(8, &[]) else {
        return;
    };
    full.fill_to(2048);
    let s = Scratch::new();
    let before = snapshot(&full.mnt());
    for extra in [&["--dry-run"][..], &[], &["--staging-memory", "0"]] {
        let o = s.unlock_onto(&full.mnt(), &bundle, extra);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(6), "{extra:?}: {out}");
        assert!(out.contains("not enough free space"), "{extra:?}: {out}");
        assert!(
            out.contains(&full.mnt().display().to_string()),
            "{extra:?}: the file system is not named\n{out}"
        );
        assert_eq!(snapshot(&full.mnt()), before, "{extra:?}: {out}");
    }
    let Some(roomy) = Ext4::new(8, &[]) else {
        return;
    };
    for extra in [&["--dry-run"][..], &[]] {
        let o = s.unlock_onto(&roomy.mnt(), &bundle, extra);
        assert!(o.status.success(), "{extra:?}: {}", text(&o));
    }
    assert_eq!(
        std::fs::read(roomy.mnt().join("var/lib/app/blob")).unwrap(),
        data
    );
}
