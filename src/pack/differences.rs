//! What `vault repack -m` tells the user about a bundle and an updated manifest: every item
//! whose contents, mode, owner, stage or kind differ from what `vault.toml` and its sources
//! say, every item only one side has, and every item taken from the bundle unchecked because
//! its source is missing. A bundle opened with a recovery key may have been made by anyone
//! (docs/FORMAT.md §1): this is how its contents get compared with the user's own.

use std::path::Path;

use serde::Serialize;

use crate::archive::{Item, Kind};

/// How an item differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// In both, with other contents or attributes.
    Differs,
    /// Only in the bundle: left out of the new one.
    Dropped,
    /// Only in the manifest: read from its source.
    New,
    /// In both, its source missing: the bundle's bytes are kept without a check.
    FromBundle,
}

impl DifferenceKind {
    /// The word a line about it starts with.
    pub fn label(self) -> &'static str {
        match self {
            DifferenceKind::Differs => "differs",
            DifferenceKind::Dropped => "dropped",
            DifferenceKind::New => "new",
            DifferenceKind::FromBundle => "from the bundle",
        }
    }
}

/// One item's difference, for a line on stderr and `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub host: Option<String>,
    pub target: String,
    pub kind: DifferenceKind,
    /// What differs, in words ("contents differ from hosts/web1/key; mode 0600 in the bundle,
    /// 0644 in vault.toml").
    pub what: String,
}

impl Difference {
    pub(super) fn new(item: &Item, kind: DifferenceKind, what: String) -> Difference {
        Difference {
            host: item.host.clone(),
            target: item.target.clone(),
            kind,
            what,
        }
    }
}

/// How `new` (from the manifest; read from `source` when it has one) differs from the bundle's
/// `old` item of the same host and target, in words; `None` when it does not.
pub(super) fn compare(
    old: &Item,
    new: &Item,
    source: Option<&Path>,
    manifest: &str,
) -> Option<String> {
    let mut what = Vec::new();
    let kind = |k: Kind| {
        if k == Kind::Dir {
            "a directory"
        } else {
            "a file"
        }
    };
    if old.kind != new.kind {
        what.push(format!(
            "{} in the bundle, {} in {manifest}",
            kind(old.kind),
            kind(new.kind)
        ));
    } else if let Some(src) = source.filter(|_| old.sha256 != new.sha256) {
        what.push(format!("contents differ from {}", src.display()));
    }
    if old.mode != new.mode {
        what.push(format!(
            "mode {:04o} in the bundle, {:04o} in {manifest}",
            old.mode, new.mode
        ));
    }
    if (old.uid, old.gid) != (new.uid, new.gid) {
        what.push(format!(
            "owner {}:{} in the bundle, {}:{} in {manifest}",
            old.uid, old.gid, new.uid, new.gid
        ));
    }
    if old.stage != new.stage {
        what.push(format!(
            "stage {} in the bundle, {} in {manifest}",
            old.stage.as_str(),
            new.stage.as_str()
        ));
    }
    (!what.is_empty()).then(|| what.join("; "))
}
