//! Opening a bundle and asking for its passphrase, shared by `unlock` and `inspect`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use age_core::secrecy::SecretString;
use vault::bundle::{KdfLimits, Locked, Unwrapped};
use vault::{prompt, Error};

/// Tries on a terminal before giving up.
pub const TRIES: u32 = 3;

pub struct Opened {
    pub name: PathBuf,
    pub len: Option<u64>,
    pub locked: Locked<Box<dyn Read>>,
}

/// Opens the bundle at `path`.
pub fn open_bundle(path: Option<&Path>) -> vault::Result<Opened> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => {
            return Err(Error::Refused {
                why: "no bundle given".into(),
                hint: Some("name the bundle file: `vault unlock /iso/vault.bundle`".into()),
            })
        }
    };
    let file = File::open(&path).map_err(|e| Error::Io {
        action: "cannot open",
        path: path.clone(),
        source: e,
    })?;
    let len = file.metadata().ok().map(|m| m.len());
    let reader: Box<dyn Read> = Box::new(file);
    let locked = Locked::open(reader, &path)?;
    Ok(Opened {
        name: path,
        len,
        locked,
    })
}

/// Unwraps the file key: with the given passphrase once, or by asking (up to [`TRIES`] times on
/// a terminal, or through systemd-ask-password).
pub fn unwrap_with_retries(
    locked: Locked<Box<dyn Read>>,
    name: &Path,
    given: Option<SecretString>,
    limits: &KdfLimits,
    ask_password: bool,
) -> vault::Result<(Locked<Box<dyn Read>>, Unwrapped)> {
    locked.check_limits(limits)?;
    if let Some(p) = given {
        return match locked.try_passphrase(&p, limits)? {
            Some(k) => Ok((locked, k)),
            None => Err(Error::WrongPassphrase {
                path: name.to_path_buf(),
            }),
        };
    }
    let use_systemd = ask_password || !prompt::has_tty();
    for attempt in 1..=TRIES {
        if attempt > 1 {
            eprintln!("wrong passphrase, try again (attempt {attempt} of {TRIES})");
        }
        let message = format!("Passphrase for {}: ", name.display());
        let pass = if use_systemd {
            prompt::systemd::ask_password(&message, "vault:unlock").map_err(Error::Prompt)?
        } else {
            prompt::ask(&message)?
        };
        if let Some(k) = locked.try_passphrase(&pass, limits)? {
            return Ok((locked, k));
        }
    }
    Err(Error::WrongPassphrase {
        path: name.to_path_buf(),
    })
}
