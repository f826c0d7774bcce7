use super::*;

#[test]
fn a_device_gone_or_without_medium_is_skipped_and_other_errors_are_failures() {
    use rustix::io::Errno;
    let err = |n: Errno| Error::io("cannot open", "/dev/sdz", n.into());
    for gone in [Errno::NOENT, Errno::NXIO, Errno::NODEV, Errno::NOMEDIUM] {
        assert!(vanished(&err(gone)), "{gone:?}");
    }
    for failed in [Errno::IO, Errno::ACCESS, Errno::PERM] {
        assert!(!vanished(&err(failed)), "{failed:?}");
    }
    let failures = [
        Failure {
            path: "/dev/sda".into(),
            role: "the installer disk sda".into(),
            error: err(Errno::IO),
        },
        Failure {
            path: "/dev/sdb".into(),
            role: String::new(),
            error: err(Errno::ACCESS),
        },
    ];
    // On the disk vault came from, an I/O error ends the search; a permission error or a
    // device that went away does not.
    let (mut own, mut others) = (Vec::new(), Vec::new());
    // The last one names a device already named: once is enough.
    for (path, n) in [
        ("/dev/sda1", Errno::IO),
        ("/dev/sda2", Errno::ACCESS),
        ("/dev/sda3", Errno::NODEV),
        ("/dev/sda1", Errno::IO),
    ] {
        let f = Failure {
            path: path.into(),
            role: "the installer disk sda".into(),
            error: err(n),
        };
        note(f, &mut own, &mut others);
    }
    assert_eq!((own.len(), others.len()), (1, 1));
    assert!(!own[0].denied() && others[0].denied());
    let e = unreadable(&failures, "nothing else".into());
    let msg = e.to_string();
    assert!(
        msg.starts_with("cannot read /dev/sda (the installer disk sda): Input/output error"),
        "{msg}"
    );
    assert!(msg.contains("; /dev/sdb: Permission denied"), "{msg}");
    assert!(matches!(e, Error::Unreadable { .. }));
}

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
