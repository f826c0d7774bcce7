//! What the `vault` process does to itself before anything else (docs/SECURITY.md).
//!
//! - **No core dumps.** vault holds passphrases, file keys and whole decrypted payloads in
//!   memory. A core (Ctrl-\ at a prompt, a crash; systemd-coredump keeps them on disk) would
//!   write all of it out in plaintext. `RLIMIT_CORE` goes to 0, soft and hard (a child cannot
//!   raise it back), and the process is marked not dumpable (`PR_SET_DUMPABLE` 0), which the
//!   kernel also honours for a `core_pattern` pipe, where the limit is not applied. Not
//!   dumpable also means another process of the same user cannot attach a debugger or read
//!   `/proc/PID/mem`; the process still reads its own `/proc/self` files, and a tracer that
//!   started vault (`strace vault …`) keeps tracing it.
//! - **No programs from the current folder.** An empty or relative entry of `PATH` (`::`, a
//!   trailing `:`, `.`) makes a program name resolve in the current folder: in a secrets
//!   repository, its own `age-plugin-*` would run with the admin's keys. Such entries are
//!   dropped from `PATH` for vault and everything it runs (a `PATH` left with none is
//!   removed, not left empty), as Go's `exec.LookPath` refuses results relative to the
//!   current folder.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What [`at_start`] could not do, for a warning.
#[derive(Debug, Default)]
pub struct Report {
    /// Why core dumps could not be turned off, if they could not.
    pub core_dumps: Option<String>,
}

/// Turns off core dumps and drops relative `PATH` entries. Call first in `main`, before any
/// thread starts (it changes the environment).
pub fn at_start() -> Report {
    let mut report = Report::default();
    let mut failed = Vec::new();
    let none = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Core, none) {
        failed.push(format!("RLIMIT_CORE: {e}"));
    }
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        failed.push(format!("PR_SET_DUMPABLE: {e}"));
    }
    if !failed.is_empty() {
        report.core_dumps = Some(failed.join(", "));
    }
    if let Some(path) = std::env::var_os("PATH") {
        // Single-threaded here: nothing reads the environment concurrently.
        match path_value(&path) {
            Some(kept) if kept == path => {}
            Some(kept) => std::env::set_var("PATH", kept),
            None => std::env::remove_var("PATH"),
        }
    }
    report
}

/// What `PATH` becomes: its absolute entries, or no `PATH` at all when none is left. An empty
/// `PATH` would not do: `execvp` and `which` read it as one empty entry, the current folder.
/// Without one, `execvp` looks in its default `/bin:/usr/bin` and vault's own lookups find
/// nothing.
fn path_value(path: &std::ffi::OsStr) -> Option<OsString> {
    let kept = absolute_entries(path);
    if kept.is_empty() {
        return None;
    }
    std::env::join_paths(&kept).ok()
}

/// The absolute entries of a `PATH` value, in order: empty and relative ones (which resolve
/// in the current folder) left out.
pub fn absolute_entries(path: &std::ffi::OsStr) -> Vec<PathBuf> {
    std::env::split_paths(path)
        .filter(|p| p.is_absolute())
        .collect()
}

/// `program` on the absolute entries of `PATH`: never a result relative to the current folder.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let dirs: OsString = std::env::join_paths(absolute_entries(&path)).ok()?;
    if dirs.is_empty() {
        return None;
    }
    which::which_in(program, Some(dirs), Path::new("/"))
        .ok()
        .filter(|p| p.is_absolute())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `PATH` becomes: only its absolute entries, or no `PATH` at all when none is left
    /// (an empty `PATH` is the current folder to `execvp` and `which`).
    #[test]
    fn a_path_of_only_relative_entries_is_removed() {
        for only_relative in ["", ":", ".", "::bin:.", "~/bin"] {
            assert_eq!(
                path_value(std::ffi::OsStr::new(only_relative)),
                None,
                "{only_relative:?}"
            );
        }
        assert_eq!(
            path_value(std::ffi::OsStr::new(".:/usr/bin::/bin:")),
            Some(OsString::from("/usr/bin:/bin"))
        );
    }

    #[test]
    fn empty_and_relative_path_entries_are_dropped() {
        let got = absolute_entries(std::ffi::OsStr::new(":/usr/bin::.:bin:/bin:~/x:"));
        assert_eq!(got, [PathBuf::from("/usr/bin"), PathBuf::from("/bin")]);
        assert!(absolute_entries(std::ffi::OsStr::new("")).is_empty());
    }
}
