//! Finding the bundle on the booted installer without udev or mounts: the disk holding `/iso`
//! first, then every block device the kernel lists (except RAM, loop, zram and floppy
//! devices), then files under `/iso`.

use std::fs::File;
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

/// The bundle at the start of `/dev/NAME`, if any.
fn check_device(name: &str) -> Option<Candidate> {
    let path = PathBuf::from("/dev").join(name);
    let mut f = File::open(&path).ok()?;
    let prefix = read_prefix(&mut f, &path, 0).ok()?;
    if !looks_like_bundle(&prefix) {
        return None;
    }
    drop(f);
    let src = source::open_source(&path).ok()?;
    Some(Candidate {
        path,
        offset: src.offset,
        len: src.len,
        kind: CandidateKind::Device,
        description: src.description,
        own_medium: false,
    })
}

/// Bundle partitions recorded in the MBR of `/dev/DISK` (for disks whose partitions the kernel
/// did not expose).
fn check_disk_table(disk: &str) -> Vec<Candidate> {
    let path = PathBuf::from("/dev").join(disk);
    let Ok(mut f) = File::open(&path) else {
        return Vec::new();
    };
    let Ok(Some(table)) = mbr::Table::read(&mut f, &path) else {
        return Vec::new();
    };
    table
        .vault_slots()
        .filter_map(|s| {
            let head = read_prefix(&mut f, &path, s.start()).ok()?;
            if !looks_like_bundle(&head) {
                return None;
            }
            let len = mbr::bundle_len(&mut f, &path, s.start(), s.sectors * SECTOR).ok()?;
            Some(Candidate {
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
            })
        })
        .collect()
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
            let Ok(mut f) = File::open(&p) else { continue };
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
    for (disk, what) in &own {
        let mine: Vec<&String> = names
            .iter()
            .filter(|n| {
                *n != disk
                    && n.starts_with(disk.as_str())
                    && Path::new(&format!("/sys/block/{disk}/{n}")).exists()
            })
            .collect();
        let before = found.len();
        for n in mine {
            if let Some(mut c) = check_device(n) {
                c.description = format!("{} (on {what} {disk})", c.path.display());
                c.own_medium = true;
                push(c, &mut found);
            }
        }
        if found.len() == before {
            for c in check_disk_table(disk) {
                push(c, &mut found);
            }
        }
    }
    for n in &names {
        if let Some(c) = check_device(n) {
            push(c, &mut found);
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
    if found.is_empty() {
        return Err(Error::NothingFound {
            looked: looked_at(iso_disk.as_deref(), &names, &skipped),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_devices_it_skipped() {
        let (names, skipped) = partitions_in(
            "major minor  #blocks  name\n\n   7        0      1024 loop0\n 254        0  268435456 vda\n   7        1      1024 loop1\n   1        0      1024 ram0\n",
        );
        assert_eq!(names, vec!["vda".to_owned()]);
        let msg = looked_at(None, &names, &skipped);
        assert!(!msg.contains("every block device"), "{msg}");
        assert!(msg.contains("skipped 3"), "{msg}");
        assert!(msg.contains("loop0, loop1, ram0"), "{msg}");
        assert!(msg.contains("vault unlock /dev/loop0"), "{msg}");
    }
}
