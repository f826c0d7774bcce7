//! After the renames of a commit: whether every placed file is where its path leads.
//!
//! The commit checks each folder before renaming into it, through a fresh no-follow walk
//! from the root, but the renames go through descriptors: a folder moved away (and a link or
//! another folder put in its place) between that check and a rename receives the file where
//! the path no longer leads. That race cannot be closed; it is detected here, by one walk per
//! folder files were placed in (each file went into its folder through that folder's
//! descriptor, so the folder decides where it is), and the run then fails and rolls back
//! instead of reporting files placed that are not there. One walk per folder, not a system
//! call per file.

use std::collections::HashMap;

use super::{file_id, Dir, Placer};
use crate::{Error, Result};

impl Placer {
    /// Whether the path of `dir` still leads, without following a link, to `dir` itself.
    pub(super) fn leads_to(&self, dir: &Dir) -> bool {
        dir.path.is_empty()
            || self
                .parent_no_create(&format!("{}/x", dir.path))
                .and_then(|(fd, _)| rustix::fs::fstat(&fd))
                .is_ok_and(|st| file_id(&st) == dir.id)
    }

    /// Fails (to be rolled back) naming every committed file whose folder its path, walked
    /// from the root without following links, no longer leads to.
    pub(super) fn verify_placed(&self) -> Result<()> {
        let mut dirs: HashMap<&str, bool> = HashMap::new();
        let mut astray = Vec::new();
        for c in &self.committed {
            let here = *dirs
                .entry(c.dir.path.as_str())
                .or_insert_with(|| self.leads_to(&c.dir));
            if !here {
                astray.push(self.display_path(&c.target));
            }
        }
        let Some(first) = astray.first() else {
            return Ok(());
        };
        let list: String = astray
            .iter()
            .map(|p| format!("\n  {}", crate::escape::escape_path(p)))
            .collect();
        Err(Error::RolledBack {
            path: first.clone(),
            source: std::io::Error::other(format!(
                "a folder on the way was moved, removed or replaced (by a link?) while vault renamed files into place, so these paths no longer lead to the files vault wrote:{list}\n(check what else is changing the target tree)"
            )),
        })
    }
}

#[cfg(test)]
thread_local! {
    /// Run (once) just before the commit's first rename: a test's stand-in for another
    /// process changing the target tree at that moment.
    pub(super) static BEFORE_RENAME: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
        std::cell::RefCell::new(None);
}

#[cfg(test)]
pub(super) fn before_rename() {
    if let Some(f) = BEFORE_RENAME.with(|h| h.borrow_mut().take()) {
        f();
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{opts, vault_names};
    use super::*;
    use crate::error::{ExitCode, Hint};

    /// `etc` moved away and replaced by a link to a folder outside the root between the
    /// commit's check of the folder and its rename into it (the file then lands in the moved
    /// folder): the commit fails with exit 7 naming the path, nothing is written through the
    /// link, and the file is removed from where it really went. Both ways a file reaches its
    /// folder: renamed into an existing one, or in a folder vault created and renames.
    #[test]
    fn a_folder_swapped_for_a_link_after_the_check_fails_the_commit() {
        for existing in [true, false] {
            let t = tempfile::tempdir().unwrap();
            let root = t.path().join("root");
            let outside = t.path().join("outside");
            std::fs::create_dir_all(root.join("etc")).unwrap();
            std::fs::create_dir_all(&outside).unwrap();
            if existing {
                std::fs::create_dir(root.join("etc/ssh")).unwrap();
            }
            let mut p = Placer::new(&root, opts()).unwrap();
            p.file("/etc/ssh/key", 0o600, 0, 0, &mut &b"secret"[..])
                .unwrap();
            let (r, o) = (root.clone(), outside.clone());
            BEFORE_RENAME.with(|h| {
                *h.borrow_mut() = Some(Box::new(move || {
                    std::fs::rename(r.join("etc"), r.join("etc.moved")).unwrap();
                    std::os::unix::fs::symlink(&o, r.join("etc")).unwrap();
                }))
            });
            let e = p
                .commit()
                .expect_err("a file placed where its path does not lead");
            let msg = e.to_string();
            assert_eq!(e.exit_code(), ExitCode::RolledBack, "{msg}");
            assert!(
                msg.contains(&root.join("etc/ssh/key").display().to_string()),
                "{msg}"
            );
            assert_eq!(p.placed().count(), 0, "existing {existing}");
            drop(p);
            assert_eq!(
                std::fs::read_dir(&outside).unwrap().count(),
                0,
                "existing {existing}: written through the link"
            );
            assert!(
                !root.join("etc.moved/ssh/key").exists(),
                "existing {existing}: the file is left where the path does not lead"
            );
            assert_eq!(vault_names(t.path()), Vec::<std::path::PathBuf>::new());
        }
    }

    /// The control: nothing changed during the commit, nothing reported.
    #[test]
    fn an_unchanged_tree_verifies() {
        let t = tempfile::tempdir().unwrap();
        let mut p = Placer::new(t.path(), opts()).unwrap();
        p.file("/etc/ssh/key", 0o600, 0, 0, &mut &b"secret"[..])
            .unwrap();
        p.file("/top", 0o600, 0, 0, &mut &b"x"[..]).unwrap();
        p.commit().unwrap();
        assert!(p.verify_placed().is_ok());
        // A folder replaced by another after the commit: its file is named, the other not.
        std::fs::rename(t.path().join("etc/ssh"), t.path().join("etc/ssh.old")).unwrap();
        std::fs::create_dir(t.path().join("etc/ssh")).unwrap();
        let e = p.verify_placed().unwrap_err().to_string();
        let named = |p: &str| e.contains(&t.path().join(p).display().to_string());
        assert!(named("etc/ssh/key") && !named("top"), "{e}");
    }
}
