//! The host choice at unlock, for a bundle of several hosts and no `--host`: the host whose
//! recorded identity matches this machine ([`matching`]), named with what matched, else the
//! host menu (the caller's `ask`), else a refusal. A bundle's only host is placed unless its
//! recorded identity contradicts this machine; then the same menu, else a refusal. It runs
//! after the bundle's manifest has been decrypted (the identities are inside it) and before
//! anything is placed; a wrong or ambiguous match therefore never places anything:
//! ambiguity goes to the menu.

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

/// A host named with `--host NAME` always wins; if its recorded identity conflicts with this
/// machine, the user is told (the wrong host typed).
pub fn warn_if_other(manifest: &BundleManifest, host: &str, how: &str, chooser: &HostChooser) {
    let Some((v, root)) = conflicts(manifest, host, chooser) else {
        return;
    };
    chooser.tell(&format!(
        "warning: placing host \"{host}\" ({how}), but {} for this machine{}",
        matching::join(&v.conflicts),
        source_note(root)
    ));
}

/// How `host`'s recorded identity compares with this machine, when something conflicts.
fn conflicts<'a>(
    manifest: &BundleManifest,
    host: &str,
    chooser: &'a HostChooser,
) -> Option<(Verdict, &'a Path)> {
    let id = manifest.identities.get(host)?;
    let (machine, root) = chooser.machine()?;
    let v = matching::score(id, &machine);
    (!v.conflicts.is_empty()).then_some((v, root))
}

/// The only host of a bundle (no `--host`): placed, unless its recorded identity conflicts
/// with this machine. Then vault knows this is another machine (the wrong stick), so it does
/// not place that host's keys unasked: the host menu asks, and without a terminal the unlock
/// is refused and `--host` names the host to place anyway.
pub fn choose_only(manifest: &BundleManifest, host: &str, chooser: &HostChooser) -> Result<String> {
    let Some((v, root)) = conflicts(manifest, host, chooser) else {
        return Ok(host.to_owned());
    };
    let why =
        format!("this bundle's only host, {host}, records an identity this machine contradicts");
    let Some(ask) = &chooser.ask else {
        return Err(Error::Host(format!(
            "{why} ({}){}; if this is that machine (a replaced board or network card), place it with --host {host}",
            matching::join(&v.conflicts),
            source_note(root)
        )));
    };
    let why = format!("{why}{}", source_note(root));
    let menu = Menu {
        why,
        hosts: vec![(host.to_owned(), v.summary())],
    };
    let chosen = ask(&menu)?;
    if chosen == host {
        Ok(chosen)
    } else {
        Err(Error::Host("no host was chosen".into()))
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
