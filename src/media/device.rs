//! `vault attach --device`: the bundle partition added in place on an already-written stick.
//!
//! Split in two so the CLI can show what will change and ask first: [`plan_in_place`] reads and
//! decides, [`attach_in_place`] writes. Both work on any file; the block-device checks (mounted,
//! removable, whole disk) are in [`DeviceInfo`], which the CLI consults before planning.
//! Order of writes: the partition data first, synced, then the one MBR entry, synced, so an
//! interrupted run leaves the stick as it was or complete.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::carry::{self, Binary};
use super::image::{
    check_bundle, data_end, inputs, place, place_binary, refuse_iso_file_bundle, table_with,
    write_binary,
};
use super::input::{check_open, open_input};
use super::mbr::{self, Extent, Table};
use super::output::interrupted;
use super::partition;
use super::{byte_len, Error, Result};

/// What [`attach_in_place`] will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPlacePlan {
    pub target: PathBuf,
    pub bundle: PathBuf,
    pub slot: usize,
    pub extent: Extent,
    /// Where the stick's own data (ISO, partitions) ends.
    pub data_end: u64,
    pub capacity: u64,
    pub replace: bool,
    /// The carried binary's partition: slot, byte offset, length.
    pub binary: Option<(usize, u64, u64)>,
    /// SHA-256 of the carried binary.
    pub binary_sha256: Option<String>,
    table_sector: [u8; 512],
    volume: Option<Vec<u8>>,
}

impl InPlacePlan {
    /// A one-line description of the change, for the confirmation prompt.
    pub fn describe(&self) -> String {
        let bin = match self.binary {
            Some((slot, start, len)) => format!(
                ", the vault binary bytes {start}..{} and MBR slot {slot} (type 0x96)",
                start + len
            ),
            None => String::new(),
        };
        format!(
            "{} bundle bytes {}..{} and MBR slot {} (type 0xDA){}{bin}; the data before byte {} stays as it is",
            if self.replace { "replace the" } else { "write" },
            self.extent.start,
            self.extent.end(),
            self.slot,
            if self.replace { " resized" } else { "" },
            self.data_end,
        )
    }
}

/// Reads `target` (a block device or a file standing in for one) and decides where the bundle
/// goes: after its data, or in its existing bundle partition with `replace`.
pub fn plan_in_place(
    target: &Path,
    bundle: &Path,
    replace: bool,
    binary: Option<&Binary>,
) -> Result<InPlacePlan> {
    let (bf, len) = check_bundle(bundle)?;
    let mut f = open_input(target)?;
    // The device is written to: it may be neither the bundle nor the binary.
    let ids = inputs((target, &f, "device"), Some((bundle, &bf)), binary)?;
    if let Some(i) = ids[1..].iter().find(|i| i.id.same(&ids[0].id)) {
        return Err(Error::OutputIsInput {
            input: i.path.into(),
            output: target.into(),
            what: i.what,
        });
    }
    let capacity = byte_len(&mut f, target)?;
    let table = Table::read(&mut f, target)?.ok_or_else(|| Error::NoTable {
        path: target.into(),
        why:
            "no MBR signature: write the installer image to it first (`dd if=installer.iso of=...`)"
                .into(),
    })?;
    if let Some(slot) = table.protective_gpt() {
        return Err(Error::ProtectiveGpt {
            path: target.into(),
            slot,
        });
    }
    if let Some(b) = binary {
        b.check_arch(target, carry::iso_arch(&mut f, target)?)?;
    }
    refuse_iso_file_bundle(&mut f, target)?;
    if replace {
        if let Some(old) = table.vault_slots().next() {
            partition::check_partition(&mut f, target, old, capacity)?;
        }
    }
    let end = data_end(&mut f, target, &table)?;
    if end == 0 {
        return Err(Error::NoTable {
            path: target.into(),
            why: "neither an ISO9660 volume nor a partition says where its data ends".into(),
        });
    }
    let (slot, extent) = place(&table, target, len, end, replace)?;
    if extent.start < end {
        return Err(Error::Overlap {
            path: target.into(),
            slot,
            start: extent.start_lba(),
            end: extent.end() / super::SECTOR,
        });
    }
    let volume = binary.map(Binary::volume);
    let bin_place = match &volume {
        Some(v) => {
            let (bslot, bstart) = place_binary(&table, target, slot, &extent, v.len() as u64)?;
            Some((bslot, bstart, v.len() as u64))
        }
        None => None,
    };
    let last = bin_place.map_or(extent.end(), |(_, s, l)| s + l);
    if last > capacity {
        return Err(Error::TooSmall {
            path: target.into(),
            start: extent.start,
            end: last,
            capacity,
        });
    }
    let table_sector = table_with(&table, target, slot, &extent, bin_place)?;
    Ok(InPlacePlan {
        target: target.into(),
        bundle: bundle.into(),
        slot,
        extent,
        data_end: end,
        capacity,
        replace,
        binary: bin_place,
        binary_sha256: binary.map(|b| b.sha256.clone()),
        table_sector,
        volume,
    })
}

/// Carries out `plan`. On a block device it opens it exclusively (the kernel refuses while
/// anything is mounted from it) and asks the kernel to re-read the partition table afterwards;
/// a failure of that last step is returned as a warning string, since the stick is complete.
pub fn attach_in_place(plan: &InPlacePlan) -> Result<Option<String>> {
    let path = &plan.target;
    let is_block = std::fs::metadata(path)
        .map_err(|e| Error::io("cannot open", path, e))?
        .file_type()
        .is_block_device();
    let mut opts = OpenOptions::new();
    opts.read(true).write(true);
    // A FIFO opened for reading and writing does not block; reading it would.
    opts.custom_flags(
        rustix::fs::OFlags::NONBLOCK.bits() as i32
            | if is_block {
                rustix::fs::OFlags::EXCL.bits() as i32
            } else {
                0
            },
    );
    let mut f = opts.open(path).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) {
            Error::Mounted {
                path: path.clone(),
                what: path.display().to_string(),
                mount_point: PathBuf::from("(in use by another program)"),
            }
        } else {
            Error::io("cannot open for writing", path, e)
        }
    })?;
    check_open(&f, path)?;
    let flags =
        rustix::fs::fcntl_getfl(&f).map_err(|e| Error::io("cannot open", path, e.into()))?;
    rustix::fs::fcntl_setfl(&f, flags - rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| Error::io("cannot open", path, e.into()))?;
    // A signal only sets a flag from here: the stick is changed in one order (data, sync,
    // table) and a signal stops the run before the table, which leaves the stick as it was.
    let _polled = crate::interrupt::Polled::enter();
    interrupted()?;
    // The plan was made from a read; refuse if the table changed since.
    let now = Table::read(&mut f, path)?;
    let (_, len) = check_bundle(&plan.bundle)?;
    if len != plan.extent.len || now.is_none() || byte_len(&mut f, path)? != plan.capacity {
        return Err(Error::NoTable {
            path: path.clone(),
            why: "the device or bundle changed since the plan was made; run again".into(),
        });
    }
    let mut bf = open_input(&plan.bundle)?;
    partition::write_partition(&mut f, path, &mut bf, &plan.bundle, &plan.extent)?;
    if let (Some(v), Some((_, start, _))) = (&plan.volume, plan.binary) {
        write_binary(&f, path, start, v)?;
    }
    f.sync_all()
        .map_err(|e| Error::io("cannot sync", path, e))?;
    interrupted()?;
    mbr::write_table(&mut f, path, &plan.table_sector)?;
    f.sync_all()
        .map_err(|e| Error::io("cannot sync", path, e))?;
    if is_block {
        if let Err(e) = reread_partitions(&f) {
            return Ok(Some(format!(
                "the kernel did not re-read the partition table of {} ({e}); unplug and replug the stick, or run `partprobe {}`",
                path.display(),
                path.display()
            )));
        }
    }
    Ok(None)
}

/// BLKRRPART: the kernel re-reads the partition table, so `/dev/sdX3` appears.
// SAFETY: one argument-less ioctl on an open block device.
#[allow(unsafe_code)]
#[cfg(target_os = "linux")]
fn reread_partitions(f: &File) -> std::io::Result<()> {
    const BLKRRPART: rustix::ioctl::Opcode = rustix::ioctl::opcode::none(0x12, 95);
    // SAFETY: BLKRRPART takes no argument; the fd is an open block device.
    unsafe { rustix::ioctl::ioctl(f, rustix::ioctl::NoArg::<BLKRRPART>::new()) }
        .map_err(std::io::Error::from)
}

/// Writing to a device is for the Linux installer (`attach --device`); elsewhere the user is
/// told to replug the stick.
#[cfg(not(target_os = "linux"))]
fn reread_partitions(_: &File) -> std::io::Result<()> {
    Err(std::io::Error::other("only Linux re-reads it on request"))
}

/// What the kernel says about a block device (from sysfs and mountinfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub path: PathBuf,
    /// Kernel name, e.g. `sdb`.
    pub name: String,
    /// From sysfs (`device/vendor`, `device/model`): what the device says it is.
    pub model: crate::escape::Untrusted,
    pub size: u64,
    pub removable: bool,
    /// Mounted filesystems on the disk or its partitions: (device name, mount point).
    pub mounted: Vec<(String, PathBuf)>,
}

impl DeviceInfo {
    /// Reads what the kernel knows about `path`, refusing anything but a whole disk.
    pub fn read(path: &Path) -> Result<DeviceInfo> {
        let st = rustix::fs::stat(path).map_err(|e| Error::io("cannot open", path, e.into()))?;
        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
        if ft != rustix::fs::FileType::BlockDevice {
            return Err(Error::NotADisk {
                path: path.into(),
                why: "not a block device".into(),
            });
        }
        let (maj, min) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
        let sys = PathBuf::from(format!("/sys/dev/block/{maj}:{min}"));
        if sys.join("partition").exists() {
            return Err(Error::NotADisk {
                path: path.into(),
                why: "it is a partition".into(),
            });
        }
        let name = std::fs::read_link(&sys)
            .ok()
            .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| format!("{maj}:{min}"));
        let read = |f: &str| {
            std::fs::read_to_string(sys.join(f))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let model = [read("device/vendor"), read("device/model")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let size = read("size").parse::<u64>().unwrap_or(0) * 512;
        let removable = read("removable") == "1";
        // The disk and its partitions, by major:minor.
        let mut devs = vec![(format!("{maj}:{min}"), name.clone())];
        if let Ok(rd) = std::fs::read_dir(&sys) {
            for e in rd.flatten() {
                let p = e.path();
                if p.join("partition").exists() {
                    if let Ok(d) = std::fs::read_to_string(p.join("dev")) {
                        devs.push((
                            d.trim().to_owned(),
                            e.file_name().to_string_lossy().into_owned(),
                        ));
                    }
                }
            }
        }
        let mounted = super::discover::mountinfo()
            .into_iter()
            .filter_map(|m| {
                devs.iter()
                    .find(|(d, _)| *d == m.dev)
                    .map(|(_, n)| (format!("/dev/{n}"), m.mount_point))
            })
            .collect();
        Ok(DeviceInfo {
            path: path.into(),
            name,
            model: if model.is_empty() {
                "unknown model".into()
            } else {
                model.into()
            },
            size,
            removable,
            mounted,
        })
    }

    /// The refusals of `vault attach --device`: mounted, or not removable without the override.
    pub fn check(&self, allow_not_removable: bool) -> Result<()> {
        if let Some((what, mp)) = self.mounted.first() {
            return Err(Error::Mounted {
                path: self.path.clone(),
                what: what.clone(),
                mount_point: mp.clone(),
            });
        }
        if !self.removable && !allow_not_removable {
            return Err(Error::NotRemovable {
                path: self.path.clone(),
                model: self.model.clone(),
            });
        }
        Ok(())
    }
}
