//! `vault repack`: the same contents under a new passphrase, for a bundle opened with its
//! passphrase or with a recovery key (a forgotten passphrase).
//!
//! Nothing but the items comes from the bundle: a bundle a recovery key opens may have been
//! made by anyone who has the key's public half (docs/FORMAT.md §1), so its recovery
//! recipients and Argon2id settings are never taken over. They come from the flags or
//! `--manifest`, and are printed, each recipient, before anything is written.

use std::path::PathBuf;

use clap::Args;
use vault::escape::{escape, escape_path, json::path as json_path};
use vault::manifest::Manifest;
use vault::pack::differences::DifferenceKind;
use vault::pack::recovery::{recovery_key_warning, OPENED_WITH_RECOVERY_KEY};
use vault::pack::{self, PackOptions};
use vault::{prompt, Error, ExitCode};

use super::inspect::{decrypt_opened, RecoveryKeyArgs};
use super::pack::KdfArgs;
use super::source::open_bundle;
use super::util::{human_bytes, passphrase_source, PassphraseArgs};

#[derive(Debug, Args)]
#[command(group(RecoveryKeyArgs::conflicting(&["old_passphrase_file"])))]
pub struct RepackArgs {
    /// The bundle to repack (a bundle file, or an image or device carrying one).
    pub bundle: PathBuf,
    /// Where to write the new bundle (never the input bundle).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub recovery: RecoveryKeyArgs,
    /// Without -i: read the bundle's current passphrase from the first line of FILE
    /// (default: ask on the terminal).
    #[arg(long, value_name = "FILE")]
    pub old_passphrase_file: Option<PathBuf>,
    /// Read the new passphrase from the first line of FILE (default: ask twice on the
    /// terminal).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Wrap the new bundle's key to this recovery recipient (repeatable; as `vault pack
    /// --recovery-recipient`; instead of --manifest's). The bundle's own are never kept.
    #[arg(long, value_name = "RECIPIENT")]
    pub recovery_recipient: Vec<String>,
    /// Recovery recipients from FILE, one per line (repeatable).
    #[arg(long, value_name = "FILE")]
    pub recovery_recipients_file: Vec<PathBuf>,
    /// Write the new bundle without recovery recipients.
    #[arg(long, conflicts_with_all = ["recovery_recipient", "recovery_recipients_file"])]
    pub no_recovery: bool,
    /// An updated vault.toml: the new bundle holds its entries (all hosts), with its
    /// targets, modes and owners, and its recovery_recipients; each entry's contents come from
    /// its source file if that exists, else from the bundle's item with the same host and
    /// target. Every difference from the bundle is listed.
    #[arg(short, long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Accept a passphrase that the reference attacker (docs/SECURITY.md) would guess in under
    /// 100 GPU-years at the new bundle's Argon2id settings.
    #[arg(long)]
    pub weak_passphrase: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: RepackArgs, quiet: bool) -> vault::Result<ExitCode> {
    let updated = a.manifest.as_deref().map(Manifest::load).transpose()?;
    let mut inputs: Vec<(&str, &std::path::Path)> = Vec::new();
    for p in [
        &a.passphrase_file,
        &a.old_passphrase_file,
        &a.recovery.identity_passphrase_file,
    ]
    .into_iter()
    .flatten()
    {
        inputs.push(("passphrase file", p));
    }
    inputs.extend(a.recovery.identities.iter().map(|p| ("key", p.as_path())));
    inputs.extend(a.manifest.iter().map(|p| ("manifest", p.as_path())));
    if let Some(m) = &updated {
        let hosts = m.hosts.values().flat_map(|h| &h.entries);
        inputs.extend(
            m.shared
                .iter()
                .chain(hosts)
                .map(|e| ("source", e.source.as_path())),
        );
    }
    inputs.extend(
        a.recovery_recipients_file
            .iter()
            .map(|p| ("recovery recipients file", p.as_path())),
    );
    pack::repack::check_output(&a.bundle, &inputs, &a.output, a.force)?;
    let given = !a.recovery_recipient.is_empty() || !a.recovery_recipients_file.is_empty();
    let new_recovery =
        super::pack::recovery_recipients(&a.recovery_recipient, &a.recovery_recipients_file)?;
    // Refused before the bundle is opened: settings `pack` would refuse.
    let kdf = a.kdf.resolve(quiet || a.json)?;

    let opened = open_bundle(Some(&a.bundle))?;
    let name = opened.name.clone();
    let by_recovery_key = !a.recovery.is_empty();
    let payload = decrypt_opened(
        opened.locked,
        &name,
        &a.recovery,
        a.old_passphrase_file.as_deref(),
    )?;
    let mut contents = pack::repack::read_contents(payload, &name)?;
    let warning = by_recovery_key.then(recovery_key_warning);
    if let Some(w) = &warning {
        if !quiet {
            eprintln!("warning: {}: {w}", escape_path(&name));
        }
    }
    let listed = contents.manifest.recovery_recipients.clone();
    let recovery = match (a.no_recovery, given, &updated) {
        (true, _, _) => Vec::new(),
        (false, true, _) => new_recovery,
        (false, false, Some(m)) => m.recovery_recipients.clone(),
        (false, false, None) if listed.is_empty() => Vec::new(),
        (false, false, None) => return Err(not_carried_over(&name, &listed, by_recovery_key)),
    };
    let not_kept: Vec<String> = listed
        .iter()
        .filter(|r| !recovery.contains(r))
        .cloned()
        .collect();

    let mut dropped: Vec<serde_json::Value> = Vec::new();
    let mut differences: Vec<serde_json::Value> = Vec::new();
    if let Some(m) = &updated {
        let rebuilt = contents.rebuild(m)?;
        dropped = rebuilt
            .dropped
            .iter()
            .map(|i| serde_json::json!({ "host": i.host, "target": i.target }))
            .collect();
        differences = rebuilt
            .differences
            .iter()
            .map(|d| serde_json::json!(d))
            .collect();
        contents = rebuilt.contents;
        if !quiet && !a.json {
            let total = contents.manifest.items.len();
            eprintln!(
                "{} item(s) from {}: {} from source files, {} from the bundle.",
                total,
                escape_path(&m.path),
                rebuilt.from_disk,
                total - rebuilt.from_disk
            );
        }
        if !quiet {
            for d in &rebuilt.differences {
                let host = d
                    .host
                    .as_deref()
                    .map_or("every host".to_owned(), |h| format!("host {}", escape(h)));
                let sep = if d.kind == DifferenceKind::Dropped {
                    ","
                } else {
                    ":"
                };
                eprintln!(
                    "{}: {} ({host}){sep} {}",
                    d.kind.label(),
                    escape(&d.target),
                    escape(&d.what)
                );
            }
        }
    }
    let m = &contents.manifest;

    // What the new bundle gets besides its items, before anything is written.
    if !quiet {
        eprintln!("{} will have:", escape_path(&a.output));
        if recovery.is_empty() {
            eprintln!("  recovery recipients: none");
        }
        for r in &recovery {
            eprintln!("  recovery recipient: {}", escape(r));
        }
        eprintln!(
            "  Argon2id {} MiB, t={}, p={}",
            kdf.m_kib / 1024,
            kdf.t,
            kdf.p
        );
        for r in &not_kept {
            eprintln!(
                "not kept: recovery recipient {} (listed by {})",
                escape(r),
                escape_path(&name)
            );
        }
    }
    let new_source = PassphraseArgs {
        passphrase_file: a.passphrase_file.clone(),
    };
    let passphrase = match passphrase_source(&new_source)? {
        Some(p) => p,
        None => prompt::ask_new(&format!("New passphrase for {}: ", escape_path(&a.output)))?,
    };
    super::pack::check_strength(
        age_core::secrecy::ExposeSecret::expose_secret(&passphrase),
        &kdf,
        &m.hosts,
        a.weak_passphrase,
        quiet || a.json,
    )?;
    let opts = PackOptions {
        kdf,
        compression: Default::default(),
        replace: a.force,
    };
    let size = contents.write(&a.output, &recovery, passphrase, opts)?;
    let files = m
        .items
        .iter()
        .filter(|i| i.kind == vault::archive::Kind::File)
        .count();
    if a.json {
        let out = serde_json::json!({
            "bundle": json_path(&a.bundle),
            "output": json_path(&a.output),
            "size": size,
            "hosts": m.hosts,
            "files": files,
            "kdf": { "memory_kib": kdf.m_kib, "iterations": kdf.t, "parallelism": kdf.p },
            "recovery_recipients": recovery,
            "not_kept": not_kept,
            "opened_with": if by_recovery_key { "recovery_key" } else { "passphrase" },
            "maker_verified": !by_recovery_key,
            "warning": warning,
            "dropped": dropped,
            "differences": differences,
        });
        super::json::print(&out)?;
    } else if !quiet {
        println!(
            "Repacked {files} file(s) of {} into {} ({}; Argon2id {} MiB, t={}, p={}; {} recovery recipient(s)).",
            escape_path(&name),
            escape_path(&a.output),
            human_bytes(size),
            kdf.m_kib / 1024,
            kdf.t,
            kdf.p,
            recovery.len()
        );
    }
    Ok(ExitCode::Ok)
}

/// The refusal to write a bundle whose recovery recipients nobody named: the bundle's own are
/// its maker's choice, which nothing proves was the user's.
fn not_carried_over(bundle: &std::path::Path, listed: &[String], by_recovery_key: bool) -> Error {
    let list: Vec<String> = listed
        .iter()
        .map(|r| format!("\n  {}", escape(r)))
        .collect();
    Error::Declined {
        why: format!(
            "{} lists {} recovery recipient(s); repack never copies them, since whoever made the bundle chose them{}:{}",
            escape_path(bundle),
            listed.len(),
            if by_recovery_key {
                format!(" (and it was {OPENED_WITH_RECOVERY_KEY})")
            } else {
                String::new()
            },
            list.concat()
        ),
        hint: Some(
            "name the new bundle's recovery recipients: -m vault.toml (its recovery_recipients), --recovery-recipient R for each you know to be yours, or --no-recovery for none".into(),
        ),
    }
}
