//! Unit tests of `vault.toml` parsing (src/manifest.rs).
use super::*;

fn parse(text: &str) -> Result<Manifest> {
    Manifest::from_str(Path::new("/ws/vault.toml"), text)
}

#[test]
fn template_parses() {
    let m = parse(TEMPLATE).expect("template must be valid");
    // Only examples in comments: nothing the user did not write gets packed.
    assert!(m.hosts.is_empty() && m.shared.is_empty(), "{m:?}");
    // The examples themselves are valid once uncommented (`recovery_recipients` holds a
    // placeholder to replace: as it is, it is refused, never taken for someone's key).
    let uncommented: String = TEMPLATE
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
        .filter(|l| {
            ![
                "[secrets]",
                "sops_config",
                "agenix_rules",
                "recovery_recipients",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let m = parse(&format!("version = 1\n{uncommented}")).expect("examples must be valid");
    assert_eq!(m.hosts["myhost"].entries.len(), 2);
    assert_eq!(m.shared.len(), 1);
}

#[test]
fn full_example() {
    let m = parse(
        r#"
version = 1
[secrets]
sops_config = "secrets/.sops.yaml"

[[entry]]
source = "deploy"
target = "/root/.ssh/id_ed25519"
mode = "0600"

[hosts.laptop]
ssh_host_key = "hosts/laptop/key"

[[hosts.laptop.entry]]
source = "hosts/laptop/key"
target = "/etc/ssh/ssh_host_ed25519_key"
mode = 0o600
owner = "0:0"

[[hosts.laptop.entry]]
source = "pw"
target = "/tmp/disko-password"
stage = "disk"
owner = "1000:100"
"#,
    )
    .unwrap();
    assert_eq!(m.shared[0].source, Path::new("/ws/deploy"));
    assert_eq!(m.shared[0].line, 6);
    let l = &m.hosts["laptop"];
    assert_eq!(l.entries[0].mode, Some(0o600));
    assert_eq!(l.entries[1].stage, Stage::Disk);
    assert_eq!((l.entries[1].uid, l.entries[1].gid), (1000, 100));
    assert_eq!(
        m.secrets.sops_config.as_deref(),
        Some(Path::new("/ws/secrets/.sops.yaml"))
    );
    assert_eq!(m.entries_for("laptop").count(), 3);
}

fn err_of(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn errors_name_the_line_and_fix() {
    let e = err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"etc/x\"\n");
    assert!(e.contains("line 2") && e.contains("absolute"), "{e}");
    let e = err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/x\"\nmode = 600\n");
    assert!(e.contains("0o600"), "{e}");
    let e = err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/x\"\nmode = \"4755\"\n");
    assert!(e.contains("setuid"), "{e}");
    let e =
        err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/x\"\nowner = \"root:root\"\n");
    assert!(e.contains("numeric"), "{e}");
    let e =
        err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/etc/x\"\nstage = \"disk\"\n");
    assert!(e.contains("/tmp/"), "{e}");
    let e = err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/x\"\nstage = \"boot\"\n");
    assert!(e.contains("\"disk\", \"root\""), "{e}");
    let e = err_of("[[entry]]\nsource = \"a\"\ntarget = \"/x\"\n");
    assert!(e.contains("version = 1"), "{e}");
    let e = err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/x\"\ncolour = 1\n");
    assert!(e.contains("unknown field"), "{e}");
    let e = err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/x\"\ncolour = 1\n");
    assert!(
        e.contains("line 5, column 1") && !e.contains("invalid TOML"),
        "{e}"
    );
    let e = err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = 5\n");
    assert!(
        e.contains("line 4, column 10") && e.contains("string"),
        "{e}"
    );
    let e = err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/x\"\nmode = true\n");
    assert!(e.contains("line 5") && e.contains("octal"), "{e}");
    let e = err_of("version = 1\n[[entry]]\nsource = \"a\n");
    assert!(
        e.contains("line 3, column") && e.contains("invalid TOML"),
        "{e}"
    );
    let e = err_of("version = 1\n[hosts.Bad]\n");
    assert!(e.contains("lowercase"), "{e}");
}

#[test]
fn control_characters_in_targets_are_refused() {
    for bad in [
        "/etc/\x1b]0;owned\x07",
        "/a\nb",
        "/a\tb",
        "/a\x7f",
        "/a\u{9b}2J",
    ] {
        let e = check_target(bad).unwrap_err();
        assert!(e.contains("control characters"), "{bad:?}: {e}");
    }
    check_target("/etc/clé\u{202e}").unwrap();
    let e = err_of("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/x\\u001b[2J\"\n");
    assert!(
        e.contains("line 2") && e.contains("control characters"),
        "{e}"
    );
    assert!(!e.contains('\x1b'), "{e}");
}

#[test]
fn owner_ids_stop_below_chowns_unchanged_sentinel() {
    let owner = |o: &str| {
        format!("version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/x\"\nowner = \"{o}\"\n")
    };
    for o in ["4294967295:0", "0:4294967295"] {
        let e = err_of(&owner(o));
        assert!(
            e.contains("line 2") && e.contains("out of range"),
            "{o}: {e}"
        );
    }
    let m = parse(&owner("4294967294:4294967294")).unwrap();
    assert_eq!((m.shared[0].uid, m.shared[0].gid), (MAX_ID, MAX_ID));
}

#[test]
fn duplicate_targets_are_refused_per_host() {
    let e = err_of(
        "version = 1\n[[entry]]\nsource = \"a\"\ntarget = \"/x\"\n[hosts.h]\n[[hosts.h.entry]]\nsource = \"b\"\ntarget = \"/x\"\n",
    );
    assert!(
        e.contains("line 6") && e.contains("line 2") && e.contains("host h"),
        "{e}"
    );
}

#[test]
fn targets() {
    for bad in [
        "", "x", "/", "/a/", "/a//b", "/a/./b", "/a/../b", "/..", "/a\0b",
    ] {
        assert!(check_target(bad).is_err(), "{bad:?}");
    }
    for good in [
        "/a",
        "/etc/ssh/ssh_host_ed25519_key",
        "/a/.hidden",
        "/a/..b",
    ] {
        assert!(check_target(good).is_ok(), "{good:?}");
    }
}

#[test]
fn host_identities_are_read_normalized_and_unique() {
    let m = parse(
        "version = 1\n[hosts.a]\n[hosts.a.identity]\nproduct_uuid = \"6F1C2A4E-8D3B-4C5A-9E7F-0A1B2C3D4E5F\"\nmacs = [\"00-00-5E-00-53-01\"]\n[hosts.b]\n",
    )
    .unwrap();
    let id = m.hosts["a"].identity.as_ref().unwrap();
    assert_eq!(
        id.product_uuid.as_deref(),
        Some("6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f")
    );
    assert_eq!(id.macs, vec!["00:00:5e:00:53:01".to_string()]);
    assert_eq!(m.hosts["b"].identity, None);
    // A malformed value: named with its line.
    let e = err_of("version = 1\n[hosts.a]\n[hosts.a.identity]\nmacs = [\"00:11\"]\n");
    assert!(
        e.contains("line 3: hosts.a.identity: macs: \"00:11\" is not a MAC address"),
        "{e}"
    );
    let e = err_of("version = 1\n[hosts.a]\n[hosts.a.identity]\nserial = \"x\"\n");
    assert!(e.contains("unknown field `serial`"), "{e}");
    // One serial for two hosts (without case): refused, both named, at the second's line.
    let e = err_of(
        "version = 1\n[hosts.a]\n[hosts.a.identity]\nboard_serial = \"CN1296372I\"\n[hosts.b]\n[hosts.b.identity]\nboard_serial = \"cn1296372i\"\n",
    );
    assert!(
        e.contains("line 6: hosts a and b both record the board serial \"cn1296372i\""),
        "{e}"
    );
    // The same placeholder on two hosts is no identifier: let be (pack warns).
    parse(
        "version = 1\n[hosts.a]\n[hosts.a.identity]\nboard_serial = \"Default string\"\n[hosts.b]\n[hosts.b.identity]\nboard_serial = \"Default string\"\n",
    )
    .unwrap();
}

/// TOML's dotted keys are the same tables as `[headers]`: a user may write either.
#[test]
fn dotted_keys_read_as_their_tables() {
    let m = parse(
        "version = 1\nhosts.server.flake = \"/c#server\"\n\
         [hosts.laptop]\nidentity.product_uuid = \"4c4c4544-0051-3410-8051-b4c04f4e4b32\"\n\
         identity.macs = [\"52:54:00:12:34:56\"]\n",
    )
    .expect("dotted keys parse");
    assert_eq!(m.hosts["server"].flake.as_deref(), Some("/c#server"));
    let id = m.hosts["laptop"].identity.as_ref().expect("identity");
    assert!(id.product_uuid.is_some() && id.macs.len() == 1, "{id:?}");
    let e = err_of("version = 1\n[hosts.laptop]\nidentity.product_uuid = \"not a uuid\"\n");
    assert!(e.contains("hosts.laptop.identity: product_uuid"), "{e}");
}
