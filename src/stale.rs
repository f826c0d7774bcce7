//! What a killed run leaves behind, and how a later run knows it is a dead writer's.
//!
//! A writer names what it leaves beside a target while it works:
//!
//! - `PREFIX.vault-PID-RUN-SEQ.tmp`: a file being written (a placed file's temporary, a
//!   bundle being packed), made visible by a rename once complete;
//! - `.vault-PID-RUN-SEQ.was.NAME`: the file `--force` displaced from `NAME`, kept until the
//!   whole placement is committed so that a failure can put it back; where that name would be
//!   longer than a name may be, `.vault-PID-RUN-SEQ.was-SHA256` (the SHA-256 of `NAME`, hex).
//!
//! RUN is a random number drawn once per process. While it may still need those names, the
//! writer holds an open-file-description lock on byte RUN of each directory it writes them
//! into ([`hold`]). The kernel drops that lock when the process ends, however it ends (SIGKILL
//! included), so a later run tells a dead writer's leftovers from a live one's by testing the
//! byte ([`writer_alive`]), not by whether a process with that PID runs: PIDs are reused.
//! Where a file system has no locks, the test falls back to the PID.
//!
//! Names of older vaults (`.vault-HEX.tmp`, `.vault-PID-HEX.tmp`) carry no RUN: their writer
//! cannot be asked, and a vault that writes them is not running beside this one; they count as
//! dead.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The longest name a directory entry may have (Linux's `NAME_MAX`).
const NAME_MAX: usize = 255;

/// This process's RUN: 62 random bits, a valid lock offset.
pub fn run_id() -> u64 {
    static RUN: OnceLock<u64> = OnceLock::new();
    *RUN.get_or_init(|| rand::random::<u64>() >> 2)
}

fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn stem() -> String {
    static PID: OnceLock<u32> = OnceLock::new();
    format!(
        ".vault-{}-{:016x}-{:x}",
        PID.get_or_init(std::process::id),
        run_id(),
        next_seq()
    )
}

/// A new temporary's name: `PREFIX.vault-PID-RUN-SEQ.tmp`.
pub fn temp_name(prefix: &str) -> String {
    format!("{prefix}{}.tmp", stem())
}

/// The name that keeps the file displaced from `name` until the commit is complete:
/// `.vault-PID-RUN-SEQ.was.NAME`, or `.vault-PID-RUN-SEQ.was-SHA256` when that would be longer
/// than a name may be. Either is a name a later run's sweep puts back, never removes.
pub fn displaced_name(name: &str) -> String {
    let stem = stem();
    let n = format!("{stem}.was.{name}");
    if n.len() <= NAME_MAX {
        n
    } else {
        format!("{stem}.was-{}", name_digest(name))
    }
}

/// The SHA-256 of a target's name, hex: how a long target is named in its displaced name.
pub fn name_digest(name: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(name.as_bytes()))
}

/// What a name of [`temp_name`] or [`displaced_name`]'s form is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// A temporary (contents being written; never anything but vault's).
    Temp,
    /// A displaced original that belongs at `target` in the same directory.
    Displaced { target: String },
    /// A displaced original that belongs at the name in the same directory whose
    /// [`name_digest`] is `digest` (a name too long to be spelled out).
    DisplacedLong { digest: String },
}

/// A parsed leftover name: its writer (PID and RUN, when the name carries them) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub pid: Option<u32>,
    pub run: Option<u64>,
    pub kind: Leftover,
}

/// Parses `name` as a leftover with `prefix` (`""` beside placed files, `.NAME` beside a
/// bundle).
pub fn parse(name: &str, prefix: &str) -> Option<Parsed> {
    let rest = name.strip_prefix(prefix)?.strip_prefix(".vault-")?;
    let hex = |s: &str| !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let (ids, kind) = if let Some(ids) = rest.strip_suffix(".tmp").filter(|i| !i.contains('.')) {
        (ids, Leftover::Temp)
    } else if let Some((ids, target)) = rest.split_once(".was.") {
        if ids.contains('.') || target.is_empty() || target.contains('/') {
            return None;
        }
        let kind = Leftover::Displaced {
            target: target.to_owned(),
        };
        (ids, kind)
    } else {
        let (ids, digest) = rest.split_once(".was-")?;
        let sha = digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ids.contains('.') || !sha {
            return None;
        }
        let kind = Leftover::DisplacedLong {
            digest: digest.to_owned(),
        };
        (ids, kind)
    };
    let parts: Vec<&str> = ids.split('-').collect();
    let (pid, run) = match parts.as_slice() {
        [r] if hex(r) && kind == Leftover::Temp => (None, None),
        [pid, r] if hex(r) && kind == Leftover::Temp => (Some(pid.parse().ok()?), None),
        [pid, run, seq] if hex(run) && hex(seq) => (
            Some(pid.parse().ok()?),
            Some(u64::from_str_radix(run, 16).ok()?),
        ),
        _ => return None,
    };
    Some(Parsed { pid, run, kind })
}

/// Marks `dir` as holding this process's leftovers, for as long as `dir` (this open file
/// description) stays open. A file system without locks returns an error; the names are
/// then judged by their PID.
pub fn hold(dir: impl AsFd) -> std::io::Result<()> {
    lock::read_lock(dir.as_fd(), run_id())
}

/// Whether the writer of `p`, found in `dir`, may still be running: this process, or one
/// holding its lock on `dir` (see [`hold`]).
pub fn writer_alive(dir: impl AsFd, p: &Parsed) -> bool {
    let Some(run) = p.run else {
        // An older vault's name: no lock to ask.
        return false;
    };
    if run == run_id() {
        return true;
    }
    match lock::held(dir.as_fd(), run) {
        Some(held) => held,
        None => p
            .pid
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists()),
    }
}

/// `name` in `dir` as a dead writer's leftover, or `None` (not vault's, or its writer lives).
pub fn dead_writers(dir: impl AsFd, name: &str, prefix: &str) -> Option<Leftover> {
    let p = parse(name, prefix)?;
    (!writer_alive(dir, &p)).then_some(p.kind)
}

/// A directory held open with this run's lock on it ([`hold`]), for writers that leave one
/// temporary beside what they edit (`vault.toml`, an image, a Secure Boot folder): while it
/// lives, a concurrent run sees their temporaries as a live writer's.
pub struct HeldDir(std::os::fd::OwnedFd);

impl HeldDir {
    pub fn open(dir: &std::path::Path) -> std::io::Result<HeldDir> {
        let fd = rustix::fs::open(
            dir,
            rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let _ = hold(&fd);
        Ok(HeldDir(fd))
    }

    /// The open directory.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// Whether `name` in this directory is a temporary with `prefix` whose writer is gone.
    pub fn is_dead_temp(&self, name: &str, prefix: &str) -> bool {
        dead_writers(&self.0, name, prefix) == Some(Leftover::Temp)
    }

    /// The regular files in `dir` (the folder this holds) that are temporaries with `prefix`
    /// of a writer that is gone: what a sweep removes.
    pub fn dead_temp_files(&self, dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| self.is_dead_temp(n, prefix))
                    && e.file_type().is_ok_and(|t| t.is_file())
            })
            .map(|e| e.path())
            .collect()
    }
}

/// Open-file-description locks (`F_OFD_SETLK`, Linux ≥ 3.15): owned by the open directory,
/// not by the process's other descriptors of it, and gone when it closes.
#[cfg(target_os = "linux")]
mod lock {
    use std::os::fd::{AsRawFd, BorrowedFd};

    // SAFETY (both blocks): see the comments at each; this is the one place that takes a
    // byte-range open-file-description lock, which rustix does not wrap.
    #[allow(unsafe_code)]
    fn fcntl(
        dir: BorrowedFd<'_>,
        cmd: libc::c_int,
        kind: libc::c_int,
        at: u64,
    ) -> std::io::Result<libc::flock> {
        // SAFETY: `flock` is plain data; all-zero is a valid value of it.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = kind as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = at as libc::off_t;
        fl.l_len = 1;
        // SAFETY: the descriptor is open for the duration of the call, and F_OFD_SETLK and
        // F_OFD_GETLK read and write only the `flock` passed by pointer.
        let r = unsafe { libc::fcntl(dir.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
        if r == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(fl)
        }
    }

    pub fn read_lock(dir: BorrowedFd<'_>, at: u64) -> std::io::Result<()> {
        fcntl(dir, libc::F_OFD_SETLK, libc::F_RDLCK, at).map(|_| ())
    }

    /// Whether another open file description holds a lock on byte `at`; `None` when locks
    /// cannot be asked about here.
    pub fn held(dir: BorrowedFd<'_>, at: u64) -> Option<bool> {
        fcntl(dir, libc::F_OFD_GETLK, libc::F_WRLCK, at)
            .ok()
            .map(|fl| fl.l_type != libc::F_UNLCK as libc::c_short)
    }
}

#[cfg(not(target_os = "linux"))]
mod lock {
    use std::os::fd::BorrowedFd;

    pub fn read_lock(_: BorrowedFd<'_>, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }

    pub fn held(_: BorrowedFd<'_>, _: u64) -> Option<bool> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        let t = temp_name("");
        let p = parse(&t, "").unwrap();
        assert_eq!(
            (p.pid, p.run, p.kind),
            (Some(std::process::id()), Some(run_id()), Leftover::Temp)
        );
        let t = temp_name(".b");
        assert!(parse(&t, ".b").is_some() && parse(&t, "").is_none());
        let d = displaced_name("ssh_host_ed25519_key.tmp");
        assert_eq!(
            parse(&d, "").unwrap().kind,
            Leftover::Displaced {
                target: "ssh_host_ed25519_key.tmp".into()
            }
        );
        let long = "x".repeat(230);
        let d = displaced_name(&long);
        assert!(d.len() <= NAME_MAX);
        assert_eq!(
            parse(&d, "").unwrap().kind,
            Leftover::DisplacedLong {
                digest: name_digest(&long)
            }
        );
        assert!(displaced_name(&"x".repeat(200)).ends_with(&"x".repeat(200)));
        assert_eq!(parse(".vault-0123456789abcdef.tmp", "").unwrap().pid, None);
        assert_eq!(parse(".vault-12-00ff.tmp", "").unwrap().run, None);
        for bad in [
            ".vault-99999999-00ff.tmp.x",
            "vault-0123.tmp",
            ".vault-.tmp",
            ".vault-12-zz.tmp",
            ".vault-12-00ff.was.x",
            ".vault-1-2-3.was.",
            ".vault-1-2-3.was.a/b",
            ".vault-1-2-3-4.tmp",
            ".vault-1-2-3.was-abc",
            ".vault-1-2-3.was-ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        ] {
            assert_eq!(parse(bad, ""), None, "{bad}");
        }
    }

    #[test]
    fn liveness_is_the_lock_not_the_pid() {
        let d = tempfile::tempdir().unwrap();
        let open = || std::fs::File::open(d.path()).unwrap();
        // Another run (RUN 7) with this process's PID, which certainly runs.
        let name = format!(".vault-{}-0000000000000007-0.tmp", std::process::id());
        let p = parse(&name, "").unwrap();
        #[cfg(target_os = "linux")]
        {
            assert!(
                !writer_alive(open(), &p),
                "no lock: dead, whatever runs as its PID"
            );
            let holder = open();
            lock::read_lock(holder.as_fd(), 7).unwrap();
            assert!(writer_alive(open(), &p), "its lock is held");
            // Another byte is another run.
            let q = parse(".vault-1-0000000000000008-0.tmp", "").unwrap();
            assert!(!writer_alive(open(), &q));
            drop(holder);
            assert!(!writer_alive(open(), &p), "closed: the lock went with it");
        }
        // This process's own run is alive without asking.
        assert!(writer_alive(open(), &parse(&temp_name(""), "").unwrap()));
        // Names of older vaults have no writer to ask.
        assert!(!writer_alive(
            open(),
            &parse(&format!(".vault-{}-00ff.tmp", std::process::id()), "").unwrap()
        ));
    }
}
