//! The identities a rekey decrypts with, loaded once per run: age identity files (plain or
//! passphrase-encrypted), OpenSSH private keys (plain or passphrase-protected; ed25519 keys
//! also count as their ssh-to-age X25519 identity, which is how sops-nix uses host keys), and
//! old-style PEM RSA keys; and hardware keys, as age plugin identities (`AGE-PLUGIN-…` lines
//! in identity files, or a plugin's default identity with `-j NAME`), which
//! [`Identities::unlock_plugins`] asks once per run ([`super::plugin`]).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{plugin, Error};
use crate::keys::{passphrase, HostKey};

type BoxedIdentity = Box<dyn age::Identity + Send + Sync>;

/// A set of decryption identities.
#[derive(Default)]
pub struct Identities {
    list: Vec<BoxedIdentity>,
    /// The files they came from, for messages.
    pub sources: Vec<PathBuf>,
    /// The recipients (`age1…`, `ssh-ed25519 …`) of the identities whose public key is known,
    /// with their file: an entry for one of these that does not open is damaged.
    public: Vec<(String, PathBuf)>,
    /// Plugin identities: used only through [`Identities::unlock_plugins`].
    plugins: Vec<plugin::PluginIdentity>,
    /// The file keys the plugin sessions unwrapped.
    unwrapped: plugin::Unwrapped,
}

impl Identities {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.plugins.is_empty()
    }

    /// Adds plugin `name`'s default identity (`--plugin NAME`, as `age -j NAME`): the plugin
    /// picks the key itself (for age-plugin-yubikey, the one plugged in).
    pub fn push_plugin_default(&mut self, name: &str) -> Result<(), Error> {
        let source = format!("--plugin {name}");
        let err = |message: String| Error::Identity {
            path: source.clone().into(),
            message,
        };
        let identity = age::plugin::Identity::default_for_plugin(name).map_err(|_| {
            err(format!(
                "{name:?} is not a plugin name (letters, digits, + - . _; e.g. yubikey)"
            ))
        })?;
        plugin::find(name).map_err(|message| Error::Plugin {
            path: source.clone().into(),
            message,
        })?;
        self.plugins
            .push(plugin::PluginIdentity { identity, source });
        Ok(())
    }

    /// Unwraps, in one plugin session per plugin (one PIN, one touch), the file keys of the
    /// age files among `units` that no other identity opens; [`Identities::iter`] then opens
    /// them. `units`: alternatives of which one must open (see [`plugin::unlock`]).
    pub fn unlock_plugins(&self, units: &[Vec<&[u8]>]) -> Result<(), Error> {
        let native: Vec<&dyn age::Identity> = self
            .list
            .iter()
            .map(|b| b.as_ref() as &dyn age::Identity)
            .collect();
        plugin::unlock(&self.plugins, &native, units, &self.unwrapped).map_err(|message| {
            Error::Plugin {
                path: self
                    .plugins
                    .first()
                    .map(|p| PathBuf::from(&p.source))
                    .unwrap_or_default(),
                message,
            }
        })
    }

    /// The file of the identity whose recipient is `recipient`, if one was given.
    pub fn file_of(&self, recipient: &str) -> Option<&Path> {
        self.public
            .iter()
            .find(|(r, _)| r == recipient)
            .map(|(_, p)| p.as_path())
    }

    pub fn iter(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.list
            .iter()
            .map(|b| b.as_ref() as &dyn age::Identity)
            .chain(std::iter::once(&self.unwrapped as &dyn age::Identity))
    }

    /// Adds both forms of an ed25519 host key: the SSH identity (agenix) and the ssh-to-age
    /// X25519 identity (sops-nix).
    pub fn push_host_key(&mut self, key: &HostKey, source: &Path) -> Result<(), Error> {
        let err = |e: crate::keys::Error| Error::Identity {
            path: source.into(),
            message: e.to_string(),
        };
        self.list.push(Box::new(key.ssh_identity().map_err(err)?));
        self.list
            .push(Box::new(key.x25519_identity().map_err(err)?));
        self.public
            .push((key.age_recipient().map_err(err)?, source.into()));
        self.public.push((key.public_openssh_bare(), source.into()));
        self.sources.push(source.into());
        Ok(())
    }

    /// Loads every file in `paths`; passphrases (for protected keys) come from `pass`.
    pub fn load(paths: &[PathBuf], pass: &passphrase::Source) -> Result<Identities, Error> {
        let mut ids = Identities::default();
        for p in paths {
            ids.load_file(p, pass)?;
        }
        Ok(ids)
    }

    fn load_file(&mut self, path: &Path, pass: &passphrase::Source) -> Result<(), Error> {
        let bytes =
            Zeroizing::new(std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))?);
        let ierr = |message: String| Error::Identity {
            path: path.into(),
            message,
        };
        // A passphrase-encrypted age identity file (`age -p keys.txt`).
        if super::header::is_armored(&bytes) || bytes.starts_with(b"age-encryption.org/v1") {
            let phrase = pass
                .read(&path.display().to_string())
                .map_err(|e| ierr(e.to_string()))?;
            let id = age::scrypt::Identity::new(phrase);
            let dec = age::Decryptor::new(age::armor::ArmoredReader::new(&bytes[..]))
                .map_err(|e| ierr(e.to_string()))?;
            let mut r = dec
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .map_err(|e| ierr(format!("cannot decrypt: {e}")))?;
            let mut inner = Zeroizing::new(Vec::new());
            std::io::Read::read_to_end(&mut r, &mut inner).map_err(|e| ierr(e.to_string()))?;
            return self.load_text(path, &inner, pass);
        }
        self.load_text(path, &bytes, pass)
    }

    fn load_text(
        &mut self,
        path: &Path,
        bytes: &[u8],
        pass: &passphrase::Source,
    ) -> Result<(), Error> {
        let ierr = |message: String| Error::Identity {
            path: path.into(),
            message,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ierr("not a text file (age identity or SSH key)".into()))?;
        if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            let what = path.display().to_string();
            let key = crate::keys::load_private_key(text, &what, pass)
                .map_err(|e| ierr(e.to_string()))?;
            if let ssh_key::private::KeypairData::Ed25519(_) = key.key_data() {
                let hk = HostKey::from_private(key, &what).map_err(|e| ierr(e.to_string()))?;
                return self.push_host_key(&hk, path);
            }
            // RSA and others: hand age the decrypted key.
            let pem = key
                .to_openssh(ssh_key::LineEnding::LF)
                .map_err(|e| ierr(e.to_string()))?;
            return self.push_ssh_text(path, &pem);
        }
        if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            return self.push_ssh_text(path, text);
        }
        if text.contains("AGE-SECRET-KEY-") || text.contains("AGE-PLUGIN-") {
            // Plugin lines are kept apart: age would start one plugin session per file. In
            // what age parses they become comments, so its line numbers stay right.
            let mut native = Zeroizing::new(String::new());
            let mut plugins = Vec::new();
            for (n, line) in text.lines().enumerate() {
                let t = line.trim();
                if t.starts_with("AGE-PLUGIN-") {
                    let identity = t.parse::<age::plugin::Identity>().map_err(|e| {
                        ierr(format!("line {}: not a plugin identity ({e})", n + 1))
                    })?;
                    plugins.push((n + 1, identity));
                    native.push('#');
                } else {
                    native.push_str(line);
                }
                native.push('\n');
            }
            let has_native = native.lines().any(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with('#')
            });
            if has_native {
                let file = age::IdentityFile::from_buffer(native.as_bytes())
                    .map_err(|e| ierr(format!("not an age identity file: {e}")))?;
                let list = file
                    .into_identities()
                    .map_err(|e| ierr(format!("cannot use identity: {e}")))?;
                self.list.extend(list);
            }
            for (line, identity) in plugins {
                plugin::find(identity.plugin()).map_err(|why| Error::Plugin {
                    path: path.into(),
                    message: format!("line {line}: {why}"),
                })?;
                self.plugins.push(plugin::PluginIdentity {
                    identity,
                    source: path.display().to_string(),
                });
            }
            for line in text.lines().map(str::trim) {
                if let Ok(id) = line.parse::<age::x25519::Identity>() {
                    self.public.push((id.to_public().to_string(), path.into()));
                }
            }
            self.sources.push(path.into());
            return Ok(());
        }
        Err(ierr(
            "neither an age identity file (AGE-SECRET-KEY-1…) nor an SSH private key".into(),
        ))
    }

    fn push_ssh_text(&mut self, path: &Path, text: &str) -> Result<(), Error> {
        let id = age::ssh::Identity::from_buffer(text.as_bytes(), Some(path.display().to_string()))
            .map_err(|e| Error::Identity {
                path: path.into(),
                message: e.to_string(),
            })?;
        match id {
            age::ssh::Identity::Unencrypted(_) => {
                self.list.push(Box::new(id));
                self.sources.push(path.into());
                Ok(())
            }
            _ => Err(Error::Identity {
                path: path.into(),
                message: "unsupported or still encrypted SSH key".into(),
            }),
        }
    }
}

/// Where to look when no `-i` is given, like sops and agenix do: `$SOPS_AGE_KEY_FILE`,
/// `~/.config/sops/age/keys.txt`, `~/.ssh/id_ed25519`, `~/.ssh/id_rsa` (those that exist).
pub fn default_paths() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("SOPS_AGE_KEY_FILE") {
        out.push(PathBuf::from(p));
    }
    if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".config"));
        out.push(config.join("sops/age/keys.txt"));
        out.push(home.join(".ssh/id_ed25519"));
        out.push(home.join(".ssh/id_rsa"));
    }
    out.retain(|p| p.is_file());
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};
    use std::io::Write;

    #[test]
    fn plugin_identity_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ids.txt");
        let nopass = passphrase::Source::File("/dev/null".into());
        let plugin_line = age::plugin::Identity::default_for_plugin("vaulttest-absent")
            .unwrap()
            .to_string();
        // A missing plugin program is named, with the file and line.
        std::fs::write(&file, format!("# yubikey\n{plugin_line}\n")).unwrap();
        let e = Identities::load(std::slice::from_ref(&file), &nopass)
            .err()
            .unwrap();
        assert!(matches!(e, Error::Plugin { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("line 2") && e.contains("age-plugin-vaulttest-absent"),
            "{e}"
        );
        assert!(e.contains(&file.display().to_string()), "{e}");
        // Other lines are still checked, with their own line numbers.
        std::fs::write(&file, format!("{plugin_line}\nnot a key\n")).unwrap();
        let e = Identities::load(std::slice::from_ref(&file), &nopass)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn passphrase_encrypted_age_identity_file() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        // What `age -p -a -o keys.age keys.txt` writes.
        let enc =
            age::Encryptor::with_user_passphrase(SecretString::from("correct horse".to_string()));
        let mut out = Vec::new();
        let armored =
            age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                .unwrap();
        let mut w = enc.wrap_output(armored).unwrap();
        writeln!(w, "# a comment\n{}", id.to_string().expose_secret()).unwrap();
        w.finish().unwrap().finish().unwrap();
        let file = dir.path().join("keys.age");
        std::fs::write(&file, &out).unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "correct horse\n").unwrap();

        let ids = Identities::load(
            std::slice::from_ref(&file),
            &passphrase::Source::File(pass.clone()),
        )
        .unwrap();
        let secret = crate::keys::age::crypt::encrypt(
            b"s",
            &[crate::keys::age::recipients::parse(&id.to_public().to_string()).unwrap()],
            true,
        )
        .unwrap();
        assert_eq!(
            &*crate::keys::age::crypt::decrypt(&secret, &ids).unwrap(),
            b"s"
        );

        std::fs::write(&pass, "wrong\n").unwrap();
        let e = Identities::load(&[file], &passphrase::Source::File(pass))
            .err()
            .unwrap();
        assert!(e.to_string().contains("cannot decrypt"), "{e}");
    }
}
