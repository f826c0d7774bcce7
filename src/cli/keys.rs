//! `vault keys`: key conversions.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use secrecy::ExposeSecret;
use vault::keys::{self, passphrase, HostKey};
use vault::ExitCode;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Convert SSH ed25519 keys to age keys, like ssh-to-age.
    ///
    /// A public key (`ssh-ed25519 AAAA…`, a .pub file, or ssh-keyscan / known_hosts lines)
    /// becomes its `age1…` recipient, one line per ed25519 key (other key types are skipped).
    /// A private key becomes its `AGE-SECRET-KEY-1…` identity, or with --public its recipient.
    /// The result is what sops-nix derives from /etc/ssh/ssh_host_ed25519_key at boot.
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Key file to read; `-` or nothing reads standard input.
    pub file: Option<PathBuf>,
    /// For a private key: print the age recipient (age1…) instead of the secret identity.
    #[arg(long)]
    pub public: bool,
    /// Read the private key's passphrase from the first line of this file (default: ask on
    /// the terminal).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Write the result to FILE instead of standard output, created with mode 0600 (missing
    /// folders 0700), as a private key needs; an existing FILE is refused without --force.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With --output: replace an existing FILE (never the key being converted).
    #[arg(long, requires = "output")]
    pub force: bool,
}

pub fn run(cmd: KeysCommand, _quiet: bool) -> vault::Result<ExitCode> {
    match cmd {
        KeysCommand::Convert(a) => convert(a),
    }
}

fn convert(a: ConvertArgs) -> vault::Result<ExitCode> {
    // Sized up front: a String that grew would leave copies of a private key in freed memory.
    let mut out = zeroize::Zeroizing::new(String::with_capacity(4096));
    let input = a.file.clone().filter(|p| p.as_os_str() != "-");
    if let Some(path) = &a.output {
        keys::private_file::check_output(path, a.force, input.as_deref())?;
    }
    let code = convert_into(&a, &mut out)?;
    match &a.output {
        Some(path) => {
            keys::private_file::write_private(path, out.as_bytes(), a.force, input.as_deref())?
        }
        None => print!("{}", out.as_str()),
    }
    Ok(code)
}

/// The converted lines, each ending in a newline, appended to `out`.
fn convert_into(a: &ConvertArgs, out: &mut String) -> vault::Result<ExitCode> {
    use std::fmt::Write as _;
    let (what, text) = match a.file.as_deref() {
        None => ("standard input".to_string(), read_stdin()?),
        Some(p) if p.as_os_str() == "-" => ("standard input".to_string(), read_stdin()?),
        Some(p) => (
            p.display().to_string(),
            zeroize::Zeroizing::new(
                std::fs::read_to_string(p)
                    .map_err(|e| vault::Error::from(keys::Error::io("cannot read", p, e)))?,
            ),
        ),
    };
    if text.contains("PRIVATE KEY-----") {
        let source = passphrase::Source::from_option(a.passphrase_file.clone());
        let key = keys::load_private_key(&text, &what, &source)?;
        let key = HostKey::from_private(key, &what)?;
        if a.public {
            let _ = writeln!(out, "{}", key.age_recipient()?);
        } else {
            let _ = writeln!(out, "{}", key.age_identity()?.expose_secret());
        }
        return Ok(ExitCode::Ok);
    }
    let mut converted = 0;
    let mut first_err = None;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match keys::ssh_public_to_age(l) {
            Ok(r) => {
                let _ = writeln!(out, "{r}");
                converted += 1;
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match (converted, first_err) {
        (0, Some(e)) => Err(e.into()),
        (0, None) => Err(keys::Error::Parse {
            what,
            why: "no SSH key found".into(),
        }
        .into()),
        _ => Ok(ExitCode::Ok),
    }
}

fn read_stdin() -> vault::Result<zeroize::Zeroizing<String>> {
    let mut s = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| keys::Error::io("cannot read", "standard input", e))?;
    Ok(s)
}
