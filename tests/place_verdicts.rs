//! What unlock decides about targets that already exist, through the real binary:
//! a target holding exactly the bytes, mode and owner to be placed is already in place (a
//! second run succeeds and changes nothing); `--force` replaces without leaving any copy of
//! the old file; a dry run reaches the same verdict and exit code as the real run.

mod hostile;

use std::os::unix::fs::PermissionsExt;

use hostile::*;

fn items() -> Vec<(vault::archive::Item, Option<Vec<u8>>)> {
    vec![
        (
            disk_item("/tmp/disko-password", b"luks pass"),
            Some(b"luks pass".to_vec()),
        ),
        (
            file_item("/etc/ssh/ssh_host_ed25519_key", b"host key\n"),
            Some(b"host key\n".to_vec()),
        ),
    ]
}

/// Owners are only set when running as root; as another user, files keep the caller's.
fn owner_args() -> Vec<(vault::archive::Item, Option<Vec<u8>>)> {
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    items()
        .into_iter()
        .map(|(i, d)| (vault::archive::Item { uid, gid, ..i }, d))
        .collect()
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_second_unlock_finds_its_files_already_in_place() {
    let s = Scratch::new();
    let b = honest(owner_args());
    let o = s.unlock(&b, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let placed = s.state();
    // The same bundle again, without --force: nothing to do, nothing refused.
    let o = s.unlock(&b, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("in place"), "{}", text(&o));
    assert_eq!(s.state(), placed);
    // --force changes nothing either and leaves no copy.
    let o = s.unlock(&b, &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(s.state(), placed);
}

#[test]
fn same_bytes_with_another_mode_or_other_bytes_are_conflicts() {
    let s = Scratch::new();
    let b = honest(owner_args());
    assert!(s.unlock(&b, &[]).status.success());
    let key = s.path("mnt/etc/ssh/ssh_host_ed25519_key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    s.expect_refused("mode differs", &b, &[], 6, "ssh_host_ed25519_key exists");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&key, b"host kez\n").unwrap();
    s.expect_refused("bytes differ", &b, &[], 6, "ssh_host_ed25519_key exists");
}

#[test]
fn force_replaces_without_leaving_a_copy_of_the_old_file() {
    let s = Scratch::new();
    std::fs::write(s.path("mnt/etc/ssh/ssh_host_ed25519_key"), b"old secret").unwrap();
    std::fs::write(s.path("live/tmp/disko-password"), b"old luks").unwrap();
    let o = s.unlock(&honest(owner_args()), &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(s.path("mnt/etc/ssh/ssh_host_ed25519_key")).unwrap(),
        b"host key\n"
    );
    assert_eq!(
        names(&s.path("mnt/etc/ssh")),
        vec!["ssh_host_ed25519_key".to_owned()]
    );
    assert_eq!(
        names(&s.path("live/tmp")),
        vec!["disko-password".to_owned()]
    );
    let all = format!("{:?}", s.state());
    assert!(!all.contains("backup"), "{all}");
}

#[test]
fn a_dry_run_reaches_the_verdict_of_the_real_run() {
    let s = Scratch::new();
    std::fs::write(s.path("b.vault"), honest(owner_args())).unwrap();
    std::fs::write(s.path("mnt/etc/ssh/ssh_host_ed25519_key"), b"old secret").unwrap();
    let before = s.state();
    // An existing file without --force; then a --root that is not a mount point.
    for (extra, needle) in [
        (
            &["--root-not-mountpoint"][..],
            "ssh_host_ed25519_key exists",
        ),
        (&[][..], "is not a mount point"),
    ] {
        let real = s.unlock_at(&s.path("b.vault"), &s.mnt(), extra);
        let dry = s.unlock_at(
            &s.path("b.vault"),
            &s.mnt(),
            &[extra, &["--dry-run"][..]].concat(),
        );
        assert_eq!(real.status.code(), Some(6), "{}", text(&real));
        assert_eq!(dry.status.code(), real.status.code(), "{}", text(&dry));
        assert!(text(&dry).contains(needle), "{}", text(&dry));
        assert!(text(&dry).contains("hint:"), "{}", text(&dry));
        assert_eq!(s.state(), before);
    }
    // With --force both go ahead; the dry run writes nothing.
    let dry = s.unlock_at(
        &s.path("b.vault"),
        &s.mnt(),
        &["--root-not-mountpoint", "--force", "--dry-run"],
    );
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(text(&dry).contains("would replace"), "{}", text(&dry));
    assert_eq!(s.state(), before);
}

#[test]
fn a_link_in_the_way_of_several_targets_is_listed_once() {
    let s = Scratch::new();
    std::fs::remove_dir_all(s.path("mnt/etc")).unwrap();
    std::os::unix::fs::symlink(s.path("outside/etc"), s.path("mnt/etc")).unwrap();
    let b = honest(vec![
        (
            file_item("/etc/ssh/ssh_host_ed25519_key", b"k"),
            Some(b"k".to_vec()),
        ),
        (file_item("/etc/age/key", b"a"), Some(b"a".to_vec())),
    ]);
    s.expect_refused("symlinked /etc", &b, &[], 6, "never followed");
    let out = text(&s.unlock(&b, &[]));
    let link = format!("{} is a link", s.path("mnt/etc").display());
    assert_eq!(out.matches(&link).count(), 1, "{out}");
}

/// A folder that exists is kept as it is, and the report (text and `--json`) shows its real
/// mode and owner, not the bundle's: a world-writable `~/.ssh` must not read as 0700.
#[test]
fn a_kept_folder_is_reported_with_its_real_mode_and_owner() {
    let mut ssh = dir_item("/root/.ssh");
    ssh.mode = 0o700;
    let bundle = honest(vec![
        (ssh, None),
        (
            file_item("/root/.ssh/id_ed25519", b"key\n"),
            Some(b"key\n".to_vec()),
        ),
    ]);
    let s = Scratch::new();
    let dir = s.mnt().join("root/.ssh");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&dir, Some(1234), Some(5678)).unwrap();
    let o = s.unlock(&bundle, &["--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let kept = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["target"] == "/root/.ssh")
        .expect("the folder's line");
    assert_eq!(kept["action"], "exists", "{kept}");
    assert_eq!(
        (&kept["mode"], &kept["uid"], &kept["gid"]),
        (&511.into(), &1234.into(), &5678.into())
    );
    let o = s.unlock(&bundle, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("(0777 1234:5678, dir)"), "{}", text(&o));
    // And says what that means.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is kept as it is, and every user may write to it (mode 0777, no sticky bit)"),
        "{err}"
    );
    // The summary counts what was placed, not the folder kept.
    assert!(
        text(&o).contains("placed 1 item(s) for host h (1 already in place or kept)."),
        "{}",
        text(&o)
    );
    // Kept as it was.
    let m = std::fs::metadata(&dir).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o777);
}
