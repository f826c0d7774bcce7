//! Links planted in the target tree (`/mnt/etc -> /etc`-style, `/mnt/etc/ssh`, the final file
//! itself, a directory entry's target, the disk-stage `/tmp`) are never followed: with and
//! without `--force`, in-memory and streamed placement, nothing outside the root changes.

mod hostile;

use std::os::unix::fs::symlink;

use hostile::*;

const MODES: [&[&str]; 2] = [&[], &["--staging-memory", "0"]];

fn key_bundle() -> Vec<u8> {
    honest(vec![
        (dir_item("/root/.ssh"), None),
        (
            file_item("/etc/ssh/ssh_host_ed25519_key", b"host key\n"),
            Some(b"host key\n".to_vec()),
        ),
        (
            disk_item("/tmp/disko-password", b"pw"),
            Some(b"pw".to_vec()),
        ),
    ])
}

/// Plants a link with `plant`, then checks that unlock is refused (exit 6, "never
/// followed") with and without --force and that nothing anywhere changed.
fn refused_with_link(what: &str, plant: impl Fn(&Scratch)) {
    for mode in MODES {
        for force in [&[][..], &["--force"][..]] {
            let s = Scratch::new();
            plant(&s);
            let extra: Vec<&str> = mode.iter().chain(force).copied().collect();
            s.expect_refused(
                &format!("{what} {extra:?}"),
                &key_bundle(),
                &extra,
                6,
                "never followed",
            );
        }
    }
}

#[test]
fn linked_etc_is_refused() {
    refused_with_link("mnt/etc -> outside/etc", |s| {
        std::fs::remove_dir_all(s.path("mnt/etc")).unwrap();
        symlink(s.path("outside/etc"), s.path("mnt/etc")).unwrap();
    });
    // Relative, pointing inside the root: still a link, still refused.
    refused_with_link("mnt/etc -> usr/etc", |s| {
        std::fs::create_dir_all(s.path("mnt/usr/etc/ssh")).unwrap();
        std::fs::remove_dir_all(s.path("mnt/etc")).unwrap();
        symlink("usr/etc", s.path("mnt/etc")).unwrap();
    });
}

#[test]
fn linked_etc_ssh_is_refused() {
    refused_with_link("mnt/etc/ssh -> outside/etc", |s| {
        std::fs::remove_dir(s.path("mnt/etc/ssh")).unwrap();
        symlink(s.path("outside/etc"), s.path("mnt/etc/ssh")).unwrap();
    });
}

#[test]
fn linked_directory_entry_is_refused() {
    refused_with_link("mnt/root/.ssh -> outside", |s| {
        std::fs::create_dir(s.path("mnt/root")).unwrap();
        symlink(s.path("outside"), s.path("mnt/root/.ssh")).unwrap();
    });
}

#[test]
fn linked_disk_stage_tmp_is_refused() {
    refused_with_link("live/tmp -> outside/etc", |s| {
        std::fs::remove_dir(s.path("live/tmp")).unwrap();
        symlink(s.path("outside/etc"), s.path("live/tmp")).unwrap();
    });
}

#[test]
fn a_link_at_the_final_path_is_replaced_never_written_through() {
    let target = "mnt/etc/ssh/ssh_host_ed25519_key";
    for mode in MODES {
        let plant = |s: &Scratch| symlink(s.path("outside/etc/shadow"), s.path(target)).unwrap();
        // Without --force: refused like any existing file.
        let s = Scratch::new();
        plant(&s);
        s.expect_refused("final link, no --force", &key_bundle(), mode, 6, "exists");

        // --force: the link itself is moved to the backup name; its target is untouched.
        let s = Scratch::new();
        plant(&s);
        let outside = snapshot(&s.path("outside"));
        let extra: Vec<&str> = mode.iter().copied().chain(["--force"]).collect();
        let o = s.unlock(&key_bundle(), &extra);
        assert!(o.status.success(), "{}", text(&o));
        let placed = std::fs::symlink_metadata(s.path(target)).unwrap();
        assert!(placed.is_file(), "the link was not replaced by a file");
        assert_eq!(std::fs::read(s.path(target)).unwrap(), b"host key\n");
        // The link itself is gone, with no copy of it kept.
        let dir = std::path::Path::new(target).parent().unwrap();
        let names: Vec<_> = std::fs::read_dir(s.path(dir.to_str().unwrap()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("ssh_host_ed25519_key"))
            .collect();
        assert_eq!(names, vec!["ssh_host_ed25519_key".to_owned()]);
        assert_eq!(
            snapshot(&s.path("outside")),
            outside,
            "written through a link"
        );
    }
}

#[test]
fn a_dangling_link_at_the_final_path_is_not_created_through() {
    // A dangling link is the classic trick: following it would create the file elsewhere.
    let target = "mnt/etc/ssh/ssh_host_ed25519_key";
    let s = Scratch::new();
    symlink(s.path("outside/created-through-link"), s.path(target)).unwrap();
    s.expect_refused("dangling final link", &key_bundle(), &[], 6, "exists");
    let o = s.unlock(&key_bundle(), &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!s.path("outside/created-through-link").exists());
    assert!(std::fs::symlink_metadata(s.path(target)).unwrap().is_file());
}
