//! Registering hosts (`vault host add/list/remove`): the host key pair beside `vault.toml`,
//! the host's table in `vault.toml` (edited with `toml_edit`, so comments survive), its
//! recipient in `.sops.yaml` ([`crate::repo::sops::splice`]) and in an agenix keys file.
//!
//! Every edit is computed and checked before anything is written; then the key pair is
//! created, then each text file is replaced by rename. A failure before the key pair exists
//! changes nothing.

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::keys::{passphrase, HostKey};
use crate::manifest::{check_host_name, Manifest};
use crate::repo::agenix::keys_file;
use crate::repo::sops::splice;

mod journal;
mod lock;
mod manifest_edit;
mod record_trust;
mod remove;
mod text_file;
mod undo;
pub use journal::Outcome;
pub use lock::{lock, HostLock};
use manifest_edit::edit_manifest_add;
pub(crate) use manifest_edit::{entry_table, push_host_entry};
pub use remove::{remove, Removed};
use text_file::sweep_edits_beside;
pub(crate) use text_file::{read, replace, replace_as_commit};

/// Where the host key lands on the installed system.
pub const KEY_TARGET: &str = "/etc/ssh/ssh_host_ed25519_key";

/// Errors of this subsystem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    #[error("host name {name:?} {why}")]
    BadName { name: String, why: &'static str },
    #[error("host {name} already has a host key in {manifest}")]
    Exists { name: String, manifest: PathBuf },
    #[error("host {name} is not in {manifest}")]
    NotFound { name: String, manifest: PathBuf },
    /// The secrets repo already registers the host under its name, with another key.
    #[error("{path} already registers {name} with another key: {registered}")]
    Registered {
        path: PathBuf,
        name: String,
        registered: String,
    },
    /// A file the user wrote cannot be edited as asked.
    #[error("{path}: {message}")]
    Edit { path: PathBuf, message: String },
    #[error(transparent)]
    Keys(#[from] crate::keys::Error),
    #[error(transparent)]
    Manifest(Box<crate::Error>),
    /// An undo record beside `vault.toml` that a host command does not act on
    /// (`record_trust`).
    #[error("{}: not acted on: {why}", crate::escape::escape_path(.record))]
    Record { record: PathBuf, why: String },
    /// Another host command holds `vault.toml`'s folder.
    #[error("another vault host command is running on {}{}", crate::escape::escape_path(.dir), by_pid(.pid))]
    Busy { dir: PathBuf, pid: Option<u32> },
    /// A signal stopped the run before its commit; every change was undone.
    #[error("interrupted by {}", crate::interrupt::signal_name(*signal))]
    Interrupted { signal: i32 },
}

/// ` (pid N)` when the holder of the lock is known.
fn by_pid(pid: &Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

impl Error {
    crate::error::io_constructor!(pub(crate));
    fn edit(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Edit {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl crate::Hint for Error {
    fn hint(&self) -> Option<String> {
        match self {
            Error::Io(e) => e.permission_hint(),
            Error::Interrupted { .. } => None,
            Error::Record { record, .. } => Some(format!(
                "it is the undo record of an interrupted `vault host add` or `vault host remove`, but not one this repository's host commands wrote (nothing was changed). Inspect it (JSON: the files it would put back, create or delete); if no host command of yours was interrupted here, remove it: `rm {}`, then run the command again",
                crate::invocation::shell_quote(&record.to_string_lossy())
            )),
            Error::Busy { .. } => Some(
                "wait for it to finish (nothing was changed), then run this command again".into(),
            ),
            Error::BadName { .. } => Some("use a hostname-like name, e.g. `web1`".into()),
            Error::Exists { name, .. } => Some(format!(
                "`vault host list` shows it; `vault host remove {name}` first to replace it"
            )),
            Error::NotFound { .. } => Some("`vault host list` shows the hosts".into()),
            Error::Registered { name, .. } => Some(format!(
                "to keep {name}'s identity, adopt the key it runs with (--from-existing, e.g. copied from its /etc/ssh/ssh_host_ed25519_key); if {name} gets a new key, `vault host remove {name}` first removes the old one from the secrets repo (nothing was changed)"
            )),
            Error::Edit { message, .. } if message.contains("--rule") => Some(
                "give --rule a regex that matches the path_regex of the rules the host needs (nothing was changed)".into(),
            ),
            Error::Edit { .. } => {
                Some("fix the file (nothing was changed), then run the same command again".into())
            }
            Error::Keys(e) => crate::Hint::hint(e),
            Error::Manifest(e) => crate::Hint::hint(e.as_ref()),
        }
    }

    fn exit_code(&self) -> crate::ExitCode {
        match self {
            Error::Edit { .. } | Error::BadName { .. } => crate::ExitCode::BadManifest,
            Error::Registered { .. } | Error::Record { .. } | Error::Busy { .. } => {
                crate::ExitCode::Refused
            }
            Error::Keys(e) => crate::Hint::exit_code(e),
            Error::Manifest(e) => crate::Hint::exit_code(e.as_ref()),
            _ => crate::ExitCode::Failure,
        }
    }
}

pub(crate) fn load_manifest(path: &Path) -> Result<Manifest, Error> {
    Manifest::load(path).map_err(|e| Error::Manifest(Box::new(e)))
}

/// What `vault host add` should do.
#[derive(Debug, Default)]
pub struct AddOptions {
    pub name: String,
    pub manifest: PathBuf,
    /// `.sops.yaml` to add the recipient to (default: the manifest's `[secrets] sops_config`).
    pub sops_config: Option<PathBuf>,
    /// A `keys.nix`-style or JSON file of agenix public keys (default: the manifest's
    /// `[secrets] agenix_keys`; recorded there if it has none).
    pub agenix_keys: Option<PathBuf>,
    /// Only creation rules whose `path_regex` matches one of these (default: the shared rules
    /// and the host's own, see [`splice::Choice::SharedAndOwn`]).
    pub rules: Vec<Regex>,
    /// Adopt this private key instead of generating one.
    pub from_existing: Option<PathBuf>,
    pub passphrase: passphrase::Source,
}

/// What `vault host add` did.
#[derive(Debug)]
pub struct Added {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub age_recipient: String,
    pub ssh_public: String,
    /// `.sops.yaml` and, per creation rule, whether the host joined it and why.
    pub sops: Option<(PathBuf, Vec<splice::RuleVerdict>)>,
    pub agenix_keys: Option<PathBuf>,
    /// `.sops.yaml` already had the host's anchor with this recipient: left as it was.
    pub sops_registered: bool,
    /// The agenix keys file already held this key: left as it was.
    pub keys_registered: bool,
    /// Records of host adds and removes a killed run left unfinished, undone (or finished)
    /// before this one.
    pub undone: Vec<(PathBuf, Outcome)>,
}

/// Paths of a host's key pair beside the manifest, relative and absolute.
pub fn key_paths(manifest_dir: &Path, name: &str) -> (String, PathBuf, PathBuf) {
    let rel = format!("hosts/{name}/ssh_host_ed25519_key");
    let abs = manifest_dir.join(&rel);
    let public = manifest_dir.join(format!("{rel}.pub"));
    (rel, abs, public)
}

pub fn add(opts: &AddOptions) -> Result<Added, Error> {
    check_host_name(&opts.name).map_err(|why| Error::BadName {
        name: opts.name.clone(),
        why,
    })?;
    // A killed run's half-done edits are undone before vault.toml is read.
    let flags: Vec<&Path> = opts
        .sops_config
        .iter()
        .chain(&opts.agenix_keys)
        .map(PathBuf::as_path)
        .collect();
    let undone = journal::sweep(&opts.manifest, &flags)?;
    let manifest = load_manifest(&opts.manifest)?;
    if manifest
        .hosts
        .get(&opts.name)
        .is_some_and(|h| h.ssh_host_key.is_some())
    {
        return Err(Error::Exists {
            name: opts.name.clone(),
            manifest: opts.manifest.clone(),
        });
    }
    let dir = manifest.dir().to_path_buf();
    let (rel, key_path, pub_path) = key_paths(&dir, &opts.name);

    // The key: adopted or new. Nothing is written yet.
    let (key, adopt_in_place) = match &opts.from_existing {
        Some(p) => {
            let k = HostKey::load(p, &opts.passphrase)?;
            let same = std::fs::canonicalize(p).ok() == std::fs::canonicalize(&key_path).ok()
                && key_path.exists();
            (k, same)
        }
        None => (HostKey::generate(&format!("root@{}", opts.name))?, false),
    };
    if !adopt_in_place {
        for p in [&key_path, &pub_path] {
            if p.exists() {
                return Err(crate::keys::Error::Exists { path: p.clone() }.into());
            }
        }
    }
    let recipient = key.age_recipient()?;
    let ssh_public = key.public_openssh_bare();

    // Every text edit, computed and checked first.
    let mut writes: Vec<(PathBuf, String)> = Vec::new();
    let manifest_text = read(&opts.manifest)?;
    let sops_path = opts
        .sops_config
        .clone()
        .or_else(|| manifest.secrets.sops_config.clone());
    let keys_path = opts
        .agenix_keys
        .clone()
        .or_else(|| manifest.secrets.agenix_keys.clone());
    // `[secrets]` paths to record where the manifest has none yet.
    let record = [
        (
            "sops_config",
            opts.sops_config
                .as_deref()
                .filter(|_| manifest.secrets.sops_config.is_none())
                .map(|p| relative_to(&dir, p)),
        ),
        // agenix keeps its rules beside the keys, by convention: record them for `rekey`.
        (
            "agenix_rules",
            opts.agenix_keys
                .as_deref()
                .filter(|_| manifest.secrets.agenix_rules.is_none())
                .and_then(|k| k.parent())
                .map(|d| d.join("secrets.nix"))
                .filter(|r| r.is_file())
                .map(|r| relative_to(&dir, &r)),
        ),
        // Remembered like .sops.yaml, so `host remove` and the next `host add` edit it too.
        (
            "agenix_keys",
            opts.agenix_keys
                .as_deref()
                .filter(|_| manifest.secrets.agenix_keys.is_none())
                .map(|p| relative_to(&dir, p)),
        ),
    ];
    let new_manifest = edit_manifest_add(
        &opts.manifest,
        &manifest_text,
        &opts.name,
        &rel,
        &recipient,
        &record,
    )?;
    writes.push((opts.manifest.clone(), new_manifest));
    let mut originals = vec![(opts.manifest.clone(), manifest_text)];
    let mut sops = None;
    let (mut sops_registered, mut keys_registered) = (false, false);
    if let Some(sp) = &sops_path {
        let text = read(sp)?;
        // Already registered under its name (a reinstall that keeps the identity, a secrets
        // folder rebuilt from the running hosts): the same key changes nothing there; another
        // key is not silently replaced.
        match splice::anchored(&text, &opts.name) {
            Some(r) if r == recipient => sops_registered = true,
            Some(registered) => {
                return Err(Error::Registered {
                    path: sp.clone(),
                    name: opts.name.clone(),
                    registered,
                })
            }
            None => {}
        }
    }
    if let Some(sp) = sops_path.as_ref().filter(|_| !sops_registered) {
        let text = read(sp)?;
        let other_hosts: Vec<String> = manifest
            .hosts
            .keys()
            .filter(|h| **h != opts.name)
            .cloned()
            .collect();
        let choice = if opts.rules.is_empty() {
            splice::Choice::SharedAndOwn {
                other_hosts: &other_hosts,
            }
        } else {
            splice::Choice::Matching(&opts.rules)
        };
        let (new, verdicts) = splice::add_recipient(&text, &opts.name, &recipient, choice)
            .map_err(|m| Error::edit(sp, m))?;
        writes.push((sp.clone(), new));
        originals.push((sp.clone(), text));
        sops = Some((sp.clone(), verdicts));
    }
    if let Some(sp) = sops_path.as_ref().filter(|_| sops_registered) {
        sops = Some((sp.clone(), Vec::new()));
    }
    if let Some(kp) = &keys_path {
        let text = read(kp)?;
        match keys_file::registered(kp, &text, &opts.name, &ssh_public) {
            (true, _) => keys_registered = true,
            (false, Some(registered)) => {
                return Err(Error::Registered {
                    path: kp.clone(),
                    name: opts.name.clone(),
                    registered,
                })
            }
            (false, None) => {
                let new = keys_file::add(kp, &text, &opts.name, &ssh_public)
                    .map_err(|m| Error::edit(kp, m))?;
                writes.push((kp.clone(), new));
                originals.push((kp.clone(), text));
            }
        }
    }

    // Now write: key pair first (0600 from creation), then the edits; the record of how to
    // undo them first of all, removed as the commit (see `journal`).
    let host_dir = key_path.parent().unwrap_or(&dir).to_path_buf();
    let mut undo = journal::Undo::default();
    if !adopt_in_place {
        undo.created = vec![journal::bytes(&key_path), journal::bytes(&pub_path)];
        undo.dirs = journal::missing_dirs(&host_dir);
    } else if !pub_path.exists() {
        undo.created = vec![journal::bytes(&pub_path)];
    }
    undo.restore = originals
        .into_iter()
        .map(|(p, t)| (journal::bytes(&p), t))
        .collect();
    let journal = journal::Journal::begin(&opts.manifest, undo)?;
    if !adopt_in_place {
        std::fs::create_dir_all(&host_dir).map_err(|e| Error::io("cannot create", &host_dir, e))?;
        key.write_pair(&key_path, &pub_path)?;
    } else if !pub_path.exists() {
        crate::keys::ssh::write_new(
            &pub_path,
            format!("{}\n", key.public_openssh()).as_bytes(),
            0o644,
        )?;
    }
    for (path, text) in &writes {
        journal.check()?;
        replace(path, text)?;
    }
    journal.commit()?;
    Ok(Added {
        private_key: key_path,
        public_key: pub_path,
        age_recipient: recipient,
        ssh_public,
        sops,
        agenix_keys: keys_path,
        sops_registered,
        keys_registered,
        undone,
    })
}

/// Undoes (or finishes) what killed `host add` and `host remove` runs left beside `manifest`
/// (see `journal`); the records found.
pub(crate) fn sweep_records(manifest: &Path) -> Result<Vec<(PathBuf, Outcome)>, Error> {
    journal::sweep(manifest, &[])
}

/// Writes `key` as a new pair (folders made as needed) and replaces `manifest` with
/// `new_manifest`, under the undo record `add` writes: on an error or a caught signal nothing
/// is left of it, and after SIGKILL the next run's [`sweep_records`] removes the pair and puts
/// the manifest's text back.
pub(crate) fn add_key_pair(
    manifest: &Path,
    key: &HostKey,
    (key_path, pub_path): (&Path, &Path),
    new_manifest: &str,
) -> Result<(), Error> {
    let host_dir = match key_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let undo = journal::Undo {
        created: vec![journal::bytes(key_path), journal::bytes(pub_path)],
        dirs: journal::missing_dirs(host_dir),
        restore: vec![(journal::bytes(manifest), read(manifest)?)],
        ..journal::Undo::default()
    };
    let journal = journal::Journal::begin(manifest, undo)?;
    std::fs::create_dir_all(host_dir).map_err(|e| Error::io("cannot create", host_dir, e))?;
    key.write_pair(key_path, pub_path)?;
    journal.check()?;
    replace(manifest, new_manifest)?;
    journal.commit()
}

/// `p` as the manifest records it: relative to the manifest's folder (with `..` when it lies
/// beside it, as `../nix-config/.sops.yaml`), so the folders can move together.
fn relative_to(dir: &Path, p: &Path) -> String {
    use std::path::Component;
    let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let d = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !abs.is_absolute() || !d.is_absolute() {
        return abs.to_string_lossy().into_owned();
    }
    let a: Vec<Component> = abs.components().collect();
    let b: Vec<Component> = d.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    // Only the root in common: an absolute path says more than a chain of `..`.
    if common <= 1 {
        return abs.to_string_lossy().into_owned();
    }
    let mut rel = PathBuf::new();
    for _ in common..b.len() {
        rel.push("..");
    }
    for c in &a[common..] {
        rel.push(c);
    }
    rel.to_string_lossy().into_owned()
}

/// One host as `vault host list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostInfo {
    pub name: String,
    #[serde(serialize_with = "crate::escape::json::serialize_opt_path")]
    pub ssh_host_key: Option<PathBuf>,
    pub key_present: bool,
    pub age_recipient: Option<String>,
    pub ssh_public: Option<String>,
    pub entries: usize,
}

pub fn list(manifest: &Path) -> Result<Vec<HostInfo>, Error> {
    let m = load_manifest(manifest)?;
    Ok(m.hosts
        .iter()
        .map(|(name, h)| {
            let pub_line = h.ssh_host_key.as_ref().and_then(|k| {
                let mut p = k.clone().into_os_string();
                p.push(".pub");
                std::fs::read_to_string(PathBuf::from(p)).ok()
            });
            HostInfo {
                name: name.clone(),
                key_present: h.ssh_host_key.as_ref().is_some_and(|k| k.is_file()),
                ssh_host_key: h.ssh_host_key.clone(),
                age_recipient: h.age_recipient.clone(),
                ssh_public: pub_line
                    .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")),
                entries: h.entries.len(),
            }
        })
        .collect())
}

impl crate::error::Layer for Error {}
