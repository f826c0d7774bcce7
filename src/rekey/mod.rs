//! Re-encrypting a secrets repository: sops files per `.sops.yaml`, agenix files per
//! `secrets.nix` (DESIGN.md §5, user docs in `docs/REKEY.md`).
//!
//! Two phases. [`plan`] reads the rules and every file's current recipients (no key needed),
//! which is all `--check` and `--dry-run` use. [`Plan::apply`] decrypts and re-encrypts the
//! stale files in memory, in parallel, writing each result beside its original as a
//! temporary; only if every file succeeded are they renamed over the originals ([`commit`]).

pub mod agenix;
pub mod commit;
mod error;
pub mod preflight;
pub mod record;
pub mod sops;
mod sops_entries;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::keys::age::{Identities, Recipients};

pub use error::Error;
pub use preflight::{preflight, PreflightReport};

/// Which kinds of secrets to look at.
#[derive(Debug, Clone, Copy)]
pub struct Which {
    pub sops: bool,
    pub agenix: bool,
}

/// What a file needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Already encrypted to exactly its rule's recipients.
    Fresh,
    /// Must be re-encrypted; the text says what differs.
    Stale(String),
}

/// One secret file found in the repo.
#[derive(Debug, Clone)]
pub struct Item {
    pub path: PathBuf,
    pub kind: &'static str,
    pub status: Status,
}

pub(crate) enum Job {
    Sops(sops::SopsJob),
    Agenix(agenix::AgenixJob),
}

impl Job {
    fn path(&self) -> &Path {
        match self {
            Job::Sops(j) => &j.path,
            Job::Agenix(j) => &j.path,
        }
    }

    fn original(&self) -> &[u8] {
        match self {
            Job::Sops(j) => j.original(),
            Job::Agenix(j) => j.original(),
        }
    }

    /// The age files a rekey of this job opens, as alternatives of which one must open
    /// (see [`plugin::unlock`]).
    fn age_units(&self) -> Vec<Vec<&[u8]>> {
        match self {
            Job::Agenix(j) => vec![vec![j.original()]],
            Job::Sops(j) => j
                .changing_groups()
                .map(|(cur, _)| cur.iter().map(|e| e.enc.as_bytes()).collect())
                .collect(),
        }
    }

    /// The recipients this job wraps to.
    fn wraps_to(&self) -> Vec<&String> {
        match self {
            Job::Agenix(j) => j.rule.public_keys.iter().collect(),
            Job::Sops(j) => j.changing_groups().flat_map(|(_, w)| w).collect(),
        }
    }

    /// The new bytes, and for an agenix file the record needs, its new record entry.
    fn run(
        &self,
        ids: &Identities,
        recipients: &Recipients,
        record: Option<&record::Record>,
    ) -> Result<(Vec<u8>, Option<record::Named>), String> {
        match self {
            Job::Sops(j) => j.rekey(ids, recipients).map(|s| (s.into_bytes(), None)),
            Job::Agenix(j) => {
                let (new, key) = j.rekey(ids, recipients)?;
                let entry = record
                    .filter(|_| record::needs_record(&j.rule.public_keys))
                    .map(|r| {
                        let name = r.name(&j.path);
                        let e = record::Entry::new(&key, &name, &new, &j.rule.public_keys);
                        (name, e)
                    });
                Ok((new, entry))
            }
        }
    }
}

/// The `-j` worker threads (0: one per core) that planning and [`Plan::apply`] run on.
pub fn worker_pool(jobs: usize) -> Result<rayon::ThreadPool, Error> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| {
            Error::io(
                "cannot start worker threads for",
                ".",
                std::io::Error::other(e),
            )
        })
}

/// Every secret file with its status; the stale ones carry what [`Plan::apply`] needs.
pub struct Plan {
    pub items: Vec<Item>,
    /// Files matched by a rule but skipped, with the reason (not sops-encrypted, missing).
    pub skipped: Vec<(PathBuf, String)>,
    jobs: Vec<Job>,
    /// The rekey record of the agenix files (when they were planned).
    record: Option<record::Record>,
    /// agenix files whose record entry matches and awaits [`Plan::verify_records`].
    unverified: Vec<PathBuf>,
    /// Record names of the files [`Plan::verify_records`] proved current.
    verified: Vec<String>,
}

/// Why a file awaiting [`Plan::verify_records`] counts as stale until then.
const UNVERIFIED: &str =
    "age1 recipients: its rekey record is verified only with an identity that opens it (-i)";

/// Reads the rules and the current recipients of every secret file.
pub fn plan(
    repo: &crate::manifest::SecretsRepo,
    manifest: &Path,
    which: Which,
) -> Result<Plan, Error> {
    let mut plan = Plan {
        items: Vec::new(),
        skipped: Vec::new(),
        jobs: Vec::new(),
        record: None,
        unverified: Vec::new(),
        verified: Vec::new(),
    };
    let agenix_rules = repo.agenix_rules.as_deref().filter(|_| which.agenix);
    let sops_config = repo.sops_config.as_deref().filter(|_| which.sops);
    if agenix_rules.is_none() && sops_config.is_none() {
        return Err(Error::NoRepo {
            manifest: manifest.to_path_buf(),
            what: match (which.sops, which.agenix) {
                (true, false) => "sops_config",
                (false, true) => "agenix_rules",
                _ => "sops_config or agenix_rules",
            },
        });
    }
    // agenix files are age files, never sops files: keep the sops walk off them.
    let mut agenix_files = Vec::new();
    if let Some(rules) = agenix_rules {
        let record = record::Record::load(rules)?;
        for job in agenix::plan(rules, repo.agenix_keys.as_deref(), &mut plan.skipped)? {
            agenix_files.push(job.path.clone());
            let mut status = job.status();
            // X25519 stanzas name nobody: only the record can show such a file current.
            if status == Status::Fresh && record::needs_record(&job.rule.public_keys) {
                status = match record.precheck(&job) {
                    Ok(()) => {
                        plan.unverified.push(job.path.clone());
                        Status::Stale(UNVERIFIED.into())
                    }
                    Err(why) => Status::Stale(why),
                };
            }
            push(&mut plan, Job::Agenix(job), status);
        }
        plan.record = Some(record);
    }
    if let Some(config) = sops_config {
        for job in sops::plan(config, &agenix_files, &mut plan.skipped)? {
            let status = job.status();
            push(&mut plan, Job::Sops(job), status);
        }
    }
    Ok(plan)
}

fn push(plan: &mut Plan, job: Job, status: Status) {
    let kind = match &job {
        Job::Sops(_) => "sops",
        Job::Agenix(_) => "agenix",
    };
    plan.items.push(Item {
        path: job.path().to_path_buf(),
        kind,
        status: status.clone(),
    });
    if status != Status::Fresh {
        plan.jobs.push(job);
    }
}

impl Plan {
    pub fn stale(&self) -> usize {
        self.jobs.len()
    }

    /// agenix files that [`Plan::verify_records`] may still prove current.
    pub fn unverified(&self) -> usize {
        self.unverified.len()
    }

    /// Every age file that [`Plan::verify_records`] and [`Plan::apply`] open, for
    /// [`Identities::unlock_plugins`] (one hardware-key session for all of them).
    pub fn age_units(&self) -> Vec<Vec<&[u8]>> {
        self.jobs.iter().flat_map(Job::age_units).collect()
    }

    /// Resolves every plugin recipient the stale files are wrapped to, before any work: one
    /// whose program is missing is one error naming it and the first file that needs it, not
    /// one per file. (Other recipients fail per file, in [`Plan::apply`].)
    pub fn check_recipients(&self, recipients: &Recipients) -> Result<(), Error> {
        for job in &self.jobs {
            for r in job.wraps_to() {
                if r.trim().parse::<age::plugin::Recipient>().is_err() {
                    continue;
                }
                if let Err(why) = recipients.get(r) {
                    let needing = self
                        .jobs
                        .iter()
                        .filter(|j| j.wraps_to().contains(&r))
                        .count();
                    return Err(crate::keys::age::Error::Plugin {
                        path: job.path().to_path_buf(),
                        message: if needing > 1 {
                            format!("{why} (and {} other files need it)", needing - 1)
                        } else {
                            why
                        },
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    /// Checks the rekey record of the files awaiting it, decrypting each with `ids` (on the
    /// current rayon pool): those it proves current leave the stale list.
    pub fn verify_records(&mut self, ids: &Identities) {
        let Some(record) = &self.record else { return };
        let pending = std::mem::take(&mut self.unverified);
        let verdicts: Vec<(PathBuf, Result<(), String>)> = self
            .jobs
            .par_iter()
            .filter_map(|j| match j {
                Job::Agenix(a) if pending.contains(&a.path) => {
                    Some((a.path.clone(), record.verify(a, ids)))
                }
                _ => None,
            })
            .collect();
        for (path, verdict) in verdicts {
            let status = match verdict {
                Ok(()) => {
                    self.jobs.retain(|j| j.path() != path);
                    self.verified.push(record.name(&path));
                    Status::Fresh
                }
                Err(why) => Status::Stale(why),
            };
            if let Some(item) = self.items.iter_mut().find(|i| i.path == path) {
                item.status = status;
            }
        }
    }

    /// Re-encrypts every stale file on `pool` (see [`worker_pool`]), then commits all of them
    /// or none. `tick` is called once per file done. Returns the files rewritten.
    pub fn apply(
        self,
        ids: &Identities,
        pool: &rayon::ThreadPool,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<PathBuf>, Error> {
        if self.jobs.is_empty() {
            return Ok(Vec::new());
        }
        // Workers re-encrypt; one writer thread stages each result as a temporary as soon as
        // it arrives. Nothing is renamed until every file has succeeded.
        // A failed job stops the staging (its result would be thrown away); a failed write
        // also stops the workers (nothing can be committed).
        // Parsed once per run: an age1 or ssh-ed25519 recipient's table serves every file.
        let recipients = Recipients::default();
        self.check_recipients(&recipients)?;
        let job_failed = AtomicBool::new(false);
        let write_failed = AtomicBool::new(false);
        let (failures, staged) = std::thread::scope(|s| {
            type Done<'j> = (usize, &'j Job, Vec<u8>, Option<record::Named>);
            let (tx, rx) = std::sync::mpsc::sync_channel::<Done>(64);
            let (job_failed, write_failed) = (&job_failed, &write_failed);
            let writer = s.spawn(move || {
                let mut staged = commit::Staged::default();
                let mut entries = Vec::new();
                for (n, job, new, entry) in rx {
                    if job_failed.load(Ordering::Relaxed) {
                        continue; // drain, so no worker blocks on a full channel
                    }
                    if let Err(e) = staged.add(job.path(), job.original(), &new, n) {
                        write_failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                    entries.extend(entry);
                }
                Ok((staged, entries))
            });
            let mut failures: Vec<(PathBuf, String)> = pool.install(|| {
                self.jobs
                    .par_iter()
                    .enumerate()
                    .filter_map(|(n, job)| {
                        if write_failed.load(Ordering::Relaxed)
                            || crate::interrupt::received().is_some()
                        {
                            return None;
                        }
                        let r = job.run(ids, &recipients, self.record.as_ref());
                        tick();
                        match r {
                            Ok((new, entry)) => {
                                // Err only if the writer has returned with an error.
                                let _ = tx.send((n, job, new, entry));
                                None
                            }
                            Err(why) => {
                                // The other jobs still run, so every failure is reported at once.
                                job_failed.store(true, Ordering::Relaxed);
                                Some((job.path().to_path_buf(), why))
                            }
                        }
                    })
                    .collect()
            });
            drop(tx);
            failures.sort();
            let staged = writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (failures, staged)
        });
        if !failures.is_empty() {
            // `staged` (if Ok) is dropped here, removing its temporaries.
            return Err(Error::Failed { failures });
        }
        let (mut staged, entries) = staged?;
        // The record changes in the same commit as the files it describes.
        if let Some(record) = &self.record {
            if let Some(new) = record.updated(&self.verified, entries) {
                let n = self.jobs.len();
                match &record.original {
                    Some(old) => staged.add(&record.path, old, &new, n)?,
                    None => staged.add_new(&record.path, &record.rules, &new, n)?,
                }
            }
        }
        pool.install(|| staged.commit())
    }
}
