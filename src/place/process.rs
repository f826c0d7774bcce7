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
    let mut folders = std::collections::HashSet::new();
    for (stage, item) in items {
        let own = match item.kind {
            crate::archive::Kind::Dir => item.target.as_str(),
            crate::archive::Kind::File => super::split(&item.target).0,
        };
        let mut at = 0;
        while let Some(i) = own[at + 1..].find('/').map(|i| i + at + 1) {
            folders.insert((stage, &own[..i]));
            at = i;
        }
        if !own.trim_matches('/').is_empty() {
            folders.insert((stage, own));
        }
    }
    raise_open_files_limit();
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let need = folders.len() as u64 + OTHER_OPEN_FILES;
    if need <= limit {
        return Ok(());
    }
    Err(crate::Error::Refused {
        why: format!(
            "nothing was written: this bundle places files in {} folders and vault keeps each one open until the commit (so that none can be swapped under it), but this process may open only {limit} files",
            folders.len()
        ),
        hint: Some(format!(
            "raise the limit of open files to at least {need} (in this shell: `ulimit -n {need}`; the hard limit, `ulimit -Hn`, is raised only by root or the service's LimitNOFILE=), then run the same command again"
        )),
    })
}
