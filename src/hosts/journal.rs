//! The undo record of a `vault host add` or `vault host remove` while it writes: which files
//! and folders it creates (the key pair, `hosts/NAME/`), the original text of each file it
//! edits (`vault.toml`, `.sops.yaml`, the agenix keys file), and the files it deletes as its
//! commit (`host remove --delete-keys`).
//!
//! It is written (and made durable) beside `vault.toml` before the first change, as a
//! lock-marked temporary ([`crate::stale`]), and removed as the commit. So:
//!
//! - an error or a caught signal before the commit undoes every change from it;
//! - after SIGKILL or power loss, the next `host add` finds a dead writer's record, undoes
//!   what it lists and removes it, before reading `vault.toml`;
//! - no record, no undo: the host was added (or removed) in full;
//! - a record whose files to delete are partly gone was left in its commit: the next run
//!   deletes the rest and keeps the edits instead.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub(super) use super::undo::{folder, path, Undo};
use super::{record_trust, Error};

/// The record's name: `.vault-host-add.vault-PID-RUN-SEQ.tmp`.
const PREFIX: &str = ".vault-host-add";

/// What [`Undo::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every change undone.
    Undone,
    /// A `host remove` of this host killed in its commit step: finished instead.
    Finished(String),
}

/// `p` as the running command keeps it: absolute (it may change folder), as bytes. The record
/// on disk keeps it relative to `vault.toml`'s folder ([`record_trust::for_record`]).
pub(super) fn bytes(p: &Path) -> Vec<u8> {
    let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    p.as_os_str().as_bytes().to_vec()
}

/// The folders of `dir` (itself included) that do not exist yet, outermost first, as
/// [`Undo::dirs`] keeps them.
pub(super) fn missing_dirs(dir: &Path) -> Vec<Vec<u8>> {
    let mut dirs = Vec::new();
    let mut d = dir;
    while !d.as_os_str().is_empty() && !d.exists() {
        dirs.insert(0, bytes(d));
        d = d.parent().unwrap_or(Path::new(""));
    }
    dirs
}

impl Undo {
    /// Whether the run was in its commit step: one of the files it deletes is gone.
    fn committing(&self) -> bool {
        self.delete
            .iter()
            .any(|p| std::fs::symlink_metadata(path(p)).is_err())
    }

    /// Deletes the files the commit step deletes; the paths it could not delete.
    fn finish(&self) -> Vec<PathBuf> {
        let mut failed = Vec::new();
        for f in &self.delete {
            let f = path(f);
            if let Err(e) = std::fs::remove_file(&f) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    failed.push(f);
                }
            }
        }
        failed
    }

    /// Undoes what the record lists, or finishes a run killed in its commit step; the paths
    /// it could not put back (or delete).
    fn apply(&self) -> (Outcome, Vec<PathBuf>) {
        if self.committing() {
            let host = self.removes.clone().unwrap_or_default();
            return (Outcome::Finished(host), self.finish());
        }
        (Outcome::Undone, self.undo())
    }

    fn undo(&self) -> Vec<PathBuf> {
        let mut failed = Vec::new();
        for (p, text) in &self.restore {
            let p = path(p);
            let now = std::fs::read_to_string(&p).ok();
            let back = match now.as_deref() == Some(text.as_str()) {
                // Never replaced (or already put back): only its edit temporaries go.
                true => super::sweep_edits_beside(&p),
                false => super::replace(&p, text),
            };
            if back.is_err() {
                failed.push(p);
            }
        }
        for f in &self.created {
            let f = path(f);
            if let Err(e) = std::fs::remove_file(&f) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    failed.push(f);
                }
            }
        }
        for d in self.dirs.iter().rev() {
            // Left alone when not empty: then it holds files this run did not make.
            let _ = std::fs::remove_dir(path(d));
        }
        failed
    }
}

/// Undoes (or finishes, see [`Outcome`]) the host adds and removes a killed run left
/// unfinished beside `manifest`; returns the records found (an unreadable record was written
/// before any change: it is only removed). Every record is checked first
/// ([`record_trust`]): one that is not trusted stops the command before anything changes.
/// `extra`: the `.sops.yaml` and keys file the command line names.
pub(super) fn sweep(manifest: &Path, extra: &[&Path]) -> Result<Vec<(PathBuf, Outcome)>, Error> {
    let dir = folder(manifest);
    // A folder that cannot be read holds no record; loading vault.toml then says why.
    let (Ok(held), Ok(entries)) = (crate::stale::HeldDir::open(dir), std::fs::read_dir(dir)) else {
        return Ok(Vec::new());
    };
    let scope = record_trust::Scope::new(manifest, extra);
    let mut records = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !held.is_dead_temp(name, PREFIX) || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let p = e.path();
        let refuse = |why: String| Error::Record {
            record: p.clone(),
            why,
        };
        let meta = std::fs::symlink_metadata(&p).map_err(|e| Error::io("cannot stat", &p, e))?;
        record_trust::check_file(&meta).map_err(refuse)?;
        let undo = match std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Undo>(&b).ok())
        {
            Some(u) => Some(scope.resolve(held.as_fd(), &u).map_err(refuse)?),
            None => None,
        };
        records.push((p, undo));
    }
    let mut undone = Vec::new();
    for (p, undo) in records {
        let (outcome, failed) = undo
            .map(|u| u.apply())
            .unwrap_or((Outcome::Undone, Vec::new()));
        if let Some(f) = failed.first() {
            return Err(Error::io(
                "cannot undo an interrupted `vault host add` or `vault host remove` at",
                f,
                std::io::Error::other(format!("its record {} stays", p.display())),
            ));
        }
        std::fs::remove_file(&p).map_err(|e| Error::io("cannot remove", &p, e))?;
        undone.push((p, outcome));
    }
    Ok(undone)
}

/// A host add in progress: its record on disk, signals only recorded (the writer polls
/// [`Journal::check`]). Dropped without [`Journal::commit`], it undoes every change.
pub(super) struct Journal {
    path: PathBuf,
    undo: Undo,
    done: bool,
    _held: crate::stale::HeldDir,
    _polled: crate::interrupt::Polled,
}

impl Journal {
    /// Writes the record of `undo` beside `manifest`, durable before anything changes.
    pub(super) fn begin(manifest: &Path, undo: Undo) -> Result<Journal, Error> {
        let polled = crate::interrupt::Polled::enter();
        let dir = folder(manifest);
        let held =
            crate::stale::HeldDir::open(dir).map_err(|e| Error::io("cannot open", dir, e))?;
        let path = dir.join(crate::stale::temp_name(PREFIX));
        let rel = |l: &[Vec<u8>]| l.iter().map(|p| record_trust::for_record(dir, p)).collect();
        let on_disk = Undo {
            created: rel(&undo.created),
            dirs: rel(&undo.dirs),
            restore: (undo.restore.iter())
                .map(|(p, t)| (record_trust::for_record(dir, p), t.clone()))
                .collect(),
            delete: rel(&undo.delete),
            removes: undo.removes.clone(),
            folder: record_trust::folder_id(held.as_fd()),
        };
        let json =
            serde_json::to_vec(&on_disk).map_err(|e| Error::io("cannot write", &path, e.into()))?;
        let res = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&json).and_then(|()| f.sync_all()));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&path);
            return Err(Error::io("cannot write", &path, e));
        }
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        let j = Journal {
            path,
            undo,
            done: false,
            _held: held,
            _polled: polled,
        };
        j.check()?;
        Ok(j)
    }

    /// [`Error::Interrupted`] once a signal arrived.
    pub(super) fn check(&self) -> Result<(), Error> {
        match crate::interrupt::received() {
            Some(signal) => Err(Error::Interrupted { signal }),
            None => Ok(()),
        }
    }

    /// Removes the record: the host is added for good, and a signal from now on no longer
    /// changes the outcome ([`crate::interrupt::commit`]).
    pub(super) fn commit(self) -> Result<(), Error> {
        self.commit_with(|| Ok(()))
    }

    /// [`Journal::commit`], with `last` (deleting the record's files to delete) as the first
    /// part of the commit step: a signal waits for the record to go.
    pub(super) fn commit_with(
        mut self,
        last: impl FnOnce() -> Result<(), Error>,
    ) -> Result<(), Error> {
        crate::interrupt::commit(|| {
            self.check()?;
            last()?;
            std::fs::remove_file(&self.path).map_err(|e| Error::io("cannot remove", &self.path, e))
        })?;
        self.done = true;
        if let Ok(d) = std::fs::File::open(folder(&self.path)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // What cannot be put back now stays listed for the next run.
        if self.undo.apply().1.is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "hosts/web1/ssh_host_ed25519_key";
    const B: &str = "hosts/web1/ssh_host_ed25519_key.pub";

    /// A dead `host remove --delete-keys` run's record (as an older vault wrote it: absolute
    /// paths, no folder) beside an edited `vault.toml`, with key files `a` and `b` (`b`
    /// already deleted when `b_gone`).
    fn killed_remove(d: &Path, b_gone: bool) -> PathBuf {
        std::fs::write(d.join("vault.toml"), "version = 1\n").unwrap();
        std::fs::create_dir_all(d.join("hosts/web1")).unwrap();
        std::fs::write(d.join(A), "key").unwrap();
        if !b_gone {
            std::fs::write(d.join(B), "key.pub").unwrap();
        }
        let undo = Undo {
            restore: vec![(
                bytes(&d.join("vault.toml")),
                "version = 1\n[hosts.web1]\n".into(),
            )],
            delete: vec![bytes(&d.join(A)), bytes(&d.join(B))],
            removes: Some("web1".into()),
            ..Undo::default()
        };
        // RUN 7 with no lock held on it: a dead writer.
        let record = d.join(format!("{PREFIX}.vault-1-0000000000000007-0.tmp"));
        std::fs::write(&record, serde_json::to_vec(&undo).unwrap()).unwrap();
        record
    }

    #[test]
    fn a_remove_killed_while_deleting_keys_is_finished_not_undone() {
        let d = tempfile::tempdir().unwrap();
        let record = killed_remove(d.path(), true);
        let swept = sweep(&d.path().join("vault.toml"), &[]).unwrap();
        assert_eq!(swept, [(record.clone(), Outcome::Finished("web1".into()))]);
        assert!(!d.path().join(A).exists() && !record.exists());
        assert_eq!(
            std::fs::read_to_string(d.path().join("vault.toml")).unwrap(),
            "version = 1\n"
        );
    }

    #[test]
    fn a_remove_killed_before_deleting_keys_is_undone() {
        let d = tempfile::tempdir().unwrap();
        let record = killed_remove(d.path(), false);
        let swept = sweep(&d.path().join("vault.toml"), &[]).unwrap();
        assert_eq!(swept, [(record.clone(), Outcome::Undone)]);
        assert!(d.path().join(A).exists() && d.path().join(B).exists());
        assert!(!record.exists());
        assert_eq!(
            std::fs::read_to_string(d.path().join("vault.toml")).unwrap(),
            "version = 1\n[hosts.web1]\n"
        );
    }
}
