use super::*;

fn file(target: &str) -> Item {
    Item {
        host: None,
        stage: Stage::Root,
        kind: Kind::File,
        target: target.into(),
        mode: 0o600,
        uid: 0,
        gid: 0,
        size: 1,
        sha256: Some("0".repeat(64)),
    }
}

fn dir(target: &str) -> Item {
    Item {
        kind: Kind::Dir,
        size: 0,
        sha256: None,
        mode: 0o700,
        ..file(target)
    }
}

fn check(items: Vec<Item>) -> Result<(), String> {
    BundleManifest {
        format: 1,
        created_by: "t".into(),
        hosts: vec!["h".into()],
        items,
        recovery_recipients: Vec::new(),
        identities: Default::default(),
    }
    .validate(&Limits::default())
}

/// `recovery_recipients` is optional and absent from the JSON when empty (a bundle
/// without it reads as before); from an untrusted bundle it is bounded, printable and
/// without repeats.
#[test]
fn recovery_recipients_are_optional_and_bounded() {
    let mut m = BundleManifest {
        format: 1,
        created_by: "t".into(),
        hosts: vec![],
        items: vec![file("/a")],
        recovery_recipients: Vec::new(),
        identities: Default::default(),
    };
    let json = serde_json::to_string(&m).unwrap();
    assert!(!json.contains("recovery"), "{json}");
    let back: BundleManifest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
    m.recovery_recipients = vec!["age1abc".into(), "ssh-ed25519 AAAA x@y".into()];
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<BundleManifest>(&json).unwrap(), m);
    assert_eq!(m.validate(&Limits::default()), Ok(()));
    let bad = |list: Vec<String>| {
        BundleManifest {
            recovery_recipients: list,
            ..m.clone()
        }
        .validate(&Limits::default())
        .unwrap_err()
    };
    assert!(bad(vec!["age1\x1b]0;x".into()]).contains("\\x1b"));
    assert!(bad(vec!["".into()]).contains("not a recipient line"));
    assert!(bad(vec!["a".repeat(4097)]).contains("not a recipient line"));
    assert!(bad(vec!["age1a".into(), "age1a".into()]).contains("twice"));
    assert!(bad((0..65).map(|i| format!("age1{i}")).collect()).contains("at most 64"));
}

#[test]
fn valid_trees() {
    check(vec![
        dir("/root/.ssh"),
        file("/root/.ssh/id"),
        file("/etc/x"),
    ])
    .unwrap();
    let mut per_host = file("/etc/x");
    per_host.host = Some("h".into());
    let mut disk = file("/tmp/disko-password");
    disk.stage = Stage::Disk;
    check(vec![file("/etc/y"), per_host, disk]).unwrap();
}

#[test]
fn every_json_field_is_required_once() {
    let item = r#"{"host":null,"stage":"root","kind":"dir","target":"/d","mode":448,"uid":0,"gid":0,"size":0,"sha256":null}"#;
    let doc =
        |items: &str| format!(r#"{{"format":1,"created_by":"t","hosts":[],"items":[{items}]}}"#);
    let parse = |s: &str| serde_json::from_str::<BundleManifest>(s).map_err(|e| e.to_string());
    parse(&doc(item)).unwrap();
    for field in ["host", "sha256", "stage", "mode", "uid", "size"] {
        let v: serde_json::Value = serde_json::from_str(item).unwrap();
        let mut map = v.as_object().unwrap().clone();
        map.remove(field);
        let e = parse(&doc(&serde_json::Value::Object(map).to_string())).unwrap_err();
        assert!(
            e.contains(&format!("missing field `{field}`")),
            "{field}: {e}"
        );
    }
    for field in ["format", "created_by", "hosts", "items"] {
        let mut v: serde_json::Value = serde_json::from_str(&doc(item)).unwrap();
        v.as_object_mut().unwrap().remove(field);
        let e = parse(&v.to_string()).unwrap_err();
        assert!(
            e.contains(&format!("missing field `{field}`")),
            "{field}: {e}"
        );
    }
    let twice = item.replacen(r#""mode":448,"#, r#""mode":448,"mode":511,"#, 1);
    assert!(parse(&doc(&twice))
        .unwrap_err()
        .contains("duplicate field `mode`"));
}

#[test]
fn hostile_trees() {
    let cases: Vec<(Vec<Item>, &str)> = vec![
        (vec![file("/etc/x"), file("/etc/x")], "twice"),
        (vec![file("/etc"), file("/etc/x")], "which is a file"),
        (vec![file("/etc/x/y"), file("/etc/x")], "inside it"),
        (vec![file("/etc/../x")], ". or .."),
        (vec![file("etc/x")], "absolute"),
        (
            vec![Item {
                mode: 0o4755,
                ..file("/x")
            }],
            "setuid",
        ),
        (
            vec![Item {
                sha256: None,
                ..file("/x")
            }],
            "SHA-256",
        ),
        (
            vec![Item {
                size: 5,
                ..dir("/x")
            }],
            "directory with a size",
        ),
        (
            vec![Item {
                host: Some("other".into()),
                ..file("/x")
            }],
            "not in the host list",
        ),
        (
            vec![Item {
                stage: Stage::Disk,
                ..file("/etc/shadow")
            }],
            "outside /tmp/",
        ),
        (
            vec![Item {
                size: u64::MAX,
                ..file("/x")
            }],
            "beyond the limit",
        ),
        (
            vec![Item {
                uid: u32::MAX,
                ..file("/x")
            }],
            "uid 4294967295 is out of range",
        ),
        (
            vec![Item {
                gid: u32::MAX,
                ..dir("/x")
            }],
            "gid 4294967295 is out of range",
        ),
    ];
    for (items, want) in cases {
        let e = check(items.clone()).unwrap_err();
        assert!(e.contains(want), "{items:?}: {e}");
    }
    // A per-host item that shadows a shared one on that host.
    let mut per_host = file("/etc/x");
    per_host.host = Some("h".into());
    assert!(check(vec![file("/etc/x"), per_host])
        .unwrap_err()
        .contains("twice"));
    // Parents first, in one scope and across shared and per-host items.
    let e = check(vec![file("/root/.ssh/id"), dir("/root/.ssh")]).unwrap_err();
    assert!(
        e.contains("directory /root/.ssh is listed after /root/.ssh/id"),
        "{e}"
    );
    let e = check(vec![dir("/a/b/c"), dir("/a")]).unwrap_err();
    assert!(e.contains("listed after /a/b/c"), "{e}");
    let mut host_dir = dir("/root/.ssh");
    host_dir.host = Some("h".into());
    let e = check(vec![file("/root/.ssh/known_hosts"), host_dir.clone()]).unwrap_err();
    assert!(e.contains("listed after"), "{e}");
    check(vec![host_dir, file("/root/.ssh/known_hosts")]).unwrap();
    // A sibling whose name extends the directory's is not inside it.
    check(vec![file("/root/.sshx"), dir("/root/.ssh")]).unwrap();
}
