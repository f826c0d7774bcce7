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
