//! The rekey record: proof that an agenix file with `age1…` recipients is current.
//!
//! An X25519 stanza does not say whom it is for, so an agenix file whose rule lists `age1…`
//! keys cannot be checked from its header. Instead, each time vault encrypts such a file it
//! notes, in `.vault-rekey.json` beside `secrets.nix`, a MAC binding the file's name, its exact
//! bytes and its rule's recipients, keyed from the file's own file key:
//!
//! ```text
//! key = HKDF-SHA-256(ikm = file key, salt = "", info = "vault rekey record v1")
//! mac = HMAC-SHA-256(key, "vault rekey record v1" 0x00
//!                         || u32be(len name) || name || SHA-256(file bytes)
//!                         || u32be(n) || n × (u32be(len r) || r))   recipients sorted
//! ```
//!
//! A file is current when its entry's digest and recipients match the file and the rule, and
//! the MAC verifies under the file key that decrypting the file (header MAC and every payload
//! chunk authenticated) actually used. Computing the MAC needs that key, so only someone who
//! can decrypt the file can write a valid entry for it: writing the repo alone is not enough
//! (docs/REKEY.md, "The rekey record").

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::agenix::AgenixJob;
use super::Error;
use crate::keys::age::Identities;

/// The record's name, in the folder of `secrets.nix`.
pub const FILE_NAME: &str = ".vault-rekey.json";

const LABEL: &[u8] = b"vault rekey record v1";
/// A record is small (a few hundred bytes per file); anything far larger is not one.
const MAX_BYTES: u64 = 64 << 20;

/// An entry with its file's name in the record.
pub type Named = (String, Entry);

/// One file's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// The rule's recipients, canonical and sorted.
    pub recipients: Vec<String>,
    /// The MAC, hex.
    pub mac: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contents {
    version: u32,
    /// By file name relative to the folder of `secrets.nix`.
    files: BTreeMap<String, Entry>,
}

/// The record of one `secrets.nix`, as read when planning.
#[derive(Debug)]
pub struct Record {
    pub path: PathBuf,
    /// Its bytes when read (None: there was none).
    pub(crate) original: Option<Vec<u8>>,
    /// The `secrets.nix` it belongs to (a new record takes its mode and owner).
    pub(crate) rules: PathBuf,
    dir: PathBuf,
    files: BTreeMap<String, Entry>,
}

/// Whether an agenix rule needs the record: it lists an `age1…` recipient.
pub fn needs_record(public_keys: &[String]) -> bool {
    public_keys.iter().any(|k| k.trim().starts_with("age1"))
}

/// A recipient list in the record's canonical form: SSH keys without their comment, sorted.
pub fn canonical(public_keys: &[String]) -> Vec<String> {
    let mut out: Vec<String> = public_keys
        .iter()
        .map(|k| {
            let k = k.trim();
            if k.starts_with("ssh-") {
                k.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
            } else {
                k.to_string()
            }
        })
        .collect();
    out.sort();
    out
}

fn mac(key: &[u8; 16], name: &str, bytes: &[u8], recipients: &[String]) -> Hmac<Sha256> {
    let k = Zeroizing::new(age_core::primitives::hkdf(b"", LABEL, key));
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(k.as_ref()).expect("HMAC takes any key");
    m.update(LABEL);
    m.update(&[0]);
    m.update(&(name.len() as u32).to_be_bytes());
    m.update(name.as_bytes());
    m.update(&Sha256::digest(bytes));
    m.update(&(recipients.len() as u32).to_be_bytes());
    for r in recipients {
        m.update(&(r.len() as u32).to_be_bytes());
        m.update(r.as_bytes());
    }
    m
}

impl Entry {
    /// The entry for a file vault just encrypted with `key` to `public_keys`.
    pub fn new(key: &[u8; 16], name: &str, bytes: &[u8], public_keys: &[String]) -> Entry {
        let recipients = canonical(public_keys);
        let tag = mac(key, name, bytes, &recipients).finalize().into_bytes();
        Entry {
            sha256: hex::encode(Sha256::digest(bytes)),
            recipients,
            mac: hex::encode(tag),
        }
    }
}

impl Record {
    /// Reads the record beside `rules` (`secrets.nix`); none is an empty record.
    pub fn load(rules: &Path) -> Result<Record, Error> {
        let dir = match rules.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let path = dir.join(FILE_NAME);
        let bad = |m: String| {
            Error::from(crate::repo::Error::config(
                &path,
                format!("{m}; remove the file to have the agenix files with age1 recipients re-encrypted and recorded anew"),
            ))
        };
        // Not following a link (it could read a file outside the repo) and not blocking on
        // a FIFO; anything but a regular file is refused.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
            )
            .open(&path);
        let original = match opened {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(bad(
                    "is a symbolic link; vault does not follow links inside the secrets repo"
                        .into(),
                ));
            }
            Ok(f) if !f.metadata().is_ok_and(|m| m.is_file()) => {
                return Err(bad("is not a regular file".into()));
            }
            Ok(f) => {
                let mut b = Vec::new();
                f.take(MAX_BYTES + 1)
                    .read_to_end(&mut b)
                    .map_err(|e| Error::io("cannot read", &path, e))?;
                if b.len() as u64 > MAX_BYTES {
                    return Err(bad(format!("larger than {MAX_BYTES} bytes")));
                }
                Some(b)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        let files = match &original {
            None => BTreeMap::new(),
            Some(b) => {
                let c: Contents = serde_json::from_slice(b)
                    .map_err(|e| bad(format!("not a vault rekey record: {e}")))?;
                if c.version != 1 {
                    return Err(bad(format!("record version {} is not 1", c.version)));
                }
                c.files
            }
        };
        Ok(Record {
            path,
            original,
            rules: rules.to_path_buf(),
            dir,
            files,
        })
    }

    /// The file's name in the record (relative to the folder of `secrets.nix`).
    pub fn name(&self, file: &Path) -> String {
        file.strip_prefix(&self.dir)
            .unwrap_or(file)
            .to_string_lossy()
            .into_owned()
    }

    /// Without a key: whether `job` may be current (Ok, to be verified with [`verify`]) or
    /// why it is not.
    pub fn precheck(&self, job: &AgenixJob) -> Result<(), String> {
        let Some(e) = self.files.get(&self.name(&job.path)) else {
            return Err(format!(
                "age1 recipients and no entry in {FILE_NAME} (encrypted outside vault)"
            ));
        };
        if e.sha256 != hex::encode(Sha256::digest(job.original())) {
            return Err(format!(
                "changed since vault encrypted it (its {FILE_NAME} entry is for other bytes)"
            ));
        }
        if e.recipients != canonical(&job.rule.public_keys) {
            return Err("recipients changed in secrets.nix".into());
        }
        Ok(())
    }

    /// With a key: whether `ids` decrypt `job` and its entry's MAC verifies under the file key
    /// that decryption used. Call after [`precheck`] succeeded.
    pub fn verify(&self, job: &AgenixJob, ids: &Identities) -> Result<(), String> {
        let name = self.name(&job.path);
        let entry = self.files.get(&name).ok_or("no record entry")?;
        let tag = hex::decode(&entry.mac).map_err(|_| format!("{FILE_NAME}: bad mac"))?;
        let key = crate::keys::age::crypt::decrypt_keeping_key(job.original(), ids.iter())?;
        mac(&key, &name, job.original(), &entry.recipients)
            .verify_slice(&tag)
            .map_err(|_| {
                format!(
                    "its {FILE_NAME} entry does not verify (not written by vault for this file)"
                )
            })
    }

    /// The record after a rekey: `kept` entries (verified current) and `new` ones (just
    /// written), nothing else. None when its bytes would not change.
    pub fn updated(&self, kept: &[String], new: Vec<Named>) -> Option<Vec<u8>> {
        let mut files: BTreeMap<String, Entry> = kept
            .iter()
            .filter_map(|n| self.files.get(n).map(|e| (n.clone(), e.clone())))
            .collect();
        files.extend(new);
        if files.is_empty() && self.original.is_none() {
            return None;
        }
        let mut text = serde_json::to_string_pretty(&Contents { version: 1, files })
            .expect("the record serializes");
        text.push('\n');
        (self.original.as_deref() != Some(text.as_bytes())).then(|| text.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_binds_name_bytes_and_recipients() {
        let key = [7u8; 16];
        let keys = vec!["age1b".to_string(), "ssh-ed25519 AAAA comment".to_string()];
        let e = Entry::new(&key, "a.age", b"bytes", &keys);
        assert_eq!(e.recipients, ["age1b", "ssh-ed25519 AAAA"]);
        let check = |k: &[u8; 16], name: &str, bytes: &[u8], r: &[String]| {
            mac(k, name, bytes, r)
                .verify_slice(&hex::decode(&e.mac).unwrap())
                .is_ok()
        };
        assert!(check(&key, "a.age", b"bytes", &e.recipients));
        assert!(!check(&[8; 16], "a.age", b"bytes", &e.recipients));
        assert!(!check(&key, "b.age", b"bytes", &e.recipients));
        assert!(!check(&key, "a.age", b"bytez", &e.recipients));
        assert!(!check(&key, "a.age", b"bytes", &["age1b".into()]));
    }

    /// A FIFO in the record's place would block `load` forever, a link would read a file
    /// outside the repo: both are refused, promptly, naming the record.
    #[test]
    fn a_record_that_is_not_a_regular_file_is_refused_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        let rules = t.path().join("secrets.nix");
        let record = t.path().join(FILE_NAME);
        let outside = t.path().join("elsewhere.json");
        std::fs::write(&outside, r#"{"version":1,"files":{}}"#).unwrap();
        std::os::unix::fs::symlink(&outside, &record).unwrap();
        let e = Record::load(&rules)
            .expect_err("a link is refused")
            .to_string();
        assert!(e.contains(FILE_NAME), "{e}");
        std::fs::remove_file(&record).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &record,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let r = rules.clone();
        std::thread::spawn(move || {
            tx.send(Record::load(&r).map(|_| ()).map_err(|e| e.to_string()))
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("load of a FIFO record returns instead of blocking");
        let e = got.expect_err("a FIFO is refused");
        assert!(e.contains(FILE_NAME) && e.contains("regular file"), "{e}");
    }
}
