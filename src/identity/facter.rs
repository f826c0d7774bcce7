//! What a nixos-facter report (`nixos-facter > facter.json`, report version 1) holds of a
//! machine's identity. nixos-facter leaves the SMBIOS product UUID and the product and board
//! serials out of its report on purpose, and records a network interface's hardware address
//! only as an opaque index, not the address: what remains are its disks' serials and WWNs
//! (`hardware.disk[].serial`, and `/dev/disk/by-id/wwn-0x…` or `nvme-eui.…` among
//! `unix_device_names`). The report is untrusted input: bounded, and any field of the wrong
//! shape is skipped.

use std::io::Read as _;
use std::path::Path;

use serde_json::Value;

use super::{Note, Reading};
use crate::manifest::identity::Kind;

/// Largest report read (real ones are a few hundred KiB).
pub const MAX_REPORT: u64 = 64 << 20;

/// Reads the report at `path`.
pub fn read_file(path: &Path) -> Result<Reading, crate::hosts::Error> {
    let io = |source| {
        crate::hosts::Error::Io(crate::error::IoError {
            action: "cannot read",
            path: path.into(),
            source,
        })
    };
    let bad = |message: String| crate::hosts::Error::Edit {
        path: path.into(),
        message,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    f.take(MAX_REPORT + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_REPORT {
        return Err(bad(format!(
            "larger than {} MiB: not a nixos-facter report",
            MAX_REPORT >> 20
        )));
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("not a nixos-facter report (invalid JSON: {e})")))?;
    read(&v).map_err(bad)
}

/// The identity in a parsed report.
pub fn read(report: &Value) -> Result<Reading, String> {
    let Some(hardware) = report.get("hardware").and_then(Value::as_object) else {
        return Err("not a nixos-facter report (it has no \"hardware\" object)".into());
    };
    let mut r = Reading::default();
    let mut note = |what: &str, why: String| {
        r.notes.push(Note {
            what: what.into(),
            why,
        })
    };
    match report.get("version").and_then(Value::as_u64) {
        Some(1) => {}
        v => note(
            "report version",
            format!(
                "{} (this vault reads version 1; what it understood is above)",
                v.map_or("missing".into(), |v| v.to_string())
            ),
        ),
    }
    for kind in [Kind::ProductUuid, Kind::ProductSerial, Kind::BoardSerial] {
        note(
            kind.key(),
            "nixos-facter leaves it out of its report on purpose; run `sudo vault host identify` on the machine for it".into(),
        );
    }
    let nics = hardware
        .get("network_interface")
        .and_then(Value::as_array)
        .map_or(0, |a| {
            a.iter()
                .filter(|n| str_at(n, &["sub_class", "name"]) != Some("Loopback"))
                .count()
        });
    note(
        Kind::Mac.key(),
        format!(
            "the report lists {nics} network interface(s) but not their addresses (nixos-facter records an index, not the MAC); run `sudo vault host identify` on the machine for them"
        ),
    );
    let disks = hardware
        .get("disk")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for d in &disks {
        disk(d, &mut r);
    }
    Ok(r)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn disk(d: &Value, r: &mut Reading) {
    let dev = str_at(d, &["unix_device_name"]).unwrap_or("?");
    let name = dev.strip_prefix("/dev/").unwrap_or(dev).to_owned();
    let what = format!("disk {name}");
    let classes: Vec<&str> = d
        .get("class_list")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let link = str_at(d, &["sysfs_device_link"]).unwrap_or("");
    if classes.contains(&"usb")
        || str_at(d, &["bus_type", "name"]) == Some("USB")
        || link.split('/').any(|c| c.starts_with("usb"))
    {
        r.notes.push(Note {
            what,
            why: "on USB (a stick or an external disk moves between machines)".into(),
        });
        return;
    }
    let mut found: Vec<(String, &str)> = Vec::new();
    if let Some(s) = str_at(d, &["serial"]) {
        found.push((s.to_owned(), "serial"));
    }
    for n in d
        .get("unix_device_names")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Some(w) = wwid_of_link(n) {
            found.push((w, "WWN"));
        }
    }
    for (raw, label) in found {
        let Ok(v) = Kind::Disk.normalize(&raw) else {
            continue;
        };
        if let Some(why) = Kind::Disk.junk(&v) {
            r.notes.push(Note {
                what: format!("{what} {label} \"{v}\""),
                why: why.into(),
            });
            continue;
        }
        if !r.identity.disks.iter().any(|x| x.eq_ignore_ascii_case(&v)) {
            r.labels.insert(v.clone(), format!("{name} {label}"));
            r.identity.disks.push(v);
        }
    }
}

/// The kernel's `wwid` for a udev `/dev/disk/by-id` link: `wwn-0xHEX` is `naa.HEX` (SATA and
/// SCSI), `nvme-eui.…`/`nvme-nvme.…`/`nvme-uuid.…` is the namespace's `wwid` itself.
fn wwid_of_link(link: &str) -> Option<String> {
    let name = link.strip_prefix("/dev/disk/by-id/")?;
    if let Some(hex) = name.strip_prefix("wwn-0x") {
        return (!hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| format!("naa.{}", hex.to_ascii_lowercase()));
    }
    let w = name.strip_prefix("nvme-")?;
    (w.starts_with("eui.") || w.starts_with("nvme.") || w.starts_with("uuid."))
        .then(|| w.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_id_links_map_to_kernel_wwids() {
        assert_eq!(
            wwid_of_link("/dev/disk/by-id/wwn-0x5000C500A37C3F2F").as_deref(),
            Some("naa.5000c500a37c3f2f")
        );
        assert_eq!(
            wwid_of_link("/dev/disk/by-id/nvme-eui.0025388b91b2b4a1").as_deref(),
            Some("eui.0025388b91b2b4a1")
        );
        for no in [
            "/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_1TB_S4EWNF0M123456",
            "/dev/disk/by-id/ata-ST4000DM005-2DP166_ZGY0B2SR",
            "/dev/disk/by-id/wwn-0x",
            "/dev/disk/by-id/wwn-0xnothex",
            "/dev/sda",
        ] {
            assert_eq!(wwid_of_link(no), None, "{no}");
        }
    }
}
