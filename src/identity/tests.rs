use super::fake::{Bus, FakeSysfs};
use super::matching::{decide, score, Outcome, THRESHOLD};
use super::*;
use crate::manifest::identity::*;

fn id(uuid: Option<&str>, serial: Option<&str>, macs: &[&str], disks: &[&str]) -> Identity {
    Identity {
        product_uuid: uuid.map(Into::into),
        product_serial: serial.map(Into::into),
        board_serial: None,
        macs: macs.iter().map(|s| s.to_string()).collect(),
        disks: disks.iter().map(|s| s.to_string()).collect(),
    }
}

const UUID_A: &str = "6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f";
const UUID_B: &str = "0b7d6e2a-5c4f-4b3a-8e1d-9f8a7b6c5d4e";
const MAC_A: &str = "00:00:5e:00:53:01";
const MAC_B: &str = "00:00:5e:00:53:02";

/// A machine as sysfs would show it: eth0 with `mac`, the DMI values given.
fn machine(uuid: Option<&str>, serial: Option<&str>, macs: &[&str], disks: &[&str]) -> Reading {
    let mut r = Reading {
        identity: id(uuid, serial, macs, disks),
        ..Reading::default()
    };
    for (i, m) in macs.iter().enumerate() {
        r.labels.insert(m.to_string(), format!("eth{i}"));
    }
    for (i, d) in disks.iter().enumerate() {
        r.labels.insert(
            d.to_string(),
            format!("sd{} serial", (b'a' + i as u8) as char),
        );
    }
    r
}

#[test]
fn a_fake_tree_reads_like_a_machine() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = FakeSysfs::new(dir.path()).unwrap();
    t.dmi("product_uuid", &UUID_A.to_uppercase()).unwrap();
    t.dmi("product_serial", "To be filled by O.E.M.").unwrap();
    // board_serial: absent.
    t.nic("eth0", "00:00:5E:00:53:01", 0, Bus::Pci).unwrap();
    t.nic("lo", "00:00:00:00:00:00", 0, Bus::Virtual).unwrap();
    t.nic("wlan0", "00:00:5e:00:53:09", 1, Bus::Pci).unwrap();
    t.nic("enx0", "00:00:5e:00:53:0a", 0, Bus::Usb).unwrap();
    t.nic("enp2s0", "52:54:00:12:34:56", 0, Bus::Pci).unwrap();
    t.nic("br0", "00:00:5e:00:53:0b", 0, Bus::Virtual).unwrap();
    let mut pg80 = vec![0u8, 0x80, 0, 10];
    pg80.extend_from_slice(b"  Z1F48TA8");
    t.disk(
        "nvme0n1",
        Bus::Pci,
        false,
        &[
            ("device/serial", b"S4EWNF0M123456      \n"),
            ("wwid", b"eui.0025388b91b2b4a1\n"),
        ],
    )
    .unwrap();
    t.disk(
        "sda",
        Bus::Pci,
        false,
        &[
            ("device/wwid", b"naa.5000c500a37c3f2f\n"),
            ("device/vpd_pg80", &pg80),
        ],
    )
    .unwrap();
    t.disk(
        "sdb",
        Bus::Pci,
        true,
        &[("device/wwid", b"naa.5000000000000001\n")],
    )
    .unwrap();
    t.disk(
        "sdc",
        Bus::Usb,
        false,
        &[("device/wwid", b"naa.5000000000000002\n")],
    )
    .unwrap();
    t.disk("vdb", Bus::Pci, false, &[("serial", b"QM00001\n")])
        .unwrap();
    t.disk("vdc", Bus::Pci, false, &[]).unwrap();
    t.disk("loop0", Bus::Virtual, false, &[]).unwrap();

    let r = sysfs::read(dir.path());
    assert_eq!(r.identity.product_uuid.as_deref(), Some(UUID_A));
    assert_eq!(r.identity.product_serial, None);
    assert_eq!(r.identity.board_serial, None);
    assert_eq!(r.identity.macs, vec![MAC_A.to_string()]);
    assert_eq!(
        r.identity.disks,
        vec![
            "S4EWNF0M123456".to_string(),
            "eui.0025388b91b2b4a1".into(),
            "naa.5000c500a37c3f2f".into(),
            "Z1F48TA8".into(),
        ]
    );
    assert_eq!(r.labels[MAC_A], "eth0");
    assert_eq!(r.labels["Z1F48TA8"], "sda serial");
    let notes: Vec<String> = r
        .notes
        .iter()
        .map(|n| format!("{}: {}", n.what, n.why))
        .collect();
    let has = |what: &str, why: &str| {
        assert!(
            notes.iter().any(|n| n.starts_with(what) && n.contains(why)),
            "{what} / {why}: {notes:#?}"
        )
    };
    has("product_serial \"To be filled by O.E.M.\"", "placeholder");
    has("board_serial", "not reported by this machine");
    has("interface wlan0", "not its permanent address");
    has("interface enx0", "on USB");
    has("interface enp2s0", "locally administered");
    has("disk sdb", "removable");
    has("disk sdc", "on USB");
    has("disk vdb serial \"QM00001\"", "placeholder");
    has("disk vdc", "reports no serial or WWN");
    // Software interfaces and loop devices are not worth a word.
    assert!(
        !notes
            .iter()
            .any(|n| n.contains("lo:") || n.contains("br0") || n.contains("loop0")),
        "{notes:#?}"
    );
}

#[test]
fn an_unreadable_value_is_said() {
    let dir = tempfile::tempdir().unwrap();
    FakeSysfs::new(dir.path()).unwrap();
    // A directory where the attribute should be: reading it fails (as EACCES does for a
    // non-root user, which root cannot be made to see here).
    std::fs::create_dir(dir.path().join("class/dmi/id/product_uuid")).unwrap();
    let r = sysfs::read(dir.path());
    assert_eq!(r.identity.product_uuid, None);
    assert!(
        r.notes.iter().any(|n| n.what == "product_uuid"
            && n.why.contains("cannot read /sys/class/dmi/id/product_uuid")),
        "{:?}",
        r.notes
    );
}

#[test]
fn the_identify_file_reads_back_as_written() {
    let mut r = machine(
        Some(UUID_A),
        Some("ALPHA-0001"),
        &[MAC_A],
        &["t10.ATA X \"quoted\" \\ Y1234"],
    );
    r.notes.push(Note {
        what: "board_serial".into(),
        why: "not reported".into(),
    });
    let text = text::render(&r, "/sys");
    assert!(text.contains(&format!("\"{MAC_A}\", # eth0")), "{text}");
    assert!(
        text.contains("# left out: board_serial: not reported"),
        "{text}"
    );
    assert_eq!(text::parse(&text).unwrap(), r.identity);
    // Nothing recorded still reads.
    assert_eq!(
        text::parse(&text::render(&Reading::default(), "/sys")).unwrap(),
        Identity::default()
    );
    // A mistyped key or value says which.
    assert!(text::parse("product_uid = \"x\"")
        .unwrap_err()
        .contains("unknown field"));
    assert!(text::parse("macs = [\"00:11\"]")
        .unwrap_err()
        .contains("not a MAC"));
    assert!(text::parse("product_uuid = \"nope\"")
        .unwrap_err()
        .contains("not a UUID"));
}

#[test]
fn values_are_normalized_and_checked() {
    let raw: RawIdentity = toml::from_str(
        "product_uuid = \" 6F1C2A4E-8D3B-4C5A-9E7F-0A1B2C3D4E5F \"\nmacs = [\"00-00-5E-00-53-01\", \"00:00:5e:00:53:01\"]\ndisks = [\"  t10.ATA   X  \"]",
    )
    .unwrap();
    let i = Identity::from_raw(raw).unwrap();
    assert_eq!(i.product_uuid.as_deref(), Some(UUID_A));
    assert_eq!(i.macs, vec![MAC_A.to_string()]);
    assert_eq!(i.disks, vec!["t10.ATA X".to_string()]);
    i.validate().unwrap();
    // From a bundle: normalized values only, no repeats, bounded.
    let bad = |i: Identity| i.validate().unwrap_err();
    assert!(bad(id(Some(&UUID_A.to_uppercase()), None, &[], &[])).contains("not normalized"));
    assert!(bad(id(None, None, &[MAC_A, MAC_A], &[])).contains("twice"));
    assert!(bad(id(None, Some("a\u{1b}b"), &[], &[])).contains("\\x1b"));
    let many: Vec<String> = (0..65).map(|i| format!("00:00:5e:00:54:{i:02x}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(bad(id(None, None, &many, &[])).contains("at most 64"));
}

#[test]
fn matching_scores_and_conflicts() {
    let laptop = id(
        Some(UUID_A),
        Some("ALPHA-0001"),
        &[MAC_A],
        &["S4EWNF0M123456"],
    );
    // Everything agrees.
    let v = score(
        &laptop,
        &machine(
            Some(UUID_A),
            Some("alpha-0001"),
            &[MAC_A],
            &["S4EWNF0M123456"],
        ),
    );
    assert!(v.is_match());
    assert_eq!(v.score, 4 + 3 + 2 + 1);
    assert_eq!(
        v.matched,
        vec![
            "product UUID",
            "product serial",
            "the MAC of eth0",
            "the disk sda"
        ]
    );
    // A different product UUID: another machine, even with the laptop's network card in it.
    let v = score(&laptop, &machine(Some(UUID_B), None, &[MAC_A], &[]));
    assert!(
        !v.is_match() && v.conflicts == vec!["product UUID differs"],
        "{v:?}"
    );
    // A clone with the same UUID and a new MAC: not the laptop.
    let v = score(&laptop, &machine(Some(UUID_A), None, &[MAC_B], &[]));
    assert!(!v.is_match(), "{v:?}");
    assert!(
        v.conflicts[0].contains("none of its MAC addresses"),
        "{v:?}"
    );
    // A MAC alone is enough when nothing disagrees (the UUID unreadable without root).
    assert!(score(&laptop, &machine(None, None, &[MAC_A], &[])).is_match());
    // A disk alone never is, however many.
    let disks = id(None, None, &[], &["DISK-S1", "DISK-S2"]);
    let v = score(&disks, &machine(None, None, &[], &["DISK-S1", "DISK-S2"]));
    assert!(!v.is_match() && v.score < THRESHOLD, "{v:?}");
    assert!(
        v.summary().contains("too little on its own"),
        "{}",
        v.summary()
    );
    // Junk recorded, junk reported: nothing compares.
    let junk = id(
        Some("ffffffff-ffff-ffff-ffff-ffffffffffff"),
        Some("To be filled by O.E.M."),
        &["52:54:00:12:34:56"],
        &["QM00001"],
    );
    let v = score(
        &junk,
        &machine(
            Some("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            Some("To be filled by O.E.M."),
            &["52:54:00:12:34:56"],
            &["QM00001"],
        ),
    );
    assert_eq!(
        (v.score, v.recorded, v.is_match()),
        (0, false, false),
        "{v:?}"
    );
    assert_eq!(v.summary(), "only placeholder values recorded");
}

#[test]
fn one_match_is_chosen_none_or_several_are_not() {
    let a = id(Some(UUID_A), None, &[MAC_A], &[]);
    let b = id(Some(UUID_B), None, &[MAC_B], &[]);
    let hosts = |m: &Reading| decide([("a", Some(&a)), ("b", Some(&b)), ("c", None)], m).1;
    assert!(
        matches!(hosts(&machine(Some(UUID_B), None, &[MAC_B], &[])), Outcome::One(h, _) if h == "b")
    );
    assert!(matches!(
        hosts(&machine(None, None, &["00:00:5e:00:53:99"], &[])),
        Outcome::None(_)
    ));
    // A machine carrying both hosts' cards, and no UUID to tell: several.
    assert_eq!(
        hosts(&machine(None, None, &[MAC_A, MAC_B], &[])),
        Outcome::Several(vec!["a".into(), "b".into()])
    );
    let (_, none) = decide(
        [("a", None), ("b", None)],
        &machine(Some(UUID_A), None, &[], &[]),
    );
    assert!(
        matches!(none, Outcome::None(why) if why.contains("no host of this bundle has an identity"))
    );
}

#[test]
fn two_hosts_cannot_share_an_identifier() {
    let a = id(Some(UUID_A), Some("SER-1"), &[MAC_A], &[]);
    let b = id(Some(UUID_B), Some("ser-1"), &[MAC_B], &[]);
    let e = check_unique([("a", &a), ("b", &b)]).unwrap_err();
    assert_eq!(
        (e.first.as_str(), e.second.as_str(), e.kind),
        ("a", "b", Kind::ProductSerial)
    );
    let msg = e.to_string();
    assert!(
        msg.contains("hosts a and b") && msg.contains("\"ser-1\""),
        "{msg}"
    );
    let clone = id(Some(UUID_A), None, &[], &[]);
    assert_eq!(
        check_unique([("a", &a), ("b", &clone)]).unwrap_err().kind,
        Kind::ProductUuid
    );
    // A placeholder two hosts share is not an identifier: it never matches, so it is let be.
    let j1 = id(
        Some("00000000-0000-0000-0000-000000000000"),
        Some("Default string"),
        &[],
        &[],
    );
    check_unique([("a", &j1), ("b", &j1.clone())]).unwrap();
}

#[test]
fn a_facter_report_gives_disks_and_says_what_it_lacks() {
    let report = serde_json::json!({
        "version": 1,
        "system": "x86_64-linux",
        "hardware": {
            "disk": [
                {
                    "class_list": ["disk", "ide", "block_device"],
                    "bus_type": {"name": "IDE"},
                    "serial": "WD-WCC4E1234567",
                    "sysfs_device_link": "/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0",
                    "unix_device_name": "/dev/sda",
                    "unix_device_names": ["/dev/disk/by-id/ata-WDC_WD40_WD-WCC4E1234567", "/dev/disk/by-id/wwn-0x50014ee2b5d1e2f3", "/dev/sda"]
                },
                {
                    "class_list": ["disk", "usb", "scsi", "block_device"],
                    "serial": "USBSTICK0001",
                    "unix_device_name": "/dev/sdb"
                },
                {"serial": 42, "unix_device_names": "not a list"}
            ],
            "network_interface": [
                {"sub_class": {"name": "Ethernet"}, "resources": [{"type": "hwaddr", "address": 53}]},
                {"sub_class": {"name": "Loopback"}}
            ]
        },
        "smbios": {"system": {"manufacturer": "ACME", "product": "Box"}}
    });
    let r = facter::read(&report).unwrap();
    assert_eq!(
        r.identity,
        id(
            None,
            None,
            &[],
            &["WD-WCC4E1234567", "naa.50014ee2b5d1e2f3"]
        )
    );
    let notes: Vec<String> = r
        .notes
        .iter()
        .map(|n| format!("{}: {}", n.what, n.why))
        .collect();
    for (what, why) in [
        ("product_uuid", "leaves it out of its report on purpose"),
        ("board_serial", "sudo vault host identify"),
        (
            "macs",
            "lists 1 network interface(s) but not their addresses",
        ),
        ("disk sdb", "on USB"),
    ] {
        assert!(
            notes.iter().any(|n| n.starts_with(what) && n.contains(why)),
            "{what}: {notes:#?}"
        );
    }
    assert!(facter::read(&serde_json::json!({"version": 1})).is_err());
}

#[test]
fn recording_keeps_comments_and_replaces_the_old_identity() {
    let p = std::path::Path::new("/ws/vault.toml");
    let text = "version = 1\n# my fleet\n[hosts.a] # the laptop\nflake = \".#a\"\n[hosts.a.identity]\nproduct_uuid = \"0b7d6e2a-5c4f-4b3a-8e1d-9f8a7b6c5d4e\"\n# trailing note\n";
    let new = id(Some(UUID_A), None, &[MAC_A], &[]);
    let out = record::edit(p, text, "a", &new).unwrap();
    assert!(
        out.contains("# my fleet\n[hosts.a] # the laptop\n"),
        "{out}"
    );
    assert!(!out.contains(UUID_B), "{out}");
    let m = crate::manifest::Manifest::from_str(p, &out).unwrap();
    assert_eq!(m.hosts["a"].identity.as_ref(), Some(&new));
    assert_eq!(m.hosts["a"].flake.as_deref(), Some(".#a"));
    // A new host gets its table; one whose identifier another host has is refused.
    let out = record::edit(p, &out, "b", &id(Some(UUID_B), None, &[], &[])).unwrap();
    assert!(
        out.contains(&format!("[hosts.b.identity]\nproduct_uuid = \"{UUID_B}\"")),
        "{out}"
    );
    let e = record::edit(p, &out, "c", &id(None, None, &[MAC_A], &[])).unwrap_err();
    assert!(
        e.to_string()
            .contains("hosts a and c both record the MAC address"),
        "{e}"
    );
}

/// `identities` is optional and absent from the JSON when empty (a bundle without it
/// reads as before, byte for byte); from an untrusted bundle each identity belongs to a
/// listed host, is normalized, and no identifier is shared by two hosts.
#[test]
fn bundle_identities_are_optional_and_checked() {
    use crate::archive::{BundleManifest, Item, Kind, Limits};
    let file = |t: &str| Item {
        host: None,
        stage: crate::manifest::Stage::Root,
        kind: Kind::File,
        target: t.into(),
        mode: 0o600,
        uid: 0,
        gid: 0,
        size: 1,
        sha256: Some("0".repeat(64)),
    };
    let mut m = BundleManifest {
        format: 1,
        created_by: "t".into(),
        hosts: vec!["a".into(), "b".into()],
        items: vec![file("/a")],
        recovery_recipients: Vec::new(),
        identities: Default::default(),
    };
    let json = serde_json::to_string(&m).unwrap();
    assert!(!json.contains("identities"), "{json}");
    let a = Identity {
        product_uuid: Some("6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f".into()),
        macs: vec!["00:00:5e:00:53:01".into()],
        ..Identity::default()
    };
    m.identities.insert("a".into(), a.clone());
    let json = serde_json::to_string(&m).unwrap();
    assert!(
        json.contains(r#""identities":{"a":{"product_uuid":"6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f","product_serial":null,"board_serial":null,"macs":["00:00:5e:00:53:01"],"disks":[]}}"#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<BundleManifest>(&json).unwrap(), m);
    assert_eq!(m.validate(&Limits::default()), Ok(()));
    // Every field of an identity is required, and no other.
    let missing = json.replace(r#""board_serial":null,"#, "");
    assert!(serde_json::from_str::<BundleManifest>(&missing)
        .unwrap_err()
        .to_string()
        .contains("missing field `board_serial`"));
    let extra = json.replace(r#""disks":[]"#, r#""disks":[],"tpm":"x""#);
    assert!(serde_json::from_str::<BundleManifest>(&extra).is_err());
    let bad = |ids: Vec<(&str, Identity)>| {
        BundleManifest {
            identities: ids.into_iter().map(|(h, i)| (h.to_string(), i)).collect(),
            ..m.clone()
        }
        .validate(&Limits::default())
        .unwrap_err()
    };
    assert!(bad(vec![("c", a.clone())]).contains("host c, which is not in the host list"));
    assert!(bad(vec![("a", a.clone()), ("b", a.clone())]).contains("hosts a and b both record"));
    let upper = Identity {
        macs: vec!["00:00:5E:00:53:01".into()],
        ..Identity::default()
    };
    assert!(bad(vec![("a", upper)]).contains("not normalized"));
}
