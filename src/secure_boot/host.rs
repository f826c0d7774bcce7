//! `vault host add NAME --secure-boot [--rotate] [--pki-bundle PATH]`: a host's Secure Boot
//! keys in `hosts/NAME/secure-boot/` and the `vault.toml` entry placing them.
//!
//! Keys are generated before anything is written (RSA takes seconds; an interrupt then simply
//! ends the run). The new folder is written under a temporary name and renamed into place
//! (`--rotate`: exchanged with the old one in one `renameat2(RENAME_EXCHANGE)`), so the host
//! folder never holds half a hierarchy; a run killed before that leaves only the temporary,
//! which the next run removes. A new entry in `vault.toml` is written just before that rename,
//! so a run killed between the two leaves an entry without keys, which the next run fills in.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{renameat_with, RenameFlags, CWD};

use super::auth;
use super::efi::{x509_signature_list, EfiTime};
use super::layout::{self, Hierarchy};
use super::{Error, KeyPair, Role, DEFAULT_PKI_BUNDLE};
use crate::hosts;

/// Prefix of the temporary folders beside `secure-boot` (see [`crate::stale::temp_name`]).
const TEMP_PREFIX: &str = ".secure-boot";

/// What to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub manifest: PathBuf,
    pub name: String,
    /// Where the entry places the keys (lanzaboote's `pkiBundle`); default `/var/lib/sbctl`.
    pub pki_bundle: Option<String>,
    /// Replace the db key of a host that has keys.
    pub rotate: bool,
}

/// What `--rotate` did.
#[derive(Debug)]
pub struct Rotated {
    /// Where the old db key and certificate went.
    pub retired: PathBuf,
    /// Adds the new db certificate to the firmware's db (signed by KEK).
    pub db_add: PathBuf,
    /// Adds the old db certificate(s) to dbx, so what they signed no longer boots.
    pub dbx_add: PathBuf,
}

/// What was done.
#[derive(Debug)]
pub struct Outcome {
    /// `hosts/NAME/secure-boot`.
    pub dir: PathBuf,
    /// The owner GUID (sbctl's `GUID` file).
    pub guid: String,
    /// Where `vault.toml` places the keys, if an entry does.
    pub target: Option<String>,
    /// Whether this run added that entry.
    pub entry_added: bool,
    /// `PK.auth`, `KEK.auth`, `db.auth`: enrolment from setup mode.
    pub enrolment: Vec<PathBuf>,
    pub rotated: Option<Rotated>,
    /// Temporaries of an earlier, killed run that were removed.
    pub swept: Vec<PathBuf>,
}

/// Checks a `--pki-bundle` before anything is written: a target vault can place (absolute,
/// normalized, no control characters), outside the Nix store (lanzaboote's option type refuses
/// store paths, and a private key has no place there), and free of the characters that would
/// make the printed `pkiBundle = "…";` line, or lanzaboote's shell commands that quote it,
/// name another path.
pub fn check_pki_bundle(path: &str) -> Result<(), Error> {
    let bad = |why| {
        Err(Error::PkiBundle {
            path: path.to_string(),
            why,
        })
    };
    if let Err(why) = crate::manifest::check_target(path) {
        return bad(why);
    }
    if path == "/nix/store" || path.starts_with("/nix/store/") {
        return bad(
            "is in the Nix store, which every user can read; lanzaboote refuses a pkiBundle there",
        );
    }
    if path.contains(['"', '\\', '$', '\'', '`']) {
        return bad("contains a quote, backslash, $ or backtick, which Nix strings and lanzaboote's shell commands would read as something else");
    }
    Ok(())
}

/// Generates (or with `rotate`, replaces the db key of) `opts.name`'s Secure Boot keys. The
/// host must be in the manifest.
pub fn add(opts: &Options, now: SystemTime) -> crate::Result<Outcome> {
    let manifest = hosts::load_manifest(&opts.manifest)?;
    if !manifest.hosts.contains_key(&opts.name) {
        return Err(hosts::Error::NotFound {
            name: opts.name.clone(),
            manifest: opts.manifest.clone(),
        }
        .into());
    }
    let base = manifest.dir().to_path_buf();
    let dir = base.join(layout::host_dir_rel(&opts.name));
    let pki = base.join(layout::pki_rel(&opts.name));
    let parent = dir.parent().unwrap_or(&base).to_path_buf();
    // Held until the end of the run: a concurrent run sees this run's temporaries as live.
    let mut _held = vec![crate::stale::HeldDir::open(&parent).ok()];
    let mut swept = sweep(&parent);
    // A folder linked in from elsewhere (keys kept off the repository) is rotated where it
    // is, so a killed rotation leaves its temporary there: every run sweeps that folder too.
    let linked = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink());
    let real = if linked {
        std::fs::canonicalize(&dir).ok()
    } else {
        Some(dir.clone())
    };
    if let Some(p) = real
        .as_deref()
        .and_then(Path::parent)
        .filter(|p| *p != parent)
    {
        _held.push(crate::stale::HeldDir::open(p).ok());
        swept.extend(sweep(p));
    }
    let placed = manifest
        .entries_for(&opts.name)
        .find(|e| e.source == pki)
        .map(|e| e.target.clone());
    let time = EfiTime::from_system_time(now)
        .ok_or_else(|| Error::crypto("time-stamping the updates", "the clock is before 1970"))?;
    let exists = std::fs::symlink_metadata(&dir).is_ok();
    if opts.rotate {
        if !exists {
            return Err(Error::Missing {
                name: opts.name.clone(),
                dir,
            }
            .into());
        }
        // Rotated where the link points: replacing the link would leave every private key
        // beside it.
        let real = match real {
            Some(r) => r,
            None => std::fs::canonicalize(&dir).map_err(|e| Error::io("cannot follow", &dir, e))?,
        };
        let (rotated, guid) = rotate(&opts.name, &dir, &real, now, time)?;
        return Ok(Outcome {
            enrolment: enrolment_paths(&dir),
            guid,
            dir,
            target: placed,
            entry_added: false,
            rotated: Some(rotated),
            swept,
        });
    }
    if exists {
        return Err(Error::Exists {
            name: opts.name.clone(),
            dir,
        }
        .into());
    }

    // The manifest edit is computed (and validated) before the slow key generation.
    if let Some(p) = &opts.pki_bundle {
        check_pki_bundle(p)?;
    }
    let target = opts
        .pki_bundle
        .clone()
        .unwrap_or_else(|| DEFAULT_PKI_BUNDLE.to_string());
    let new_manifest = match &placed {
        Some(t) => {
            if opts.pki_bundle.as_ref().is_some_and(|p| p != t) {
                let line = manifest
                    .entries_for(&opts.name)
                    .find(|e| e.source == pki)
                    .map_or(0, |e| e.line);
                return Err(hosts::Error::Edit {
                    path: opts.manifest.clone(),
                    message: format!(
                        "line {line}: host {} already places {} at {t}, not at {target}; change that entry's target (or leave out --pki-bundle)",
                        opts.name,
                        layout::pki_rel(&opts.name)
                    ),
                }
                .into());
            }
            None
        }
        None => {
            if let Some(e) = manifest
                .entries_for(&opts.name)
                .find(|e| e.target == target)
            {
                return Err(hosts::Error::Edit {
                    path: opts.manifest.clone(),
                    message: format!(
                        "line {}: host {} already places {} at {target}; choose another place with --pki-bundle PATH",
                        e.line,
                        opts.name,
                        e.source.display()
                    ),
                }
                .into());
            }
            let mut entry = hosts::entry_table(&layout::pki_rel(&opts.name), &target, "0700");
            entry["file_mode"] = toml_edit::value("0600");
            let text = hosts::read(&opts.manifest)?;
            let edited = hosts::push_host_entry(&opts.manifest, &text, &opts.name, entry)?;
            Some((text, edited))
        }
    };

    let h = Hierarchy::generate(&opts.name, now)?;
    let enrol = h.enrolment(time)?;

    let _polled = crate::interrupt::Polled::enter();
    std::fs::create_dir_all(&parent).map_err(|e| Error::io("cannot create", &parent, e))?;
    let tmp = parent.join(crate::stale::temp_name(TEMP_PREFIX));
    // The entry is written before the keys are renamed into place: a run killed between the
    // two leaves an entry whose keys the next run makes (it finds the entry and no keys), never
    // keys that no entry places (the next run would refuse them as existing).
    let mut entry_written = false;
    let written = (|| -> crate::Result<()> {
        layout::create_dir(&tmp)?;
        layout::write_pki(&tmp.join("pki"), &h)?;
        crate::interrupt::check()?;
        layout::write_auth(&tmp.join("auth"), &enrol)?;
        crate::interrupt::check()?;
        if let Some((_, edited)) = &new_manifest {
            hosts::replace(&opts.manifest, edited)?;
            entry_written = true;
        }
        renameat_with(CWD, &tmp, CWD, &dir, RenameFlags::NOREPLACE)
            .map_err(|e| Error::io("cannot rename into place", &dir, e.into()))?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        if let (true, Some((before, _))) = (entry_written, &new_manifest) {
            let _ = hosts::replace(&opts.manifest, before);
        }
        return Err(e);
    }
    Ok(Outcome {
        enrolment: enrolment_paths(&dir),
        guid: h.guid.to_string(),
        dir,
        target: Some(placed.unwrap_or(target)),
        entry_added: new_manifest.is_some(),
        rotated: None,
        swept,
    })
}

fn enrolment_paths(dir: &Path) -> Vec<PathBuf> {
    ["PK", "KEK", "db"]
        .iter()
        .map(|n| dir.join("auth").join(format!("{n}.auth")))
        .collect()
}

/// A new db key; the old one to `retired/db-<time>/`; the enrolment files signed again with
/// the new db certificate, plus `db-add.auth` and `dbx-add.auth`. `real` is the folder
/// itself (`dir`, or where a link at `dir` points); `dir` names the results.
fn rotate(
    name: &str,
    dir: &Path,
    real: &Path,
    now: SystemTime,
    time: EfiTime,
) -> crate::Result<(Rotated, String)> {
    let pki = real.join("pki");
    let old = Hierarchy::load(&pki)?;
    // Before the slow key generation: the copy below takes only files and folders.
    only_files_and_folders(real)?;
    let earlier = layout::retired_db_certs(&real.join("retired"))?;
    // Second resolution: a second rotation in the same second gets `-2`, `-3`, ...
    let base = format!("db-{}", time.to_compact());
    let stamp = std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|s| std::fs::symlink_metadata(real.join("retired").join(s)).is_err())
        .unwrap_or(base);
    let new_db = KeyPair::generate(Role::Db, &layout::common_name(name, Role::Db), now)?;
    let new = Hierarchy {
        guid: old.guid,
        pk: old.pk,
        kek: old.kek,
        db: new_db,
    };
    let old_db = old.db;

    let mut files = new.enrolment(time)?;
    files.push((
        "db-add.auth".into(),
        auth::signed_update(
            auth::DB,
            &new.signature_list(Role::Db),
            time,
            true,
            &new.kek,
        )?,
    ));
    // Every db key vault retired, so one dbx update covers rotations never enrolled.
    let mut forbidden = x509_signature_list(new.guid, old_db.cert_der());
    for cert in &earlier {
        forbidden.extend(x509_signature_list(new.guid, cert));
    }
    files.push((
        "dbx-add.auth".into(),
        auth::signed_update(auth::DBX, &forbidden, time, true, &new.kek)?,
    ));

    let _polled = crate::interrupt::Polled::enter();
    let parent = real.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(crate::stale::temp_name(TEMP_PREFIX));
    let replaced = [pki.join("keys").join("db"), real.join("auth")];
    let built = (|| -> crate::Result<()> {
        copy_tree_except(real, &tmp, &replaced)?;
        crate::interrupt::check()?;
        layout::write_pair(&tmp.join("pki").join("keys"), &new.db)?;
        let retired = tmp.join("retired");
        if !retired.exists() {
            layout::create_dir(&retired)?;
        }
        // The old db folder retires whole: a file the user kept beside the key describes it.
        copy_tree_except(&pki.join("keys").join("db"), &retired.join(&stamp), &[])?;
        // auth/ keeps what vault does not write there (a vendor's updates, notes).
        let (auth, new_auth) = (real.join("auth"), tmp.join("auth"));
        if auth.is_dir() {
            let ours: Vec<PathBuf> = files.iter().map(|(n, _)| auth.join(n)).collect();
            copy_tree_except(&auth, &new_auth, &ours)?;
        } else {
            layout::create_dir(&new_auth)?;
        }
        for (name, bytes) in &files {
            layout::write_new(&new_auth.join(name), bytes, layout::PUBLIC_MODE)?;
        }
        crate::interrupt::check()?;
        renameat_with(CWD, &tmp, CWD, real, RenameFlags::EXCHANGE)
            .map_err(|e| Error::io("cannot exchange with", real, e.into()))?;
        Ok(())
    })();
    // After the exchange `tmp` holds the old folder; on failure, the half-built new one.
    let _ = std::fs::remove_dir_all(&tmp);
    built?;
    let rotated = Rotated {
        retired: dir.join("retired").join(stamp),
        db_add: dir.join("auth/db-add.auth"),
        dbx_add: dir.join("auth/dbx-add.auth"),
    };
    Ok((rotated, new.guid.to_string()))
}

/// Copies `src` to the new folder `dst`, each file and folder with its mode (private keys, `*.key`,
/// at most 0600), leaving out the paths in `skip` (and what is below them). Symbolic links are
/// refused.
fn copy_tree_except(src: &Path, dst: &Path, skip: &[PathBuf]) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(src).map_err(|e| Error::io("cannot read", src, e))?;
    std::fs::DirBuilder::new()
        .mode(meta.permissions().mode() & 0o777)
        .create(dst)
        .map_err(|e| Error::io("cannot create", dst, e))?;
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .map_err(|e| Error::io("cannot list", src, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io("cannot list", src, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let from = entry.path();
        if skip.contains(&from) {
            continue;
        }
        let to = dst.join(entry.file_name());
        let meta =
            std::fs::symlink_metadata(&from).map_err(|e| Error::io("cannot read", &from, e))?;
        if meta.is_dir() {
            copy_tree_except(&from, &to, skip)?;
        } else if meta.is_file() {
            let bytes = zeroize::Zeroizing::new(
                std::fs::read(&from).map_err(|e| Error::io("cannot read", &from, e))?,
            );
            // A checkout leaves private keys 0644; the copy is new, so it gets their mode.
            let keep = if from.extension().is_some_and(|x| x == "key") {
                layout::KEY_MODE
            } else {
                0o777
            };
            layout::write_new(&to, &bytes, meta.permissions().mode() & keep)?;
        } else {
            return Err(Error::parse(
                &from,
                "is not a regular file or folder; move it out of the Secure Boot folder",
            ));
        }
    }
    Ok(())
}

/// Refuses a link, FIFO, socket or device anywhere below `dir`: a linked key or folder kept
/// outside would be copied in (or, for the db key, into `retired/`), and a FIFO could block a
/// read forever.
fn only_files_and_folders(dir: &Path) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))? {
        let path = entry.map_err(|e| Error::io("cannot list", dir, e))?.path();
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        if meta.is_dir() {
            only_files_and_folders(&path)?;
        } else if !meta.is_file() {
            let what = if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "a FIFO, socket or device"
            };
            return Err(Error::parse(
                &path,
                format!("is {what}, not a regular file or folder; put the file itself there, or move it out of the Secure Boot folder (nothing was changed)"),
            ));
        }
    }
    Ok(())
}

/// Removes the temporary folders of runs that were killed (see [`crate::stale`]).
fn sweep(parent: &Path) -> Vec<PathBuf> {
    let (Ok(held), Ok(entries)) = (
        crate::stale::HeldDir::open(parent),
        std::fs::read_dir(parent),
    ) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| held.is_dead_temp(n, TEMP_PREFIX))
        })
        .map(|e| e.path())
        .filter(|p| std::fs::remove_dir_all(p).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rotations in the same second (a script, a retry) retire both old keys, each in a
    /// folder of its own.
    #[test]
    fn two_rotations_in_one_second_retire_both_keys() {
        let t = tempfile::tempdir().unwrap();
        let manifest = t.path().join("vault.toml");
        std::fs::write(&manifest, "version = 1\n\n[hosts.web1]\n").unwrap();
        let mut opts = Options {
            manifest,
            name: "web1".into(),
            pki_bundle: None,
            rotate: false,
        };
        let now = SystemTime::now();
        add(&opts, now).unwrap();
        opts.rotate = true;
        let first = add(&opts, now).unwrap().rotated.unwrap().retired;
        let second = add(&opts, now).unwrap().rotated.unwrap().retired;
        assert_ne!(first, second);
        for r in [&first, &second] {
            assert!(r.join("db.key").is_file(), "{}", r.display());
        }
    }
}
