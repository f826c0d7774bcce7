//! Values firmware, drivers and hypervisors report that identify no machine: placeholders a
//! board vendor never filled in, and addresses that are not burnt into hardware. They never
//! match and are never recorded. This is the one list; docs/guide/fleet.md shows it.

/// Product UUIDs that many machines report. Besides these, any UUID whose 32 hex digits are
/// all the same (all zero: "not present"; all FF: "not set, settable", per SMBIOS) is junk.
pub const UUIDS: &[&str] = &[
    // An AMI "default" board UUID (bytes 00..09), seen on many cheap boards, and the same
    // with its first three fields byte-swapped as older kernels print it.
    "03000200-0400-0500-0006-000700080009",
    "00020003-0004-0005-0006-000700080009",
];

/// Serials (product, board, disk) that many machines or disks report, compared by their
/// letters and digits alone, without case (so "To Be Filled By O.E.M", "DEFAULT_STRING" and
/// "System-Serial-Number" are the same placeholders). Besides these: a value with fewer than three letters or digits, one whose
/// letters and digits are all the same character ("0000000", "XXXXXXXX"), and QEMU's default
/// disk serials ("QM00001": every QEMU virtual machine's first IDE disk).
pub const SERIALS: &[&str] = &[
    "to be filled by o.e.m.",
    "to be filled by oem",
    "to be filled",
    "default string",
    "default",
    "0123456789",
    "123456789",
    "1234567890",
    "12345678",
    "system serial number",
    "chassis serial number",
    "base board serial number",
    "type2 - board serial number",
    "serial number",
    "serialnumber",
    "serial",
    "not specified",
    "not applicable",
    "not available",
    "none",
    "null",
    "empty",
    "unknown",
    "invalid",
    "oem",
    "o.e.m.",
];

/// Whether a (normalized, lowercase) product UUID identifies nothing.
pub fn uuid_is_junk(uuid: &str) -> bool {
    let mut hex = uuid.chars().filter(|c| *c != '-');
    let first = hex.next();
    UUIDS.contains(&uuid) || first.is_none_or(|f| hex.all(|c| c == f))
}

/// The letters and digits of `s`, lowercase: what two spellings of a placeholder share.
fn skeleton(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether a (normalized) serial identifies nothing.
pub fn serial_is_junk(serial: &str) -> bool {
    let lower = serial.trim().to_ascii_lowercase();
    let alnum = skeleton(&lower);
    if SERIALS.iter().any(|j| skeleton(j) == alnum) {
        return true;
    }
    let first = alnum.chars().next();
    if alnum.len() < 3 || alnum.chars().all(|c| Some(c) == first) {
        return true;
    }
    let qemu = lower
        .strip_prefix("qm")
        .is_some_and(|rest| rest.len() == 5 && rest.bytes().all(|b| b.is_ascii_digit()));
    // A T10 vendor identifier ("t10.ATA QEMU HARDDISK QM00001") ends with the disk's serial.
    let last_word_junk = lower.starts_with("t10.")
        && lower
            .rsplit(' ')
            .next()
            .is_some_and(|w| w != lower && serial_is_junk(w));
    qemu || last_word_junk
}

/// Why a (normalized, `aa:bb:cc:dd:ee:ff`) MAC address identifies no hardware, or `None`
/// when it does: a multicast address (no interface's own), a locally administered one (set by
/// software: random, or chosen by a hypervisor or a bond), or all zeros.
pub fn mac_is_junk(mac: &str) -> Option<&'static str> {
    let first = u8::from_str_radix(mac.get(..2)?, 16).ok()?;
    if mac.bytes().all(|b| b == b'0' || b == b':') {
        Some("all zeros")
    } else if first & 0x01 != 0 {
        Some("a multicast address")
    } else if first & 0x02 != 0 {
        Some("locally administered (set by software, not burnt into the card)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_uuids_are_junk() {
        for u in [
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "11111111-1111-1111-1111-111111111111",
            "03000200-0400-0500-0006-000700080009",
        ] {
            assert!(uuid_is_junk(u), "{u}");
        }
        assert!(!uuid_is_junk("4c4c4544-0042-3510-8052-b4c04f564433"));
        assert!(!uuid_is_junk("ffffffff-ffff-ffff-ffff-fffffffffff0"));
    }

    #[test]
    fn placeholder_serials_are_junk() {
        for s in [
            "To be filled by O.E.M.",
            "Default string",
            "0123456789",
            "System Serial Number",
            "Not Specified",
            "  none ",
            "0000000000",
            "XXXXXXXX",
            "........",
            "1",
            "ab",
            "QM00001",
            "t10.ATA     QEMU HARDDISK                           QM00002",
        ] {
            assert!(serial_is_junk(s), "{s:?}");
        }
        for s in [
            "5Z8BQ53",
            "ALPHA-0001",
            "S4EWNF0M123456",
            "naa.5000c500a37c3f2f",
            "t10.ATA ST4000DM005-2DP166 ZGY0B2SR",
            "QM000012",
        ] {
            assert!(!serial_is_junk(s), "{s:?}");
        }
    }

    /// A placeholder spelled with other spaces, dots, underscores or dashes is the same
    /// placeholder ("To Be Filled By O.E.M" without its last dot, "DEFAULT_STRING",
    /// "System-Serial-Number"); a real serial that contains one as a part is not.
    #[test]
    fn placeholders_in_other_spellings_are_junk() {
        for s in [
            "To Be Filled By O.E.M",
            "To be filled by OEM.",
            "TobefilledbyO.E.M.",
            "DEFAULT_STRING",
            "Default-String",
            "System_Serial_Number",
            "Not-Specified",
            "123-456-789",
            "t10.ATA     QEMU HARDDISK                           Default_String",
        ] {
            assert!(serial_is_junk(s), "{s:?}");
        }
        for s in ["DEFAULT-5Z8BQ53", "OEM-0001", "Serial 12345", "NONE42"] {
            assert!(!serial_is_junk(s), "{s:?}");
        }
    }

    #[test]
    fn software_macs_are_junk() {
        assert!(mac_is_junk("52:54:00:12:34:56").is_some_and(|w| w.contains("locally")));
        assert!(mac_is_junk("02:00:00:00:00:01").is_some());
        assert!(mac_is_junk("01:00:5e:00:00:01").is_some_and(|w| w.contains("multicast")));
        assert!(mac_is_junk("00:00:00:00:00:00").is_some_and(|w| w.contains("zeros")));
        assert_eq!(mac_is_junk("00:00:5e:00:53:01"), None);
        assert_eq!(mac_is_junk("a0:ad:9f:02:a9:83"), None);
    }
}
