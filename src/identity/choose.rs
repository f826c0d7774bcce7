//! The host choice at unlock, for a bundle of several hosts and no `--host`: the host whose
//! recorded identity matches this machine ([`matching`]), named with what matched, else the
//! host menu (the caller's `ask`), else a refusal. It runs after the bundle's manifest has
//! been decrypted (the identities are inside it) and before anything is placed; a wrong or
//! ambiguous match therefore never places anything: ambiguity goes to the menu.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::matching::{self, Outcome, Verdict};
use super::{sysfs, Reading};
use crate::archive::BundleManifest;
use crate::{Error, Result};

/// Shows the host menu and returns the name chosen (one of `Menu::hosts`).
pub type AskFn = dyn Fn(&Menu) -> Result<String> + Send + Sync;
/// Receives one line to show the user (the match, or a warning).
pub type TellFn = dyn Fn(&str) + Send + Sync;

/// How `vault unlock` chooses a host when `--host` is not given.
#[derive(Clone, Default)]
pub struct HostChooser {
    /// Where this machine's sysfs is (`/sys`); `None`: no matching.
    pub sysfs_root: Option<PathBuf>,
    /// The host menu; `None` (no terminal): refuse instead.
    pub ask: Option<Arc<AskFn>>,
    pub tell: Option<Arc<TellFn>>,
}

impl std::fmt::Debug for HostChooser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostChooser")
            .field("sysfs_root", &self.sysfs_root)
            .field("ask", &self.ask.is_some())
            .field("tell", &self.tell.is_some())
            .finish()
    }
}

/// What the host menu shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// Why it is asked ("no host's recorded identity matches this machine").
    pub why: String,
    /// Each host of the bundle, in order, with how it compares with this machine.
    pub hosts: Vec<(String, String)>,
}

impl HostChooser {
    fn machine(&self) -> Option<(Reading, &Path)> {
        let root = self.sysfs_root.as_deref()?;
        Some((sysfs::read(root), root))
    }

    fn tell(&self, line: &str) {
        if let Some(t) = &self.tell {
            t(line);
        }
    }
}

/// Said after the identifiers when they were not read from `/sys` (tests): never silently.
fn source_note(root: &Path) -> String {
    if root == Path::new(sysfs::DEFAULT_ROOT) {
        String::new()
    } else {
        format!(" (identity read from {}, not /sys)", root.display())
    }
}

/// A host chosen without matching (`--host NAME`, which always wins, or the bundle's only
/// host, `how`) is placed; if its recorded identity conflicts with this machine, the user is
/// told (the wrong host typed, or the wrong stick).
pub fn warn_if_other(manifest: &BundleManifest, host: &str, how: &str, chooser: &HostChooser) {
    let Some(id) = manifest.identities.get(host) else {
        return;
    };
    let Some((machine, root)) = chooser.machine() else {
        return;
    };
    let v = matching::score(id, &machine);
    if !v.conflicts.is_empty() {
        chooser.tell(&format!(
            "warning: placing host \"{host}\" ({how}), but {} for this machine{}",
            matching::join(&v.conflicts),
            source_note(root)
        ));
    }
}

/// Chooses among the several hosts of `manifest` (no `--host`). `files` counts the files
/// the unlock would place for a host, for the message.
pub fn choose(
    manifest: &BundleManifest,
    chooser: &HostChooser,
    dry_run: bool,
    files: impl Fn(&str) -> usize,
) -> Result<String> {
    let recorded = |h: &String| manifest.identities.get(h);
    let (verdicts, outcome, root) = match chooser.machine() {
        Some((machine, root)) if !manifest.identities.is_empty() => {
            let (v, o) = matching::decide(
                manifest.hosts.iter().map(|h| (h.as_str(), recorded(h))),
                &machine,
            );
            (v, o, Some(root))
        }
        _ => (
            manifest
                .hosts
                .iter()
                .map(|h| (h.clone(), Verdict::default()))
                .collect(),
            Outcome::None("no host of this bundle has an identity recorded".into()),
            None,
        ),
    };
    let why = match outcome {
        Outcome::One(host, v) => {
            let n = files(&host);
            chooser.tell(&format!(
                "this machine is \"{host}\" ({} {}); {} its {n} file{}{}",
                matching::join(&v.matched),
                if v.matched.len() == 1 {
                    "matches"
                } else {
                    "match"
                },
                if dry_run { "would place" } else { "placing" },
                if n == 1 { "" } else { "s" },
                root.map(source_note).unwrap_or_default(),
            ));
            return Ok(host);
        }
        Outcome::None(why) => why,
        Outcome::Several(hosts) => format!(
            "several hosts match this machine ({}), so none is chosen",
            hosts.join(", ")
        ),
    };
    let Some(ask) = &chooser.ask else {
        return Err(Error::Host(format!(
            "this bundle holds several hosts ({}) and {why}; say which one this machine is",
            manifest.hosts.join(", ")
        )));
    };
    let menu = Menu {
        why,
        hosts: verdicts
            .into_iter()
            .map(|(h, v)| (h, v.summary()))
            .collect(),
    };
    let host = ask(&menu)?;
    if manifest.hosts.contains(&host) {
        Ok(host)
    } else {
        Err(Error::Host("no host was chosen".into()))
    }
}
