use super::*;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

fn opts() -> PlaceOptions {
    PlaceOptions {
        force: false,
        backup: true,
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
    // Nothing visible before commit.
    assert!(!t.path().join("root/.ssh/id").exists());
    p.commit().unwrap();
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
    let c = p.check(
        ["/etc/d"],
        ["/etc/ssh/key", "/existing", "/adir", "/new/file"],
    );
    let kinds: Vec<_> = c.iter().map(|c| c.what).collect();
    assert_eq!(
        kinds,
        vec![
            ConflictKind::NotADirectory,
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
fn force_keeps_a_backup_and_rollback_restores_it() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), "old").unwrap();
    let mut p = Placer::new(
        t.path(),
        PlaceOptions {
            force: true,
            ..opts()
        },
    )
    .unwrap();
    p.file("/f", 0o600, 0, 0, &mut &b"new"[..]).unwrap();
    p.commit().unwrap();
    assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"new");
    assert_eq!(
        std::fs::read(t.path().join("f.vault-backup")).unwrap(),
        b"old"
    );
    p.rollback();
    assert_eq!(std::fs::read(t.path().join("f")).unwrap(), b"old");
    assert!(!t.path().join("f.vault-backup").exists());
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
