use super::*;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

pub(super) fn opts() -> PlaceOptions {
    PlaceOptions {
        force: false,
        chown: false,
    }
}

#[test]
fn places_with_mode_and_parents_and_commits_atomically() {
    let t = tempfile::tempdir().unwrap();
    let mut p = Placer::new(t.path(), opts()).unwrap();
    p.dir("/root/.ssh", 0o700, 0, 0).unwrap();
    p.file("/root/.ssh/id", 0o600, 0, 0, &mut &b"key"[..])
        .unwrap();
    p.file("/etc/ssh/host", 0o640, 0, 0, &mut &b"host"[..])
        .unwrap();
    // Nothing visible before commit, and nothing reported placed.
    assert!(!t.path().join("root/.ssh/id").exists());
    assert_eq!(p.placed().count(), 0);
    p.commit().unwrap();
    // The files (not directories) where they landed, in order: what unlock prints.
    assert_eq!(
        p.placed().collect::<Vec<_>>(),
        [t.path().join("root/.ssh/id"), t.path().join("etc/ssh/host")]
    );
    let m = std::fs::metadata(t.path().join("root/.ssh/id")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    assert_eq!(
        std::fs::read(t.path().join("etc/ssh/host")).unwrap(),
        b"host"
    );
    assert_eq!(
        std::fs::metadata(t.path().join("root/.ssh"))
            .unwrap()
            .mode()
            & 0o7777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(t.path().join("etc")).unwrap().mode() & 0o7777,
        PARENT_DIR_MODE
    );
    // No temporaries left.
    let names: Vec<_> = std::fs::read_dir(t.path().join("etc/ssh"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["host"]);
}

#[test]
fn drop_without_commit_removes_everything() {
    let t = tempfile::tempdir().unwrap();
    {
        let mut p = Placer::new(t.path(), opts()).unwrap();
        p.file("/a/b/c", 0o600, 0, 0, &mut &b"x"[..]).unwrap();
    }
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
}

#[test]
fn refuses_symlinked_parent_and_reports_conflicts() {
    let t = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), t.path().join("etc")).unwrap();
    std::fs::write(t.path().join("existing"), "old").unwrap();
    std::fs::create_dir(t.path().join("adir")).unwrap();
    let p = Placer::new(t.path(), opts()).unwrap();
    let mut dir = item("/etc/d", b"", 0o755);
    dir.kind = crate::archive::Kind::Dir;
    let items = [
        dir,
        item("/etc/ssh/key", b"k", 0o600),
        item("/existing", b"k", 0o600),
        item("/adir", b"k", 0o600),
        item("/new/file", b"k", 0o600),
    ];
    let c = p.check(&items);
    let kinds: Vec<_> = c.iter().map(|c| c.what).collect();
    // The link /etc is in the way of two targets: listed once.
    assert_eq!(
        kinds,
        vec![
            ConflictKind::NotADirectory,
            ConflictKind::Exists,
            ConflictKind::IsADirectory
        ]
    );
    let mut p = Placer::new(t.path(), opts()).unwrap();
    let e = p
        .file("/etc/ssh/key", 0o600, 0, 0, &mut &b"x"[..])
        .unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    drop(p);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn force_replaces_without_a_copy_and_rollback_restores_the_old_file() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), "old").unwrap();
    let force = PlaceOptions {
        force: true,
        ..opts()
    };
    // Rolled back after the renames (a later stage failed): the old file is back.
    let mut p = Placer::new(t.path(), force).unwrap();
    p.file("/f", 0o600, 0, 0, &mut &b"new"[..]).unwrap();
    p.commit().unwrap();
    p.rollback();
    assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"old");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    // Committed: the new file, and nothing else, not even for a moment after the commit.
    let mut p = Placer::new(t.path(), force).unwrap();
    p.file("/f", 0o600, 0, 0, &mut &b"new"[..]).unwrap();
    p.commit().unwrap();
    p.release();
    assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"new");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    // Dropped after its commit, a placer removes the replaced file too.
    std::fs::write(t.path().join("g"), "old").unwrap();
    let mut p = Placer::new(t.path(), force).unwrap();
    p.file("/g", 0o600, 0, 0, &mut &b"new"[..]).unwrap();
    p.commit().unwrap();
    drop(p);
    assert_eq!(std::fs::read(t.path().join("g")).unwrap(), b"new");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2);
}

pub(super) fn item(target: &str, data: &[u8], mode: u32) -> crate::archive::Item {
    use sha2::Digest;
    crate::archive::Item {
        host: None,
        stage: crate::manifest::Stage::Root,
        kind: crate::archive::Kind::File,
        target: target.into(),
        mode,
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
        size: data.len() as u64,
        sha256: Some(hex::encode(sha2::Sha256::digest(data))),
    }
}

#[test]
fn a_file_with_the_same_bytes_mode_and_owner_is_in_place() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), "same").unwrap();
    std::fs::set_permissions(t.path().join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
    symlink(t.path().join("f"), t.path().join("link")).unwrap();
    let p = Placer::new(t.path(), opts()).unwrap();
    let kinds = |i: crate::archive::Item| {
        p.check([&i])
            .into_iter()
            .map(|c| c.what)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(item("/f", b"same", 0o600)),
        vec![ConflictKind::InPlace]
    );
    assert_eq!(
        kinds(item("/f", b"same", 0o640)),
        vec![ConflictKind::Exists]
    );
    assert_eq!(
        kinds(item("/f", b"samf", 0o600)),
        vec![ConflictKind::Exists]
    );
    assert_eq!(
        kinds(item("/f", b"same!", 0o600)),
        vec![ConflictKind::Exists]
    );
    // A link to a file holding the bytes is not the file: never followed.
    assert_eq!(
        kinds(item("/link", b"same", 0o600)),
        vec![ConflictKind::Exists]
    );
}

/// With owners applied (`chown`), a file that differs from the item only in its owner or
/// only in its group is not in place: placement must set them.
#[test]
fn a_file_with_another_owner_or_group_is_not_in_place() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), "same").unwrap();
    std::fs::set_permissions(t.path().join("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let p = Placer::new(
        t.path(),
        PlaceOptions {
            force: false,
            chown: true,
        },
    )
    .unwrap();
    let kinds = |i: crate::archive::Item| {
        p.check([&i])
            .into_iter()
            .map(|c| c.what)
            .collect::<Vec<_>>()
    };
    let same = item("/f", b"same", 0o600);
    assert_eq!(kinds(same.clone()), vec![ConflictKind::InPlace]);
    let mut other_uid = same.clone();
    other_uid.uid += 1;
    assert_eq!(kinds(other_uid), vec![ConflictKind::Exists]);
    let mut other_gid = same;
    other_gid.gid += 1;
    assert_eq!(kinds(other_gid), vec![ConflictKind::Exists]);
}

/// `sweep_stale` finds the regular temporaries of dead writers beside the targets, lists
/// them without touching them in a dry run, removes them otherwise (a folder with everything
/// in it, never following a link), and leaves this run's temporary, links with the pattern,
/// and other files alone.
#[test]
fn sweep_stale_takes_only_dead_writers_files_and_nothing_in_a_dry_run() {
    let t = tempfile::tempdir().unwrap();
    let ssh = t.path().join("etc/ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    // No process holds run 5's lock, whatever runs as PID 1.
    let stale = ".vault-1-0000000000000005-3.tmp";
    let older = ".vault-99999999-00ff.tmp";
    let live = crate::stale::temp_name("");
    for name in [stale, older, live.as_str(), "other"] {
        std::fs::write(ssh.join(name), "x").unwrap();
    }
    symlink(
        ssh.join("other"),
        ssh.join(".vault-1-0000000000000005-4.tmp"),
    )
    .unwrap();
    // A folder a dead run created under a temporary name: removed with what it holds.
    let stale_dir = ".vault-1-0000000000000005-5.tmp";
    std::fs::create_dir_all(ssh.join(stale_dir).join("sub")).unwrap();
    std::fs::write(ssh.join(stale_dir).join("sub/key"), "secret").unwrap();
    symlink(t.path(), ssh.join(stale_dir).join("up")).unwrap();
    let names = || {
        let mut v: Vec<_> = std::fs::read_dir(&ssh)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let before = names();
    let mut p = Placer::new(t.path(), opts()).unwrap();
    let items = [
        item("/etc/ssh/host_key", b"k", 0o600),
        item("/etc/ssh/host_key.pub", b"p", 0o644),
    ];
    let targets = &items;
    let removed = |v: Vec<Swept>| {
        let mut v: Vec<_> = v
            .into_iter()
            .map(|s| {
                assert_eq!(s.what, SweptKind::Removed);
                s.path
            })
            .collect();
        v.sort();
        v
    };
    let mut want = vec![ssh.join(stale), ssh.join(older), ssh.join(stale_dir)];
    want.sort();
    assert_eq!(removed(p.sweep_stale(targets, true)), want);
    assert_eq!(names(), before, "a dry run removes nothing");
    assert_eq!(removed(p.sweep_stale(targets, false)), want);
    let after: Vec<_> = before
        .into_iter()
        .filter(|n| n != stale && n != older && n != stale_dir)
        .collect();
    assert_eq!(names(), after);
    assert!(
        t.path().join("etc/ssh/other").exists(),
        "the link in it was not followed"
    );
    assert!(p.sweep_stale(targets, false).is_empty());
}

/// An original a dead `--force` run displaced is put back where it was (replacing what that
/// run placed there), not removed; a second name of a file the dead run had not replaced yet
/// is just removed. A dry run changes nothing, and its check judges the original.
#[test]
fn sweep_stale_puts_displaced_originals_back() {
    let t = tempfile::tempdir().unwrap();
    let ssh = t.path().join("etc/ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("key"), "placed by the dead run").unwrap();
    let was = ".vault-1-0000000000000005-0.was.key";
    std::fs::write(ssh.join(was), "original").unwrap();
    std::fs::write(ssh.join("kept"), "original too").unwrap();
    let link = ".vault-1-0000000000000005-1.was.kept";
    std::fs::hard_link(ssh.join("kept"), ssh.join(link)).unwrap();
    let it = item("/etc/ssh/key", b"placed by the dead run", 0o644);
    let mode = std::fs::metadata(ssh.join("key")).unwrap().mode() & 0o7777;
    let it = crate::archive::Item { mode, ..it };
    let items = [it.clone(), item("/etc/ssh/kept", b"x", 0o644)];
    let targets = &items;
    let mut p = Placer::new(t.path(), opts()).unwrap();
    let dry = p.sweep_stale(targets, true);
    assert!(ssh.join(was).exists() && ssh.join(link).exists());
    assert!(dry.contains(&Swept {
        path: ssh.join(was),
        what: SweptKind::Restored(ssh.join("key")),
    }));
    // The real run restores the original first, so the key is in the way: so in the dry run.
    let mode = std::fs::metadata(ssh.join(was)).unwrap().mode() & 0o7777;
    let it = crate::archive::Item { mode, ..it };
    assert_eq!(
        p.check([&it]).iter().map(|c| c.what).collect::<Vec<_>>(),
        [ConflictKind::Exists]
    );
    let mut p = Placer::new(t.path(), opts()).unwrap();
    let done = p.sweep_stale(targets, false);
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(std::fs::read(ssh.join("key")).unwrap(), b"original");
    assert_eq!(std::fs::read(ssh.join("kept")).unwrap(), b"original too");
    let mut left: Vec<_> = std::fs::read_dir(&ssh)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["kept", "key"]);
}

/// Hashing an existing file (is it already in place?) reads again after `EINTR` and stops
/// on any other error.
#[test]
fn hashing_retries_an_interrupted_read() {
    use sha2::Digest;
    let mut interrupted = FailsOnce(Some(io::ErrorKind::Interrupted), b"abc");
    let (size, digest) = check::sha256_of(&mut interrupted).unwrap();
    assert_eq!(size, 3);
    assert_eq!(digest[..], sha2::Sha256::digest(b"abc")[..]);
    let mut broken = FailsOnce(Some(io::ErrorKind::Other), b"abc");
    assert!(check::sha256_of(&mut broken).is_err());
}

/// A reader that fails once with `kind`, then yields its bytes.
struct FailsOnce(Option<io::ErrorKind>, &'static [u8]);

impl Read for FailsOnce {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(kind) = self.0.take() {
            return Err(io::Error::new(kind, "once"));
        }
        let n = buf.len().min(self.1.len());
        buf[..n].copy_from_slice(&self.1[..n]);
        self.1 = &self.1[n..];
        Ok(n)
    }
}

/// A bundle reader interrupted by a signal (`EINTR`) is read again; any other read error
/// stops the file, and the run rolls back.
#[test]
fn an_interrupted_read_is_retried_and_another_read_error_is_not() {
    let t = tempfile::tempdir().unwrap();
    let mut p = Placer::new(t.path(), opts()).unwrap();
    let mut interrupted = FailsOnce(Some(io::ErrorKind::Interrupted), b"key");
    p.file("/a", 0o600, 0, 0, &mut interrupted).unwrap();
    p.commit().unwrap();
    assert_eq!(std::fs::read(t.path().join("a")).unwrap(), b"key");

    let mut p = Placer::new(t.path(), opts()).unwrap();
    let mut broken = FailsOnce(Some(io::ErrorKind::Other), b"key");
    let e = p.file("/b", 0o600, 0, 0, &mut broken).unwrap_err();
    assert!(e.to_string().contains("cannot read bundle data"), "{e}");
    drop(p);
    assert!(!t.path().join("b").exists());
}

#[test]
fn without_force_an_existing_file_is_never_replaced() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), "old").unwrap();
    let mut p = Placer::new(t.path(), opts()).unwrap();
    p.file("/g", 0o600, 0, 0, &mut &b"g"[..]).unwrap();
    p.file("/f", 0o600, 0, 0, &mut &b"new"[..]).unwrap();
    assert!(matches!(p.commit(), Err(Error::Refused { .. })));
    assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"old");
    assert!(!t.path().join("g").exists());
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
}

/// Every vault name (temporaries, displaced originals) under `dir`, at any depth.
pub(super) fn vault_names(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(vault_names(&e.path()));
        } else if e.file_name().to_string_lossy().contains(".vault-") {
            out.push(e.path());
        }
    }
    out
}

/// A directory renamed away and replaced by a link to somewhere else while vault writes
/// into it: the commit refuses (nothing lands outside, nothing at the link), and the
/// rollback removes the temporaries where they really are, in the renamed directory.
#[test]
fn a_directory_swapped_for_a_link_keeps_no_temporary_anywhere() {
    let t = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc/ssh")).unwrap();
    let mut p = Placer::new(t.path(), opts()).unwrap();
    p.file("/etc/ssh/key", 0o600, 0, 0, &mut &b"secret"[..])
        .unwrap();
    p.file("/etc/ssh/key.pub", 0o644, 0, 0, &mut &b"public"[..])
        .unwrap();
    std::fs::rename(t.path().join("etc/ssh"), t.path().join("etc/ssh.moved")).unwrap();
    symlink(outside.path(), t.path().join("etc/ssh")).unwrap();
    let e = p.commit().unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    drop(p);
    assert_eq!(vault_names(t.path()), Vec::<std::path::PathBuf>::new());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(t.path().join("etc/ssh.moved"))
            .unwrap()
            .count(),
        0
    );
}

/// The same with another real directory put in its place: refused too, nothing placed in
/// either.
#[test]
fn a_directory_swapped_for_another_directory_is_refused_at_the_commit() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc/ssh")).unwrap();
    let mut p = Placer::new(t.path(), opts()).unwrap();
    p.file("/etc/ssh/key", 0o600, 0, 0, &mut &b"secret"[..])
        .unwrap();
    std::fs::rename(t.path().join("etc/ssh"), t.path().join("etc/ssh.moved")).unwrap();
    std::fs::create_dir(t.path().join("etc/ssh")).unwrap();
    assert!(p.commit().is_err());
    drop(p);
    assert_eq!(vault_names(t.path()), Vec::<std::path::PathBuf>::new());
    assert_eq!(
        std::fs::read_dir(t.path().join("etc/ssh")).unwrap().count(),
        0
    );
}

/// A folder made append-only while vault writes into it (after the check that refuses such
/// folders up front): the commit fails, the rollback cannot remove the temporaries, and the
/// error says so, with their paths and exit code 9, instead of claiming a clean rollback.
#[test]
fn what_the_rollback_cannot_remove_is_named() {
    use crate::error::{ExitCode, Hint};
    if !rustix::process::geteuid().is_root()
        || std::process::Command::new("chattr")
            .arg("--help")
            .output()
            .is_err()
    {
        eprintln!("SKIP: needs root and chattr");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let ssh = t.path().join("etc/ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let mut p = Placer::new(t.path(), opts()).unwrap();
    p.file("/etc/ssh/key", 0o600, 0, 0, &mut &b"secret"[..])
        .unwrap();
    let chattr = |flag: &str| {
        let st = std::process::Command::new("chattr")
            .arg(flag)
            .arg(&ssh)
            .status()
            .unwrap();
        assert!(st.success());
    };
    chattr("+a");
    let e = p.commit().unwrap_err();
    chattr("-a");
    let left = vault_names(t.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(e.exit_code(), ExitCode::Incomplete, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&left[0].display().to_string()), "{msg}");
    assert!(!msg.contains("removed again"), "{msg}");
    assert!(e.hint().is_some_and(|h| h.contains("chattr")), "{e:?}");
}
