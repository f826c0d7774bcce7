//! Opening a bundle and asking for its passphrase, shared by `unlock` and `inspect`.

use std::io::Read;
use std::path::{Path, PathBuf};

use age_core::secrecy::SecretString;
use vault::bundle::{KdfLimits, Locked, Unwrapped};
use vault::escape::escape;
use vault::{prompt, Error};

/// Tries on a terminal before giving up.
pub const TRIES: u32 = 3;

pub struct Opened {
    pub name: PathBuf,
    pub len: Option<u64>,
    pub locked: Locked<Box<dyn Read>>,
}

/// Opens the bundle at `path` (a bundle file, or an image or device carrying one), or, with
/// no path, the one discovery finds on this machine (asking when there are several).
pub fn open_bundle(path: Option<&Path>) -> vault::Result<Opened> {
    let source = match path {
        Some(p) => match vault::media::open_source(p) {
            Ok(s) => s,
            // Not a file: reading it (a FIFO) could block forever.
            Err(e @ vault::media::Error::NotAFile { .. }) => return Err(e.into()),
            // An age file whose header vault cannot read is a damaged bundle, not "no bundle":
            // read it as one, so the error says what is wrong with it.
            Err(e) if starts_like_age(p) => {
                let file = std::fs::File::open(p).map_err(|_| e)?;
                let locked = Locked::open(Box::new(file) as Box<dyn Read>, p)?;
                return Ok(Opened {
                    name: p.to_path_buf(),
                    len: None,
                    locked,
                });
            }
            Err(e) => return Err(e.into()),
        },
        None => choose(vault::media::discover()?)?,
    };
    let name = PathBuf::from(&source.description);
    let len = Some(source.len);
    // A signal stops reading at the next block (see vault::interrupt).
    let reader: Box<dyn Read> = Box::new(vault::interrupt::Reader(source.reader()));
    let locked = Locked::open(reader, &name)?;
    Ok(Opened { name, len, locked })
}

fn starts_like_age(path: &Path) -> bool {
    let mut head = [0u8; 22];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| head == *vault::bundle::header::VERSION_LINE)
}

fn choose(
    found: Vec<vault::media::discover::Candidate>,
) -> vault::Result<vault::media::source::BundleSource> {
    if found.len() == 1 {
        eprintln!("Found a bundle: {}", escape(&found[0].description));
        return Ok(found[0].open()?);
    }
    let list: String = found
        .iter()
        .enumerate()
        .map(|(i, c)| format!("\n  {}) {}", i + 1, escape(&c.description)))
        .collect();
    if !prompt::has_tty() {
        return Err(Error::Refused {
            why: format!("found several bundles:{list}"),
            hint: Some("name one: `vault unlock PATH`".into()),
        });
    }
    eprintln!("Found several bundles:{list}");
    for _ in 0..3 {
        let answer = prompt::ask_visible(&format!("Which one (1-{})? ", found.len()))?;
        if let Some(c) = answer
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| found.get(i))
        {
            return Ok(c.open()?);
        }
    }
    Err(Error::Prompt("no bundle chosen".into()))
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
            prompt::systemd::ask_password(message.trim_end(), "vault:unlock")
                .map_err(Error::Prompt)?
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
