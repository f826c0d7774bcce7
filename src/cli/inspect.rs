//! `vault inspect`.

use std::path::PathBuf;

use clap::Args;
use vault::bundle::KdfLimits;
use vault::escape::{escape, escape_path};
use vault::{prompt, ExitCode};

use super::source::{open_bundle, unwrap_with_retries};
use super::util::{human_bytes, PassphraseArgs};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The bundle (a bundle file, or an image or device carrying one).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Ask for the passphrase on the terminal and list the hosts and entries.
    #[arg(short = 'p', long)]
    pub prompt: bool,
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
        "bundle": opened.name,
        "size": total_len,
        "kdf": { "algorithm": "argon2id", "memory_kib": info.kdf.m_kib, "iterations": info.kdf.t, "parallelism": info.kdf.p },
        "stanzas": info.stanza_count,
        "binary": carried.as_ref().map(super::attach::carried_json),
    });
    let carried_line = match (&medium, &carried) {
        (_, Some(c)) => Some(super::attach::carried_line(c)),
        (Some(_), None) => Some("vault binary: none (attached with --no-binary)".to_owned()),
        (None, None) => None,
    };
    if a.passphrase.passphrase_file.is_none() && !a.prompt {
        if a.json {
            println!("{header}");
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
            println!("  (give --passphrase-file FILE or -p to list hosts and entries)");
        }
        return Ok(ExitCode::Ok);
    }
    let limits = KdfLimits::for_this_machine();
    let pass = match &a.passphrase.passphrase_file {
        Some(f) => Some(prompt::from_file(f)?),
        None => None,
    };
    let name = opened.name.clone();
    let (locked, key) = unwrap_with_retries(opened.locked, &name, pass, &limits, false)?;
    let payload = locked.decrypt(key)?;
    let m = vault::unlock::inspect(payload, &name, &Default::default())?;
    if a.json {
        let mut v = header;
        v["hosts"] = serde_json::json!(m.hosts);
        v["items"] = serde_json::to_value(&m.items).unwrap_or_default();
        println!("{v}");
        return Ok(ExitCode::Ok);
    }
    println!("{}: vault bundle, verified", escape_path(&name));
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
            m.hosts.join(", ")
        }
    );
    println!("  written by {}", escape(&m.created_by));
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
            i.host.as_deref().unwrap_or("(all)"),
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
            i.sha256.as_deref().and_then(|h| h.get(..16)).unwrap_or("-"),
            escape(&i.target)
        );
    }
    Ok(ExitCode::Ok)
}
