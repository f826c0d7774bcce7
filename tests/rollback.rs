//! Placement that runs out of space half way, on a real 1 MiB tmpfs mounted as the target
//! root (the tests run as root): the error says everything was removed again (exit 7) and
//! the target is exactly as before, in both the in-memory and the streamed placement path.

mod common;
mod hostile;

use std::path::Path;
use std::process::Command;

use common::Tmpfs;
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

fn unlock(s: &Scratch, root: &Path, extra: &[&str]) -> std::process::Output {
    std::fs::write(s.path("b.vault"), too_big()).unwrap();
    // --root is a real mount point here: no --root-not-mountpoint.
    Command::new(vault_bin())
        .arg("unlock")
        .arg(s.path("b.vault"))
        .arg("--root")
        .arg(root)
        .arg("--disk-root")
        .arg(s.live())
        .arg("--passphrase-file")
        .arg(s.path("pw"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn out_of_space_half_way_rolls_back() {
    for mode in [&[][..], &["--staging-memory", "0"][..]] {
        let Some(t) = Tmpfs::new("size=1m") else {
            return;
        };
        std::fs::create_dir_all(t.path.join("etc/ssh")).unwrap();
        std::fs::write(t.path.join("etc/hostname"), "target\n").unwrap();
        std::fs::create_dir_all(t.path.join("var")).unwrap();
        let s = Scratch::new();
        let before = snapshot(&t.path);
        let o = unlock(&s, &t.path, mode);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(7), "{mode:?}: {err}");
        assert!(
            err.contains("everything this run placed was removed again"),
            "{mode:?}: {err}"
        );
        assert!(err.contains("No space left"), "{mode:?}: {err}");
        assert!(err.contains("hint:"), "{mode:?}: {err}");
        assert_eq!(
            snapshot(&t.path),
            before,
            "{mode:?}: target not rolled back"
        );
        // And the space is free again: the same bundle's small part fits.
        let free = rustix::fs::statvfs(&t.path).unwrap();
        assert!(
            free.f_bfree * free.f_frsize >= 900 * 1024,
            "{mode:?}: temporaries left behind"
        );
    }
}

#[test]
fn a_bundle_that_fits_places_on_the_same_tmpfs() {
    // The control: the tmpfs and the mount-point check are not what fails above.
    let Some(t) = Tmpfs::new("size=4m") else {
        return;
    };
    let s = Scratch::new();
    let o = unlock(&s, &t.path, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(t.path.join("var/lib/mirror/part3")).unwrap(),
        noise(300 * 1024, 3)
    );
}
