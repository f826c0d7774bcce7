//! `vault pack`.

use std::path::PathBuf;

use clap::Args;
use vault::bundle::KdfParams;
use vault::escape::{escape, escape_message, escape_path, json::path as json_path};
use vault::keys::strength;
use vault::manifest::Manifest;
use vault::pack::{self, PackOptions};
use vault::{prompt, Error, ExitCode};

use super::progress::{Progress, Unit};
use super::util::{human_bytes, passphrase_source, PassphraseArgs};

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The manifest.
    #[arg(short, long, default_value = "vault.toml")]
    pub manifest: PathBuf,
    /// Where to write the bundle.
    #[arg(short, long, default_value = "vault.bundle")]
    pub output: PathBuf,
    /// Replace an existing output file. The manifest, a source or the passphrase file is never
    /// replaced.
    #[arg(long)]
    pub force: bool,
    /// Pack only these hosts (repeatable; default: all).
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Accept a passphrase that the reference attacker (docs/SECURITY.md) would guess in under
    /// 100 GPU-years at the chosen Argon2id settings.
    #[arg(long)]
    pub weak_passphrase: bool,
    /// Also wrap this bundle's key to this recovery recipient (repeatable), besides vault.toml's
    /// `recovery_recipients` (which this does not change): an `age1…` X25519 recipient, an SSH
    /// public key line (`ssh-ed25519 …`, `ssh-rsa …`) or a hardware key's `age1<plugin>1…`.
    /// Its private key opens the bundle without the passphrase (`vault inspect -i`,
    /// `vault repack`).
    #[arg(long, value_name = "RECIPIENT")]
    pub recovery_recipient: Vec<String>,
    /// Recovery recipients from FILE, one per line (`#` comments and blank lines skipped),
    /// as age's -R (repeatable).
    #[arg(long, value_name = "FILE")]
    pub recovery_recipients_file: Vec<PathBuf>,
    /// zstd level (1-19).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub level: i32,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Skip checking that each host's key opens the sops/agenix secrets meant for it.
    #[arg(long)]
    pub no_preflight: bool,
    /// Check each host against its NixOS configuration, nixosConfigurations.NAME of this flake:
    /// REF#NAME for host NAME (or for the one host packed), REF for every host (repeatable;
    /// default: each host's `flake` in vault.toml).
    #[arg(long, value_name = "REF[#NAME]")]
    pub flake: Vec<String>,
    /// Pack without evaluating the NixOS configurations.
    #[arg(long)]
    pub no_config_check: bool,
}

/// The Argon2id settings of a bundle being written (`pack`, `repack`): the default, the
/// stronger preset, explicit values, or a calibration; weaker than the default only with
/// `--weak-kdf`.
#[derive(Debug, Args)]
pub struct KdfArgs {
    /// Argon2id memory in MiB [default: 1024, or 2048 with --strong].
    #[arg(long, value_name = "MiB")]
    pub kdf_memory: Option<u32>,
    /// Argon2id passes [default: 3].
    #[arg(long, value_name = "N")]
    pub kdf_iterations: Option<u32>,
    /// Argon2id lanes [default: 4]. The key does not depend on the unlocking machine's cores.
    #[arg(long, value_name = "N")]
    pub kdf_parallelism: Option<u32>,
    /// The stronger preset: 2 GiB of memory (for installers with 4 GiB of RAM or more).
    #[arg(long, conflicts_with_all = ["kdf_memory", "kdf_iterations"])]
    pub strong: bool,
    /// Choose Argon2id memory and passes so one derivation takes about SECONDS on this
    /// machine (memory first, up to --target-memory / 2, at most 1 GiB without it), print
    /// them and the cost of one guess, and use them.
    #[arg(long, value_name = "SECONDS", conflicts_with_all = ["strong", "kdf_memory", "kdf_iterations"])]
    pub kdf_calibrate: Option<f64>,
    /// With --kdf-calibrate: RAM of the machine that will unlock (the installer), in MiB.
    #[arg(long, value_name = "MiB", requires = "kdf_calibrate")]
    pub target_memory: Option<u64>,
    /// Accept Argon2id settings weaker than the default (less memory, or less memory × passes):
    /// each guess at the passphrase then costs an attacker less.
    #[arg(long)]
    pub weak_kdf: bool,
}

impl KdfArgs {
    /// The settings these flags ask for, checked: out of range is refused, weaker than the
    /// default is refused without `--weak-kdf` (exit 6) and warned about with it.
    pub fn resolve(&self, quiet: bool) -> vault::Result<KdfParams> {
        let base = if self.strong {
            KdfParams::STRONG
        } else {
            KdfParams::DEFAULT
        };
        let mut kdf = KdfParams {
            m_kib: self
                .kdf_memory
                .map_or(base.m_kib, |m| m.saturating_mul(1024)),
            t: self.kdf_iterations.unwrap_or(base.t),
            p: self.kdf_parallelism.unwrap_or(base.p),
        };
        if let Some(secs) = self.kdf_calibrate {
            kdf = calibrate(secs, self.target_memory, kdf.p, quiet)?;
        }
        kdf.check_untrusted(&vault::bundle::KdfLimits {
            mem_available: None,
            ..vault::bundle::KdfLimits::for_this_machine()
        })
        .map_err(|why| Error::Declined {
            why: format!("Argon2id parameters out of range: {why}"),
            hint: Some("see `vault pack --help` for the ranges".into()),
        })?;
        if let Some(why) = pack::kdf_weakness(&kdf) {
            if !self.weak_kdf {
                return Err(Error::Declined {
                    why: format!(
                        "Argon2id {} MiB, t={} is weaker than the default: {why}",
                        kdf.m_kib / 1024,
                        kdf.t
                    ),
                    hint: Some(if self.kdf_calibrate.is_some() {
                        "calibrate for more seconds or with a larger --target-memory, drop --kdf-calibrate for the default, or pass --weak-kdf to accept it".into()
                    } else {
                        "leave out --kdf-memory/--kdf-iterations for the default, or pass --weak-kdf to accept it".into()
                    }),
                });
            }
            if !quiet {
                eprintln!("warning: weak Argon2id (--weak-kdf): {why}");
            }
        }
        Ok(kdf)
    }
}

/// `--kdf-calibrate`: the installer must be able to afford the memory (half its RAM), and so
/// must this machine, which measures it.
fn calibrate(secs: f64, target_mib: Option<u64>, p: u32, quiet: bool) -> vault::Result<KdfParams> {
    if !(0.05..=600.0).contains(&secs) {
        return Err(Error::Declined {
            why: format!("--kdf-calibrate {secs}: choose between 0.05 and 600 seconds"),
            hint: None,
        });
    }
    let mut cap_kib: u64 = target_mib.map_or(1 << 20, |m| m * 1024 / 2).min(4 << 20);
    if let Some(here) = vault::bundle::argon2id::mem_available() {
        cap_kib = cap_kib.min(here / 1024 / 2);
    }
    let c = pack::calibrate_kdf(secs, cap_kib as u32)?;
    let kdf = KdfParams { p, ..c.params };
    if !quiet {
        let mib = kdf.m_kib / 1024;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        eprintln!(
            "Argon2id calibrated for {secs} s: memory {mib} MiB, t={}, p={} (--kdf-memory {mib} --kdf-iterations {} --kdf-parallelism {}).",
            kdf.t, kdf.p, kdf.t, kdf.p
        );
        eprintln!(
            "Cost per guess: {:.2} s and {mib} MiB on this machine; {:.1} guesses/s with all {cores} cores here, memory permitting. Unlocking costs the same once.",
            c.seconds,
            cores as f64 / c.seconds
        );
        if c.raised {
            eprintln!(
                "note: {secs} s is less than the default Argon2id settings take here, so the passes were raised to match them; for the installer's sake, calibrate for more seconds rather than fewer."
            );
        }
        if let Some(wanted) = c.capped_from {
            eprintln!(
                "note: {secs} s would take {wanted} passes at {mib} MiB; capped at {} passes, the most an unlocking vault accepts at this memory. For a costlier guess, give the installer more memory (--target-memory).",
                kdf.t
            );
        }
    }
    Ok(kdf)
}

/// Before anything is encrypted: can each host, with the key this bundle gives it, open the
/// secrets the repo says are for it? A host that boots without its secrets is the failure
/// this catches, while the workstation that can fix it is still at hand.
fn preflight(manifest: &Manifest, hosts: &[String], quiet: bool) -> vault::Result<()> {
    if manifest.secrets.sops_config.is_none() && manifest.secrets.agenix_rules.is_none() {
        return Ok(());
    }
    let reports = vault::rekey::preflight::preflight(manifest, hosts)?;
    let mut bad = Vec::new();
    for r in &reports {
        if !quiet {
            eprintln!("{}", escape_message(&r.summary()));
        }
        for (file, why) in &r.failures {
            bad.push(format!("\n  host {}: {}: {why}", r.host, file.display()));
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    Err(Error::Refused {
        why: format!("some hosts cannot decrypt their secrets:{}", bad.concat()),
        hint: Some("run `vault rekey` so the secrets include every host's recipient, or pass --no-preflight".into()),
    })
}

/// Before the key derivation: print what guessing the passphrase would cost at these Argon2id
/// settings, and refuse it below the threshold unless `--weak-passphrase`. Only numbers and
/// zxcvbn's fixed advice are printed, never the passphrase.
pub(super) fn check_strength(
    passphrase: &str,
    kdf: &KdfParams,
    hosts: &[String],
    accept_weak: bool,
    quiet: bool,
) -> vault::Result<strength::Estimate> {
    let context: Vec<&str> = hosts.iter().map(String::as_str).chain(["vault"]).collect();
    let e = strength::estimate(passphrase, kdf, &context);
    if !quiet {
        eprintln!("{}", e.summary(kdf));
    }
    if e.too_weak() {
        if !accept_weak {
            return Err(Error::Declined {
                why: format!("the passphrase is too weak for these Argon2id settings: {}", e.weakness()),
                hint: Some("choose a longer passphrase (five or more random words), raise Argon2id (--strong, --kdf-calibrate), or pass --weak-passphrase to accept it".into()),
            });
        }
        if !quiet {
            eprintln!(
                "warning: weak passphrase (--weak-passphrase): {}",
                e.weakness()
            );
        }
    }
    Ok(e)
}

/// The new passphrase and its strength: from `--passphrase-file` (refused if too weak), or
/// typed twice on the terminal, where one below the threshold is refused with the reason and
/// asked for again, three times in all.
fn new_passphrase(
    a: &PackArgs,
    kdf: &KdfParams,
    hosts: &[String],
    quiet: bool,
) -> vault::Result<(age_core::secrecy::SecretString, strength::Estimate)> {
    use age_core::secrecy::ExposeSecret;
    if let Some(p) = passphrase_source(&a.passphrase)? {
        let e = check_strength(p.expose_secret(), kdf, hosts, a.weak_passphrase, quiet)?;
        return Ok((p, e));
    }
    const TRIES: usize = 3;
    for attempt in 1..=TRIES {
        let p = prompt::ask_new(&format!("New passphrase for {}: ", escape_path(&a.output)))?;
        match check_strength(p.expose_secret(), kdf, hosts, a.weak_passphrase, quiet) {
            Ok(e) => return Ok((p, e)),
            Err(e) if attempt < TRIES => {
                eprintln!("{e}; choose another (attempt {} of {TRIES})", attempt + 1);
            }
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

/// The recovery recipients of `--recovery-recipient` and `--recovery-recipients-file`,
/// checked (each error names the flag or the file and line) and in their canonical form.
pub(super) fn recovery_recipients(
    given: &[String],
    files: &[PathBuf],
) -> vault::Result<Vec<String>> {
    let mut lines: Vec<String> = given.to_vec();
    let mut origins: Vec<String> = (0..given.len())
        .map(|i| format!("--recovery-recipient #{}", i + 1))
        .collect();
    for f in files {
        for (n, line) in pack::recovery::read_recipients_file(f)? {
            lines.push(line);
            origins.push(format!("{}, line {n}", f.display()));
        }
    }
    let parsed = pack::recovery::parse_all(&lines, &|i| origins[i].clone())?;
    Ok(parsed.into_iter().map(|r| r.line).collect())
}

pub fn run(a: PackArgs, quiet: bool) -> vault::Result<ExitCode> {
    let manifest = Manifest::load(&a.manifest)?;
    // While the files are hashed: the passphrase's strength is estimated after.
    vault::keys::strength::warm_up();
    let mut plan = pack::plan(&manifest, &a.hosts)?;
    let mut recovery = manifest.recovery_recipients.clone();
    for r in recovery_recipients(&a.recovery_recipient, &a.recovery_recipients_file)? {
        if !recovery.contains(&r) {
            recovery.push(r);
        }
    }
    plan.manifest.recovery_recipients = recovery;
    pack::check_not_empty(&manifest, &plan)?;
    let inputs: Vec<(&str, &std::path::Path)> = a
        .passphrase
        .passphrase_file
        .as_deref()
        .map(|p| ("passphrase file", p))
        .into_iter()
        .chain(
            a.recovery_recipients_file
                .iter()
                .map(|p| ("recovery recipients file", p.as_path())),
        )
        .collect();
    pack::check_output(&plan, &a.manifest, &inputs, &a.output, a.force)?;
    let config_check = match a.no_config_check {
        false => Some(super::config_check::run(
            &manifest, &plan, &a.flake, quiet, a.json,
        )?),
        true => None,
    };
    if !a.no_preflight {
        preflight(&manifest, &plan.manifest.hosts, quiet || a.json)?;
    }
    let kdf = a.kdf.resolve(quiet)?;
    let key_warnings = pack::check_key_modes(&manifest, &plan)?;
    if !quiet {
        for w in pack::warnings(&manifest, &plan)
            .into_iter()
            .chain(key_warnings)
        {
            eprintln!("warning: {}", escape_message(&w));
        }
    }
    let (passphrase, strength) = new_passphrase(&a, &kdf, &plan.manifest.hosts, quiet)?;
    let opts = PackOptions {
        kdf,
        compression: vault::archive::write::Compression {
            level: a.level,
            ..Default::default()
        },
        replace: a.force,
    };
    let bar = Progress::new(plan.total_bytes, Unit::Bytes, "packing", quiet || a.json);
    let size = pack::write_bundle(&plan, &a.output, passphrase, opts, &bar.callback())?;
    bar.finish();
    let files = plan
        .manifest
        .items
        .iter()
        .filter(|i| i.kind == vault::archive::Kind::File)
        .count();
    if a.json {
        let out = serde_json::json!({
            "output": json_path(&a.output),
            "size": size,
            "hosts": plan.manifest.hosts,
            "files": files,
            "payload_bytes": plan.total_bytes,
            "kdf": { "memory_kib": kdf.m_kib, "iterations": kdf.t, "parallelism": kdf.p },
            "passphrase_strength": {
                "guesses_log10": strength.guesses_log10,
                "zxcvbn_score": strength.score,
                "gpu_years": strength.gpu_years,
            },
            "config_check": config_check,
            "recovery_recipients": plan.manifest.recovery_recipients,
        });
        super::json::print(&out)?;
    } else if !quiet {
        println!(
            "Packed {} file(s), {} for host(s) {} into {} ({}; Argon2id {} MiB, t={}, p={}).",
            files,
            human_bytes(plan.total_bytes),
            if plan.manifest.hosts.is_empty() {
                "(shared only)".to_owned()
            } else {
                escape(&plan.manifest.hosts.join(", ")).into_owned()
            },
            escape_path(&a.output),
            human_bytes(size),
            kdf.m_kib / 1024,
            kdf.t,
            kdf.p
        );
        let n = plan.manifest.recovery_recipients.len();
        if n > 0 {
            println!("The bundle's key is also wrapped to {n} recovery recipient(s): keep their keys offline.");
        }
    }
    Ok(ExitCode::Ok)
}
