//! age-plugin-vaulttest: a software stand-in for a hardware key, for tests/rekey_plugin.rs.
//!
//! It "holds" an X25519 key derived from its identity's data (or, for the default identity of
//! `-j vaulttest`, from `$VAULTTEST_DEFAULT_SEED`), wraps file keys to it in `vaulttest`
//! stanzas, and before unwrapping asks for a PIN through the protocol's `request-secret`, as
//! age-plugin-yubikey does. Environment:
//! - `VAULTTEST_COUNTER`: a file it appends one line to per session (`identity-session`,
//!   `recipient-session`) and per PIN request (`pin`);
//! - `VAULTTEST_PIN`: the PIN it expects (default `1234`); `VAULTTEST_NO_PIN`: ask none;
//! - `VAULTTEST_FAIL_AFTER=N`: unwrap the first N files of a session, fail the others;
//! - `VAULTTEST_CONFIRM`: ask a yes/no `confirm` before unwrapping, refuse unless yes.
//!
//! `age-plugin-vaulttest --keygen SEED` prints an identity file and its recipient.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use age_core::format::{FileKey, Stanza};
use age_core::primitives::{aead_decrypt, aead_encrypt, hkdf};
use age_core::secrecy::ExposeSecret;
use age_plugin::{identity, recipient, run_state_machine, Callbacks, PluginHandler};
use base64::{prelude::BASE64_STANDARD_NO_PAD, Engine};
use curve25519_dalek::montgomery::MontgomeryPoint;
use rand::RngCore;

const NAME: &str = "vaulttest";
const LABEL: &[u8] = b"age-plugin-vaulttest";

fn secret_of(seed: &[u8]) -> [u8; 32] {
    let seed = if seed.is_empty() {
        std::env::var("VAULTTEST_DEFAULT_SEED")
            .unwrap_or_default()
            .into_bytes()
    } else {
        seed.to_vec()
    };
    hkdf(&[], LABEL, &seed)
}

fn public_of(secret: &[u8; 32]) -> [u8; 32] {
    MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

fn count(line: &str) {
    if let Some(path) = std::env::var_os("VAULTTEST_COUNTER") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("counter file");
        // One write(2) per line: plugin processes run in parallel, appends must not interleave.
        f.write_all(format!("{line}\n").as_bytes())
            .expect("counter file");
    }
}

fn wrap(pk: &[u8; 32], file_key: &FileKey) -> Stanza {
    let mut esk = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut esk);
    let epk = public_of(&esk);
    let shared = MontgomeryPoint(*pk).mul_clamped(esk).to_bytes();
    let mut salt = epk.to_vec();
    salt.extend_from_slice(pk);
    let key = hkdf(&salt, LABEL, &shared);
    Stanza {
        tag: NAME.into(),
        args: vec![BASE64_STANDARD_NO_PAD.encode(epk)],
        body: aead_encrypt(&key, file_key.expose_secret()),
    }
}

fn unwrap(secret: &[u8; 32], s: &Stanza) -> Option<FileKey> {
    if s.tag != NAME || s.args.len() != 1 {
        return None;
    }
    let epk: [u8; 32] = BASE64_STANDARD_NO_PAD
        .decode(&s.args[0])
        .ok()?
        .try_into()
        .ok()?;
    let pk = public_of(secret);
    let shared = MontgomeryPoint(epk).mul_clamped(*secret).to_bytes();
    let mut salt = epk.to_vec();
    salt.extend_from_slice(&pk);
    let key = hkdf(&salt, LABEL, &shared);
    let plain = aead_decrypt(&key, 16, &s.body).ok()?;
    let bytes: [u8; 16] = plain.try_into().ok()?;
    Some(FileKey::new(Box::new(bytes)))
}

struct Handler;

impl PluginHandler for Handler {
    type RecipientV1 = Recipient;
    type IdentityV1 = Identity;

    fn recipient_v1(self) -> io::Result<Recipient> {
        Ok(Recipient(Vec::new()))
    }

    fn identity_v1(self) -> io::Result<Identity> {
        Ok(Identity(Vec::new()))
    }
}

struct Recipient(Vec<[u8; 32]>);

impl recipient::RecipientPluginV1 for Recipient {
    fn add_recipient(
        &mut self,
        index: usize,
        _: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        let pk = bytes.try_into().map_err(|_| recipient::Error::Recipient {
            index,
            message: "not a vaulttest recipient".into(),
        })?;
        self.0.push(pk);
        Ok(())
    }

    fn add_identity(&mut self, _: usize, _: &str, bytes: &[u8]) -> Result<(), recipient::Error> {
        self.0.push(public_of(&secret_of(bytes)));
        Ok(())
    }

    fn labels(&mut self) -> HashSet<String> {
        HashSet::new()
    }

    fn wrap_file_keys(
        &mut self,
        file_keys: Vec<FileKey>,
        _: impl Callbacks<recipient::Error>,
    ) -> io::Result<Result<Vec<Vec<Stanza>>, Vec<recipient::Error>>> {
        count(&format!("recipient-session keys={}", file_keys.len()));
        Ok(Ok(file_keys
            .iter()
            .map(|k| self.0.iter().map(|pk| wrap(pk, k)).collect())
            .collect()))
    }
}

struct Identity(Vec<[u8; 32]>);

impl identity::IdentityPluginV1 for Identity {
    fn add_identity(&mut self, _: usize, _: &str, bytes: &[u8]) -> Result<(), identity::Error> {
        self.0.push(secret_of(bytes));
        Ok(())
    }

    fn unwrap_file_keys(
        &mut self,
        files: Vec<Vec<Stanza>>,
        mut callbacks: impl Callbacks<identity::Error>,
    ) -> io::Result<HashMap<usize, Result<FileKey, Vec<identity::Error>>>> {
        count(&format!("identity-session files={}", files.len()));
        let mut out = HashMap::new();
        let ours = files.iter().any(|f| f.iter().any(|s| s.tag == NAME));
        if ours && std::env::var_os("VAULTTEST_NO_PIN").is_none() {
            count("pin");
            let want = std::env::var("VAULTTEST_PIN").unwrap_or_else(|_| "1234".into());
            let pin = match callbacks.request_secret("Enter the PIN of the vaulttest key")? {
                Ok(pin) => pin,
                Err(_) => {
                    let _ = callbacks.error(identity::Error::Identity {
                        index: 0,
                        message: "no PIN given".into(),
                    })?;
                    return Ok(out);
                }
            };
            if pin.expose_secret() != want {
                let _ = callbacks.error(identity::Error::Identity {
                    index: 0,
                    message: "wrong PIN".into(),
                })?;
                return Ok(out);
            }
        }
        // A yes/no question first, as a key that wants its use confirmed; anything but a yes
        // refuses (and the counter says what came back).
        if ours && std::env::var_os("VAULTTEST_CONFIRM").is_some() {
            let answer = callbacks.confirm("Use the vaulttest key?", "yes", Some("no"))?;
            count(&format!("confirm {answer:?}"));
            if !matches!(answer, Ok(true)) {
                let _ = callbacks.error(identity::Error::Identity {
                    index: 0,
                    message: "not confirmed".into(),
                })?;
                return Ok(out);
            }
        }
        let fail_after: Option<usize> = std::env::var("VAULTTEST_FAIL_AFTER")
            .ok()
            .and_then(|n| n.parse().ok());
        for (i, stanzas) in files.iter().enumerate() {
            if fail_after.is_some_and(|n| i >= n) {
                out.insert(
                    i,
                    Err(vec![identity::Error::Internal {
                        message: "the key was unplugged".into(),
                    }]),
                );
                continue;
            }
            let key = stanzas
                .iter()
                .find_map(|s| self.0.iter().find_map(|sk| unwrap(sk, s)));
            if let Some(k) = key {
                out.insert(i, Ok(k));
            }
        }
        Ok(out)
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(a) if a.starts_with("--age-plugin=") => {
            run_state_machine(&a["--age-plugin=".len()..], Handler)
        }
        Some("--keygen") => {
            let seed = args.get(2).map(String::as_bytes).unwrap_or(b"");
            age_plugin::print_new_identity(NAME, seed, &public_of(&secret_of(seed)));
            Ok(())
        }
        _ => Err(io::Error::other(
            "usage: age-plugin-vaulttest --keygen SEED",
        )),
    }
}
