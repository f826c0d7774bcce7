//! What a later run finds of this one: the names an original `--force` displaced keeps, how a
//! sweep resolves them, and what a rollback leaves to other writers.

use super::tests::{item, opts};
use super::*;
use std::os::unix::fs::MetadataExt;

/// A file `--force` replaces whose name leaves no room for `.vault-…was.NAME` keeps its
/// original under a displaced name until the release, as every other: a name the sweep puts
/// back, never a temporary's, which the sweep removes.
#[test]
fn a_long_named_original_keeps_a_displaced_name_until_the_release() {
    let t = tempfile::tempdir().unwrap();
    let long = "k".repeat(250);
    std::fs::write(t.path().join(&long), "original").unwrap();
    let force = PlaceOptions {
        force: true,
        ..opts()
    };
    let mut p = Placer::new(t.path(), force).unwrap();
    p.file(&format!("/{long}"), 0o600, 0, 0, &mut &b"new"[..])
        .unwrap();
    p.commit().unwrap();
    let others: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| *n != long)
        .collect();
    assert_eq!(others.len(), 1, "{others:?}");
    assert_eq!(
        std::fs::read(t.path().join(&others[0])).unwrap(),
        b"original"
    );
    let kind = crate::stale::parse(&others[0], "").map(|p| p.kind);
    assert!(
        kind.is_some() && kind != Some(crate::stale::Leftover::Temp),
        "the original is kept as {kind:?}: {}",
        others[0]
    );
    p.release();
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
}

/// A dead run's displaced original of a long-named target (`.vault-…was-SHA256`) is put back
/// at the target of this placement whose name it names; one naming no target of this
/// placement is kept as it is.
#[test]
fn a_long_displaced_name_is_put_back_at_the_target_it_names() {
    let t = tempfile::tempdir().unwrap();
    let long = "k".repeat(250);
    std::fs::write(t.path().join(&long), "placed by the dead run").unwrap();
    let mode = std::fs::metadata(t.path().join(&long)).unwrap().mode() & 0o7777;
    let was = format!(
        ".vault-1-0000000000000005-0.was-{}",
        crate::stale::name_digest(&long)
    );
    std::fs::write(t.path().join(&was), "original").unwrap();
    let other = format!(
        ".vault-1-0000000000000005-1.was-{}",
        crate::stale::name_digest("not placed")
    );
    std::fs::write(t.path().join(&other), "kept").unwrap();
    let it = item(&format!("/{long}"), b"placed by the dead run", mode);
    let mut p = Placer::new(t.path(), opts()).unwrap();
    let done = p.sweep_stale([&it], false);
    assert_eq!(
        done,
        [Swept {
            path: t.path().join(&was),
            what: SweptKind::Restored(t.path().join(&long)),
        }]
    );
    assert_eq!(std::fs::read(t.path().join(&long)).unwrap(), b"original");
    assert_eq!(std::fs::read(t.path().join(&other)).unwrap(), b"kept");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2);
}

/// A folder this run created that another writer put a file into meanwhile is not vault's to
/// remove: the rollback removes what this run wrote in it and leaves the folder, without
/// naming it as left over (exit 9 would tell the user to remove it, and the other's file
/// with it, by hand).
#[test]
fn a_created_folder_holding_another_writers_file_is_not_left_over() {
    let t = tempfile::tempdir().unwrap();
    let mut p = Placer::new(t.path(), opts()).unwrap();
    p.file("/d/f", 0o600, 0, 0, &mut &b"secret"[..]).unwrap();
    // Until the commit the folder has a temporary name: the only entry of the root.
    let hidden = std::fs::read_dir(t.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::write(hidden.path().join("theirs"), "another writer's").unwrap();
    let left = p.rollback();
    assert_eq!(left, Vec::<std::path::PathBuf>::new());
    let names: Vec<_> = std::fs::read_dir(t.path().join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["theirs"]);
}

/// A folder this run creates stays under a temporary name until the commit, which renames it
/// once (the files in it already have their own names); a dead run's such folder, found in
/// the deepest folder on the way to a target that exists, is swept with what it holds.
#[test]
fn a_created_folder_is_revealed_by_the_commit_and_a_dead_runs_is_swept() {
    let t = tempfile::tempdir().unwrap();
    let mut p = Placer::new(t.path(), opts()).unwrap();
    p.file("/new/a/f", 0o600, 0, 0, &mut &b"secret"[..])
        .unwrap();
    assert!(!t.path().join("new").exists(), "visible before the commit");
    p.commit().unwrap();
    assert_eq!(std::fs::read(t.path().join("new/a/f")).unwrap(), b"secret");
    let names: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["new"]);
    drop(p);

    // What a run killed before its commit leaves: no process holds run 5's lock.
    let dead = t.path().join(".vault-1-0000000000000005-9.tmp");
    std::fs::create_dir_all(dead.join("b")).unwrap();
    std::fs::write(dead.join("b/g"), "secret").unwrap();
    let mut p = Placer::new(t.path(), opts()).unwrap();
    let swept = p.sweep_stale([&item("/other/b/g", b"secret", 0o600)], false);
    assert_eq!(
        swept,
        [Swept {
            path: dead.clone(),
            what: SweptKind::Removed
        }]
    );
    assert!(!dead.exists());
}
