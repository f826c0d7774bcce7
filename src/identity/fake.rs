//! Fake sysfs trees for tests of [`super::sysfs`] and of `vault unlock --sysfs-root`: the
//! same layout as the kernel's (class entries are links into `devices/`), so the reader's
//! checks (virtual, USB, `device`) see what they see on a real machine.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Where a fake device sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    Pci,
    Usb,
    /// PCI behind an external-facing port (Thunderbolt, USB4: a dock, an enclosure): the
    /// kernel marks the device `removable`.
    External,
    /// Under `devices/virtual` (loopback, bridges, loop devices).
    Virtual,
}

/// A fake sysfs root.
pub struct FakeSysfs {
    pub root: PathBuf,
    next: u32,
}

impl FakeSysfs {
    /// An empty tree at `root` (created).
    pub fn new(root: &Path) -> std::io::Result<FakeSysfs> {
        for d in ["class/dmi/id", "class/net", "block", "devices/virtual"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        Ok(FakeSysfs {
            root: root.to_path_buf(),
            next: 1,
        })
    }

    /// `class/dmi/id/FILE` holding `value` and a newline, as the kernel writes it.
    pub fn dmi(&self, file: &str, value: &str) -> std::io::Result<()> {
        std::fs::write(
            self.root.join("class/dmi/id").join(file),
            format!("{value}\n"),
        )
    }

    fn device_dir(&mut self, bus: Bus, class: &str, name: &str) -> String {
        self.next += 1;
        let n = self.next;
        match bus {
            Bus::Pci => format!("devices/pci0000:00/0000:00:{n:02x}.0/{class}/{name}"),
            Bus::Usb => {
                format!("devices/pci0000:00/0000:00:14.0/usb1/1-{n}/1-{n}:1.0/{class}/{name}")
            }
            Bus::External => {
                format!(
                    "devices/pci0000:00/0000:00:07.0/0000:20:00.0/0000:{n:02x}:00.0/{class}/{name}"
                )
            }
            Bus::Virtual => format!("devices/virtual/{class}/{name}"),
        }
    }

    /// Marks the PCI device of `rel` (a path from [`Self::device_dir`]) as the kernel marks
    /// one behind an external-facing port.
    fn mark_external(&self, bus: Bus, rel: &str) -> std::io::Result<()> {
        if bus != Bus::External {
            return Ok(());
        }
        let pci = self.root.join(rel);
        let pci = pci.parent().and_then(Path::parent).unwrap_or(&pci);
        std::fs::write(pci.join("removable"), "removable\n")
    }

    /// A network interface: `address`, `addr_assign_type`, `type` 1 (Ethernet), and a
    /// `device` link unless virtual.
    pub fn nic(&mut self, name: &str, mac: &str, assign: u8, bus: Bus) -> std::io::Result<()> {
        let rel = self.device_dir(bus, "net", name);
        let dir = self.root.join(&rel);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("address"), format!("{mac}\n"))?;
        std::fs::write(dir.join("addr_assign_type"), format!("{assign}\n"))?;
        std::fs::write(dir.join("type"), "1\n")?;
        if bus != Bus::Virtual {
            std::fs::create_dir_all(dir.join("device"))?;
        }
        self.mark_external(bus, &rel)?;
        symlink(
            format!("../../{rel}"),
            self.root.join("class/net").join(name),
        )
    }

    /// A block device with `files` (relative to its directory: `serial`, `device/wwid`,
    /// `device/vpd_pg80`...) and `removable`.
    pub fn disk(
        &mut self,
        name: &str,
        bus: Bus,
        removable: bool,
        files: &[(&str, &[u8])],
    ) -> std::io::Result<()> {
        let rel = self.device_dir(bus, "block", name);
        let dir = self.root.join(&rel);
        std::fs::create_dir_all(dir.join("device"))?;
        std::fs::write(dir.join("removable"), if removable { "1\n" } else { "0\n" })?;
        for (f, content) in files {
            let p = dir.join(f);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, content)?;
        }
        self.mark_external(bus, &rel)?;
        symlink(format!("../{rel}"), self.root.join("block").join(name))
    }
}
