//! agenix files: rules from `secrets.nix` (evaluated once with `nix-instantiate`), each file
//! re-encrypted in process to its rule's `publicKeys`.
//!
//! Whether a file is stale is read from its header without decrypting: `ssh-ed25519` and
//! `ssh-rsa` stanzas carry a 4-byte tag of the recipient key, compared as a multiset with the
//! rule's SSH keys. X25519 and plugin stanzas name nobody: a file whose rule has `age1…`
//! recipients (plugin ones, `age1<name>1…`, too) is
//! current only if the rekey record proves it ([`super::record`], docs/REKEY.md). Armor: a file stays armored if it was, and becomes
//! armored if its rule says `armor = true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use rayon::prelude::*;
use zeroize::Zeroizing;

use super::{age_util, Error, Identities, Recipients, Status};

/// One entry of `secrets.nix`.
#[derive(Debug, Clone)]
pub struct AgenixRule {
    /// `root` joined with `name`, for messages.
    pub file: PathBuf,
    /// The folder of `secrets.nix`, as the manifest names it.
    pub root: PathBuf,
    /// The rule's attribute name: the file's path relative to `root`.
    pub name: PathBuf,
    pub public_keys: Vec<String>,
    pub armor: bool,
}

/// Evaluates `secrets.nix` once.
pub fn load_rules(path: &Path) -> Result<Vec<AgenixRule>, Error> {
    let abs = std::fs::canonicalize(path).map_err(|e| Error::io("cannot find", path, e))?;
    // Files are named relative to secrets.nix as the manifest names it (for messages and to
    // line up with the sops walk); nix runs on the canonical path.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(&abs)
        .current_dir(abs.parent().unwrap_or(Path::new("/")))
        .output()
        .map_err(|e| Error::Nix {
            path: path.into(),
            message: format!("cannot run nix-instantiate: {e}"),
        })?;
    if !out.status.success() {
        return Err(Error::Nix {
            path: path.into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| Error::Nix {
        path: path.into(),
        message: format!("output is not JSON: {e}"),
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| Error::config(path, "does not evaluate to an attribute set"))?;
    let mut rules = Vec::new();
    for (name, rule) in obj {
        let bad = |m: &str| Error::config(path, format!("{name:?}: {m}"));
        let keys = rule
            .get("publicKeys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| bad("no publicKeys list"))?
            .iter()
            .map(|k| {
                k.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| bad("a public key is not a string"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let armor = rule.get("armor").and_then(|a| a.as_bool()).unwrap_or(false);
        if name.contains("..") || Path::new(name).is_absolute() {
            return Err(bad("file names must stay inside the secrets.nix folder"));
        }
        rules.push(AgenixRule {
            file: dir.join(name),
            root: dir.clone(),
            name: PathBuf::from(name),
            public_keys: keys,
            armor,
        });
    }
    rules.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(rules)
}

/// An agenix file and its rule.
pub struct AgenixJob {
    pub path: PathBuf,
    bytes: Vec<u8>,
    pub rule: AgenixRule,
    stanzas: Result<Vec<age_util::Stanza>, String>,
}

impl AgenixJob {
    fn armored(&self) -> bool {
        age_util::is_armored(&self.bytes)
    }

    pub(crate) fn status(&self) -> Status {
        let stanzas = match &self.stanzas {
            Ok(s) => s,
            Err(why) => return Status::Stale(format!("unreadable: {why}")),
        };
        let mut have_ssh: Vec<(String, String)> = stanzas
            .iter()
            .filter(|s| s.kind == "ssh-ed25519" || s.kind == "ssh-rsa")
            .filter_map(|s| s.args.first().map(|t| (s.kind.clone(), t.clone())))
            .collect();
        let have_x = stanzas.iter().filter(|s| s.kind == "X25519").count();
        let mut want_ssh: Vec<(String, String)> = self
            .rule
            .public_keys
            .iter()
            .filter(|k| k.starts_with("ssh-"))
            .filter_map(|k| age_util::ssh_tag(k))
            .collect();
        // `age1<name>1…` are plugin recipients, whose stanzas have the plugin's own types.
        let is_plugin = |k: &str| k.parse::<age::plugin::Recipient>().is_ok();
        let want_x = self
            .rule
            .public_keys
            .iter()
            .filter(|k| k.starts_with("age1") && !is_plugin(k))
            .count();
        let want_plugin = self
            .rule
            .public_keys
            .iter()
            .filter(|k| is_plugin(k))
            .count();
        let have_other = stanzas
            .iter()
            .filter(|s| !matches!(s.kind.as_str(), "X25519" | "ssh-ed25519" | "ssh-rsa"))
            .count();
        have_ssh.sort();
        want_ssh.sort();
        let mut why = Vec::new();
        if have_ssh != want_ssh {
            let added = want_ssh.iter().filter(|w| !have_ssh.contains(w)).count();
            let removed = have_ssh.iter().filter(|h| !want_ssh.contains(h)).count();
            why.push(format!("SSH recipients +{added} -{removed}"));
        }
        // Equal counts prove nothing for X25519 (one age1 key swapped for another looks the
        // same): the rekey record decides those files (`super::plan`).
        if have_x != want_x {
            why.push(format!("{have_x} X25519 recipients, rule has {want_x}"));
        }
        // A plugin writes one stanza or more per recipient; the record decides the rest.
        if have_other < want_plugin {
            why.push(format!(
                "{have_other} plugin stanzas, rule has {want_plugin} plugin recipients"
            ));
        }
        if self.rule.armor && !self.armored() {
            why.push("rule asks for armor".into());
        }
        if why.is_empty() {
            Status::Fresh
        } else {
            Status::Stale(why.join(", "))
        }
    }

    pub(crate) fn original(&self) -> &[u8] {
        &self.bytes
    }

    /// The recipient stanzas of the file's header.
    pub fn stanzas(&self) -> Result<&[age_util::Stanza], &str> {
        self.stanzas.as_deref().map_err(String::as_str)
    }

    /// Whether `ids` open the file (decrypts it fully, so the payload is checked too).
    pub fn open(&self, ids: &Identities) -> Result<(), String> {
        age_util::decrypt(&self.bytes, ids).map(drop)
    }

    pub(crate) fn rekey(
        &self,
        ids: &Identities,
        recipients: &Recipients,
    ) -> Result<(Vec<u8>, Zeroizing<[u8; 16]>), String> {
        if self.rule.public_keys.is_empty() {
            return Err("its rule in secrets.nix has no publicKeys".into());
        }
        let to = recipients.all(&self.rule.public_keys)?;
        let plain = age_util::decrypt(&self.bytes, ids)?;
        let armor = self.rule.armor || self.armored();
        // The file key too, for the rekey record.
        super::record::encrypt(&plain, &to, armor)
    }
}

pub(crate) fn plan(
    rules_path: &Path,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<Vec<AgenixJob>, Error> {
    let rules = load_rules(rules_path)?;
    // Reading the files and their headers in parallel (on the -j workers), kept in rule order.
    // No symbolic link is followed below the secrets.nix folder (see read_repo_file).
    let read: Vec<_> = rules
        .par_iter()
        .map(|rule| super::commit::read_repo_file(&rule.root, &rule.name))
        .collect();
    let mut jobs = Vec::new();
    for (rule, bytes) in rules.into_iter().zip(read) {
        let path = rule.file.clone();
        let Some(bytes) = bytes? else {
            skipped.push((path, "listed in secrets.nix but does not exist".into()));
            continue;
        };
        let stanzas = age_util::stanzas(&bytes);
        jobs.push(AgenixJob {
            path,
            bytes,
            rule,
            stanzas,
        });
    }
    Ok(jobs)
}
