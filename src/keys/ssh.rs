//! OpenSSH ed25519 keys: generating a host key pair, loading (and decrypting) existing ones.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use ssh_key::private::KeypairData;
use ssh_key::{Algorithm, LineEnding, PrivateKey};
use zeroize::Zeroizing;

use super::{convert, passphrase, Error};

/// An unencrypted ed25519 key pair (ssh-key zeroizes the private half on drop).
pub struct HostKey {
    key: PrivateKey,
}

impl HostKey {
    /// A fresh key pair from the OS RNG, with `comment` (OpenSSH uses `root@HOST`).
    pub fn generate(comment: &str) -> Result<HostKey, Error> {
        let mut key =
            PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519).map_err(|e| {
                Error::Parse {
                    what: "new host key".into(),
                    why: e.to_string(),
                }
            })?;
        key.set_comment(comment);
        Ok(HostKey { key })
    }

    /// Wraps a decrypted key; refuses anything but ed25519.
    pub fn from_private(key: PrivateKey, what: &str) -> Result<HostKey, Error> {
        match key.key_data() {
            KeypairData::Ed25519(_) => Ok(HostKey { key }),
            other => Err(Error::NotEd25519 {
                what: what.into(),
                algorithm: other
                    .algorithm()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| "unknown".into()),
            }),
        }
    }

    /// Loads a private key file, asking `pass` for its passphrase if it has one.
    pub fn load(path: &Path, pass: &passphrase::Source) -> Result<HostKey, Error> {
        let what = path.display().to_string();
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?,
        );
        let key = load_private_key(&text, &what, pass)?;
        HostKey::from_private(key, &what)
    }

    fn seed(&self) -> Zeroizing<[u8; 32]> {
        match self.key.key_data() {
            KeypairData::Ed25519(kp) => Zeroizing::new(kp.private.to_bytes()),
            // from_private/generate admit only ed25519.
            _ => unreachable!("HostKey holds only ed25519 keys"),
        }
    }

    fn public_bytes(&self) -> [u8; 32] {
        match self.key.key_data() {
            KeypairData::Ed25519(kp) => kp.public.0,
            _ => unreachable!("HostKey holds only ed25519 keys"),
        }
    }

    /// `ssh-ed25519 AAAA… comment`, the `.pub` line and the agenix recipient.
    pub fn public_openssh(&self) -> String {
        // Encoding a valid ed25519 public key cannot fail.
        self.key
            .public_key()
            .to_openssh()
            .unwrap_or_else(|_| String::new())
    }

    /// `ssh-ed25519 AAAA…` without the comment (how agenix rules usually hold it).
    pub fn public_openssh_bare(&self) -> String {
        let full = self.public_openssh();
        full.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The ssh-to-age `age1…` recipient (what sops-nix uses).
    pub fn age_recipient(&self) -> Result<String, Error> {
        convert::age_recipient_from_ed25519(&self.public_bytes())
    }

    /// The ssh-to-age `AGE-SECRET-KEY-1…` identity.
    pub fn age_identity(&self) -> Result<SecretString, Error> {
        convert::age_identity_from_seed(&self.seed())
    }

    /// The X25519 identity ssh-to-age derives, as an `age` crate identity.
    pub fn x25519_identity(&self) -> Result<age::x25519::Identity, Error> {
        self.age_identity()?
            .expose_secret()
            .parse()
            .map_err(|e: &str| Error::Parse {
                what: "derived age identity".into(),
                why: e.into(),
            })
    }

    /// The key as an age `ssh-ed25519` identity (what agenix uses).
    pub fn ssh_identity(&self) -> Result<age::ssh::Identity, Error> {
        let pem = self.openssh_pem()?;
        age::ssh::Identity::from_buffer(pem.as_bytes(), None).map_err(|e| Error::Parse {
            what: "ssh identity".into(),
            why: e.to_string(),
        })
    }

    /// The unencrypted OpenSSH PEM text.
    pub fn openssh_pem(&self) -> Result<Zeroizing<String>, Error> {
        self.key
            .to_openssh(LineEnding::LF)
            .map_err(|e| Error::Parse {
                what: "host key".into(),
                why: e.to_string(),
            })
    }

    /// Writes `private` (mode 0600 from creation) and `public` (0644). Neither may exist; on a
    /// failure writing the public half, the private half is removed again.
    pub fn write_pair(&self, private: &Path, public: &Path) -> Result<(), Error> {
        let pem = self.openssh_pem()?;
        write_new(private, pem.as_bytes(), 0o600)?;
        let line = format!("{}\n", self.public_openssh());
        if let Err(e) = write_new(public, line.as_bytes(), 0o644) {
            let _ = std::fs::remove_file(private);
            return Err(e);
        }
        Ok(())
    }
}

/// Creates `path` with `mode` (never a later chmod: the key is never readable by others, not
/// even for a moment), refusing to replace anything.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists { path: path.into() }
            } else {
                Error::io("cannot create", path, e)
            }
        })?;
    let res = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = res {
        let _ = std::fs::remove_file(path);
        return Err(Error::io("cannot write", path, e));
    }
    Ok(())
}

/// Parses OpenSSH private key text, decrypting it with a passphrase from `pass` if needed.
pub fn load_private_key(
    text: &str,
    what: &str,
    pass: &passphrase::Source,
) -> Result<PrivateKey, Error> {
    let key = PrivateKey::from_openssh(text).map_err(|e| Error::Parse {
        what: what.into(),
        why: format!("not an OpenSSH private key ({e})"),
    })?;
    if !key.is_encrypted() {
        return Ok(key);
    }
    let passphrase = pass.read(what)?;
    key.decrypt(passphrase.expose_secret().as_bytes())
        .map_err(|_| Error::WrongPassphrase { what: what.into() })
}
