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
