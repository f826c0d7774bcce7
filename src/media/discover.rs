//! Finding the bundle on the booted installer without udev or mounts: the disk holding `/iso`
//! first, then every block device the kernel lists (except RAM, loop, zram and floppy
//! devices), then files under `/iso`.

use std::path::{Path, PathBuf};

use super::{looks_like_bundle, mbr, read_prefix, source, BundleSource, Error, Result, SECTOR};

/// Where a candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateKind {
    /// A bundle partition or a bundle written to a whole device.
    Device,
    /// A bundle carried in an MBR slot of a disk whose partition nodes do not show it.
    DiskSlot,
    /// A file in the ISO tree (the `--iso-file` variant).
    File,
}

/// A bundle found on this system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
    pub kind: CandidateKind,
    /// For the list shown when there are several, e.g. "/dev/vda3 (on the installer disk vda)".
    pub description: String,
    /// On the installer's own medium: the disk holding `/iso` or the stick vault runs from, or
    /// a file under `/iso`. `vault unlock` offers it as the default when there are several.
    pub own_medium: bool,
}

impl Candidate {
    pub fn open(&self) -> Result<BundleSource> {
        BundleSource::open_at(&self.path, self.offset, self.len, self.description.clone())
    }
}

pub(crate) use crate::mounts::mountinfo;

/// The kernel name of the whole disk behind "major:minor" (itself when it is a disk).
fn disk_of(dev: &str) -> Option<String> {
    let link = std::fs::read_link(format!("/sys/dev/block/{dev}")).ok()?;
    let sys = Path::new("/sys/dev/block").join(&link);
    let p = if Path::new(&format!("/sys/dev/block/{dev}/partition")).exists() {
        sys.parent()?.to_path_buf()
    } else {
        sys
    };
    Some(p.file_name()?.to_string_lossy().into_owned())
}

/// A device that could not be read, and how.
#[derive(Debug)]
struct Failure {
    path: PathBuf,
    /// "the installer disk sda", or empty.
    role: String,
    error: Error,
}

impl Failure {
    fn denied(&self) -> bool {
        matches!(&self.error, Error::Io(crate::error::IoError { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied)
    }
}

/// Whether an error opening a device listed a moment ago means it is gone or has no medium
/// (a stick pulled out, an empty card reader): nothing to read there, nothing to report.
fn vanished(e: &Error) -> bool {
    use rustix::io::Errno;
    match e {
        Error::Io(crate::error::IoError { source, .. }) => {
            [Errno::NOENT, Errno::NXIO, Errno::NODEV, Errno::NOMEDIUM]
                .iter()
                .any(|n| source.raw_os_error() == Some(n.raw_os_error()))
        }
        _ => false,
    }
}

/// The bundle at the start of `/dev/NAME`, if any; `Err` when it could not be read.
fn check_device(name: &str) -> Result<Option<Candidate>> {
    let path = PathBuf::from("/dev").join(name);
    let mut f = match super::input::open_input(&path) {
        Ok(f) => f,
        Err(e) if vanished(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let prefix = read_prefix(&mut f, &path, 0)?;
    if !looks_like_bundle(&prefix) {
        return Ok(None);
    }
    drop(f);
    let src = source::open_source(&path)?;
    Ok(Some(Candidate {
        path,
        offset: src.offset,
        len: src.len,
        kind: CandidateKind::Device,
        description: src.description,
        own_medium: false,
    }))
}

/// Bundle partitions recorded in the MBR of `/dev/DISK` (for disks whose partitions the kernel
/// did not expose); `Err` when the disk could not be read.
fn check_disk_table(disk: &str) -> Result<Vec<Candidate>> {
    let path = PathBuf::from("/dev").join(disk);
    let mut f = match super::input::open_input(&path) {
        Ok(f) => f,
        Err(e) if vanished(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let table = match mbr::Table::read(&mut f, &path) {
        Ok(Some(t)) => t,
        // No table, or entries mbrman refuses: no bundle partition to find here.
        Ok(None) | Err(Error::NoTable { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for s in table.vault_slots() {
        let head = read_prefix(&mut f, &path, s.start())?;
        if !looks_like_bundle(&head) {
            continue;
        }
        let Ok(len) = mbr::bundle_len(&mut f, &path, s.start(), s.sectors * SECTOR) else {
            continue;
        };
        found.push(Candidate {
            path: path.clone(),
            offset: s.start(),
            len,
            kind: CandidateKind::DiskSlot,
            own_medium: true,
            description: format!(
                "{} (MBR slot {}, the installer disk)",
                path.display(),
                s.index
            ),
        });
    }
    Ok(found)
}

/// Kernel names from /proc/partitions: those to look at, and those skipped (RAM, loop and
/// zram devices, and floppies: a read from an empty drive can take seconds).
fn partitions() -> (Vec<String>, Vec<String>) {
    let Ok(text) = std::fs::read_to_string("/proc/partitions") else {
        return (Vec::new(), Vec::new());
    };
    partitions_in(&text)
}

fn partitions_in(text: &str) -> (Vec<String>, Vec<String>) {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
        .partition(|n| {
            !["ram", "loop", "zram", "fd"]
                .iter()
                .any(|p| n.starts_with(p))
        })
}

/// What discovery looked at, for the message when it found nothing.
fn looked_at(iso_disk: Option<&str>, names: &[String], skipped: &[String]) -> String {
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        let shown: Vec<&str> = skipped.iter().take(8).map(String::as_str).collect();
        let more = skipped.len().saturating_sub(shown.len());
        format!(
            "; skipped {} RAM, loop, zram and floppy device(s): {}{} (name one to use it, e.g. `vault unlock /dev/{}`)",
            skipped.len(),
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() },
            shown[0]
        )
    };
    format!(
        "{}the {} block device(s) in /proc/partitions, and files under /iso{skipped}",
        iso_disk
            .map(|d| format!("the installer disk {d}, "))
            .unwrap_or_default(),
        names.len()
    )
}

/// Regular files under `dir` that are bundles, up to a small depth (the ISO tree is shallow;
/// the Nix store is a single squashfs file there).
fn walk_files(dir: &Path, depth: usize, out: &mut Vec<Candidate>) {
    if depth == 0 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(ft) = e.file_type() else { continue };
        let p = e.path();
        if ft.is_dir() {
            walk_files(&p, depth - 1, out);
        } else if ft.is_file() {
            // Opened without blocking: the stick's maker chose what this name is now.
            let Ok(mut f) = super::input::open_input(&p) else {
                continue;
            };
            let Ok(prefix) = read_prefix(&mut f, &p, 0) else {
                continue;
            };
            if looks_like_bundle(&prefix) {
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(Candidate {
                    description: p.display().to_string(),
                    path: p,
                    offset: 0,
                    len,
                    kind: CandidateKind::File,
                    own_medium: true,
                });
            }
        }
    }
}

/// Every bundle on this system, best first: on the disk holding `/iso`, then on any block
/// device, then files under `/iso` (`/iso/vault/bundle` first). Never an empty list: nothing
/// found is [`Error::NothingFound`].
pub fn discover() -> Result<Vec<Candidate>> {
    let mut found: Vec<Candidate> = Vec::new();
    let mounts = mountinfo();
    let iso_disk = mounts
        .iter()
        .find(|m| m.mount_point == Path::new("/iso"))
        .and_then(|m| disk_of(&m.dev));
    // A vault carried on the stick runs from it: its own stick comes first.
    let exe_disk = rustix::fs::stat("/proc/self/exe").ok().and_then(|st| {
        disk_of(&format!(
            "{}:{}",
            rustix::fs::major(st.st_dev),
            rustix::fs::minor(st.st_dev)
        ))
    });
    let (names, skipped) = partitions();
    let push = |c: Candidate, found: &mut Vec<Candidate>| {
        if !found
            .iter()
            .any(|f| f.path == c.path && f.offset == c.offset)
        {
            found.push(c);
        }
    };
    let mut own = Vec::new();
    if let Some(d) = &exe_disk {
        let what = if Some(d) == iso_disk.as_ref() {
            "the installer disk"
        } else {
            "the stick vault runs from,"
        };
        own.push((d.clone(), what));
    }
    if let Some(d) = &iso_disk {
        if Some(d) != exe_disk.as_ref() {
            own.push((d.clone(), "the installer disk"));
        }
    }
    // Read errors on the disks vault came from end the search (the bundle the user made is
    // most likely there); elsewhere they are reported only if nothing is found.
    let mut own_failures: Vec<Failure> = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    for (disk, what) in &own {
        let mine: Vec<&String> = names
            .iter()
            .filter(|n| {
                *n != disk
                    && n.starts_with(disk.as_str())
                    && Path::new(&format!("/sys/block/{disk}/{n}")).exists()
            })
            .collect();
        let role = format!("{} {disk}", what.trim_end_matches(','));
        let before = found.len();
        let failed = own_failures.len();
        for n in mine {
            match check_device(n) {
                Ok(Some(mut c)) => {
                    c.description = format!("{} (on {what} {disk})", c.path.display());
                    c.own_medium = true;
                    push(c, &mut found);
                }
                Ok(None) => {}
                Err(error) => note(
                    Failure {
                        path: PathBuf::from("/dev").join(n),
                        role: role.clone(),
                        error,
                    },
                    &mut own_failures,
                    &mut failures,
                ),
            }
        }
        if found.len() == before {
            match check_disk_table(disk) {
                Ok(cs) => {
                    for c in cs {
                        push(c, &mut found);
                    }
                }
                Err(error) => note(
                    Failure {
                        path: PathBuf::from("/dev").join(disk),
                        role: role.clone(),
                        error,
                    },
                    &mut own_failures,
                    &mut failures,
                ),
            }
        }
        // A bundle found on this disk: failures of its other partitions do not matter.
        if found.len() > before {
            own_failures.truncate(failed);
        }
    }
    for n in &names {
        match check_device(n) {
            Ok(Some(c)) => push(c, &mut found),
            Ok(None) => {}
            Err(error) => {
                let f = Failure {
                    path: PathBuf::from("/dev").join(n),
                    role: String::new(),
                    error,
                };
                // Named once: a disk vault came from is in the list already.
                let seen = own_failures
                    .iter()
                    .chain(&failures)
                    .any(|o| o.path == f.path);
                if !seen && !vanished(&f.error) {
                    failures.push(f);
                }
            }
        }
    }
    let iso = Path::new("/iso");
    let preferred = iso.join("vault/bundle");
    let mut files = Vec::new();
    walk_files(iso, 4, &mut files);
    files.sort_by_key(|c| c.path != preferred);
    for c in files {
        push(c, &mut found);
    }
    let looked = || looked_at(iso_disk.as_deref(), &names, &skipped);
    if !own_failures.is_empty() {
        let context = if found.is_empty() {
            format!(
                "no vault bundle found elsewhere either (looked at {})",
                looked()
            )
        } else {
            let elsewhere: Vec<&str> = found.iter().map(|c| c.description.as_str()).collect();
            format!(
                "vault does not take a bundle from another device in its place (found: {})",
                elsewhere.join(", ")
            )
        };
        return Err(unreadable(&own_failures, context));
    }
    if found.is_empty() {
        // Devices that failed to read are named; those vault may not open (no sudo) are
        // listed with what was looked at: for a script, nothing was found.
        let (denied, failed): (Vec<Failure>, Vec<Failure>) =
            failures.into_iter().partition(Failure::denied);
        let mut looked = looked();
        if !denied.is_empty() {
            let names: Vec<String> = denied.iter().map(describe).collect();
            looked.push_str(&format!("; could not read {}", names.join("; ")));
        }
        if !failed.is_empty() {
            return Err(unreadable(
                &failed,
                format!("no vault bundle found (looked at {looked})"),
            ));
        }
        return Err(Error::NothingFound {
            looked,
            denied: !denied.is_empty(),
        });
    }
    Ok(found)
}

/// Files a read failure of the disk vault came from: an I/O error there ends the search, a
/// permission error (vault run without sudo) does not, as a stick cannot be failing for it.
fn note(f: Failure, own: &mut Vec<Failure>, others: &mut Vec<Failure>) {
    if vanished(&f.error) {
        // Pulled out while it was read: nothing there any more.
        return;
    }
    if own.iter().chain(others.iter()).any(|o| o.path == f.path) {
        return;
    }
    if f.denied() {
        others.push(f);
    } else {
        own.push(f);
    }
}

/// "PATH (ROLE): ERROR", or "PATH: ERROR".
fn describe(f: &Failure) -> String {
    let error = match &f.error {
        Error::Io(crate::error::IoError { source, .. }) => source.to_string(),
        e => e.to_string(),
    };
    if f.role.is_empty() {
        format!("{}: {error}", f.path.display())
    } else {
        format!("{} ({}): {error}", f.path.display(), f.role)
    }
}

/// The error naming each device that could not be read, and how.
fn unreadable(failures: &[Failure], context: String) -> Error {
    let list: Vec<String> = failures.iter().map(describe).collect();
    Error::Unreadable {
        failures: list.join("; "),
        context,
    }
}

#[cfg(test)]
#[path = "discover_tests.rs"]
mod tests;
