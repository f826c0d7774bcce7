//! The library's error type. Every variant names the file or entry it is about, and
//! [`Hint::hint`] says what to do next; the binary prints the error, then the hint.
//!
//! This is a foundation: it imports nothing of vault's. The layers above (keys, the secrets
//! repository, media, hosts, the configuration check, Secure Boot) have errors of their own
//! vocabulary; each marks its error as a [`Layer`] error, and [`Error`] carries it whole
//! ([`Error::Layer`]) with its own message, hint and exit code, so that this file never names
//! a layer above it. Every layer reports a failed read or write as the one [`IoError`].

use std::path::PathBuf;

/// Process exit codes, documented in `docs/CLI.md`. Scripts (installer hooks) rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    Ok = 0,
    /// Anything not listed below (I/O on the workstation, an external tool missing, ...).
    Failure = 1,
    /// Bad command line (clap's own code).
    Usage = 2,
    /// The passphrase was wrong (after all tries on a TTY).
    WrongPassphrase = 3,
    /// The bundle is truncated, tampered with, not a vault bundle, or has hostile contents.
    BadBundle = 4,
    /// `vault.toml` (or another input the user wrote) is invalid.
    BadManifest = 5,
    /// Placement refused before anything was written: existing files, links in the target
    /// tree, `--root` not a mount point.
    Refused = 6,
    /// Placement failed part way and was rolled back.
    RolledBack = 7,
    /// `vault rekey --check`: the secrets repo is stale.
    Stale = 8,
    /// Placement failed and could not be undone completely: the paths named are left.
    Incomplete = 9,
}

impl ExitCode {
    /// A stable name for the code, as `--json` error objects report it (`kind`).
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Ok => "ok",
            ExitCode::Failure => "failure",
            ExitCode::Usage => "usage",
            ExitCode::WrongPassphrase => "wrong_passphrase",
            ExitCode::BadBundle => "bad_bundle",
            ExitCode::BadManifest => "bad_manifest",
            ExitCode::Refused => "refused",
            ExitCode::RolledBack => "rolled_back",
            ExitCode::Stale => "stale",
            ExitCode::Incomplete => "incomplete",
        }
    }
}

/// What an error can say beyond its message.
pub trait Hint {
    /// The next thing the user should do, if there is something specific.
    fn hint(&self) -> Option<String>;
    /// The exit code the binary uses for this error.
    fn exit_code(&self) -> ExitCode {
        ExitCode::Failure
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reading or writing a named file failed: the one I/O error of every layer.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct IoError {
    /// What was being done, as a phrase that the path completes ("cannot read").
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError {
            action,
            path: path.into(),
            source,
        }
    }

    /// The hint for a refused permission, the same in every layer.
    pub fn permission_hint(&self) -> Option<String> {
        if self.source.kind() != std::io::ErrorKind::PermissionDenied {
            return None;
        }
        if rustix::process::geteuid().is_root() {
            Some("check the file's permissions, or run as the user that owns it".into())
        } else {
            // On the installer the console user (`nixos`) is not root.
            Some("check the file's permissions, or run as the user that owns it; on the installer, `vault unlock`, `place` and `wipe` need root: run them with sudo".into())
        }
    }
}

/// `fn io(action, path, source) -> Self` for an error enum with an `Io(IoError)` variant: the
/// constructor every layer's `map_err` calls.
macro_rules! io_constructor {
    ($vis:vis) => {
        /// A failed read or write of `path` (`action`: "cannot read", ...).
        $vis fn io(
            action: &'static str,
            path: impl Into<std::path::PathBuf>,
            source: std::io::Error,
        ) -> Self {
            Self::Io($crate::error::IoError::new(action, path, source))
        }
    };
}
pub(crate) use io_constructor;

/// The error of a layer above this file, carried whole by [`Error::Layer`]. A layer marks its
/// error with an empty `impl Layer for Error {}`; `?` then converts it.
pub trait Layer: std::error::Error + Hint + Send + Sync + 'static {}

impl<E: Layer> From<E> for Error {
    fn from(e: E) -> Self {
        Error::Layer(LayerError(Box::new(e)))
    }
}

/// A layer's error inside [`Error`]: its message, source, hint and exit code are its own.
#[derive(Debug)]
pub struct LayerError(Box<dyn Layer>);

impl LayerError {
    /// The layer's error, if it is an `E`.
    pub fn downcast_ref<E: Layer>(&self) -> Option<&E> {
        let inner: &(dyn std::error::Error + 'static) = &*self.0;
        inner.downcast_ref::<E>()
    }
}

impl std::fmt::Display for LayerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for LayerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The `action` of a manifest that cannot be read: its hint says how to write one.
pub(crate) const MANIFEST_READ: &str = "cannot read the manifest";

/// A signal's name as messages print it.
pub fn signal_name(sig: i32) -> String {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT".into(),
        signal_hook::consts::SIGTERM => "SIGTERM".into(),
        signal_hook::consts::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

/// Errors from the core pack/unlock path. Subsystems with their own vocabulary (keys, rekey,
/// media) have their own enums, wrapped here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a named file failed.
    #[error(transparent)]
    Io(#[from] IoError),

    /// `vault.toml` could not be parsed or failed validation.
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },

    /// The passphrase does not open this bundle.
    #[error("wrong passphrase for {path}")]
    WrongPassphrase { path: PathBuf },

    /// None of the recovery identities given opens the bundle.
    #[error("{path}: none of the identities given ({tried}) opens it")]
    NoMatchingIdentity { path: PathBuf, tried: String },

    /// The file is not a vault bundle (no age header, or no vault Argon2id stanza).
    #[error("{path} is not a vault bundle: {why}")]
    NotABundle { path: PathBuf, why: String },

    /// The bundle header asks for more work than this machine allows.
    #[error("{path}: the bundle's key derivation asks for {what}")]
    KdfTooExpensive { path: PathBuf, what: String },

    /// Authentication of the payload failed: the bundle was truncated or modified.
    #[error("{path} is damaged or was tampered with: {why}")]
    Tampered { path: PathBuf, why: String },

    /// The payload authenticated, but its contents break vault's rules (hostile or buggy packer).
    #[error("{path} has invalid contents: {why}")]
    BadPayload { path: PathBuf, why: String },

    /// The requested host is not in the bundle, or a choice is needed.
    #[error("{0}")]
    Host(String),

    /// `--host NAME` names a host that `vault.toml` does not have.
    #[error("{} has no host {name} (its hosts: {})", path.display(), list_or_none(known))]
    UnknownHost {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },

    /// Placement refused before writing anything.
    #[error("refusing to place files: {why}")]
    Refused { why: String, hint: Option<String> },

    /// Any other command refused before writing anything: an existing output without
    /// `--force`, an output that is one of its inputs, unsafe settings.
    #[error("{why}")]
    Declined { why: String, hint: Option<String> },

    /// Placement failed part way; everything this run wrote was removed again.
    #[error(
        "placing files failed at {path}: {source}; everything this run placed was removed again"
    )]
    RolledBack {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Placement failed (`cause`), and its rollback could not remove or put back `left`.
    #[error("{}", incomplete_message(cause, left))]
    Incomplete {
        cause: Box<Error>,
        left: Vec<PathBuf>,
    },

    /// No passphrase could be read.
    #[error("cannot read a passphrase: {0}")]
    Prompt(String),

    /// A question (which bundle to unlock, a passphrase through the password agents) got no
    /// usable answer.
    #[error("{why}")]
    NoAnswer { why: String, hint: String },

    /// The passphrase typed at the terminal was empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,

    /// SIGINT, SIGTERM or SIGHUP arrived; everything this run wrote was removed again.
    #[error("interrupted by {}; everything this run wrote was removed again", signal_name(*signal))]
    Interrupted { signal: i32 },

    /// An error of a layer above this file (keys, the secrets repository, media, hosts, the
    /// configuration check, Secure Boot).
    #[error(transparent)]
    Layer(LayerError),
}

impl Error {
    io_constructor!(pub(crate));

    /// The layer's error inside, if this is one and it is an `E`.
    pub fn layer<E: Layer>(&self) -> Option<&E> {
        match self {
            Error::Layer(e) => e.downcast_ref(),
            _ => None,
        }
    }

    pub(crate) fn manifest(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Manifest {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The cause of an incomplete rollback without its own claim that everything was removed,
/// then what is left.
fn incomplete_message(cause: &Error, left: &[PathBuf]) -> String {
    let cause = match cause {
        Error::RolledBack { path, source } => {
            format!("placing files failed at {}: {source}", path.display())
        }
        Error::Interrupted { signal } => {
            format!("interrupted by {}", signal_name(*signal))
        }
        other => other.to_string(),
    };
    let list: String = left
        .iter()
        .map(|p| format!("\n  {}", p.display()))
        .collect();
    format!("{cause}; vault could not remove everything it wrote, still there:{list}")
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The known name closest to `name` by edit distance, if it is a plausible typo.
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let here = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb))
                    .min(row[j] + 1)
                    .min(here + 1);
                prev = here;
            }
        }
        row[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(name, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k.as_str())
}

impl Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Io(e) if e.source.kind() == std::io::ErrorKind::PermissionDenied => {
                e.permission_hint()
            }
            Error::Io(IoError { action, path, source })
                if *action == MANIFEST_READ
                    && source.kind() == std::io::ErrorKind::NotFound =>
            {
                Some(format!(
                    "`vault init{}` writes a commented one to start from; or give the manifest with -m FILE",
                    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        Some(d) => format!(" {}", d.display()),
                        None => String::new(),
                    }
                ))
            }
            Error::Io(_) => None,
            Error::Manifest { path, .. } => Some(format!(
                "fix the entry in {} (format: docs/MANIFEST.md); `vault init` writes a commented example",
                path.display()
            )),
            Error::WrongPassphrase { .. } => Some(
                "check the keyboard layout on the installer console (the live system uses US by default) and try again"
                    .into(),
            ),
            Error::NoMatchingIdentity { .. } => Some(
                "give the recovery key the bundle was packed for (`vault inspect` with the passphrase lists its recovery recipients), or use the passphrase"
                    .into(),
            ),
            Error::NotABundle { .. } => Some(
                "give the bundle written by `vault pack`, or an image written by `vault attach`".into(),
            ),
            Error::KdfTooExpensive { .. } => Some(
                "repack with lower --kdf-memory (see `vault pack --help`), or unlock on a machine with more RAM".into(),
            ),
            Error::Tampered { .. } => Some(
                "nothing was placed; copy the bundle again from the workstation (or re-run `vault pack`)".into(),
            ),
            Error::BadPayload { .. } => Some(
                "nothing was placed; this bundle was not written by a trustworthy `vault pack`: repack it on your workstation".into(),
            ),
            Error::UnknownHost { path, name, known } => Some(match closest(name, known) {
                Some(k) => format!("did you mean --host {k}?"),
                None if known.is_empty() => format!(
                    "{} lists no [hosts.NAME] tables; leave out --host, or add one (`vault host add NAME`)",
                    path.display()
                ),
                None => format!("choose one of: {}", known.join(", ")),
            }),
            Error::Host(_) => Some("choose one with --host NAME; `vault inspect` lists the hosts".into()),
            Error::Refused { hint, .. } | Error::Declined { hint, .. } => hint.clone(),
            Error::RolledBack { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied
                    && !rustix::process::geteuid().is_root() =>
            {
                Some("vault places the installed system's files as root: run the same command with sudo".into())
            }
            Error::RolledBack { source, .. } if source.raw_os_error() == Some(24) => Some(
                "vault keeps every folder it writes into open until the commit: raise the limit of open files (`ulimit -n`), then run the same command again".into(),
            ),
            Error::RolledBack { .. } => Some("free space or fix permissions on the target, then run the same command again".into()),
            Error::Prompt(_) => Some("run in a terminal, or give --passphrase-file FILE".into()),
            Error::NoAnswer { hint, .. } => Some(hint.clone()),
            Error::EmptyPassphrase => Some(
                "type the passphrase, then press Enter (nothing is shown while you type)".into(),
            ),
            Error::Interrupted { .. } => Some("run the same command again when you are ready".into()),
            Error::Incomplete { .. } => Some(
                "remove those files by hand, they may hold decrypted secrets (a folder marked append-only or immutable needs `chattr -a -i FOLDER` first); then run the same command again"
                    .into(),
            ),
            Error::Layer(e) => e.0.hint(),
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            Error::Manifest { .. } => ExitCode::BadManifest,
            Error::WrongPassphrase { .. } | Error::NoMatchingIdentity { .. } => {
                ExitCode::WrongPassphrase
            }
            Error::NotABundle { .. }
            | Error::KdfTooExpensive { .. }
            | Error::Tampered { .. }
            | Error::BadPayload { .. } => ExitCode::BadBundle,
            Error::Refused { .. } | Error::Declined { .. } => ExitCode::Refused,
            Error::UnknownHost { .. } => ExitCode::Usage,
            Error::RolledBack { .. } => ExitCode::RolledBack,
            Error::Incomplete { .. } => ExitCode::Incomplete,
            Error::Layer(e) => e.0.exit_code(),
            _ => ExitCode::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Out of descriptors half way is not a full disk or a permission: the hint names the
    /// limit to raise.
    #[test]
    fn too_many_open_files_says_which_limit() {
        let e = Error::RolledBack {
            path: "/mnt/etc/ssh".into(),
            source: std::io::Error::from_raw_os_error(24),
        };
        let hint = e.hint().unwrap_or_default();
        assert!(
            hint.contains("raise the limit of open files (`ulimit -n`)"),
            "{hint}"
        );
        let e = Error::RolledBack {
            path: "/mnt/etc/ssh".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert!(e.hint().unwrap_or_default().starts_with("free space"));
    }
}
