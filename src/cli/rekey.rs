//! `vault rekey`: re-encrypt the secrets repo to the recipients its rules name now.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Args;
use vault::escape::{escape, escape_path, json::path as json_path};
use vault::keys::age::{identities, Identities};
use vault::keys::passphrase;
use vault::manifest::Manifest;
use vault::rekey::{self, Status, Which};
use vault::ExitCode;

use super::progress::{Progress, Unit};

/// Re-encrypt sops files (per .sops.yaml) and agenix files (per secrets.nix) to their current
/// recipients. All files change or none do. Where the repo lives comes from the `[secrets]`
/// table of vault.toml.
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// The manifest naming the secrets repo.
    #[arg(short, long, value_name = "FILE", default_value = "vault.toml")]
    pub manifest: PathBuf,
    /// Only sops files (default: both kinds).
    #[arg(long)]
    pub sops: bool,
    /// Only agenix files (default: both kinds).
    #[arg(long)]
    pub agenix: bool,
    /// Identity to decrypt with: an age identity file (plain or passphrase-encrypted) or an
    /// OpenSSH private key (plain or passphrase-protected). Repeat for several. Default: those
    /// of $SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt, ~/.ssh/id_ed25519, ~/.ssh/id_rsa
    /// that exist.
    #[arg(short, long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// Decrypt with the default identity of age plugin NAME (age-plugin-NAME on PATH), as
    /// `age -j NAME`: e.g. `--plugin yubikey` for the YubiKey plugged in. Repeatable. The PIN
    /// or touch is asked once per run, however many files. Identity files (-i) may also hold
    /// plugin identities (AGE-PLUGIN-… lines).
    #[arg(long = "plugin", value_name = "NAME")]
    pub plugins: Vec<String>,
    /// Show what would change; write nothing.
    #[arg(long, conflicts_with = "check")]
    pub dry_run: bool,
    /// Exit with code 8 if any file is stale, 0 if all are current; write nothing.
    #[arg(long)]
    pub check: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub jobs: usize,
    /// A number: worker threads, as --jobs N. A name: the default identity of age plugin NAME,
    /// as `age -j NAME` and --plugin NAME (e.g. `-j yubikey`). Repeatable.
    #[arg(short = 'j', value_name = "N|NAME")]
    pub j: Vec<String>,
    /// Print the files and their status as JSON on stdout: `current` / `stale` (with
    /// --check or --dry-run) or `current` / `rekeyed` (a real run).
    #[arg(long)]
    pub json: bool,
    /// Read passphrases of protected identities from the first line of this file (default:
    /// ask on the terminal, once per key).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

pub fn run(mut a: RekeyArgs, quiet: bool) -> vault::Result<ExitCode> {
    // `-j 8` is the worker count (as before plugins); `-j yubikey` a plugin, as in age. No
    // plugin is named by digits alone.
    for v in std::mem::take(&mut a.j) {
        match v.parse::<usize>() {
            Ok(n) => a.jobs = n,
            Err(_) => a.plugins.push(v),
        }
    }
    let manifest = Manifest::load(&a.manifest)?;
    let which = if a.sops || a.agenix {
        Which {
            sops: a.sops,
            agenix: a.agenix,
        }
    } else {
        Which {
            sops: true,
            agenix: true,
        }
    };
    if which.agenix
        && !quiet
        && manifest.secrets.agenix_keys.is_some()
        && manifest.secrets.agenix_rules.is_none()
    {
        eprintln!("{}", super::host::AGENIX_RULES_MISSING);
    }
    // Planning reads every file: on the same -j workers as the rekey itself; should the pool
    // not start, on rayon's default one (the rekey then reports that error).
    let pool = rekey::worker_pool(a.jobs);
    let plan_all = || rekey::plan(&manifest.secrets, &manifest.path, which);
    let mut plan = match &pool {
        Ok(pool) => pool.install(plan_all),
        Err(_) => plan_all(),
    }?;
    let paths = if a.identities.is_empty() {
        identities::default_paths()
    } else {
        a.identities.clone()
    };
    let paths = if a.identities.is_empty() && !a.plugins.is_empty() {
        Vec::new()
    } else {
        paths
    };
    let load = || {
        let mut ids = Identities::load(
            &paths,
            &passphrase::Source::from_option(a.passphrase_file.clone()),
        )?;
        for name in &a.plugins {
            ids.push_plugin_default(name)?;
        }
        Ok::<_, rekey::Error>(ids)
    };
    let have_ids = !paths.is_empty() || !a.plugins.is_empty();
    // agenix files with age1 recipients are proven current by decrypting them (the rekey
    // record); without any identity they stay stale, and --check says why.
    let mut ids = None;
    if plan.unverified() > 0 && have_ids {
        let loaded = load()?;
        if !a.check && !a.dry_run {
            // A missing recipient plugin stops the run before any PIN is asked.
            plan.check_recipients(&vault::keys::age::Recipients::default())?;
        }
        // Hardware keys: one session (one PIN) for every file this run opens.
        loaded.unlock_plugins(&plan.age_units())?;
        match &pool {
            Ok(pool) => pool.install(|| plan.verify_records(&loaded)),
            Err(_) => plan.verify_records(&loaded),
        }
        ids = Some(loaded);
    }
    let stale = plan.stale();
    // The JSON list of every file; `stale_as` names what a stale file is (or became).
    let files_json = |items: &[rekey::Item], stale_as: &str| {
        let items: Vec<serde_json::Value> = items
            .iter()
            .map(|i| {
                let (status, why) = match &i.status {
                    Status::Fresh => ("current", None),
                    Status::Stale(w) => (stale_as, Some(w.clone())),
                };
                serde_json::json!({
                    "path": json_path(&i.path), "kind": i.kind, "status": status, "why": why,
                })
            })
            .collect();
        serde_json::Value::Array(items)
    };
    // Leftovers of a run that was killed: originals are intact, the temporaries are garbage,
    // which a `git add -A` would commit. Named by --check and --dry-run, removed by a real run.
    let mut dirs: BTreeSet<PathBuf> = [
        &manifest.secrets.sops_config,
        &manifest.secrets.agenix_rules,
    ]
    .into_iter()
    .flatten()
    .filter_map(|p| p.parent().map(PathBuf::from))
    .collect();
    dirs.extend(
        plan.items
            .iter()
            .filter_map(|i| i.path.parent().map(PathBuf::from)),
    );
    let dirs = dirs.iter().map(PathBuf::as_path);
    let temporaries = |n: usize| match n {
        1 => "1 temporary file".to_owned(),
        n => format!("{n} temporary files"),
    };
    if a.check || a.dry_run {
        let left = rekey::commit::stale_temps(dirs);
        if let (Some(first), false) = (left.first(), quiet) {
            eprintln!(
                "note: {} of an interrupted `vault rekey` are in the repo ({}{}); the next `vault rekey` removes them: do not commit them",
                temporaries(left.len()),
                first.display(),
                if left.len() > 1 { ", …" } else { "" }
            );
        }
    } else {
        let removed = rekey::commit::remove_stale_temps(dirs);
        if !removed.is_empty() && !quiet {
            eprintln!(
                "removed {} an interrupted earlier `vault rekey` left",
                temporaries(removed.len())
            );
        }
    }
    if a.check || a.dry_run {
        let stale_error = (a.check && stale > 0)
            .then(|| vault::Error::from(rekey::Error::Stale { count: stale }));
        if a.json {
            match &stale_error {
                // One document: the error, with the files that make it.
                Some(e) => {
                    let mut v = super::util::json_error(e);
                    v["files"] = files_json(&plan.items, "stale");
                    super::json::print(&v)?;
                }
                None => super::json::print(&files_json(&plan.items, "stale"))?,
            }
        } else if !quiet {
            for item in &plan.items {
                match &item.status {
                    Status::Fresh if a.dry_run => {
                        println!("current  {:<6} {}", item.kind, escape_path(&item.path))
                    }
                    Status::Fresh => {}
                    Status::Stale(why) => println!(
                        "stale    {:<6} {}  ({})",
                        item.kind,
                        escape_path(&item.path),
                        escape(why)
                    ),
                }
            }
            eprintln!(
                "{stale} of {} secret files {} rekeying",
                plan.items.len(),
                if a.dry_run { "would need" } else { "need" }
            );
        }
        if let Some(e) = stale_error {
            return Err(e);
        }
        return Ok(ExitCode::Ok);
    }
    if stale == 0 {
        if a.json {
            super::json::print(&files_json(&plan.items, "stale"))?;
        } else if !quiet {
            eprintln!(
                "all {} secret files are current; nothing to do",
                plan.items.len()
            );
        }
        return Ok(ExitCode::Ok);
    }
    if !have_ids {
        return Err(rekey::Error::NoIdentity.into());
    }
    let ids = match ids {
        Some(ids) => ids,
        None => {
            let ids = load()?;
            plan.check_recipients(&vault::keys::age::Recipients::default())?;
            ids.unlock_plugins(&plan.age_units())?;
            ids
        }
    };
    // Drawn only on a terminal, without --quiet, and once the work takes a moment.
    let bar = Progress::new(stale as u64, Unit::Items, "rekeying", quiet);
    let tick = || bar.inc(1);
    let items = plan.items.clone();
    let result = plan.apply(&ids, &pool?, &tick);
    bar.finish();
    let written = result?;
    if a.json {
        super::json::print(&files_json(&items, "rekeyed"))?;
    } else if !quiet {
        for p in &written {
            println!("rekeyed  {}", escape_path(p));
        }
        eprintln!("rekeyed {} secret files", written.len());
    }
    Ok(ExitCode::Ok)
}
