//! The errors of a rekey run, each able to say what to do next.

use std::path::PathBuf;

/// Errors of this subsystem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a named file failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// `vault.toml` names no secrets repo.
    #[error("{manifest} has no [secrets] table naming {what}")]
    NoRepo {
        manifest: PathBuf,
        what: &'static str,
    },
    /// `.sops.yaml`, `secrets.nix` or the rekey record is invalid, or `secrets.nix` does not
    /// evaluate.
    #[error(transparent)]
    Repo(#[from] crate::repo::Error),
    /// An identity file could not be used, or an age plugin (a hardware key) is missing or
    /// failed.
    #[error(transparent)]
    Age(#[from] crate::keys::age::Error),
    /// No identity was given or found.
    #[error("no identity to decrypt with")]
    NoIdentity,
    /// Some files could not be re-encrypted; nothing was written.
    #[error("{} of the files to rekey failed; nothing was changed:{}", failures.len(), list(failures))]
    Failed { failures: Vec<(PathBuf, String)> },
    /// A file changed on disk while it was being rekeyed (an editor, a `git pull`).
    #[error("{path} changed while vault was rekeying it; nothing was changed")]
    Changed { path: PathBuf },
    /// Writing the new files failed before any rename; the repo is as it was.
    #[error("cannot write {path}: {source}; nothing was changed")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A rename failed part way through the commit (an I/O error on the repo's filesystem).
    #[error("renaming {path} into place failed: {source}; {renamed} files were already rekeyed, the others are unchanged")]
    Commit {
        path: PathBuf,
        renamed: usize,
        #[source]
        source: std::io::Error,
    },
    /// A signal arrived before the commit; every temporary was removed.
    #[error("interrupted by {}; nothing was changed", crate::interrupt::signal_name(*signal))]
    Interrupted { signal: i32 },
    /// `--check` found stale files.
    #[error("{count} secret files are not encrypted to their current recipients")]
    Stale { count: usize },
}

fn list(failures: &[(PathBuf, String)]) -> String {
    failures
        .iter()
        .map(|(p, why)| format!("\n  {}: {why}", p.display()))
        .collect()
}

impl Error {
    crate::error::io_constructor!(pub(crate));
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Io(e) => e.permission_hint(),
            Error::NoRepo { manifest, .. } => Some(format!(
                "add `[secrets]` with `sops_config = \"…/.sops.yaml\"` and/or `agenix_rules = \"…/secrets.nix\"` to {}",
                manifest.display()
            )),
            Error::Repo(e) => e.hint(),
            Error::Age(e) => e.hint(),
            Error::NoIdentity => Some(
                "give one with -i FILE (an age key file or an SSH private key that opens the secrets)".into(),
            ),
            Error::Failed { .. } => Some(
                "give an identity that opens those files with -i FILE, or restore the damaged files from git, then run `vault rekey` again".into(),
            ),
            Error::Changed { .. } => Some("run `vault rekey` again".into()),
            Error::Interrupted { .. } => Some("run `vault rekey` again when you are ready".into()),
            Error::Write { .. } => Some("free space or fix permissions in the secrets repo, then run `vault rekey` again".into()),
            Error::Commit { .. } => Some("fix the filesystem error and run `vault rekey` again: it finishes the rest".into()),
            Error::Stale { .. } => Some("run `vault rekey` to re-encrypt them".into()),
        }
    }

    fn exit_code(&self) -> crate::ExitCode {
        match self {
            Error::NoRepo { .. } => crate::ExitCode::BadManifest,
            Error::Repo(e) => e.exit_code(),
            Error::Stale { .. } => crate::ExitCode::Stale,
            Error::Age(e) => e.exit_code(),
            _ => crate::ExitCode::Failure,
        }
    }
}

impl crate::error::Layer for Error {}
