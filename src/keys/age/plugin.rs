//! Hardware-key identities and recipients: age plugins (`age-plugin-yubikey`,
//! `age-plugin-fido2-hmac`, `age-plugin-tpm`, …), through age's plugin support.
//!
//! Recipients (`age1<name>1…`) are age's own `RecipientPluginV1`: one plugin process per file
//! wrapped, which needs no PIN. Identities (`AGE-PLUGIN-<NAME>-1…` lines, or `--plugin NAME`) are
//! not handed to age's `IdentityPluginV1`, which starts one plugin session (one PIN, one
//! touch) per file. Instead [`unlock`] reads the header of every age file the run will open,
//! keeps those that no other identity opens, and sends them all to ONE `identity-v1` session
//! per plugin (the protocol numbers the files of a session), driven by age-core's
//! `Connection`. The file keys that come back are kept in zeroizing memory in [`Unwrapped`],
//! an `age::Identity` that hands a file its key when age asks with that file's stanzas; age
//! still checks the header MAC and every payload chunk with it. docs/REKEY.md tells users.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, RwLock};

use age::armor::ArmoredReader;
use age_core::format::{FileKey, Stanza};
use age_core::plugin::{Connection, IDENTITY_V1};
use age_core::secrecy::{ExposeSecret, SecretString};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::escape::escape_message;

/// The program that implements plugin `name`.
pub fn binary_name(name: &str) -> String {
    format!("age-plugin-{name}")
}

/// Where plugin `name`'s program is on `PATH`, never in the current folder (an empty or
/// relative `PATH` entry is skipped: see [`crate::hardening`]); the error names the program to
/// install.
pub fn find(name: &str) -> Result<PathBuf, String> {
    let binary = binary_name(name);
    crate::hardening::find_program(&binary).ok_or_else(|| {
        format!(
            "needs the age plugin program {binary}, which is not on PATH: install {binary} \
             (or add its folder to PATH)"
        )
    })
}

/// A plugin identity and where it came from (an identity file, or `--plugin NAME`), for
/// messages.
#[derive(Clone)]
pub struct PluginIdentity {
    pub identity: age::plugin::Identity,
    pub source: String,
}

/// How plugins talk to the user: vault's prompt (the terminal, or systemd-ask-password
/// without one). Only used before and after the progress bar is drawn, never during it,
/// except for the rare message of a recipient plugin.
#[derive(Clone, Copy, Default)]
pub struct PromptCallbacks;

impl age::Callbacks for PromptCallbacks {
    fn display_message(&self, message: &str) {
        eprintln!("{}", escape_message(message));
    }

    fn confirm(&self, message: &str, yes_string: &str, no_string: Option<&str>) -> Option<bool> {
        if !crate::prompt::has_tty() {
            return None;
        }
        let choices = match no_string {
            Some(no) => format!("[{}/{}]", escape_message(yes_string), escape_message(no)),
            None => format!("[{}]", escape_message(yes_string)),
        };
        let answer =
            crate::prompt::ask_visible(&format!("{} {choices} ", escape_message(message))).ok()?;
        Some(confirmed(&answer, yes_string))
    }

    fn request_public_string(&self, description: &str) -> Option<String> {
        if !crate::prompt::has_tty() {
            return None;
        }
        crate::prompt::ask_visible(&format!("{} ", escape_message(description))).ok()
    }

    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        let text = escape_message(description);
        if crate::prompt::has_tty() {
            return crate::prompt::ask(&format!("{text}: ")).ok();
        }
        // No terminal: the password agents answer (systemd-tty-ask-password-agent from any
        // shell); say so, or the wait would look like a hang.
        eprintln!(
            "{text}: no terminal, asking through {} (answer with systemd-tty-ask-password-agent)",
            crate::prompt::systemd::PROGRAM
        );
        match crate::prompt::systemd::ask_password(&text, "vault:plugin") {
            Ok(s) => Some(s),
            Err(why) => {
                eprintln!("{}", escape_message(&why));
                None
            }
        }
    }
}

/// A plugin's yes/no question is answered yes only by its own yes word (case and surrounding
/// blanks aside): an empty line, a typo or anything else means no.
fn confirmed(answer: &str, yes: &str) -> bool {
    let answer = answer.trim();
    !answer.is_empty() && answer.eq_ignore_ascii_case(yes.trim())
}

/// The recipient stanzas of an age file (armored or not), complete (bodies too), as age's own
/// parser reads them.
pub fn header_stanzas(bytes: &[u8]) -> Result<Vec<Stanza>, String> {
    /// Sees the stanzas age offers it, unwraps nothing.
    struct Look(Mutex<Option<Vec<Stanza>>>);
    impl age::Identity for Look {
        fn unwrap_stanza(&self, _: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
            None
        }
        fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
            *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(stanzas.iter().map(copy).collect());
            None
        }
    }
    let look = Look(Mutex::new(None));
    let decryptor = age::Decryptor::new_buffered(ArmoredReader::new(bytes))
        .map_err(|e| format!("not an age file: {e}"))?;
    // Fails with "no matching keys" by design: Look only reads.
    let _ = decryptor.decrypt(std::iter::once(&look as &dyn age::Identity));
    look.0
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .ok_or_else(|| "not an age file".into())
}

fn copy(s: &Stanza) -> Stanza {
    Stanza {
        tag: s.tag.clone(),
        args: s.args.clone(),
        body: s.body.clone(),
    }
}

/// A file key, wiped when dropped.
type KeyBytes = Zeroizing<[u8; 16]>;

/// Names one file's header: SHA-256 over its stanzas, each field length-prefixed.
fn header_id(stanzas: &[Stanza]) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    for s in stanzas {
        field(s.tag.as_bytes());
        field(&(s.args.len() as u64).to_le_bytes());
        for a in &s.args {
            field(a.as_bytes());
        }
        field(&s.body);
    }
    h.finalize().into()
}

/// File keys a plugin session unwrapped, by header. As an `age::Identity` it answers only for
/// the exact headers it holds a key for; a wrong key still fails age's header MAC check.
#[derive(Default)]
pub struct Unwrapped {
    keys: RwLock<HashMap<[u8; 32], KeyBytes>>,
}

impl Unwrapped {
    fn has(&self, id: &[u8; 32]) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id)
    }
}

impl age::Identity for Unwrapped {
    fn unwrap_stanza(&self, _: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        None
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let key = keys.get(&header_id(stanzas))?;
        Some(Ok(FileKey::init_with_mut(|k| k.copy_from_slice(&key[..]))))
    }
}

/// Unwraps, with one `identity-v1` session per plugin, the file keys of the age files that
/// the other identities (`native`) cannot open. `units`: lists of alternatives, of which one
/// must open (an agenix file alone; a sops key group's entries). A unit that a native
/// identity or an earlier session opens costs the plugin nothing; if none needs a plugin,
/// no plugin runs and no PIN is asked.
pub fn unlock(
    plugins: &[PluginIdentity],
    native: &[&dyn age::Identity],
    units: &[Vec<&[u8]>],
    into: &Unwrapped,
) -> Result<(), String> {
    if plugins.is_empty() {
        return Ok(());
    }
    // Headers the plugins must see, in first-seen order, without duplicates.
    let mut todo: Vec<([u8; 32], Vec<Stanza>)> = Vec::new();
    let mut seen = HashSet::new();
    for unit in units {
        let headers: Vec<Vec<Stanza>> =
            unit.iter().filter_map(|b| header_stanzas(b).ok()).collect();
        let opened = headers.iter().any(|h| {
            into.has(&header_id(h))
                || native
                    .iter()
                    .any(|id| matches!(id.unwrap_stanzas(h), Some(Ok(_))))
        });
        if opened {
            continue;
        }
        for h in headers {
            let id = header_id(&h);
            if seen.insert(id) {
                todo.push((id, h));
            }
        }
    }
    let mut by_plugin: BTreeMap<&str, Vec<&PluginIdentity>> = BTreeMap::new();
    for p in plugins {
        by_plugin.entry(p.identity.plugin()).or_default().push(p);
    }
    for (name, ids) in by_plugin {
        todo.retain(|(id, _)| !into.has(id));
        if todo.is_empty() {
            break;
        }
        let files: Vec<&[Stanza]> = todo.iter().map(|(_, h)| h.as_slice()).collect();
        let keys = session(name, &ids, &files)?;
        let mut map = into.keys.write().unwrap_or_else(PoisonError::into_inner);
        // Room first: a rehash would leave copies of keys in freed memory.
        map.reserve(keys.len());
        for (n, key) in keys {
            map.insert(todo[n].0, key);
        }
    }
    Ok(())
}

/// One `identity-v1` session: every identity of plugin `name`, every file's stanzas (file
/// index = position in `files`). Returns the keys by file index. Any error the plugin reports
/// fails the whole session: the run stops before anything is written.
fn session(
    name: &str,
    ids: &[&PluginIdentity],
    files: &[&[Stanza]],
) -> Result<Vec<(usize, KeyBytes)>, String> {
    use age::Callbacks as _;
    let binary = binary_name(name);
    let sources = || {
        let mut s: Vec<&str> = ids.iter().map(|i| i.source.as_str()).collect();
        s.dedup();
        s.join(", ")
    };
    let path = find(name).map_err(|why| format!("identity {}: {why}", sources()))?;
    let died = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            format!("{binary} stopped in the middle of the session (run with AGEDEBUG=plugin to see why)")
        }
        _ => format!("{binary}: {e}"),
    };
    let mut conn =
        Connection::open(&path, IDENTITY_V1).map_err(|e| format!("cannot start {binary}: {e}"))?;
    conn.unidir_send(|mut phase| {
        for id in ids {
            phase.send("add-identity", &[&id.identity.to_string()], &[])?;
        }
        for (n, stanzas) in files.iter().enumerate() {
            let index = n.to_string();
            for s in stanzas.iter() {
                phase.send_stanza("recipient-stanza", &[&index], s)?;
            }
        }
        Ok(())
    })
    .map_err(died)?;

    let cb = PromptCallbacks;
    // Sized up front: growing would leave copies of keys in freed memory.
    let mut keys: Vec<(usize, KeyBytes)> = Vec::with_capacity(files.len());
    let mut given = HashSet::new();
    let mut errors: Vec<String> = Vec::new();
    conn.bidir_receive(
        &[
            "msg",
            "confirm",
            "request-public",
            "request-secret",
            "file-key",
            "error",
        ],
        |cmd, reply| match cmd.tag.as_str() {
            "msg" => {
                cb.display_message(&String::from_utf8_lossy(&cmd.body));
                reply.ok(None)
            }
            "confirm" => {
                let text = |i: usize| {
                    cmd.args
                        .get(i)
                        .and_then(|a| STANDARD_NO_PAD.decode(a).ok())
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                };
                let Some(yes) = text(0) else {
                    return reply.fail();
                };
                match cb.confirm(
                    &String::from_utf8_lossy(&cmd.body),
                    &yes,
                    text(1).as_deref(),
                ) {
                    Some(v) => reply.ok_with_metadata(&[if v { "yes" } else { "no" }], None),
                    None => reply.fail(),
                }
            }
            "request-public" => {
                match cb.request_public_string(&String::from_utf8_lossy(&cmd.body)) {
                    Some(v) => reply.ok(Some(v.as_bytes())),
                    None => reply.fail(),
                }
            }
            "request-secret" => match cb.request_passphrase(&String::from_utf8_lossy(&cmd.body)) {
                Some(secret) => reply.ok(Some(secret.expose_secret().as_bytes())),
                None => reply.fail(),
            },
            "file-key" => {
                let index = cmd
                    .args
                    .first()
                    .and_then(|a| a.parse::<usize>().ok())
                    .filter(|n| *n < files.len() && given.insert(*n));
                match (index, <[u8; 16]>::try_from(&cmd.body[..])) {
                    (Some(n), Ok(k)) => {
                        keys.push((n, Zeroizing::new(k)));
                        reply.ok(None)
                    }
                    _ => {
                        errors.push("it sent a malformed file key".into());
                        reply.fail()
                    }
                }
            }
            // "error": the only other command asked for.
            _ => {
                let kind = cmd.args.first().map(String::as_str).unwrap_or("internal");
                errors.push(format!(
                    "{} error: {}",
                    escape_message(kind),
                    escape_message(&String::from_utf8_lossy(&cmd.body))
                ));
                reply.ok(None)
            }
        },
    )
    .map_err(died)?;
    if !errors.is_empty() {
        return Err(format!(
            "{binary} (identity {}) failed: {}",
            sources(),
            errors.join("; ")
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_yes_word_confirms() {
        assert!(confirmed("yes", "yes"));
        assert!(confirmed(" Yes\n", "yes"));
        assert!(confirmed("touch", "Touch"));
        for no in ["", " ", "no", "y", "maybe", "yes please", "\u{1b}[A"] {
            assert!(!confirmed(no, "yes"), "{no:?}");
        }
        assert!(!confirmed("", ""), "an empty yes word is never typed");
    }

    #[test]
    fn unwrapped_answers_only_for_its_header() {
        let id = age::x25519::Identity::generate();
        let enc = |s: &[u8]| {
            crate::keys::age::crypt::encrypt(
                s,
                &[crate::keys::age::recipients::parse(&id.to_public().to_string()).unwrap()],
                false,
            )
            .unwrap()
        };
        let (a, b) = (enc(b"a"), enc(b"b"));
        let ha = header_stanzas(&a).unwrap();
        // age may add a grease stanza of a random type.
        assert!(ha.iter().any(|s| s.tag == "X25519"), "{ha:?}");
        let key = age::Identity::unwrap_stanzas(&id, &ha).unwrap().unwrap();
        let u = Unwrapped::default();
        u.keys
            .write()
            .unwrap()
            .insert(header_id(&ha), Zeroizing::new(*key.expose_secret()));
        // Decrypts the file whose header it holds (age checks the MAC), not another one.
        let open = |bytes: &[u8]| {
            let d = age::Decryptor::new_buffered(bytes).unwrap();
            let mut out = Vec::new();
            std::io::Read::read_to_end(
                &mut d.decrypt(std::iter::once(&u as &dyn age::Identity))?,
                &mut out,
            )
            .unwrap();
            Ok::<_, age::DecryptError>(out)
        };
        assert_eq!(open(&a).unwrap(), b"a");
        assert!(matches!(open(&b), Err(age::DecryptError::NoMatchingKeys)));
    }
}
