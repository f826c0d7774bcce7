//! Placement onto a target without room, on real file systems mounted as the target root (the
//! tests run as root): refused before writing where the files cannot fit; where space runs
//! out half way all the same, the error says everything was removed again (exit 7) and the
//! target is exactly as before, in both the in-memory and the streamed placement path.

mod common;
mod hostile;

use common::{Ext4, Tmpfs};
use hostile::*;

fn noise(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect()
}

/// Four 300 KiB files: the third does not fit in 1 MiB together with the first two.
fn too_big() -> Vec<u8> {
    let mut items = vec![(dir_item("/var/lib/mirror"), None)];
    for i in 0..4 {
        let d = noise(300 * 1024, i);
        items.push((file_item(&format!("/var/lib/mirror/part{i}"), &d), Some(d)));
    }
    items.push((
        file_item("/etc/ssh/ssh_host_ed25519_key", b"k"),
        Some(b"k".to_vec()),
    ));
    honest(items)
}

/// Too big for the target: refused before anything is written (exit 6, the free-space check
/// both placement paths share with the dry run).
#[test]
fn a_bundle_too_big_for_the_target_is_refused_before_writing() {
    for mode in [&[][..], &["--staging-memory", "0"][..]] {
        let Some(t) = Tmpfs::new("size=1m") else {
            return;
        };
        std::fs::create_dir_all(t.path.join("etc/ssh")).unwrap();
        let s = Scratch::new();
        let before = snapshot(&t.path);
        let o = s.unlock_onto(&t.path, &too_big(), mode);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(6), "{mode:?}: {err}");
        assert!(err.contains("not enough free space"), "{mode:?}: {err}");
        assert_eq!(snapshot(&t.path), before, "{mode:?}");
    }
}

/// Space that runs out half way although the check passed (it counts the files' blocks and
/// inodes, not the blocks a folder takes to list many new names): everything is removed
/// again (exit 7) and the target is exactly as before, in both placement paths. A real ext4
/// of 1 KiB blocks on a loop device, with exactly the counted space free.
#[test]
fn out_of_space_half_way_rolls_back() {
    const FILES: usize = 300;
    let many = honest(
        (0..FILES)
            .map(|i| {
                let t = format!("/etc/many/file-with-a-long-name-{i:04}");
                (file_item(&t, b"k"), Some(b"k".to_vec()))
            })
            .collect(),
    );
    for mode in [&[][..], &["--staging-memory", "0"][..]] {
        let Some(fs) = Ext4::new(8, &["-b", "1024"]) else {
            return;
        };
        std::fs::create_dir_all(fs.mnt().join("etc/many")).unwrap();
        std::fs::write(fs.mnt().join("etc/hostname"), "target\n").unwrap();
        fs.fill_to(FILES as u64 * 1024);
        let s = Scratch::new();
        // A folder's size is left out: ext4 never shrinks a folder that listed more names.
        let listing = || {
            let mut l = snapshot(&fs.mnt());
            for v in l.values_mut().filter(|v| v.starts_with("dir ")) {
                v.truncate(v.rfind(' ').unwrap_or(v.len()));
            }
            l
        };
        let before = listing();
        let o = s.unlock_onto(&fs.mnt(), &many, mode);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(7), "{mode:?}: {err}");
        assert!(
            err.contains("everything this run placed was removed again"),
            "{mode:?}: {err}"
        );
        assert!(err.contains("No space left"), "{mode:?}: {err}");
        assert!(err.contains("hint:"), "{mode:?}: {err}");
        assert_eq!(listing(), before, "{mode:?}: target not rolled back");
    }
}

#[test]
fn a_bundle_that_fits_places_on_the_same_tmpfs() {
    // The control: the tmpfs and the mount-point check are not what fails above.
    let Some(t) = Tmpfs::new("size=4m") else {
        return;
    };
    let s = Scratch::new();
    let o = s.unlock_onto(&t.path, &too_big(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(t.path.join("var/lib/mirror/part3")).unwrap(),
        noise(300 * 1024, 3)
    );
}

/// A limit of open files too low for the folders a placement keeps open (it holds each one
/// it writes into until the commit): refused before anything is written, by the dry run and
/// the real run alike (exit 6), naming the limit and how to raise it. It used to fail half
/// way, or in the conflict check, where `Too many open files` read as "a link or not a
/// directory" with a hint to remove real folders.
#[test]
fn too_few_open_files_is_refused_up_front_and_says_which_limit() {
    let items: Vec<(vault::archive::Item, Option<Vec<u8>>)> = (0..200)
        .map(|i| {
            let d = noise(100, i);
            (file_item(&format!("/srv/d{i}/f"), &d), Some(d))
        })
        .collect();
    let s = Scratch::new();
    let path = s.path("b.vault");
    std::fs::write(&path, honest(items)).unwrap();
    let before = s.state();
    for dry in [true, false] {
        let o = std::process::Command::new("prlimit")
            .arg("--nofile=200:200")
            .arg(vault_bin())
            .args(["unlock", "--root-not-mountpoint", "--root"])
            .arg(s.mnt())
            .arg("--disk-root")
            .arg(s.live())
            .arg("--passphrase-file")
            .arg(s.path("pw"))
            .args(dry.then_some("--dry-run"))
            .arg(&path)
            .output()
            .expect("run prlimit (util-linux)");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(6), "dry run {dry}: {err}");
        assert!(
            err.contains("places files in 201 folders"),
            "dry run {dry}: {err}"
        );
        assert!(
            err.contains("may open only 200 files"),
            "dry run {dry}: {err}"
        );
        assert!(
            err.contains("hint: raise the limit of open files to at least 265"),
            "{err}"
        );
        assert!(!err.contains("link"), "dry run {dry}: {err}");
        assert_eq!(s.state(), before, "dry run {dry}");
    }
}
