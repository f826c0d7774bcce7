//! `vault repack`: the same contents under a new passphrase, for a bundle opened with its
//! passphrase or with a recovery key (a forgotten passphrase).

use std::path::PathBuf;

use clap::Args;
use vault::bundle::KdfLimits;
use vault::escape::{escape, escape_path, json::path as json_path};
use vault::manifest::Manifest;
use vault::pack::{self, PackOptions};
use vault::{prompt, Error, ExitCode};

use super::inspect::{decrypt_opened, RecoveryKeyArgs};
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
    /// Wrap the new bundle's key to these recovery recipients instead of the input's (or
    /// those of --manifest) (repeatable; as `vault pack --recovery-recipient`).
    #[arg(long, value_name = "RECIPIENT")]
    pub recovery_recipient: Vec<String>,
    /// Recovery recipients from FILE, one per line, instead of the input's (repeatable).
    #[arg(long, value_name = "FILE")]
    pub recovery_recipients_file: Vec<PathBuf>,
    /// Write the new bundle without recovery recipients.
    #[arg(long, conflicts_with_all = ["recovery_recipient", "recovery_recipients_file"])]
    pub no_recovery: bool,
    /// An updated vault.toml: the new bundle holds its entries (all hosts), with its
    /// targets, modes and owners; each entry's contents come from its source file if that
    /// exists, else from the bundle's item with the same host and target.
    #[arg(short, long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Accept a passphrase that the reference attacker (docs/SECURITY.md) would guess in under
    /// 100 GPU-years at the bundle's Argon2id settings.
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
    let replaced = !a.recovery_recipient.is_empty() || !a.recovery_recipients_file.is_empty();
    let new_recovery =
        super::pack::recovery_recipients(&a.recovery_recipient, &a.recovery_recipients_file)?;

    let opened = open_bundle(Some(&a.bundle))?;
    let name = opened.name.clone();
    let kdf = opened.locked.info().kdf;
    let payload = decrypt_opened(
        opened.locked,
        &name,
        &a.recovery,
        a.old_passphrase_file.as_deref(),
    )?;
    let mut contents = pack::repack::read_contents(payload, &name)?;
    let mut dropped: Vec<serde_json::Value> = Vec::new();
    if let Some(m) = &updated {
        let rebuilt = contents.rebuild(m)?;
        dropped = rebuilt
            .dropped
            .iter()
            .map(|i| serde_json::json!({ "host": i.host, "target": i.target }))
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
            for i in &rebuilt.dropped {
                eprintln!(
                    "dropped: {} ({}), not in {}",
                    escape(&i.target),
                    i.host
                        .as_deref()
                        .map_or("every host".to_owned(), |h| format!("host {}", escape(h))),
                    escape_path(&m.path)
                );
            }
        }
    }
    let m = &contents.manifest;
    let from_manifest = updated
        .as_ref()
        .map(|u| u.recovery_recipients.clone())
        .filter(|r| !r.is_empty());
    let recovery = match (a.no_recovery, replaced, from_manifest) {
        (true, _, _) => Vec::new(),
        (false, true, _) => new_recovery,
        (false, false, Some(listed)) => listed,
        (false, false, None) => m.recovery_recipients.clone(),
    };

    // The input's Argon2id settings, within what this vault writes.
    kdf.check_untrusted(&KdfLimits {
        mem_available: None,
        ..KdfLimits::for_this_machine()
    })
    .map_err(|why| Error::Declined {
        why: format!("the bundle's Argon2id parameters are out of range: {why}"),
        hint: Some("pack it again from vault.toml with `vault pack`".into()),
    })?;
    if let Some(why) = pack::kdf_weakness(&kdf) {
        if !quiet {
            eprintln!("warning: the bundle's Argon2id settings are weaker than the default, and the new bundle keeps them: {why}");
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
            "dropped": dropped,
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
