//! agenix files: rules from `secrets.nix` (evaluated once with `nix-instantiate`, restricted), each file
//! re-encrypted in process to its rule's `publicKeys`.
//!
//! Whether a file is stale is read from its header without decrypting: `ssh-ed25519` and
//! `ssh-rsa` stanzas carry a 4-byte tag of the recipient key, compared as a multiset with the
//! rule's SSH keys. X25519 and plugin stanzas name nobody: a file whose rule has `age1…`
//! recipients (plugin ones, `age1<name>1…`, too) is
//! current only if the rekey record proves it ([`super::record`], docs/REKEY.md). Armor: a file stays armored if it was, and becomes
//! armored if its rule says `armor = true`.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use zeroize::Zeroizing;

use super::{Error, Status};
use crate::keys::age::{crypt, header, Identities, Recipients};
use crate::repo::agenix::rules::{load_rules, AgenixRule};

/// An agenix file and its rule.
pub struct AgenixJob {
    pub path: PathBuf,
    bytes: Vec<u8>,
    pub rule: AgenixRule,
    stanzas: Result<Vec<header::Stanza>, String>,
}

impl AgenixJob {
    fn armored(&self) -> bool {
        header::is_armored(&self.bytes)
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
            .filter_map(|k| header::ssh_tag(k))
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
        // Every other stanza but age's grease: a plugin's (its type is the plugin's choice),
        // scrypt, a type nobody here knows, or an SSH stanza without the tag that would name
        // its key (age hands every stanza to a plugin, which may unwrap it). None of them
        // names its recipient.
        let other: Vec<&str> = stanzas
            .iter()
            .filter(|s| match s.kind.as_str() {
                "X25519" => false,
                "ssh-ed25519" | "ssh-rsa" => s.args.is_empty(),
                k => !header::is_grease(k),
            })
            .map(|s| s.kind.as_str())
            .collect();
        let have_other = other.len();
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
        // A plugin writes one stanza or more per recipient; with plugin recipients in the
        // rule, the record decides the rest. Without any, such a stanza is one the rule does
        // not name (a hardware key taken out of the rule): only the record could vouch for
        // it, and a rule without age1 recipients has no record.
        if have_other < want_plugin {
            why.push(format!(
                "{have_other} plugin stanzas, rule has {want_plugin} plugin recipients"
            ));
        }
        if want_plugin == 0 && have_other > 0 {
            why.push(unnamed_stanzas(&other));
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
    pub fn stanzas(&self) -> Result<&[header::Stanza], &str> {
        self.stanzas.as_deref().map_err(String::as_str)
    }

    /// Whether `ids` open the file (decrypts it fully, so the payload is checked too).
    pub fn open(&self, ids: &Identities) -> Result<(), String> {
        crypt::decrypt(&self.bytes, ids).map(drop)
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
        let plain = crypt::decrypt(&self.bytes, ids)?;
        let armor = self.rule.armor || self.armored();
        // The file key too, for the rekey record.
        crypt::encrypt_keeping_key(&plain, &to, armor)
    }
}

/// "2 stanzas the rule does not name (piv-p256, scrypt)": types from the file, escaped, at
/// most a few of them.
fn unnamed_stanzas(kinds: &[&str]) -> String {
    const SHOWN: usize = 4;
    let mut names: Vec<String> = kinds
        .iter()
        .take(SHOWN)
        .map(|k| crate::escape::escape(&k.chars().take(40).collect::<String>()).into_owned())
        .collect();
    if kinds.len() > SHOWN {
        names.push("…".into());
    }
    format!(
        "{} stanza{} the rule does not name ({})",
        kinds.len(),
        if kinds.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}

pub(crate) fn plan(
    rules_path: &Path,
    keys_file: Option<&Path>,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<Vec<AgenixJob>, Error> {
    let rules = load_rules(rules_path, keys_file)?;
    // Reading the files and their headers in parallel (on the -j workers), kept in rule order.
    // No symbolic link is followed below the secrets.nix folder (see read_repo_file).
    let read: Vec<_> = rules
        .par_iter()
        .map(|rule| crate::repo::files::read_repo_file(&rule.root, &rule.name))
        .collect();
    let mut jobs = Vec::new();
    for (rule, bytes) in rules.into_iter().zip(read) {
        let path = rule.file.clone();
        let Some(bytes) = bytes? else {
            skipped.push((path, "listed in secrets.nix but does not exist".into()));
            continue;
        };
        let stanzas = header::stanzas(&bytes);
        jobs.push(AgenixJob {
            path,
            bytes,
            rule,
            stanzas,
        });
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSH: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN host";

    fn job(public_keys: &[&str], kinds: &[(&str, &str)]) -> AgenixJob {
        AgenixJob {
            path: "s.age".into(),
            bytes: Vec::new(),
            rule: AgenixRule {
                file: "s.age".into(),
                root: ".".into(),
                name: "s.age".into(),
                public_keys: public_keys.iter().map(|k| k.to_string()).collect(),
                armor: false,
            },
            stanzas: Ok(kinds
                .iter()
                .map(|(kind, arg)| header::Stanza {
                    kind: kind.to_string(),
                    args: vec![arg.to_string()],
                })
                .collect()),
        }
    }

    /// Only grease is ignored: a plugin's, an scrypt or an unknown stanza that a rule of SSH
    /// keys does not name makes the file stale, and the reason names its type (escaped).
    #[test]
    fn every_stanza_the_rule_does_not_name_makes_a_file_stale() {
        let tag = header::ssh_tag(SSH).unwrap().1;
        let ssh = ("ssh-ed25519", tag.as_str());
        assert_eq!(job(&[SSH], &[ssh]).status(), Status::Fresh);
        assert_eq!(
            job(&[SSH], &[ssh, ("x)-grease", "a")]).status(),
            Status::Fresh
        );
        for extra in [
            "vaulttest",
            "piv-p256",
            "scrypt",
            "X25519-but-not",
            "ssh-ed25519x",
            "grease",
            "evil\u{1b}[2J",
        ] {
            let Status::Stale(why) = job(&[SSH], &[ssh, (extra, "a")]).status() else {
                panic!("{extra}: current");
            };
            assert!(why.contains("1 stanza the rule does not name"), "{why}");
            assert!(!why.contains('\u{1b}'), "{why}");
        }
        let many = job(
            &[SSH],
            &[
                ssh,
                ("a", "1"),
                ("b", "1"),
                ("c", "1"),
                ("d", "1"),
                ("e", "1"),
            ],
        )
        .status();
        assert!(
            matches!(&many, Status::Stale(w) if w.starts_with("5 stanzas the rule does not name (a, b, c, d, …)")),
            "{many:?}"
        );
        // A rule with a plugin recipient leaves plugin stanzas to the rekey record.
        let yk = "age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t";
        assert_eq!(
            job(&[SSH, yk], &[ssh, ("piv-p256", "a")]).status(),
            Status::Fresh
        );
        assert!(matches!(
            job(&[SSH, yk], &[ssh]).status(),
            Status::Stale(w) if w.contains("0 plugin stanzas")
        ));
        // An SSH stanza without a tag names no key of the rule, and nobody's but whoever
        // unwraps it (age hands every stanza to a plugin): stale.
        for kind in ["ssh-ed25519", "ssh-rsa"] {
            let mut bare = job(&[SSH], &[ssh]);
            if let Ok(s) = &mut bare.stanzas {
                s.push(header::Stanza {
                    kind: kind.into(),
                    args: Vec::new(),
                });
            }
            assert!(
                matches!(&bare.status(), Status::Stale(w) if w.contains("1 stanza the rule does not name")),
                "{kind}: {:?}",
                bare.status()
            );
        }
        // An X25519 stanza a rule of SSH keys does not name: stale, as before.
        assert!(matches!(
            job(&[SSH], &[ssh, ("X25519", "a")]).status(),
            Status::Stale(w) if w.contains("1 X25519 recipients, rule has 0")
        ));
    }
}
