//! The user's manifest, `vault.toml`: which files go into a bundle, and where each one lands.
//! The format is documented in `docs/MANIFEST.md`; `vault init` writes [`TEMPLATE`].
//!
//! Parsing is two steps: serde reads the raw TOML shapes, then [`Manifest::from_str`] validates
//! every field into typed values, naming the entry (by line) on any error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result, MANIFEST_READ};

pub mod entry;
pub mod identity;

pub use entry::{
    check_host_name, check_id, check_target, Stage, DISK_STAGE_PREFIXES, MAX_ID, MAX_MODE,
};

/// The manifest `vault init` writes.
pub const TEMPLATE: &str = include_str!("template.toml");

/// One line of the manifest: a source on the workstation and where it lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Source file or directory, resolved against the manifest's folder.
    pub source: PathBuf,
    /// Absolute, normalized target path (see [`check_target`]).
    pub target: String,
    /// Permission bits. For a directory entry: the top directory's mode (`None`: keep the
    /// source's); files inside keep their own permission bits.
    pub mode: Option<u32>,
    /// For a directory entry: the mode of every file inside (`None`: each keeps its own).
    pub file_mode: Option<u32>,
    pub uid: u32,
    pub gid: u32,
    pub stage: Stage,
    /// 1-based line in `vault.toml`, for error messages.
    pub line: usize,
}

/// A host: its own entries plus the shared ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// The host's OpenSSH ed25519 private host key on the workstation, if vault manages it.
    pub ssh_host_key: Option<PathBuf>,
    /// The host's age recipient (`age1…`, the ssh-to-age conversion), if recorded.
    pub age_recipient: Option<String>,
    /// The host's NixOS configuration, `REF#NAME` as written (a relative path `REF` is
    /// relative to the manifest's folder); `vault pack` checks it (see `config_check`).
    pub flake: Option<String>,
    /// What the machine says about itself (`[hosts.NAME.identity]`), for `vault unlock` to
    /// recognise it (docs/guide/fleet.md).
    pub identity: Option<identity::Identity>,
    pub entries: Vec<Entry>,
}

/// Where `vault rekey` finds the secrets repo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretsRepo {
    /// `.sops.yaml`, resolved against the manifest's folder.
    pub sops_config: Option<PathBuf>,
    /// agenix `secrets.nix`, resolved against the manifest's folder.
    pub agenix_rules: Option<PathBuf>,
    /// The file of agenix public keys `vault host add/remove` edit (`keys.nix`), resolved
    /// against the manifest's folder.
    pub agenix_keys: Option<PathBuf>,
}

/// A validated `vault.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    /// Entries every host gets.
    pub shared: Vec<Entry>,
    pub hosts: BTreeMap<String, Host>,
    pub secrets: SecretsRepo,
    /// Recovery recipients every bundle packed from this manifest is also wrapped to
    /// (checked, in canonical form); `vault pack --recovery-recipient` adds to them.
    pub recovery_recipients: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: Option<i64>,
    #[serde(default)]
    secrets: Option<RawSecrets>,
    #[serde(default)]
    entry: Vec<toml::Spanned<RawEntry>>,
    #[serde(default)]
    // Not `Spanned`: toml cannot span a table written with dotted keys (`hosts.a.flake = …`);
    // lines come from `key_offset` instead.
    hosts: BTreeMap<String, RawHost>,
    #[serde(default)]
    recovery_recipients: Option<toml::Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    sops_config: Option<String>,
    agenix_rules: Option<String>,
    agenix_keys: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    ssh_host_key: Option<String>,
    age_recipient: Option<String>,
    flake: Option<String>,
    identity: Option<identity::RawIdentity>,
    #[serde(default)]
    entry: Vec<toml::Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    source: String,
    target: String,
    mode: Option<toml::Spanned<RawMode>>,
    file_mode: Option<toml::Spanned<RawMode>>,
    owner: Option<String>,
    stage: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawMode {
    Int(i64),
    Str(String),
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(MANIFEST_READ, path, e))?;
        Manifest::from_str(path, &text)
    }

    /// Validates manifest text; `path` names it in errors and anchors relative sources.
    pub fn from_str(path: &Path, text: &str) -> Result<Manifest> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        match raw.version {
            Some(1) => {}
            None => return Err(Error::manifest(path, "missing `version = 1` at the top")),
            Some(v) => {
                return Err(Error::manifest(
                    path,
                    format!("version {v} is not supported by this vault (it reads version 1)"),
                ))
            }
        }
        let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;

        let mut shared = Vec::new();
        for e in raw.entry {
            let line = line_of(e.span().start);
            shared.push(check_entry(path, &dir, text, e.into_inner(), line)?);
        }
        // Parsed once more, for spans of tables toml cannot give (see `RawManifest::hosts`).
        let spans = toml_edit::ImDocument::parse(text).ok();
        let mut hosts = BTreeMap::new();
        let mut identity_lines: Vec<(String, usize)> = Vec::new();
        for (name, h) in raw.hosts {
            let hline = spans
                .as_ref()
                .and_then(|d| key_offset(d, &["hosts", &name]))
                .map_or(0, line_of);
            check_host_name(&name).map_err(|why| {
                Error::manifest(path, format!("line {hline}: host name {name:?} {why}"))
            })?;
            let mut entries = Vec::new();
            for e in h.entry {
                let line = line_of(e.span().start);
                entries.push(check_entry(path, &dir, text, e.into_inner(), line)?);
            }
            if let Some(r) = &h.age_recipient {
                if !r.starts_with("age1") {
                    return Err(Error::manifest(
                        path,
                        format!(
                            "line {hline}: hosts.{name}.age_recipient must be an age1… recipient"
                        ),
                    ));
                }
            }
            let identity = match h.identity {
                None => None,
                Some(i) => {
                    let line = spans
                        .as_ref()
                        .and_then(|d| key_offset(d, &["hosts", &name, "identity"]))
                        .map_or(hline, line_of);
                    let id = identity::Identity::from_raw(i).map_err(|why| {
                        Error::manifest(path, format!("line {line}: hosts.{name}.identity: {why}"))
                    })?;
                    identity_lines.push((name.clone(), line));
                    Some(id)
                }
            };
            hosts.insert(
                name,
                Host {
                    ssh_host_key: h.ssh_host_key.map(|p| dir.join(p)),
                    age_recipient: h.age_recipient,
                    flake: h.flake,
                    identity,
                    entries,
                },
            );
        }
        // Two hosts recording one identifier could not be told apart at unlock.
        identity::check_unique(
            identity_lines
                .iter()
                .filter_map(|(n, _)| Some((n.as_str(), hosts.get(n)?.identity.as_ref()?))),
        )
        .map_err(|shared| {
            let line = identity_lines
                .iter()
                .find(|(n, _)| *n == shared.second)
                .map_or(0, |(_, l)| *l);
            Error::manifest(path, format!("line {line}: {shared}"))
        })?;
        let secrets = raw
            .secrets
            .map(|s| SecretsRepo {
                sops_config: s.sops_config.map(|p| dir.join(p)),
                agenix_rules: s.agenix_rules.map(|p| dir.join(p)),
                agenix_keys: s.agenix_keys.map(|p| dir.join(p)),
            })
            .unwrap_or_default();
        let mut recovery_recipients = Vec::new();
        if let Some(list) = raw.recovery_recipients {
            let line = line_of(list.span().start);
            for r in list.into_inner() {
                let r = crate::keys::age::recovery::checked_line(&r).map_err(|why| {
                    Error::manifest(path, format!("line {line}: recovery_recipients: {why}"))
                })?;
                if !recovery_recipients.contains(&r) {
                    recovery_recipients.push(r);
                }
            }
        }
        let m = Manifest {
            path: path.to_path_buf(),
            shared,
            hosts,
            secrets,
            recovery_recipients,
        };
        m.check_duplicates()?;
        Ok(m)
    }

    /// The folder relative sources are resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    /// Entries of one host: the shared ones first, then its own.
    pub fn entries_for(&self, host: &str) -> impl Iterator<Item = &Entry> {
        let own = self
            .hosts
            .get(host)
            .map(|h| h.entries.as_slice())
            .unwrap_or(&[]);
        self.shared.iter().chain(own.iter())
    }

    /// Two entries with one target on the same host would silently shadow each other.
    fn check_duplicates(&self) -> Result<()> {
        let names: Vec<Option<&str>> = if self.hosts.is_empty() {
            vec![None]
        } else {
            self.hosts.keys().map(|k| Some(k.as_str())).collect()
        };
        for host in names {
            let mut seen: BTreeMap<(&str, Stage), usize> = BTreeMap::new();
            let entries: Vec<&Entry> = match host {
                Some(h) => self.entries_for(h).collect(),
                None => self.shared.iter().collect(),
            };
            for e in entries {
                if let Some(first) = seen.insert((e.target.as_str(), e.stage), e.line) {
                    let whose = host.map(|h| format!(" for host {h}")).unwrap_or_default();
                    return Err(Error::manifest(
                        &self.path,
                        format!(
                            "line {}: target {} is already placed by the entry on line {first}{whose}",
                            e.line, e.target
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A TOML error with its line and column: a syntax error says "invalid TOML", an unknown key
/// or a value of the wrong type says which.
/// The offset of the key at `path` (`["hosts", "laptop"]`), however it was written: a
/// `[hosts.laptop]` header, a dotted `hosts.laptop.flake = …` or an inline table.
fn key_offset(doc: &toml_edit::ImDocument<&str>, path: &[&str]) -> Option<usize> {
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut span = None;
    for (i, segment) in path.iter().enumerate() {
        let (key, item) = table.get_key_value(segment)?;
        span = key.span().or(span);
        if i + 1 < path.len() {
            table = item.as_table_like()?;
        }
    }
    Some(span?.start)
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let syntax = text.parse::<toml::Table>().is_err();
    let mut message = e.message().trim().to_owned();
    if message.contains("untagged enum RawMode") {
        message = "a mode is an octal string like \"0600\" or an octal literal like 0o600".into();
    }
    let what = if syntax { "invalid TOML: " } else { "" };
    let at = e.span().map(|span| {
        // Bytes, so that an offset inside a character cannot panic.
        let before = &text.as_bytes()[..span.start.min(text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        format!("line {line}, column {column}: ")
    });
    Error::manifest(path, format!("{}{what}{message}", at.unwrap_or_default()))
}

fn check_entry(path: &Path, dir: &Path, text: &str, raw: RawEntry, line: usize) -> Result<Entry> {
    let err = |msg: String| Error::manifest(path, format!("line {line}: {msg}"));
    if raw.source.is_empty() {
        return Err(err("source is empty".into()));
    }
    let stage = match raw.stage.as_deref() {
        None => Stage::Root,
        Some(s) => Stage::parse(s)
            .ok_or_else(|| err(format!("stage {s:?} is not one of \"disk\", \"root\"")))?,
    };
    check_target(&raw.target).map_err(|why| err(format!("target {:?} {why}", raw.target)))?;
    if stage == Stage::Disk
        && !DISK_STAGE_PREFIXES
            .iter()
            .any(|p| raw.target.starts_with(p))
    {
        return Err(err(format!(
            "target {} has stage \"disk\", so it lands on the live system; it must be under /tmp/ or /run/",
            raw.target
        )));
    }
    let spanned_mode = |m: Option<toml::Spanned<RawMode>>| -> Result<Option<u32>> {
        match m {
            None => Ok(None),
            Some(m) => {
                let written = text.get(m.span()).unwrap_or("");
                Ok(Some(parse_mode(m.get_ref(), written).map_err(err)?))
            }
        }
    };
    let mode = spanned_mode(raw.mode)?;
    let file_mode = spanned_mode(raw.file_mode)?;
    let (uid, gid) = match raw.owner.as_deref() {
        None => (0, 0),
        Some(o) => parse_owner(o).map_err(err)?,
    };
    Ok(Entry {
        source: dir.join(&raw.source),
        target: raw.target,
        mode,
        file_mode,
        uid,
        gid,
        stage,
        line,
    })
}

/// `written` is the value's source text: TOML turns `0o600` and `384` into the same integer.
fn parse_mode(m: &RawMode, written: &str) -> std::result::Result<u32, String> {
    let value = match m {
        RawMode::Int(i) if written.starts_with("0o") && *i >= 0 => *i as u32,
        // A bare decimal 600 is almost surely a slip for 0o600.
        RawMode::Int(i) => {
            return Err(format!(
                "mode {i} is a decimal number; write it as a string (mode = \"0{i}\") or an octal literal (mode = 0o{i})"
            ))
        }
        RawMode::Str(s) => {
            let digits = s.strip_prefix("0o").unwrap_or(s);
            if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(format!("mode {s:?} is not an octal mode like \"0600\""));
            }
            u32::from_str_radix(digits, 8).map_err(|_| format!("mode {s:?} is not an octal mode"))?
        }
    };
    if value > MAX_MODE {
        return Err(format!(
            "mode {value:o}: setuid, setgid and sticky bits are not allowed in a bundle"
        ));
    }
    Ok(value)
}

fn parse_owner(o: &str) -> std::result::Result<(u32, u32), String> {
    let numeric = |s: &str| s.parse::<u32>().ok();
    match o.split_once(':') {
        Some((u, g)) => match (numeric(u), numeric(g)) {
            (Some(u), Some(g)) => {
                check_id("uid", u).and_then(|()| check_id("gid", g))
                    .map_err(|why| format!("owner {o:?}: {why}"))?;
                Ok((u, g))
            }
            _ => Err(format!(
                "owner {o:?} must be numeric \"uid:gid\": users do not exist before nixos-install (root is \"0:0\"; the first normal user on NixOS is usually \"1000:100\")"
            )),
        },
        None => Err(format!("owner {o:?} must be \"uid:gid\", e.g. \"0:0\"")),
    }
}

#[cfg(test)]
mod tests;
