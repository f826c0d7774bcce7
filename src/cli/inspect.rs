//! `vault inspect`.

use std::path::PathBuf;

use clap::Args;
use vault::bundle::KdfLimits;
use vault::escape::{escape, escape_path, json::path as json_path};
use vault::{prompt, ExitCode};

use super::source::{open_bundle, unwrap_with_retries};
use super::util::{human_bytes, PassphraseArgs};
use vault::bundle::{Locked, Payload, Unwrapped};
use vault::keys::age::identities::Identities;
use vault::keys::passphrase;
use vault::pack::recovery::{recovery_key_warning, OPENED_WITH_RECOVERY_KEY, RECOVERY_KEY_CAVEAT};

#[derive(Debug, Args)]
#[command(group(RecoveryKeyArgs::conflicting(&["passphrase_file", "prompt"])))]
pub struct InspectArgs {
    /// The bundle (a bundle file, or an image or device carrying one).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Ask for the passphrase on the terminal and list the hosts and entries.
    #[arg(short = 'p', long)]
    pub prompt: bool,
    #[command(flatten)]
    pub recovery: RecoveryKeyArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: InspectArgs, _quiet: bool) -> vault::Result<ExitCode> {
    let opened = open_bundle(Some(&a.bundle))?;
    let info = opened.locked.info().clone();
    let total_len = opened.len;
    // An image or stick may carry a vault binary beside the bundle.
    let medium = vault::media::inspect_image(&a.bundle)
        .ok()
        .filter(|i| i.partition.is_some() || i.iso_file.is_some());
    let carried = medium.as_ref().and_then(|i| i.binary.clone());
    let header = serde_json::json!({
        "bundle": json_path(&a.bundle),
        "size": total_len,
        "kdf": { "algorithm": "argon2id", "memory_kib": info.kdf.m_kib, "iterations": info.kdf.t, "parallelism": info.kdf.p },
        "stanzas": info.stanza_count,
        "binary": carried.as_ref().map(super::attach::carried_json),
        "binary_damaged": medium.as_ref().and_then(|m| m.binary_damaged.clone()),
    });
    let carried_line = match (&medium, &carried) {
        (_, Some(c)) => Some(super::attach::carried_line(c)),
        (Some(m), None) => Some(match &m.binary_damaged {
            Some(d) => format!("vault binary: {}", escape(d)),
            None => "vault binary: none (attached with --no-binary)".to_owned(),
        }),
        (None, None) => None,
    };
    if a.passphrase.passphrase_file.is_none() && !a.prompt && a.recovery.is_empty() {
        if a.json {
            super::json::print(&header)?;
        } else {
            println!("{}: vault bundle", escape_path(&opened.name));
            if let Some(len) = total_len {
                println!("  size:     {}", human_bytes(len));
            }
            println!(
                "  kdf:      Argon2id, {} MiB, t={}, p={}",
                info.kdf.m_kib / 1024,
                info.kdf.t,
                info.kdf.p
            );
            if let Some(l) = &carried_line {
                println!("  {l}");
            }
            println!(
                "  stanzas:  {} (the passphrase, age's grease, any recovery recipients)",
                info.stanza_count
            );
            println!("  (give --passphrase-file FILE, -p, or a recovery key with -i KEY or -j PLUGIN to list hosts and entries)");
        }
        return Ok(ExitCode::Ok);
    }
    let name = opened.name.clone();
    let payload = decrypt_opened(
        opened.locked,
        &name,
        &a.recovery,
        a.passphrase.passphrase_file.as_deref(),
    )?;
    let m = vault::unlock::inspect(payload, &name, &Default::default())?;
    // Only the passphrase ties a bundle to its maker; a recovery key proves it intact only.
    let by_recovery_key = !a.recovery.is_empty();
    if a.json {
        let mut v = header;
        v["opened_with"] = serde_json::json!(if by_recovery_key {
            "recovery_key"
        } else {
            "passphrase"
        });
        v["maker_verified"] = serde_json::json!(!by_recovery_key);
        v["warning"] = serde_json::json!(by_recovery_key.then(recovery_key_warning));
        v["hosts"] = serde_json::json!(m.hosts);
        v["items"] = serde_json::to_value(&m.items).unwrap_or_default();
        v["recovery_recipients"] = serde_json::json!(m.recovery_recipients);
        super::json::print(&v)?;
        return Ok(ExitCode::Ok);
    }
    if by_recovery_key {
        println!(
            "{}: vault bundle, intact, {OPENED_WITH_RECOVERY_KEY}",
            escape_path(&name)
        );
        println!("  warning:  {RECOVERY_KEY_CAVEAT} (docs/guide/recovery.md)");
    } else {
        println!("{}: vault bundle, verified", escape_path(&name));
    }
    println!(
        "  kdf:      Argon2id, {} MiB, t={}, p={}",
        info.kdf.m_kib / 1024,
        info.kdf.t,
        info.kdf.p
    );
    println!(
        "  hosts:    {}",
        if m.hosts.is_empty() {
            "(none: shared entries only)".into()
        } else {
            escape(&m.hosts.join(", ")).into_owned()
        }
    );
    // The bundle's word: escaped and bounded by its Display.
    println!("  written by {}", m.created_by);
    for r in &m.recovery_recipients {
        println!("  recovery: {}", escape(r));
    }
    if let Some(l) = &carried_line {
        println!("  {l}");
    }
    println!();
    println!(
        "{:<10} {:<5} {:<5} {:>5} {:>11} {:>10}  {:<16} target",
        "host", "stage", "kind", "mode", "owner", "size", "sha256"
    );
    for i in &m.items {
        let owner = format!("{}:{}", i.uid, i.gid);
        println!(
            "{:<10} {:<5} {:<5} {:>5} {:>11} {:>10}  {:<16} {}",
            escape(i.host.as_deref().unwrap_or("(all)")),
            i.stage.as_str(),
            if i.kind == vault::archive::Kind::Dir {
                "dir"
            } else {
                "file"
            },
            format!("{:04o}", i.mode),
            owner,
            if i.kind == vault::archive::Kind::Dir {
                "-".into()
            } else {
                human_bytes(i.size)
            },
            escape(i.sha256.as_deref().and_then(|h| h.get(..16)).unwrap_or("-")),
            escape(&i.target)
        );
    }
    Ok(ExitCode::Ok)
}

/// The recovery keys that open a bundle instead of its passphrase (`inspect`, `repack`).
#[derive(Debug, Args)]
pub struct RecoveryKeyArgs {
    /// Open the bundle with a recovery key instead of the passphrase (repeatable): an age
    /// identity file or an OpenSSH private key whose public key was given to
    /// `vault pack --recovery-recipient`.
    #[arg(short = 'i', long = "identity", value_name = "KEY")]
    pub identities: Vec<PathBuf>,
    /// Open the bundle with the default identity of age plugin NAME (age-plugin-NAME on
    /// PATH), as `age -j NAME`: a recovery key held by a hardware key (e.g. `-j yubikey`).
    /// Repeatable.
    #[arg(short = 'j', long = "plugin", value_name = "NAME")]
    pub plugins: Vec<String>,
    /// Read passphrases of protected -i keys from the first line of FILE (default: ask on
    /// the terminal).
    #[arg(long, value_name = "FILE", requires = "identities")]
    pub identity_passphrase_file: Option<PathBuf>,
}

impl RecoveryKeyArgs {
    /// `-i` and `-j` as one group that conflicts with the command's own passphrase `args`
    /// (their ids), each command naming its own.
    pub fn conflicting(args: &[&'static str]) -> clap::ArgGroup {
        clap::ArgGroup::new("recovery_keys")
            .args(["identities", "plugins"])
            .multiple(true)
            .conflicts_with_all(args)
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.plugins.is_empty()
    }
}

/// Starts decrypting a bundle on the workstation: with the recovery keys when any is given,
/// else with its passphrase (from `passphrase_file`, or asked).
pub(super) fn decrypt_opened(
    locked: Locked<Box<dyn std::io::Read>>,
    name: &std::path::Path,
    recovery: &RecoveryKeyArgs,
    passphrase_file: Option<&std::path::Path>,
) -> vault::Result<Payload<Box<dyn std::io::Read>>> {
    if recovery.is_empty() {
        let limits = KdfLimits::for_this_machine();
        let pass = match passphrase_file {
            Some(f) => Some(prompt::from_file(f)?),
            None => None,
        };
        let (locked, key) = unwrap_with_retries(locked, name, pass, &limits, Default::default())?;
        return locked.decrypt(key);
    }
    let key = unwrap_with_identities(
        &locked,
        name,
        &recovery.identities,
        &recovery.plugins,
        recovery.identity_passphrase_file.as_deref(),
    )?;
    locked.decrypt(key)
}

/// Unwraps the file key with recovery keys: the age identity files or SSH private keys in
/// `keys`, and the default identities of the age plugins in `plugins` (a hardware key is
/// asked once, through vault's prompt). Not yet verified: decrypting checks the header MAC
/// with it.
fn unwrap_with_identities<R: std::io::Read>(
    locked: &Locked<R>,
    name: &std::path::Path,
    keys: &[PathBuf],
    plugins: &[String],
    key_passphrase_file: Option<&std::path::Path>,
) -> vault::Result<Unwrapped> {
    let mut ids = Identities::load(
        keys,
        &passphrase::Source::from_option(key_passphrase_file.map(PathBuf::from)),
    )?;
    for p in plugins {
        ids.push_plugin_default(p)?;
    }
    // age's header reader wants the payload's 16-byte nonce after the header; only the
    // stanzas are read here, so a placeholder does.
    let mut header = locked.header_bytes().to_vec();
    header.extend_from_slice(&[0u8; 16]);
    ids.unlock_plugins(&[vec![&header[..]]])?;
    let list: Vec<&dyn age::Identity> = ids.iter().collect();
    locked
        .try_identities(&list)?
        .ok_or_else(|| vault::Error::NoMatchingIdentity {
            path: name.to_path_buf(),
            tried: keys
                .iter()
                .map(|k| k.display().to_string())
                .chain(plugins.iter().map(|p| format!("--plugin {p}")))
                .collect::<Vec<_>>()
                .join(", "),
        })
}
