//! Reading a running machine's identifiers from sysfs (`/sys`, or a test's fake tree):
//!
//! - `class/dmi/id/{product_uuid,product_serial,board_serial}` (the first and the serials are
//!   readable by root only);
//! - the address of each network interface that is hardware: not under `devices/virtual`
//!   (loopback, bridges, bonds, veth, tun), with a `device`, not on USB (docks and dongles move
//!   between machines) nor behind a Thunderbolt or USB4 port (a device the kernel calls
//!   `removable`), Ethernet or Wi-Fi (`type` 1), whose address is the permanent one
//!   (`addr_assign_type` 0) and not [`junk`](crate::manifest::identity::junk);
//! - for each disk that is not virtual (loop, ram, zram, dm, md, nbd), not removable, not on
//!   USB nor behind a Thunderbolt or USB4 port, not an SD card and not an optical drive:
//!   `device/serial` (NVMe), `serial` (virtio), `device/wwid` (SCSI, SATA), `wwid` (NVMe
//!   namespaces) and the serial in `device/vpd_pg80` (SCSI VPD page 0x80).
//!
//! What cannot be read, or is left out, is said in [`Reading::notes`].

use std::io::Read as _;
use std::path::Path;

use super::{Note, Reading};
use crate::manifest::identity::Kind;

/// Where the kernel's sysfs is.
pub const DEFAULT_ROOT: &str = "/sys";

/// Largest sysfs attribute read.
const MAX_ATTR: u64 = 4096;

/// Disk names that are never hardware of their own.
const VIRTUAL_DISKS: &[&str] = &["loop", "ram", "zram", "dm-", "md", "nbd", "sr", "fd"];

/// What the machine under `root` says about itself.
pub fn read(root: &Path) -> Reading {
    let mut r = Reading::default();
    dmi(root, &mut r);
    nics(root, &mut r);
    disks(root, &mut r);
    r
}

fn note(r: &mut Reading, what: impl Into<String>, why: impl Into<String>) {
    r.notes.push(Note {
        what: what.into(),
        why: why.into(),
    });
}

/// An attribute's bytes (at most [`MAX_ATTR`]); `Ok(None)` when it does not exist. The
/// kernel's attributes are regular files: a link is not followed (a tree given to
/// `--sysfs-root` must not make vault, run as root, print a file only root may read) and a
/// FIFO is not waited on.
fn read_bytes(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use rustix::fs::OFlags;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path, flags, rustix::fs::Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let f = std::fs::File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut b = Vec::new();
    f.take(MAX_ATTR).read_to_end(&mut b)?;
    Ok(Some(b))
}

/// An attribute as trimmed text; `None` when missing, empty or unreadable.
fn attr(path: &Path) -> Option<String> {
    read_bytes(path)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Normalizes `raw` as `kind` and keeps it unless it is malformed or junk (then says so).
fn accept(r: &mut Reading, kind: Kind, raw: &str, what: &str) -> Option<String> {
    match kind.normalize(raw) {
        Err(why) => {
            note(r, what, why);
            None
        }
        Ok(v) => match kind.junk(&v) {
            Some(why) => {
                note(r, format!("{what} \"{v}\""), why);
                None
            }
            None => Some(v),
        },
    }
}

fn dmi(root: &Path, r: &mut Reading) {
    for (kind, file) in [
        (Kind::ProductUuid, "product_uuid"),
        (Kind::ProductSerial, "product_serial"),
        (Kind::BoardSerial, "board_serial"),
    ] {
        let path = root.join("class/dmi/id").join(file);
        let shown = Path::new(DEFAULT_ROOT).join("class/dmi/id").join(file);
        let value = match read_bytes(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                note(
                    r,
                    kind.key(),
                    format!(
                        "cannot read {}: permission denied (only root can: run `sudo vault host identify`)",
                        shown.display()
                    ),
                );
                continue;
            }
            Err(e) => {
                note(
                    r,
                    kind.key(),
                    format!("cannot read {}: {e}", shown.display()),
                );
                continue;
            }
            Ok(b) => b.map(|b| String::from_utf8_lossy(&b).trim().to_owned()),
        };
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            note(
                r,
                kind.key(),
                format!(
                    "not reported by this machine ({} is missing or empty)",
                    shown.display()
                ),
            );
            continue;
        };
        if let Some(v) = accept(r, kind, &value, kind.key()) {
            match kind {
                Kind::ProductUuid => r.identity.product_uuid = Some(v),
                Kind::ProductSerial => r.identity.product_serial = Some(v),
                _ => r.identity.board_serial = Some(v),
            }
        }
    }
}

/// Entries of a sysfs class directory, sorted, with the target of each one's link.
fn entries(dir: &Path) -> Vec<(String, String)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = rd
        .filter_map(|e| e.ok())
        .map(|e| {
            let link = std::fs::read_link(e.path())
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), link)
        })
        .collect();
    out.sort();
    out
}

fn on_usb(link: &str) -> bool {
    link.split('/').any(|c| c.starts_with("usb"))
}

/// Whether the device of a class entry sits behind a port the user can unplug it from: the
/// kernel writes `removable` into the `devices/` directory of a USB device on such a port and
/// of every PCI device behind an external-facing port (Thunderbolt, USB4: a dock's network
/// card, an NVMe enclosure). Such a device moves between machines as a USB dongle does.
fn user_removable(root: &Path, entry: &Path) -> bool {
    let (Ok(root), Ok(dev)) = (std::fs::canonicalize(root), std::fs::canonicalize(entry)) else {
        return false;
    };
    let devices = root.join("devices");
    dev.ancestors()
        .take_while(|d| d.starts_with(&devices) && *d != devices)
        .any(|d| attr(&d.join("removable")).as_deref() == Some("removable"))
}

/// The interfaces this machine's identity can rest on: in the order the kernel names them.
pub fn nics(root: &Path, r: &mut Reading) {
    let class = root.join("class/net");
    for (name, link) in entries(&class) {
        let dir = class.join(&name);
        // Software interfaces: silently, there are many and none is hardware.
        if link.contains("/devices/virtual/")
            || !dir.join("device").exists()
            || dir.join("bridge").exists()
            || dir.join("bonding").exists()
        {
            continue;
        }
        let what = format!("interface {name}");
        if on_usb(&link) {
            note(
                r,
                what,
                "on USB (a dongle or a dock moves between machines)",
            );
            continue;
        }
        if user_removable(root, &dir) {
            note(
                r,
                what,
                "removable (behind a Thunderbolt or USB4 port: a dock moves between machines)",
            );
            continue;
        }
        if attr(&dir.join("type")).as_deref() != Some("1") {
            note(r, what, "not Ethernet or Wi-Fi");
            continue;
        }
        let Some(address) = attr(&dir.join("address")) else {
            note(r, what, "no address");
            continue;
        };
        match attr(&dir.join("addr_assign_type")).as_deref() {
            Some("0") => {}
            other => {
                note(
                    r,
                    format!("{what} {address}"),
                    format!(
                        "not its permanent address (addr_assign_type {}: random, or set by software)",
                        other.unwrap_or("unreadable")
                    ),
                );
                continue;
            }
        }
        if let Some(mac) = accept(r, Kind::Mac, &address, &what) {
            if !r.identity.macs.contains(&mac) {
                r.labels.insert(mac.clone(), name.clone());
                r.identity.macs.push(mac);
            }
        }
    }
}

/// The serial in a SCSI VPD page 0x80 (unit serial number): 4 header bytes (page code at
/// byte 1, length at bytes 2-3, big-endian), then the serial in ASCII.
fn vpd_serial(page: &[u8]) -> Option<String> {
    if page.len() < 4 || page[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([page[2], page[3]]));
    let body = page.get(4..4 + len).unwrap_or(&page[4..]);
    let s: String = body
        .iter()
        .take_while(|b| **b != 0)
        .map(|&b| b as char)
        .collect();
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn disks(root: &Path, r: &mut Reading) {
    let class = root.join("block");
    for (name, link) in entries(&class) {
        if VIRTUAL_DISKS.iter().any(|p| name.starts_with(p)) || link.contains("/devices/virtual/") {
            continue;
        }
        let dir = class.join(&name);
        let what = format!("disk {name}");
        if attr(&dir.join("removable")).as_deref() == Some("1") {
            note(r, what, "a removable medium");
            continue;
        }
        if on_usb(&link) {
            note(
                r,
                what,
                "on USB (a stick or an external disk moves between machines)",
            );
            continue;
        }
        if user_removable(root, &dir) {
            note(
                r,
                what,
                "removable (behind a Thunderbolt or USB4 port: an enclosure moves between machines)",
            );
            continue;
        }
        // The kernel never calls an MMC block device removable, but an SD card is (the
        // installer's own card, often); an eMMC (`MMC`) is soldered to the board.
        if attr(&dir.join("device/type")).is_some_and(|t| t.starts_with("SD")) {
            note(
                r,
                what,
                "an SD card (a card moves between machines; the installer's own, often)",
            );
            continue;
        }
        let mut found: Vec<(String, &str)> = Vec::new();
        for (file, label) in [
            ("device/serial", "serial"),
            ("serial", "serial"),
            ("device/wwid", "WWID"),
            ("wwid", "WWID"),
        ] {
            if let Some(v) = attr(&dir.join(file)) {
                found.push((v, label));
            }
        }
        if let Ok(Some(page)) = read_bytes(&dir.join("device/vpd_pg80")) {
            if let Some(v) = vpd_serial(&page) {
                found.push((v, "serial"));
            }
        }
        let (before, notes_before) = (r.identity.disks.len(), r.notes.len());
        for (raw, label) in found {
            if let Some(v) = accept(r, Kind::Disk, &raw, &format!("{what} {label}")) {
                if !r.identity.disks.iter().any(|d| d.eq_ignore_ascii_case(&v)) {
                    r.labels.insert(v.clone(), format!("{name} {label}"));
                    r.identity.disks.push(v);
                }
            }
        }
        if r.identity.disks.len() == before && r.notes.len() == notes_before {
            note(r, what, "reports no serial or WWN");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpd_page_80_holds_the_serial() {
        let mut page = vec![0x00, 0x80, 0x00, 0x0c];
        page.extend_from_slice(b"  Z1F48TA8  ");
        assert_eq!(vpd_serial(&page).as_deref(), Some("Z1F48TA8"));
        // A length past the end reads what is there; another page reads nothing.
        assert_eq!(
            vpd_serial(&[0, 0x80, 0xff, 0xff, b'A', b'B', b'C']).as_deref(),
            Some("ABC")
        );
        assert_eq!(vpd_serial(&[0, 0x83, 0, 1, b'A']), None);
        assert_eq!(vpd_serial(&[0, 0x80]), None);
    }

    /// What moves between machines identifies none: a network card or a disk behind an
    /// external-facing PCI port (a Thunderbolt or USB4 dock or enclosure, which the kernel
    /// marks `removable`), and an SD card (the installer's own card, in a reader the kernel
    /// does not call removable); a soldered eMMC does identify.
    #[test]
    fn docks_enclosures_and_sd_cards_identify_nothing() {
        use crate::identity::fake::{Bus, FakeSysfs};
        let dir = tempfile::tempdir().unwrap();
        let mut t = FakeSysfs::new(dir.path()).unwrap();
        t.nic("eth0", "00:00:5e:00:53:01", 0, Bus::Pci).unwrap();
        t.nic("enp32s0", "00:00:5e:00:53:20", 0, Bus::External)
            .unwrap();
        t.disk(
            "nvme1n1",
            Bus::External,
            false,
            &[("device/serial", b"S5GXNX0T999999\n")],
        )
        .unwrap();
        t.disk(
            "mmcblk0",
            Bus::Pci,
            false,
            &[("device/type", b"SD\n"), ("device/serial", b"0x1234abcd\n")],
        )
        .unwrap();
        t.disk(
            "mmcblk1",
            Bus::Pci,
            false,
            &[
                ("device/type", b"MMC\n"),
                ("device/serial", b"0x0a1b2c3d\n"),
            ],
        )
        .unwrap();
        let r = read(dir.path());
        assert_eq!(r.identity.macs, vec!["00:00:5e:00:53:01".to_string()]);
        assert_eq!(r.identity.disks, vec!["0x0a1b2c3d".to_string()]);
        let notes: Vec<String> = r
            .notes
            .iter()
            .map(|n| format!("{}: {}", n.what, n.why))
            .collect();
        for (what, why) in [
            ("interface enp32s0", "removable"),
            ("disk nvme1n1", "removable"),
            ("disk mmcblk0", "SD card"),
        ] {
            assert!(
                notes.iter().any(|n| n.starts_with(what) && n.contains(why)),
                "{what} / {why}: {notes:#?}"
            );
        }
    }

    /// An attribute is read only from a regular file of its own: one that is a link (in a tree
    /// given to `--sysfs-root`, to a file only root may read, when vault runs as root) is not
    /// followed, and a FIFO does not block; the kernel's attributes are never either.
    #[test]
    fn attributes_are_read_from_their_own_files_only() {
        use crate::identity::fake::{Bus, FakeSysfs};
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "ROOT-ONLY-SECRET-1234\n").unwrap();
        let root = dir.path().join("sys");
        let mut t = FakeSysfs::new(&root).unwrap();
        t.nic("eth0", "00:00:5e:00:53:01", 0, Bus::Pci).unwrap();
        let dmi = root.join("class/dmi/id");
        std::os::unix::fs::symlink(&secret, dmi.join("product_serial")).unwrap();
        let eth0 = std::fs::canonicalize(root.join("class/net/eth0")).unwrap();
        std::fs::remove_file(eth0.join("address")).unwrap();
        std::os::unix::fs::symlink(&secret, eth0.join("address")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dmi.join("board_serial"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let r = read(&root);
        assert!(r.identity.is_empty(), "{:?}", r.identity);
        let notes = format!("{:?}", r.notes);
        assert!(!notes.contains("ROOT-ONLY"), "{notes}");
    }

    /// A fake tree whose links loop reads as a machine with nothing to say, without hanging.
    #[test]
    fn link_loops_read_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        crate::identity::fake::FakeSysfs::new(dir.path()).unwrap();
        let net = dir.path().join("class/net");
        std::os::unix::fs::symlink("a", net.join("b")).unwrap();
        std::os::unix::fs::symlink("b", net.join("a")).unwrap();
        std::os::unix::fs::symlink(".", dir.path().join("block/self")).unwrap();
        let r = read(dir.path());
        assert!(r.identity.is_empty(), "{:?}", r.identity);
    }
}
