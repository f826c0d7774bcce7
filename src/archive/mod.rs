//! The payload inside a bundle: `zstd(tar(vault.json, then one tar entry per item))`.
//!
//! `vault.json` is the in-bundle manifest ([`BundleManifest`]): every item's target, stage,
//! mode, owner, size and SHA-256, in the order the tar entries follow. The reader
//! ([`read::walk`]) checks each tar entry against it, so what gets placed is exactly what the
//! manifest says, whatever a hostile tar stream contains. This layer knows nothing of ciphers.

pub mod read;
pub mod ustar;
pub mod write;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::escape::Escaped;

use crate::manifest::{
    check_host_name, check_id, check_target, Stage, DISK_STAGE_PREFIXES, MAX_MODE,
};

/// Name of the first tar entry.
pub const MANIFEST_NAME: &str = "vault.json";
/// Current in-bundle manifest format.
pub const FORMAT: u32 = 1;
/// Archive path prefix for items every host gets. Host names cannot start with `_`.
pub const SHARED: &str = "_shared";

/// Limits on what an untrusted bundle may declare.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_manifest_bytes: u64,
    pub max_items: usize,
    pub max_item_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 64 << 20,
            max_items: 100_000,
            max_item_bytes: 64 << 30,
            max_total_bytes: 256 << 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
}

/// One file or directory in the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// `None`: every host gets it. Required in JSON (`null`), like every field.
    #[serde(deserialize_with = "Option::deserialize")]
    pub host: Option<String>,
    #[serde(with = "stage_serde")]
    pub stage: Stage,
    pub kind: Kind,
    /// Absolute path on the installed system (root stage) or the live system (disk stage).
    pub target: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// File size in bytes; 0 for directories.
    pub size: u64,
    /// Lowercase hex SHA-256 of the contents; `None` for directories. Required in JSON.
    #[serde(deserialize_with = "Option::deserialize")]
    pub sha256: Option<String>,
}

impl Item {
    /// The tar entry name: `<host or _shared>/<stage><target>`.
    pub fn archive_path(&self) -> String {
        format!(
            "{}/{}{}",
            self.host.as_deref().unwrap_or(SHARED),
            self.stage.as_str(),
            self.target
        )
    }

    /// Whether `host` gets this item.
    pub fn is_for(&self, host: &str) -> bool {
        self.host.as_deref().is_none_or(|h| h == host)
    }
}

/// Most recovery recipients a bundle may name, and the longest line each may be (an
/// `ssh-rsa` key of 16384 bits is about 2800 characters).
pub const MAX_RECOVERY_RECIPIENTS: usize = 64;
const MAX_RECIPIENT_LEN: usize = 4096;

/// Only the shape is checked here (untrusted input: bounded, printable, distinct): the list
/// is shown to the user (`vault inspect`, `vault repack`) and never wrapped to.
fn check_recovery_recipients(list: &[String]) -> Result<(), String> {
    if list.len() > MAX_RECOVERY_RECIPIENTS {
        return Err(format!(
            "{} recovery recipients (at most {MAX_RECOVERY_RECIPIENTS} allowed)",
            list.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for r in list {
        if r.is_empty()
            || r.len() > MAX_RECIPIENT_LEN
            || !r.bytes().all(|b| (b' '..=b'~').contains(&b))
        {
            return Err(format!(
                "recovery recipient \"{}\" is not a recipient line (printable ASCII, 1 to {MAX_RECIPIENT_LEN} bytes)",
                Escaped(r.get(..r.len().min(80)).unwrap_or("…"))
            ));
        }
        if !seen.insert(r.as_str()) {
            return Err(format!("recovery recipient {r} is listed twice"));
        }
    }
    Ok(())
}

mod stage_serde {
    use super::Stage;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Stage, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Stage, D::Error> {
        let s = String::deserialize(de)?;
        Stage::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown stage {s:?}")))
    }
}

/// The in-bundle manifest, `vault.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub format: u32,
    /// `vault <version>` that wrote it; informational, and the bundle's word.
    pub created_by: crate::escape::Untrusted,
    pub hosts: Vec<String>,
    pub items: Vec<Item>,
    /// The recovery recipients the file key is also wrapped to, as given to `vault pack`
    /// (`age1…`, `ssh-ed25519 …`), for the user to read. Whoever made the bundle chose them,
    /// so `vault repack` never takes them from here (its recipients come from vault.toml or
    /// flags). Absent from the JSON when empty, so a bundle without them reads as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery_recipients: Vec<String>,
    /// What each host's machine says about itself (`[hosts.NAME.identity]`), for `vault
    /// unlock` to recognise it; only inside the encrypted payload. Absent from the JSON when
    /// empty, so a bundle without identities reads as before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub identities: BTreeMap<String, crate::manifest::identity::Identity>,
}

impl BundleManifest {
    /// Checks every rule a placed item relies on. Run on manifests read from bundles (untrusted)
    /// and before writing one (so `pack` cannot produce what `unlock` refuses).
    pub fn validate(&self, limits: &Limits) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "manifest format {} (this vault reads format {FORMAT}; upgrade vault)",
                self.format
            ));
        }
        if self.items.len() > limits.max_items {
            return Err(format!(
                "{} items (at most {} allowed)",
                self.items.len(),
                limits.max_items
            ));
        }
        let mut hosts = BTreeSet::new();
        for h in &self.hosts {
            check_host_name(h).map_err(|why| format!("host name {h:?} {why}"))?;
            if !hosts.insert(h.as_str()) {
                return Err(format!("host {h} is listed twice"));
            }
        }
        check_recovery_recipients(&self.recovery_recipients)?;
        for (h, id) in &self.identities {
            if !hosts.contains(h.as_str()) {
                return Err(format!(
                    "an identity for host {h}, which is not in the host list"
                ));
            }
            id.validate()
                .map_err(|why| format!("identity of host {h}: {why}"))?;
        }
        crate::manifest::identity::check_unique(
            self.identities.iter().map(|(h, i)| (h.as_str(), i)),
        )
        .map_err(|s| s.to_string())?;
        let mut total: u64 = 0;
        for (i, item) in self.items.iter().enumerate() {
            let at = |msg: String| format!("item {i} ({}): {msg}", Escaped(&item.target));
            if let Some(h) = &item.host {
                if !hosts.contains(h.as_str()) {
                    return Err(at(format!("host {h} is not in the host list")));
                }
            }
            check_target(&item.target).map_err(|why| at(format!("target {why}")))?;
            if item.stage == Stage::Disk
                && !DISK_STAGE_PREFIXES
                    .iter()
                    .any(|p| item.target.starts_with(p))
            {
                return Err(at("a disk-stage target outside /tmp/ and /run/".into()));
            }
            if item.mode > MAX_MODE {
                return Err(at(format!(
                    "mode {:o} has setuid/setgid/sticky bits",
                    item.mode
                )));
            }
            check_id("uid", item.uid)
                .and_then(|()| check_id("gid", item.gid))
                .map_err(at)?;
            match item.kind {
                Kind::File => {
                    let ok = item.sha256.as_deref().is_some_and(|h| {
                        h.len() == 64
                            && h.bytes()
                                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    });
                    if !ok {
                        return Err(at("a file without a valid SHA-256".into()));
                    }
                    if item.size > limits.max_item_bytes {
                        return Err(at(format!(
                            "declared size {} is beyond the limit",
                            item.size
                        )));
                    }
                    total = total.saturating_add(item.size);
                }
                Kind::Dir => {
                    if item.size != 0 || item.sha256.is_some() {
                        return Err(at("a directory with a size or hash".into()));
                    }
                }
            }
        }
        if total > limits.max_total_bytes {
            return Err(format!("declared total size {total} is beyond the limit"));
        }
        self.check_tree()
    }

    /// Per host and stage (the items one unlock places): no duplicate targets, no file that is
    /// also a directory's ancestor, and directories listed before what they contain.
    fn check_tree(&self) -> Result<(), String> {
        let scopes: Vec<Option<&str>> = std::iter::once(None)
            .chain(self.hosts.iter().map(|h| Some(h.as_str())))
            .collect();
        for host in scopes {
            for stage in [Stage::Disk, Stage::Root] {
                let mut seen: BTreeMap<&str, Kind> = BTreeMap::new();
                for item in self.items.iter().filter(|i| {
                    i.stage == stage
                        && match host {
                            None => i.host.is_none(),
                            Some(h) => i.is_for(h),
                        }
                }) {
                    if item.kind == Kind::Dir {
                        // Parents first: a directory is created with its mode before anything
                        // goes into it, never made 0755 on the way to a file and kept so.
                        let prefix = format!("{}/", item.target);
                        if let Some((child, _)) = seen
                            .range(prefix.as_str()..)
                            .next()
                            .filter(|(c, _)| c.starts_with(&prefix))
                        {
                            return Err(format!(
                                "directory {} is listed after {child}, which is inside it; a directory must come before what it contains",
                                item.target
                            ));
                        }
                    }
                    if seen.insert(&item.target, item.kind).is_some() {
                        return Err(format!("target {} appears twice", item.target));
                    }
                    let mut parent = item.target.as_str();
                    while let Some(idx) = parent.rfind('/').filter(|&i| i > 0) {
                        parent = &parent[..idx];
                        if seen.get(parent) == Some(&Kind::File) {
                            return Err(format!(
                                "target {} is inside {parent}, which is a file in this bundle",
                                item.target
                            ));
                        }
                    }
                }
                // A file listed *before* a directory beneath it is caught when the directory
                // comes; one listed after its would-be children is caught here.
                for (t, k) in &seen {
                    if *k == Kind::File {
                        let prefix = format!("{t}/");
                        if let Some((child, _)) = seen.range(prefix.as_str()..).next() {
                            if child.starts_with(&prefix) {
                                return Err(format!(
                                    "target {t} is a file but {child} is inside it"
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Items for `host` (all hosts' shared items plus its own) in bundle order, with indices.
    pub fn items_for<'a>(&'a self, host: &'a str) -> impl Iterator<Item = (usize, &'a Item)> + 'a {
        self.items
            .iter()
            .enumerate()
            .filter(move |(_, i)| i.is_for(host))
    }
}

#[cfg(test)]
mod tests;
