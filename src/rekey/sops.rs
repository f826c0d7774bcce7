//! sops files: `sops updatekeys` semantics for age recipients.
//!
//! The recipients come from the first `.sops.yaml` creation rule whose `path_regex` matches
//! the file's path relative to the `.sops.yaml` folder (Go's `MatchString`: an unanchored
//! search; Rust's `regex` has the same RE2 syntax). A rule's `age` is a comma-separated string
//! or a list; with `key_groups`, each group has its own list.
//!
//! Per key group, every `enc` wraps the same secret (the data key, or with several groups that
//! group's Shamir share), so a group is rekeyed by opening any one of its entries and wrapping
//! the result for every recipient of the rule: one armored single-recipient age file per
//! recipient, as sops writes them. A group whose recipients change gets every entry written
//! anew, those of recipients that stay too: an entry's `recipient` is a label that nothing
//! binds to its `enc` (an X25519 stanza cannot be matched to a public key without that key's
//! secret), so a kept entry could still wrap the key for someone the rule removed. A group
//! whose labels already match the rule is current and left byte for byte, as `sops
//! updatekeys` leaves it (docs/REKEY.md: what that does not prove). Values, `mac`, `lastmodified` and the non-age key entries are never
//! touched: only the text of the `age` lists changes, spliced into the file (see `repo::sops`), and the result is parsed back and compared with the original
//! before it is accepted.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use zeroize::Zeroizing;

use super::sops_entries::group_mismatch;
use super::{Error, Status};
use crate::keys::age::{crypt, Identities, Recipients};
use crate::repo::sops::config::SopsConfig;
use crate::repo::sops::entries::{AgeEntry, Groups};
use crate::repo::sops::format::Format;

/// A sops file and what its rule wants.
pub struct SopsJob {
    pub path: PathBuf,
    pub format: Format,
    text: String,
    pub current: Groups,
    pub desired: Vec<Vec<String>>,
    pub rule: usize,
}

fn same_set(a: &[AgeEntry], b: &[String]) -> bool {
    let mut x: Vec<&str> = a.iter().map(|e| e.recipient.as_str()).collect();
    let mut y: Vec<&str> = b.iter().map(String::as_str).collect();
    x.sort_unstable();
    y.sort_unstable();
    x == y
}

impl SopsJob {
    /// The key groups a rekey re-wraps: (current entries, the rule's recipients).
    pub(crate) fn changing_groups(&self) -> impl Iterator<Item = (&[AgeEntry], &[String])> {
        self.current
            .iter()
            .zip(&self.desired)
            .filter(|(cur, want)| !same_set(cur, want) || group_mismatch(cur).is_some())
            .map(|(c, w)| (c.as_slice(), w.as_slice()))
    }

    pub(crate) fn original(&self) -> &[u8] {
        self.text.as_bytes()
    }

    pub(crate) fn status(&self) -> Status {
        if self.current.len() != self.desired.len() {
            return Status::Stale(format!(
                "{} key groups in the file, {} in creation rule {}",
                self.current.len(),
                self.desired.len(),
                self.rule
            ));
        }
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for (cur, want) in self.current.iter().zip(&self.desired) {
            if same_set(cur, want) {
                continue;
            }
            added.extend(
                want.iter()
                    .filter(|w| !cur.iter().any(|c| &c.recipient == *w))
                    .cloned(),
            );
            removed.extend(
                cur.iter()
                    .filter(|c| !want.contains(&c.recipient))
                    .map(|c| c.recipient.clone()),
            );
        }
        // Labels that already match the rule are taken as current, as `sops updatekeys`
        // takes them (module docs; REKEY.md says why and what it does not prove), once each
        // entry holds what its label says (sops_entries).
        if !added.is_empty() || !removed.is_empty() {
            return Status::Stale(describe_change(&added, &removed));
        }
        match self.current.iter().find_map(|g| group_mismatch(g)) {
            Some(why) => Status::Stale(why),
            None => Status::Fresh,
        }
    }

    /// The rekeyed file text.
    pub(crate) fn rekey(
        &self,
        ids: &Identities,
        recipients: &Recipients,
    ) -> Result<String, String> {
        if self.current.len() != self.desired.len() {
            return Err(format!(
                "the file has {} key groups but creation rule {} has {}; vault does not re-split keys, run `sops updatekeys {}`",
                self.current.len(),
                self.rule,
                self.desired.len(),
                self.path.display()
            ));
        }
        let mut groups = Groups::new();
        for (g, (cur, want)) in self.current.iter().zip(&self.desired).enumerate() {
            if same_set(cur, want) && group_mismatch(cur).is_none() {
                groups.push(cur.clone());
                continue;
            }
            if want.is_empty() {
                return Err(format!(
                    "creation rule {} leaves key group {} without age recipients; vault does not remove whole groups, use `sops updatekeys`",
                    self.rule,
                    g + 1
                ));
            }
            let secret = match open_group(cur, ids) {
                Ok(secret) => secret,
                Err(why) if self.current.len() > 1 => {
                    return Err(format!("key group {}: {why}", g + 1))
                }
                Err(why) => return Err(why),
            };
            // A group that changes gets every entry written anew, those of recipients that
            // stay too: a kept entry's label proves nothing about whom its enc is for.
            let mut entries = Vec::new();
            for r in want {
                let to = [recipients.get(r)?];
                let enc = crypt::encrypt(&secret, &to, true)?;
                entries.push(AgeEntry {
                    recipient: r.clone(),
                    enc: String::from_utf8(enc).map_err(|_| "armor is not text".to_string())?,
                });
            }
            groups.push(entries);
        }
        let out = self.format.write(&self.text, &groups)?;
        // Accept the splice only if it reads back as intended, with nothing else changed.
        if self.format.read(&out)?.as_ref() != Some(&groups) {
            return Err(
                "internal error: the rewritten metadata does not read back; file left as it was"
                    .into(),
            );
        }
        if !self.format.same_apart_from_age(&self.text, &out)? {
            return Err(
                "internal error: rewriting changed more than the age entries; file left as it was"
                    .into(),
            );
        }
        Ok(out)
    }
}

/// Opens any entry of a group: the data key (or Shamir share) it wraps.
pub(crate) fn open_group(
    entries: &[AgeEntry],
    ids: &Identities,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut last = None;
    for e in entries {
        match crypt::decrypt(e.enc.as_bytes(), ids) {
            Ok(k) => return Ok(k),
            Err(why) => last = Some(why),
        }
    }
    // An entry for a recipient whose identity was given that does not open: the identity is
    // right, so the entry is damaged (a bad merge, an edit by hand, a truncated copy).
    if let Some((n, e, file)) = entries
        .iter()
        .enumerate()
        .find_map(|(n, e)| ids.file_of(&e.recipient).map(|f| (n, e, f)))
    {
        return Err(format!(
            "damaged: its age entry {} (recipient {}) does not open with {}, the identity of that recipient{}; restore the file from git, or re-create it with sops",
            n + 1,
            e.recipient,
            file.display(),
            match &last {
                Some(why) if !why.contains("no identity") => format!(" ({why})"),
                _ => String::new(),
            }
        ));
    }
    let names: Vec<&str> = entries.iter().map(|e| e.recipient.as_str()).collect();
    Err(match last {
        Some(why) if why.contains("no identity") || names.is_empty() => format!(
            "no identity given opens it (its age recipients: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
        Some(why) => why,
        None => "it has no age entries to open".into(),
    })
}

pub(crate) fn describe_change(added: &[String], removed: &[String]) -> String {
    // Whole recipients: a script reading `--json` acts on them, and two keys may share a
    // prefix. The printer escapes and bounds them.
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("+{}", added.join(" +")));
    }
    if !removed.is_empty() {
        parts.push(format!("-{}", removed.join(" -")));
    }
    parts.join(" ")
}

/// Reads one file as a sops file of its extension's format; `Ok(None)` if it is not one.
/// A link put in its place since the walk found it is not followed.
pub fn read_file(path: &Path) -> Result<Option<(Format, String, Groups)>, Error> {
    let bytes =
        crate::repo::files::read_no_follow(path).map_err(|e| Error::io("cannot read", path, e))?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(None);
    };
    let format = Format::of(path);
    match format.read(&text) {
        Ok(Some(groups)) => Ok(Some((format, text, groups))),
        Ok(None) => Ok(None),
        Err(why) => {
            Err(crate::repo::Error::config(path, format!("damaged sops metadata: {why}")).into())
        }
    }
}

/// Every sops file under the config's folder that a creation rule matches.
pub(crate) fn plan(
    config_path: &Path,
    exclude: &[PathBuf],
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<Vec<SopsJob>, Error> {
    let config = SopsConfig::load(config_path)?;
    let mut files = Vec::new();
    walk(&config.dir, &mut files)?;
    let mut candidates = Vec::new();
    for path in files {
        if path == config.path || exclude.contains(&path) {
            continue;
        }
        let rel = path
            .strip_prefix(&config.dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        if let Some(rule) = config.rule_for(&rel) {
            candidates.push((path, rule));
        }
    }
    // Reading and parsing a thousand files is most of planning: on the -j workers, in order.
    let read: Vec<_> = candidates
        .par_iter()
        .map(|(path, _)| read_file(path))
        .collect();
    let mut jobs = Vec::new();
    for ((path, rule), r) in candidates.into_iter().zip(read) {
        match r? {
            Some((format, text, current)) => jobs.push(SopsJob {
                path,
                format,
                text,
                current,
                desired: rule.groups.clone(),
                rule: rule.index,
            }),
            None => skipped.push((
                path,
                format!(
                    "matches creation rule {} but is not sops-encrypted",
                    rule.index
                ),
            )),
        }
    }
    Ok(jobs)
}

/// Regular files below `dir`, sorted; hidden directories (`.git`, …), symlinks and vault's
/// own temporaries are skipped.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
    let mut entries: Vec<_> = rd
        .collect::<Result<_, _>>()
        .map_err(|e| Error::io("cannot list", dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let ft = e
            .file_type()
            .map_err(|err| Error::io("cannot stat", e.path(), err))?;
        if ft.is_dir() && !name.starts_with('.') {
            walk(&e.path(), out)?;
        } else if ft.is_file() && !super::commit::is_temp_name(&name) && name != ".sops.yaml" {
            out.push(e.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_in_place_of_a_repo_file_is_not_read() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside.yaml");
        std::fs::write(&outside, "sops:\n  mac: x\n").unwrap();
        let link = t.path().join("repo.yaml");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(crate::repo::files::read_no_follow(&link).is_err());
        assert!(read_file(&link).is_err());
        assert!(crate::repo::files::read_no_follow(&outside).is_ok());
    }
}
