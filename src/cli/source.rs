//! Opening a bundle and asking for its passphrase, shared by `unlock` and `inspect`.

use std::io::Read;
use std::path::{Path, PathBuf};

use age_core::secrecy::SecretString;
use vault::bundle::{KdfLimits, Locked, Unwrapped};
use vault::escape::{escape, escape_path};
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
    // Discovery lists the installer's own medium first: Enter takes it.
    let default = found[0].own_medium.then_some(1);
    let list: String = found
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mark = if Some(i + 1) == default {
                "  [Enter]"
            } else {
                ""
            };
            format!("\n  {}) {}{mark}", i + 1, escape(&c.description))
        })
        .collect();
    if !prompt::has_tty() {
        return Err(Error::Refused {
            why: format!("found several bundles:{list}"),
            hint: Some("name one: `vault unlock PATH`".into()),
        });
    }
    let question = format!(
        "Found {} bundles:{list}\nWhich one to unlock? Type its number and press Enter{}. \
         This is not the passphrase: that is asked next. What you type is not shown.\n",
        found.len(),
        if default.is_some() {
            " (Enter alone takes 1, on the installer's own medium)"
        } else {
            ""
        }
    );
    match prompt::ask_number(&question, found.len(), default, TRIES)? {
        Some(n) => Ok(found[n - 1].open()?),
        None => Err(Error::NoAnswer {
            why: format!(
                "no bundle chosen: no answer was one of the numbers 1-{}",
                found.len()
            ),
            hint: format!(
                "run the same command again and type a number from the list, or name the \
                 bundle: `vault unlock {}`",
                escape_path(&found[0].path)
            ),
        }),
    }
}

/// How `unwrap_with_retries` asks when no passphrase was given.
#[derive(Debug, Clone, Copy)]
pub struct Asking {
    /// Through systemd-ask-password even on a terminal (`--ask-password`).
    pub agents: bool,
    /// How long the password agents are waited for (`None`: without a limit).
    pub agent_timeout: Option<std::time::Duration>,
}

impl Default for Asking {
    fn default() -> Asking {
        Asking {
            agents: false,
            agent_timeout: Some(prompt::systemd::DEFAULT_TIMEOUT),
        }
    }
}

/// Unwraps the file key: with the given passphrase once, or by asking (up to [`TRIES`] times on
/// a terminal, or through systemd-ask-password).
pub fn unwrap_with_retries(
    locked: Locked<Box<dyn Read>>,
    name: &Path,
    given: Option<SecretString>,
    limits: &KdfLimits,
    asking: Asking,
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
    let use_systemd = asking.agents || !prompt::has_tty();
    // The name may come from the medium (a file under /iso): escaped like any other print.
    let message = format!("Passphrase for {}: ", escape_path(name));
    for attempt in 1..=TRIES {
        if attempt > 1 {
            eprintln!("wrong passphrase, try again (attempt {attempt} of {TRIES})");
        }
        let pass = if use_systemd {
            eprintln!("{}", prompt::systemd::waiting_for(asking.agent_timeout));
            prompt::systemd::ask(
                std::ffi::OsStr::new(prompt::systemd::PROGRAM),
                message.trim_end(),
                "vault:unlock",
                asking.agent_timeout,
            )
            .map_err(|e| match e {
                prompt::systemd::AskError::TimedOut(_) => Error::NoAnswer {
                    why: format!("cannot read a passphrase: {e}"),
                    hint: "answer from a shell with `sudo systemd-tty-ask-password-agent`, run \
                           `vault unlock` on a terminal, or give --passphrase-file FILE; \
                           --ask-password-timeout SECONDS waits longer (0: no limit)"
                        .into(),
                },
                prompt::systemd::AskError::Failed(why) => Error::Prompt(why),
            })?
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
