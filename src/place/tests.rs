use super::*;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

fn opts() -> PlaceOptions {
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

fn item(target: &str, data: &[u8], mode: u32) -> crate::archive::Item {
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

/// `sweep_stale` finds the regular temporaries of writers no longer running beside the
/// targets, lists them without touching them in a dry run, removes them otherwise, and leaves
/// a live writer's temporary, links and directories with the pattern, and other files alone.
#[test]
fn sweep_stale_takes_only_dead_writers_files_and_nothing_in_a_dry_run() {
    let t = tempfile::tempdir().unwrap();
    let ssh = t.path().join("etc/ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    // pid_max is at most 2^22: these pids cannot be running.
    let stale = ".vault-99999999-00ff.tmp";
    let live = crate::interrupt::temp_name("");
    for name in [stale, live.as_str(), "other"] {
        std::fs::write(ssh.join(name), "x").unwrap();
    }
    symlink(ssh.join("other"), ssh.join(".vault-99999998-0a.tmp")).unwrap();
    std::fs::create_dir(ssh.join(".vault-99999997-0b.tmp")).unwrap();
    let names = || {
        let mut v: Vec<_> = std::fs::read_dir(&ssh)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let before = names();
    let p = Placer::new(t.path(), opts()).unwrap();
    let targets = ["/etc/ssh/host_key", "/etc/ssh/host_key.pub"];
    assert_eq!(p.sweep_stale(targets, true), [ssh.join(stale)]);
    assert_eq!(names(), before, "a dry run removes nothing");
    assert_eq!(p.sweep_stale(targets, false), [ssh.join(stale)]);
    let after: Vec<_> = before.into_iter().filter(|n| n != stale).collect();
    assert_eq!(names(), after);
    assert!(p.sweep_stale(targets, false).is_empty());
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
