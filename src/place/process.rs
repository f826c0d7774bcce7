//! What the placing process is: its umask, who owns what it creates, how many files it may
//! keep open.

use rustix::fs::Mode;

/// This process's umask (read once: reading it means setting it).
pub(super) fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let old = rustix::process::umask(Mode::from_raw_mode(0o077));
        rustix::process::umask(old);
        old.bits() as u32
    })
}

/// Who owns what this process creates (in a folder without set-group-ID). Asked once: vault
/// never changes its effective IDs, and a placement asks for every file.
pub(super) fn creator() -> (u32, u32) {
    static CREATOR: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *CREATOR.get_or_init(|| {
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    })
}

/// Raises this process's limit of open files to what it may: a placement keeps every
/// directory it writes into open until its commit.
pub(super) fn raise_open_files_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let lim = getrlimit(Resource::Nofile);
        if lim.current < lim.maximum || (lim.current.is_some() && lim.maximum.is_none()) {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: lim.maximum,
                    maximum: lim.maximum,
                },
            );
        }
    });
}

/// How many files this process may have open (its soft limit).
pub(super) fn open_files_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// Descriptors a placement holds besides its folders: the standard streams, the bundle,
/// each root and its flusher, and the files waiting in the writer's queue.
const OTHER_OPEN_FILES: u64 = 64;

/// Refuses, before anything is written (a dry run alike), a placement of `items` that would
/// run out of open files: it keeps every folder it writes into open until its commit, so that
/// no folder can be swapped under it, and `Too many open files` half way would only roll
/// everything back. Each item is `(stage, item)`: the stages have roots of their own.
pub fn check_open_files<'a>(
    items: impl IntoIterator<Item = (crate::manifest::Stage, &'a crate::archive::Item)>,
) -> crate::Result<()> {
    let folders = folders_held(items);
    raise_open_files_limit();
    let limit = open_files_limit();
    let need = folders as u64 + OTHER_OPEN_FILES;
    if need <= limit {
        return Ok(());
    }
    Err(crate::Error::Refused {
        why: format!(
            "nothing was written: this bundle places files in {folders} folders and vault keeps each one open until the commit (so that none can be swapped under it), but this process may open only {limit} files"
        ),
        hint: Some(format!(
            "raise the limit of open files to at least {need} (in this shell: `ulimit -n {need}`; the hard limit, `ulimit -Hn`, is raised only by root or the service's LimitNOFILE=), then run the same command again"
        )),
    })
}

/// How many folders placing `items` keeps open: every folder on the way to each target (the
/// target itself for a directory), per stage.
fn folders_held<'a>(
    items: impl IntoIterator<Item = (crate::manifest::Stage, &'a crate::archive::Item)>,
) -> usize {
    let mut folders = std::collections::HashSet::new();
    for (stage, item) in items {
        let own = match item.kind {
            crate::archive::Kind::Dir => item.target.as_str(),
            crate::archive::Kind::File => super::split(&item.target).0,
        };
        for (i, _) in own.match_indices('/').skip(1) {
            folders.insert((stage, &own[..i]));
        }
        if !own.trim_matches('/').is_empty() {
            folders.insert((stage, own));
        }
    }
    folders.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{Item, Kind};
    use crate::manifest::Stage;

    fn item(target: &str, kind: Kind) -> Item {
        Item {
            host: None,
            stage: Stage::Root,
            kind,
            target: target.into(),
            mode: 0o600,
            uid: 0,
            gid: 0,
            size: 0,
            sha256: None,
        }
    }

    #[test]
    fn every_folder_on_the_way_counts_once_per_stage() {
        let items = [
            item("/top", Kind::File),
            item("/a/b/f", Kind::File),
            item("/a/b/g", Kind::File),
            item("/a/b", Kind::Dir),
            item("/a/c", Kind::Dir),
        ];
        let root = items.iter().map(|i| (Stage::Root, i));
        assert_eq!(folders_held(root), 3); // /a, /a/b, /a/c
        let both = items
            .iter()
            .map(|i| (Stage::Root, i))
            .chain(items.iter().map(|i| (Stage::Disk, i)));
        assert_eq!(folders_held(both), 6);
        assert_eq!(folders_held([(Stage::Root, &item("/f", Kind::File))]), 0);
    }
}
