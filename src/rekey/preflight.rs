//! `vault pack` preflight: with each host's own private key (the manifest's `ssh_host_key`),
//! try every sops and agenix file that lists that host, so a bundle never ships a host that
//! cannot read its secrets at first boot.

use std::path::PathBuf;

use super::{agenix, sops, Error};
use crate::keys::age::{crypt, header, Identities};
use crate::keys::{passphrase, HostKey};
use crate::manifest::Manifest;

/// What one host can decrypt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreflightReport {
    pub host: String,
    /// sops files with an age entry for the host's recipient.
    pub sops_listed: usize,
    /// Of those, how many the host key opens.
    pub sops_ok: usize,
    /// agenix files encrypted to (or whose rule names) the host's key.
    pub agenix_listed: usize,
    pub agenix_ok: usize,
    /// Files listed for the host that its key does not open, and why.
    pub failures: Vec<(PathBuf, String)>,
    /// Set when the host could not be checked (e.g. no `ssh_host_key` in the manifest).
    pub skipped: Option<String>,
}

impl PreflightReport {
    pub fn listed(&self) -> usize {
        self.sops_listed + self.agenix_listed
    }

    pub fn ok(&self) -> usize {
        self.sops_ok + self.agenix_ok
    }

    /// True when every listed file opens.
    pub fn all_ok(&self) -> bool {
        self.skipped.is_none() && self.failures.is_empty()
    }

    /// "host X can decrypt N of N secrets".
    pub fn summary(&self) -> String {
        match &self.skipped {
            Some(why) => format!("host {}: not checked ({why})", self.host),
            None => format!(
                "host {} can decrypt {} of {} secrets ({} of {} sops, {} of {} agenix)",
                self.host,
                self.ok(),
                self.listed(),
                self.sops_ok,
                self.sops_listed,
                self.agenix_ok,
                self.agenix_listed
            ),
        }
    }
}

/// Checks `hosts` (names from the manifest) against the manifest's secrets repo. A repo the
/// manifest does not name gives reports with zero files.
pub fn preflight(manifest: &Manifest, hosts: &[String]) -> Result<Vec<PreflightReport>, Error> {
    let mut skipped = Vec::new();
    let sops_jobs = match &manifest.secrets.sops_config {
        Some(c) => sops::plan(c, &[], &mut skipped)?,
        None => Vec::new(),
    };
    let agenix_jobs = match &manifest.secrets.agenix_rules {
        Some(r) => agenix::plan(r, manifest.secrets.agenix_keys.as_deref(), &mut skipped)?,
        None => Vec::new(),
    };
    let mut reports = Vec::new();
    for name in hosts {
        let mut rep = PreflightReport {
            host: name.clone(),
            ..Default::default()
        };
        let Some(key_path) = manifest
            .hosts
            .get(name)
            .and_then(|h| h.ssh_host_key.clone())
        else {
            rep.skipped = Some("no ssh_host_key in the manifest".into());
            reports.push(rep);
            continue;
        };
        // Host keys are unencrypted (sshd reads them at boot); a protected one is reported.
        let pass = passphrase::Source::File(PathBuf::from("/dev/null"));
        let key = match HostKey::load(&key_path, &pass) {
            Ok(k) => k,
            Err(e) => {
                rep.skipped = Some(format!("cannot load {}: {e}", key_path.display()));
                reports.push(rep);
                continue;
            }
        };
        let mut ids = Identities::default();
        ids.push_host_key(&key, &key_path)?;
        let age1 = key
            .age_recipient()
            .map_err(|e| crate::keys::age::Error::Identity {
                path: key_path.clone(),
                message: e.to_string(),
            })
            .map_err(Error::from)?;
        let ssh_line = key.public_openssh_bare();
        let ssh_tag = header::ssh_tag(&ssh_line);

        for job in &sops_jobs {
            let mine: Vec<&crate::repo::sops::entries::AgeEntry> = job
                .current
                .iter()
                .flatten()
                .filter(|e| e.recipient == age1 || e.recipient == ssh_line)
                .collect();
            let in_rule = job
                .desired
                .iter()
                .flatten()
                .any(|r| r == &age1 || r == &ssh_line);
            if mine.is_empty() {
                // The rules give this file to the host, but it was never rekeyed to it: the
                // host would boot without this secret.
                if in_rule {
                    rep.sops_listed += 1;
                    rep.failures.push((
                        job.path.clone(),
                        "the .sops.yaml rules include this host, but the file is not encrypted to it yet".into(),
                    ));
                }
                continue;
            }
            rep.sops_listed += 1;
            let opened = mine
                .iter()
                .map(|e| crypt::decrypt(e.enc.as_bytes(), &ids))
                .find(Result::is_ok);
            match opened {
                Some(Ok(_)) => rep.sops_ok += 1,
                _ => rep.failures.push((
                    job.path.clone(),
                    "its entry for this host does not open with the host key".into(),
                )),
            }
        }
        for job in &agenix_jobs {
            let in_rule = job.rule.public_keys.iter().any(|k| {
                k == &age1 || k.split_whitespace().take(2).collect::<Vec<_>>().join(" ") == ssh_line
            });
            let in_header = match (&ssh_tag, job.stanzas()) {
                (Some((kind, tag)), Ok(st)) => st
                    .iter()
                    .any(|s| &s.kind == kind && s.args.first() == Some(tag)),
                _ => false,
            };
            if !in_rule && !in_header {
                continue;
            }
            rep.agenix_listed += 1;
            match job.open(&ids) {
                Ok(()) => rep.agenix_ok += 1,
                Err(why) => rep.failures.push((job.path.clone(), why)),
            }
        }
        reports.push(rep);
    }
    Ok(reports)
}
