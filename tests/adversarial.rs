//! The adversarial corpus: validly encrypted bundles whose payloads a hostile packer (or
//! someone who learned the passphrase) crafted. Each is refused by the real `vault` binary
//! with a clear error and exit code 4, and `mnt/`, `live/` and an `outside/` canary are
//! byte-identical afterwards (full listing: types, modes, owners, SHA-256, link targets).
//!
//! Every case runs twice: with the default in-memory staging and with `--staging-memory 0`,
//! which streams files into temporaries beside their targets during the walk, so the
//! rollback of written temporaries is exercised too.

mod hostile;

use std::process::Command;
use std::time::{Duration, Instant};

use hostile::*;
use tar::EntryType;
use vault::archive::{BundleManifest, Item, Kind};
use vault::manifest::Stage;

const KEY: &[u8] = b"ssh host key\n";

/// An honest first item, so that something would be placed before the hostile part.
fn honest_first() -> (Item, Member) {
    let i = file_item("/etc/ssh/ssh_host_ed25519_key", KEY);
    let m = Member::for_item(&i, KEY);
    (i, m)
}

struct Case {
    name: &'static str,
    bundle: Vec<u8>,
    needle: &'static str,
}

fn case(name: &'static str, bundle: Vec<u8>, needle: &'static str) -> Case {
    Case {
        name,
        bundle,
        needle,
    }
}

/// A manifest with the honest item and `item`, and members as given after the honest one.
fn with(item: Item, members: Vec<Member>) -> Vec<u8> {
    let (hi, hm) = honest_first();
    let mut all = vec![hm];
    all.extend(members);
    bundle(&manifest(vec![hi, item]), &all)
}

fn run_all(cases: Vec<Case>) {
    for c in cases {
        for extra in [&[][..], &["--staging-memory", "0"][..]] {
            let s = Scratch::new();
            let what = format!("{} {extra:?}", c.name);
            let t = Instant::now();
            s.expect_refused(&what, &c.bundle, extra, 4, c.needle);
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{what}: took {:?}",
                t.elapsed()
            );
        }
    }
}

#[test]
fn the_helper_builds_bundles_that_unlock() {
    // The control: without it, every refusal below could be a bug in the helper.
    let s = Scratch::new();
    let items = vec![
        (dir_item("/root/.ssh"), None),
        (file_item("/root/.ssh/id", b"id\n"), Some(b"id\n".to_vec())),
        (
            disk_item("/tmp/disko-password", b"pw"),
            Some(b"pw".to_vec()),
        ),
    ];
    let o = s.unlock(&honest(items.clone()), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(s.path("mnt/root/.ssh/id")).unwrap(), b"id\n");
    assert_eq!(
        std::fs::read(s.path("live/tmp/disko-password")).unwrap(),
        b"pw"
    );

    // Tar-header mode, owner and setuid bits are ignored: the manifest decides.
    let s = Scratch::new();
    let i = file_item("/etc/x", b"x");
    let m = Member::for_item(&i, b"x").with_mode(0o4777);
    let o = s.unlock(
        &bundle(&manifest(vec![i]), &[m]),
        &["--staging-memory", "0"],
    );
    assert!(o.status.success(), "{}", text(&o));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(s.path("mnt/etc/x")).unwrap().mode() & 0o7777,
        0o600
    );
}

#[test]
fn paths_outside_the_root() {
    let cases = vec![
        case(
            "manifest target with ..",
            with(file_item("/etc/../../outside/etc/shadow", b"x"), vec![]),
            ". or ..",
        ),
        case(
            "relative manifest target",
            with(file_item("etc/x", b"x"), vec![]),
            "absolute",
        ),
        case(
            "manifest target with //",
            with(file_item("/etc//x", b"x"), vec![]),
            "empty component",
        ),
        case(
            "tar name with ..",
            with(
                file_item("/etc/x", b"x"),
                vec![Member::file("h/root/etc/../../../outside/etc/x", b"x")],
            ),
            "but the manifest says",
        ),
        case(
            "absolute tar name",
            with(
                file_item("/etc/x", b"x"),
                vec![Member::file("/etc/x", b"x")],
            ),
            "but the manifest says",
        ),
        case(
            "disk stage target /etc/shadow on the live system",
            with(disk_item("/etc/shadow", b"evil"), vec![]),
            "disk-stage target outside /tmp/ and /run/",
        ),
        case(
            "disk stage target escaping /tmp",
            with(disk_item("/tmp/../etc/shadow", b"evil"), vec![]),
            ". or ..",
        ),
    ];
    run_all(cases);
}

#[test]
fn untrusted_names_reach_the_terminal_escaped() {
    // Control characters in targets are refused (in the error, the target is escaped).
    let cases = vec![
        case(
            "OSC title sequence in a target",
            with(file_item("/etc/\x1b]0;owned\x07x", b"x"), vec![]),
            "control characters",
        ),
        case(
            "CSI in a target",
            with(file_item("/etc/\u{9b}2Jx", b"x"), vec![]),
            "control characters",
        ),
        case(
            "newline in a target",
            with(file_item("/etc/x\nplaced /etc/shadow", b"x"), vec![]),
            "control characters",
        ),
        case(
            "ESC in a tar name",
            with(
                file_item("/etc/x", b"x"),
                vec![Member::file("h/root/etc/\x1b[2Jx", b"x")],
            ),
            "h/root/etc/\\x1b[2Jx",
        ),
    ];
    run_all(cases);

    // What may be in a target but reorders or hides text is printed escaped: in the plan, the
    // placed lines and inspect.
    let target = "/etc/\u{202e}yek_tsoh";
    let item = file_item(target, b"x");
    let m = BundleManifest {
        created_by: "vault \x1b]0;owned\x07".into(),
        ..manifest(vec![item.clone()])
    };
    let b = bundle(&m, &[Member::for_item(&item, b"x")]);
    let s = Scratch::new();
    for extra in [&["--dry-run"][..], &[][..]] {
        let o = s.unlock(&b, extra);
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        assert!(!out.contains('\u{202e}'), "{extra:?}: {out}");
        assert!(out.contains("/etc/\\u{202e}yek_tsoh"), "{extra:?}: {out}");
    }
    let o = std::process::Command::new(vault_bin())
        .arg("inspect")
        .arg(s.path("b.vault"))
        .arg("--passphrase-file")
        .arg(s.path("pw"))
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains('\u{202e}') && !out.contains('\x1b'), "{out}");
    assert!(out.contains("/etc/\\u{202e}yek_tsoh"), "{out}");
    assert!(out.contains("written by vault \\x1b]0;owned\\x07"), "{out}");
}

#[test]
fn root_stage_etc_shadow_stays_under_root() {
    // /etc/shadow with stage root means the *installed* system's file: it lands under --root
    // or nowhere. The target already has one, so it is refused (exit 6) without --force.
    let s = Scratch::new();
    let b = honest(vec![(
        file_item("/etc/shadow", b"evil\n"),
        Some(b"evil\n".to_vec()),
    )]);
    s.expect_refused("root-stage /etc/shadow", &b, &[], 6, "exists");
    let live_shadow = std::fs::read("/etc/shadow").ok();
    let o = s.unlock(&b, &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(s.path("mnt/etc/shadow")).unwrap(), b"evil\n");
    assert_eq!(
        std::fs::read(s.path("outside/etc/shadow")).unwrap(),
        b"root:live-system:1::::::\n"
    );
    assert_eq!(std::fs::read("/etc/shadow").ok(), live_shadow);
}

#[test]
fn links_devices_and_fifos() {
    let target = "/etc/x";
    let name = "h/root/etc/x";
    let mut cases = vec![];
    for (label, kind, needle) in [
        ("symlink entry", EntryType::Symlink, "symbolic link"),
        ("hardlink entry", EntryType::Link, "hard link"),
        ("char device", EntryType::Char, "character device"),
        ("block device", EntryType::Block, "block device"),
        ("fifo", EntryType::Fifo, "FIFO"),
        ("contiguous file", EntryType::Continuous, "contiguous file"),
        ("gnu sparse", EntryType::GNUSparse, "GNU sparse file"),
        (
            "pax global header",
            EntryType::XGlobalHeader,
            "PAX global header",
        ),
        (
            "gnu long link name",
            EntryType::GNULongLink,
            "GNU long link name",
        ),
    ] {
        let m = Member::link(name, kind, b"/outside/etc/shadow");
        cases.push(case(label, with(file_item(target, b""), vec![m]), needle));
    }
    // A link where the manifest has a directory.
    let m = Member::link("h/root/etc/d", EntryType::Symlink, b"/etc");
    cases.push(case(
        "symlink as directory",
        with(dir_item("/etc/d"), vec![m]),
        "symbolic link",
    ));
    // Manifest itself a link.
    let mut tar = Vec::new();
    Member::link("vault.json", EntryType::Symlink, b"/etc/shadow").write_to(&mut tar);
    tar.extend_from_slice(&[0u8; 1024]);
    cases.push(case(
        "manifest is a symlink",
        seal(&zstd_bytes(&tar)),
        "does not start with vault.json",
    ));
    run_all(cases);
}

#[test]
fn duplicates_and_file_directory_clashes() {
    let x = file_item("/etc/x", b"x");
    let cases = vec![
        case(
            "duplicate target in the manifest",
            with_items(vec![x.clone(), x.clone()]),
            "appears twice",
        ),
        case(
            "duplicate tar entry, listed once",
            with(
                x.clone(),
                vec![Member::for_item(&x, b"x"), Member::for_item(&x, b"x")],
            ),
            "not in its manifest",
        ),
        case(
            "file then directory beneath it",
            bundle_items(vec![
                (file_item("/etc/x", b"x"), b"x".to_vec()),
                (file_item("/etc/x/y", b"y"), b"y".to_vec()),
            ]),
            "which is a file",
        ),
        case(
            "directory beneath a file listed later",
            bundle_items(vec![
                (file_item("/etc/x/y", b"y"), b"y".to_vec()),
                (file_item("/etc/x", b"x"), b"x".to_vec()),
            ]),
            "inside it",
        ),
        case(
            "directory listed after a file inside it",
            bundle_items(vec![
                (file_item("/root/.ssh/id", b"id"), b"id".to_vec()),
                (
                    Item {
                        mode: 0o700,
                        ..dir_item("/root/.ssh")
                    },
                    vec![],
                ),
            ]),
            "directory /root/.ssh is listed after /root/.ssh/id",
        ),
        case(
            "a host's directory listed after a shared file inside it",
            bundle_items(vec![
                (
                    Item {
                        host: None,
                        ..file_item("/root/.ssh/known_hosts", b"k")
                    },
                    b"k".to_vec(),
                ),
                (dir_item("/root/.ssh"), vec![]),
            ]),
            "a directory must come before what it contains",
        ),
        case(
            "same path as file and directory",
            bundle_items(vec![
                (dir_item("/etc/x"), vec![]),
                (file_item("/etc/x", b"x"), b"x".to_vec()),
            ]),
            "appears twice",
        ),
        case(
            "shared file shadowed by a host's",
            bundle_items(vec![
                (
                    Item {
                        host: None,
                        ..file_item("/etc/x", b"x")
                    },
                    b"x".to_vec(),
                ),
                (file_item("/etc/x", b"x"), b"x".to_vec()),
            ]),
            "appears twice",
        ),
    ];
    run_all(cases);
}

/// A bundle whose members match `items` honestly (the manifest is the hostile part).
fn bundle_items(items: Vec<(Item, Vec<u8>)>) -> Vec<u8> {
    let m = manifest(items.iter().map(|(i, _)| i.clone()).collect());
    let members: Vec<Member> = items.iter().map(|(i, d)| Member::for_item(i, d)).collect();
    bundle(&m, &members)
}

/// The honest first item, then `items` with honest members holding `x`.
fn with_items(items: Vec<Item>) -> Vec<u8> {
    let (hi, hm) = honest_first();
    let mut members = vec![hm];
    members.extend(items.iter().map(|i| Member::for_item(i, b"x")));
    let mut all = vec![hi];
    all.extend(items);
    bundle(&manifest(all), &members)
}

#[test]
fn entries_the_manifest_does_not_list() {
    let x = file_item("/etc/x", b"x");
    let y = file_item("/etc/y", b"y");
    let cases = vec![
        case(
            "extra entry at the end",
            with(
                x.clone(),
                vec![
                    Member::for_item(&x, b"x"),
                    Member::file("h/root/etc/cron", b"evil"),
                ],
            ),
            "not in its manifest",
        ),
        case(
            "extra entry in the middle",
            bundle(
                &manifest(vec![honest_first().0, x.clone(), y.clone()]),
                &[
                    honest_first().1,
                    Member::file("h/root/etc/cron", b"evil"),
                    Member::for_item(&x, b"x"),
                    Member::for_item(&y, b"y"),
                ],
            ),
            "but the manifest says",
        ),
        case(
            "entries out of order",
            bundle(
                &manifest(vec![honest_first().0, x.clone(), y.clone()]),
                &[
                    honest_first().1,
                    Member::for_item(&y, b"y"),
                    Member::for_item(&x, b"x"),
                ],
            ),
            "but the manifest says",
        ),
        case(
            "manifest lists more than the archive holds",
            with(x.clone(), vec![]),
            "ends before item 1",
        ),
        case(
            "manifest not first",
            {
                let mut tar = Vec::new();
                Member::for_item(&x, b"x").write_to(&mut tar);
                Member::file("vault.json", &manifest_json(&manifest(vec![x.clone()])))
                    .write_to(&mut tar);
                tar.extend_from_slice(&[0u8; 1024]);
                seal(&zstd_bytes(&tar))
            },
            "does not start with vault.json",
        ),
        case("an empty archive", seal(&zstd_bytes(&[0u8; 1024])), "empty"),
        case(
            "non-zero bytes after the archive end",
            {
                let mut t = tar_bytes(
                    &manifest_json(&manifest(vec![x.clone()])),
                    &[Member::for_item(&x, b"x")],
                );
                t.extend_from_slice(b"smuggled");
                seal(&zstd_bytes(&t))
            },
            "data after the end",
        ),
    ];
    run_all(cases);
}

#[test]
fn sizes_and_hashes_that_do_not_match() {
    let x = file_item("/etc/x", b"good");
    let cases = vec![
        case(
            "tar size differs from the manifest",
            with(x.clone(), vec![Member::file("h/root/etc/x", b"good!")]),
            "the archive says 5 bytes, the manifest 4",
        ),
        case(
            "same size, other contents",
            with(x.clone(), vec![Member::file("h/root/etc/x", b"evil")]),
            "SHA-256 does not match",
        ),
        case(
            "hash mismatch in the first item",
            bundle(
                &manifest(vec![x.clone(), honest_first().0]),
                &[Member::file("h/root/etc/x", b"evil"), honest_first().1],
            ),
            "SHA-256 does not match",
        ),
        case(
            "huge declared size in the manifest",
            with(
                Item {
                    size: 1 << 50,
                    ..x.clone()
                },
                vec![Member::file("h/root/etc/x", b"good")],
            ),
            "beyond the limit",
        ),
        case(
            "huge total size in the manifest",
            bundle(
                &manifest(
                    (0..5)
                        .map(|i| Item {
                            size: 60 << 30,
                            ..file_item(&format!("/f{i}"), b"")
                        })
                        .collect(),
                ),
                &[],
            ),
            "declared total size",
        ),
        case(
            "huge declared size in the tar header",
            with(
                x.clone(),
                vec![Member::file("h/root/etc/x", b"good").declared_size(1 << 40)],
            ),
            "the manifest 4",
        ),
        case(
            "directory entry with data",
            with(
                dir_item("/etc/d"),
                vec![Member::raw(b"h/root/etc/d", EntryType::Directory, b"data")],
            ),
            "directory entry with data",
        ),
        case(
            "setuid mode in the manifest",
            with(
                Item {
                    mode: 0o4755,
                    ..x.clone()
                },
                vec![Member::file("h/root/etc/x", b"good")],
            ),
            "setuid",
        ),
        case(
            "host not in the host list",
            with(
                Item {
                    host: Some("other".into()),
                    ..x.clone()
                },
                vec![Member::file("other/root/etc/x", b"good")],
            ),
            "not in the host list",
        ),
        case(
            "unknown field in vault.json",
            {
                let json = String::from_utf8(manifest_json(&manifest(vec![]))).unwrap();
                let json = json.replacen('{', "{\"exec\": \"rm -rf /\",", 1);
                seal(&zstd_bytes(&tar_bytes(json.as_bytes(), &[])))
            },
            "unknown field",
        ),
        case(
            "vault.json not JSON",
            seal(&zstd_bytes(&tar_bytes(b"\x00\xff not json", &[]))),
            "vault.json is invalid",
        ),
        case(
            "future manifest format",
            bundle(
                &BundleManifest {
                    format: 2,
                    ..manifest(vec![])
                },
                &[],
            ),
            "format 2",
        ),
    ];
    run_all(cases);
}

#[test]
fn owners_that_chown_reads_as_unchanged() {
    // (uid_t)-1 is chown's "leave unchanged": an item asking for it is refused with the
    // manifest, never reaches placement (where it panicked).
    let x = file_item("/etc/x", b"good");
    let d = dir_item("/etc/d");
    let cases = vec![
        case(
            "file uid 4294967295",
            with(
                Item {
                    uid: u32::MAX,
                    ..x.clone()
                },
                vec![Member::file("h/root/etc/x", b"good")],
            ),
            "uid 4294967295 is out of range",
        ),
        case(
            "directory gid 4294967295",
            with(
                Item {
                    gid: u32::MAX,
                    ..d.clone()
                },
                vec![Member::dir("h/root/etc/d")],
            ),
            "gid 4294967295 is out of range",
        ),
    ];
    run_all(cases);
    // The largest valid id is placed.
    let s = Scratch::new();
    let o = s.unlock(
        &honest(vec![(
            Item {
                uid: u32::MAX - 1,
                gid: u32::MAX - 1,
                ..x.clone()
            },
            Some(b"good".to_vec()),
        )]),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    if rustix::process::geteuid().is_root() {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(s.path("mnt/etc/x")).unwrap();
        assert_eq!((m.uid(), m.gid()), (u32::MAX - 1, u32::MAX - 1));
    }
}

#[test]
fn decompression_bombs_stop_at_declared_sizes() {
    // 1 GiB of zeros compresses to ~30 KiB at level 1; unlock must stop long before reading
    // them all (the case runner also bounds each run to 20 s).
    let zeros = vec![0u8; 1 << 20];
    let x = file_item("/etc/x", b"good");
    let bomb_after = |tar: Vec<u8>, gib: usize| {
        let mut enc = zstd::Encoder::new(Vec::new(), 1).unwrap();
        use std::io::Write;
        enc.write_all(&tar).unwrap();
        for _ in 0..(gib << 10) {
            enc.write_all(&zeros).unwrap();
        }
        seal(&enc.finish().unwrap())
    };
    let honest_tar = tar_bytes(
        &manifest_json(&manifest(vec![x.clone()])),
        &[Member::for_item(&x, b"good")],
    );
    // The tar's two end blocks, then gigabytes of zero padding.
    let cases = vec![
        case(
            "gigabytes of zeros after the archive end",
            bomb_after(honest_tar, 1),
            "data after the end",
        ),
        case(
            "a file member claiming gigabytes",
            {
                let mut t = Vec::new();
                Member::file("vault.json", &manifest_json(&manifest(vec![x.clone()])))
                    .write_to(&mut t);
                let m = Member::file("h/root/etc/x", b"").declared_size(4 << 30);
                t.extend_from_slice(m.header.as_bytes());
                bomb_after(t, 1)
            },
            "the manifest 4",
        ),
        case(
            "a manifest member claiming gigabytes",
            {
                let m = Member::file("vault.json", b"").declared_size(4 << 30);
                bomb_after(m.header.as_bytes().to_vec(), 1)
            },
            "at most",
        ),
        case(
            "a zstd frame asking for a 2 GiB window",
            {
                let t = tar_bytes(&manifest_json(&manifest(vec![])), &[]);
                let mut enc = zstd::Encoder::new(Vec::new(), 1).unwrap();
                enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(31))
                    .unwrap();
                use std::io::Write;
                enc.write_all(&t).unwrap();
                seal(&enc.finish().unwrap())
            },
            "malformed",
        ),
    ];
    run_all(cases);
}

#[test]
fn gnu_long_names_and_pax_records() {
    let x = file_item("/etc/x", b"good");
    let long_target = format!("/etc/{}", "l".repeat(200));
    let long = file_item(&long_target, b"long");
    let cases = vec![
        case(
            "GNU long name with ..",
            with(
                x.clone(),
                vec![
                    Member::gnu_long_name(b"h/root/../../../../outside/etc/shadow"),
                    Member::file("h/root/etc/x", b"good"),
                ],
            ),
            "but the manifest says",
        ),
        case(
            "PAX path with ..",
            with(
                x.clone(),
                vec![
                    Member::pax(&[("path", b"../../outside/etc/shadow")]),
                    Member::file("h/root/etc/x", b"good"),
                ],
            ),
            "but the manifest says",
        ),
        case(
            "PAX path absolute",
            with(
                x.clone(),
                vec![
                    Member::pax(&[("path", b"/etc/shadow")]),
                    Member::file("h/root/etc/x", b"good"),
                ],
            ),
            "but the manifest says",
        ),
        case(
            "PAX size hides data after the declared size",
            with(
                x.clone(),
                vec![
                    Member::pax(&[("size", b"1024")]),
                    Member::raw(b"h/root/etc/x", EntryType::Regular, &{
                        let mut d = b"good".to_vec();
                        d.resize(1024, b'Z');
                        d
                    })
                    .declared_size(4),
                ],
            ),
            "PAX size record (1024)",
        ),
        case(
            "PAX size shorter than the header",
            with(
                x.clone(),
                vec![
                    Member::pax(&[("size", b"0")]),
                    Member::file("h/root/etc/x", b"good"),
                ],
            ),
            "PAX size record (0)",
        ),
        case(
            "PAX linkpath on a regular file, path to a device",
            with(
                x.clone(),
                vec![
                    Member::pax(&[("linkpath", b"/dev/sda")]),
                    Member::link("h/root/etc/x", EntryType::Block, b""),
                ],
            ),
            "the key linkpath",
        ),
        case(
            "GNU long name on the manifest member",
            {
                let mut t = Vec::new();
                Member::gnu_long_name(b"../vault.json").write_to(&mut t);
                t.extend(tar_bytes(&manifest_json(&manifest(vec![])), &[]));
                seal(&zstd_bytes(&t))
            },
            "does not start with vault.json",
        ),
        case(
            "a long target with the wrong long name",
            with(
                long.clone(),
                vec![
                    Member::gnu_long_name(format!("h/root{long_target}x").as_bytes()),
                    Member::file("h/root/etc/l", b"long"),
                ],
            ),
            "but the manifest says",
        ),
    ];
    run_all(cases);

    // And the honest long-name member is accepted (the tar crate's own writer emits it).
    let s = Scratch::new();
    let (hi, hm) = honest_first();
    let b = bundle(
        &manifest(vec![hi, long.clone()]),
        &[
            hm,
            Member::gnu_long_name(long.archive_path().as_bytes()),
            Member::file("h/root/etc/l", b"long"),
        ],
    );
    let o = s.unlock(&b, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(s.mnt().join(long_target.trim_start_matches('/'))).unwrap(),
        b"long"
    );
}

/// Runs `vault args...` with its address space capped at `limit` bytes: an allocation the
/// size a hostile header declares fails (and aborts) instead of swapping.
// SAFETY: the pre_exec hook makes one async-signal-safe system call (setrlimit).
#[allow(unsafe_code)]
fn run_capped(args: &[&std::ffi::OsStr], limit: u64) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(vault_bin());
    cmd.args(args);
    // SAFETY: setrlimit is a plain system call, async-signal-safe between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let l = rustix::process::Rlimit {
                current: Some(limit),
                maximum: Some(limit),
            };
            rustix::process::setrlimit(rustix::process::Resource::As, l)
                .map_err(std::io::Error::from)
        });
    }
    cmd.output().expect("run vault")
}

#[test]
fn tar_metadata_is_bounded_before_it_is_read() {
    // A GNU long name or PAX header declaring 3 GiB, whose zeros compress to a few KiB: read
    // whole, it needs 3 GiB of memory. Each must be refused from its header, in unlock and in
    // inspect, within a 1 GiB address space.
    let x = file_item("/etc/x", b"good");
    let bomb = |kind: EntryType| {
        let mut t = tar_bytes_ending(&manifest_json(&manifest(vec![x.clone()])), &[], b"");
        let name: &[u8] = if kind == EntryType::GNULongName {
            b"././@LongLink"
        } else {
            b"././@PaxHeader"
        };
        let m = Member::raw(name, kind, b"").declared_size(3 << 30);
        t.extend_from_slice(m.header.as_bytes());
        let mut enc = zstd::Encoder::new(Vec::new(), 1).unwrap();
        use std::io::Write;
        enc.write_all(&t).unwrap();
        let zeros = vec![b'1'; 1 << 20];
        for _ in 0..(3 << 10) {
            enc.write_all(&zeros).unwrap();
        }
        seal(&enc.finish().unwrap())
    };
    let limit = 1u64 << 30;
    let s = Scratch::new();
    let b = s.path("b.vault");
    let pw = s.path("pw");
    // The control: an honest bundle unlocks within the same cap.
    std::fs::write(&b, honest(vec![(x.clone(), Some(b"good".to_vec()))])).unwrap();
    let unlock_args = |b: &std::path::Path| -> Vec<std::ffi::OsString> {
        vec![
            "unlock".into(),
            b.into(),
            "--root".into(),
            s.mnt().into(),
            "--root-not-mountpoint".into(),
            "--disk-root".into(),
            s.live().into(),
            "--passphrase-file".into(),
            pw.clone().into(),
            "--dry-run".into(),
        ]
    };
    let os = |v: &[std::ffi::OsString]| -> Vec<std::ffi::OsString> { v.to_vec() };
    let args = os(&unlock_args(&b));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let o = run_capped(&refs, limit);
    assert!(o.status.success(), "control: {}", text(&o));
    for (kind, needle) in [
        (
            EntryType::GNULongName,
            "is 3221225472 bytes (at most 8192 allowed)",
        ),
        (
            EntryType::XHeader,
            "is 3221225472 bytes (at most 8192 allowed)",
        ),
    ] {
        std::fs::write(&b, bomb(kind)).unwrap();
        let inspect: Vec<std::ffi::OsString> = vec![
            "inspect".into(),
            b.clone().into(),
            "--passphrase-file".into(),
            pw.clone().into(),
        ];
        for args in [unlock_args(&b), inspect] {
            let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
            let t = Instant::now();
            let o = run_capped(&refs, limit);
            let out = text(&o);
            assert_eq!(o.status.code(), Some(4), "{kind:?} {args:?}: {out}");
            assert!(out.contains(needle), "{kind:?} {args:?}: {out}");
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{kind:?}: {:?}",
                t.elapsed()
            );
        }
    }
}

#[test]
fn tar_framing_outside_the_format() {
    let x = file_item("/etc/x", b"good");
    let json = manifest_json(&manifest(vec![x.clone()]));
    let member = || Member::for_item(&x, b"good");
    let ending = |end: &[u8]| seal(&zstd_bytes(&tar_bytes_ending(&json, &[member()], end)));
    let cases = vec![
        case(
            "no end-of-archive marker",
            ending(b""),
            "ends without its end-of-archive marker",
        ),
        case(
            "one zero block",
            ending(&[0u8; 512]),
            "ends after one zero block",
        ),
        case(
            "one zero block, then an entry",
            {
                let mut t = tar_bytes_ending(&json, &[member()], &[0u8; 512]);
                Member::file("h/root/etc/cron", b"evil").write_to(&mut t);
                t.extend_from_slice(&[0u8; 1024]);
                seal(&zstd_bytes(&t))
            },
            "single zero block",
        ),
        case(
            "a header without ustar magic",
            with(x.clone(), vec![member().without_magic()]),
            "has no ustar magic",
        ),
        case(
            "the manifest without ustar magic",
            seal(&zstd_bytes(&{
                let mut t = Vec::new();
                Member::file("vault.json", &json)
                    .without_magic()
                    .write_to(&mut t);
                member().write_to(&mut t);
                t.extend_from_slice(&[0u8; 1024]);
                t
            })),
            "has no ustar magic",
        ),
        case(
            "the pre-POSIX NUL type flag",
            with(x.clone(), vec![member().with_type_byte(0)]),
            "pre-POSIX regular file (type NUL)",
        ),
        case(
            "a wrong header checksum",
            with(x.clone(), {
                let mut m = member();
                m.header.as_mut_bytes()[0] ^= 1;
                vec![m]
            }),
            "wrong checksum",
        ),
        case(
            "a non-octal size",
            with(x.clone(), vec![member().patched(124, b"0000000000x\0")]),
            "unreadable size",
        ),
        case(
            "non-zero padding after a member",
            {
                let mut t = tar_bytes(&json, &[member()]);
                // The member's one data block is the last before the end marker.
                let data = t.len() - 1024 - 512;
                t[data + 4] = b'Z';
                seal(&zstd_bytes(&t))
            },
            "padding",
        ),
        case(
            "a PAX record whose length is wrong",
            with(
                x.clone(),
                vec![Member::pax_raw(b"99 path=h/root/etc/x\n"), member()],
            ),
            "is malformed: a record's length does not match",
        ),
        case(
            "a PAX record without =",
            with(x.clone(), vec![Member::pax_raw(b"9 pathx\n\n"), member()]),
            "is malformed",
        ),
        case(
            "a PAX record without its length",
            with(x.clone(), vec![Member::pax_raw(b"path=x\n"), member()]),
            "is malformed",
        ),
        case(
            "a PAX key given twice",
            with(
                x.clone(),
                vec![
                    Member::pax(&[("path", b"h/root/etc/x"), ("path", b"h/root/etc/y")]),
                    member(),
                ],
            ),
            "key path appears twice",
        ),
        case(
            "an unknown PAX key",
            with(
                x.clone(),
                vec![
                    Member::pax(&[("SCHILY.xattr.security.capability", b"\x01")]),
                    member(),
                ],
            ),
            "the key SCHILY.xattr.security.capability",
        ),
        case(
            "a GNU long name and a PAX path on one member",
            with(
                x.clone(),
                vec![
                    Member::gnu_long_name(b"h/root/etc/x"),
                    Member::pax(&[("path", b"h/root/etc/x")]),
                    member(),
                ],
            ),
            "both a GNU long name and a PAX path",
        ),
        case(
            "two GNU long names in a row",
            with(
                x.clone(),
                vec![
                    Member::gnu_long_name(b"h/root/etc/x"),
                    Member::gnu_long_name(b"h/root/etc/x"),
                    member(),
                ],
            ),
            "two GNU long names",
        ),
        case(
            "a GNU long name as the last entry",
            with(
                x.clone(),
                vec![member(), Member::gnu_long_name(b"h/root/etc/y")],
            ),
            "is the last entry",
        ),
        case(
            "a GNU long name one byte over the limit",
            with(
                x.clone(),
                vec![
                    Member::raw(b"././@LongLink", EntryType::GNULongName, &[b'a'; 8193]),
                    member(),
                ],
            ),
            "is 8193 bytes (at most 8192 allowed)",
        ),
        case(
            "a PAX header one byte over the limit",
            with(
                x.clone(),
                vec![
                    Member::pax(&[("mtime", "1".repeat(8181).as_bytes())]),
                    member(),
                ],
            ),
            "is 8193 bytes (at most 8192 allowed)",
        ),
        case(
            "more than 1 MiB of zeros after the end-of-archive marker",
            ending(&vec![0u8; 1024 + (1 << 20) + 1]),
            "data after the end",
        ),
    ];
    run_all(cases);

    // What the format allows, at its limits: a PAX header of exactly 8 KiB with path, size and
    // the ignored keys; a GNU long name of 8 KiB (NUL padded); POSIX ustar headers with a
    // prefix; exactly 1 MiB of zeros after the end-of-archive marker.
    let long_target = format!("/etc/{}/{}", "d".repeat(120), "l".repeat(120));
    let long = file_item(&long_target, b"long");
    let y = file_item("/etc/y", b"y");
    let pax_records: Vec<(&str, &[u8])> = vec![
        ("path", b"h/root/etc/x"),
        ("size", b"4"),
        ("mtime", b"0.5"),
        ("atime", b"0"),
        ("ctime", b"0"),
        ("uid", b"0"),
        ("gid", b"0"),
        ("uname", b"root"),
    ];
    let mut pax = Member::pax(&pax_records);
    let fill = 8192 - pax.data.len();
    let gname = "g".repeat(fill - format!("{fill} gname=\n").len());
    let mut records = pax_records.clone();
    records.push(("gname", gname.as_bytes()));
    pax = Member::pax(&records);
    assert_eq!(pax.data.len(), 8192);
    let mut long_name = long.archive_path().into_bytes();
    long_name.resize(8192, 0);
    let mut ustar = tar::Header::new_ustar();
    ustar.set_path(y.archive_path()).unwrap();
    ustar.set_size(1);
    ustar.set_entry_type(EntryType::Regular);
    ustar.set_cksum();
    let prefixed = file_item(&format!("/etc/{}/q", "p".repeat(120)), b"q");
    let mut ustar_prefixed = tar::Header::new_ustar();
    ustar_prefixed.set_path(prefixed.archive_path()).unwrap();
    ustar_prefixed.set_size(1);
    ustar_prefixed.set_entry_type(EntryType::Regular);
    ustar_prefixed.set_cksum();
    assert_ne!(
        &ustar_prefixed.as_bytes()[345..350],
        &[0u8; 5],
        "uses the prefix"
    );
    let members = vec![
        pax,
        Member::file("somewhere/else", b"good"),
        Member::raw(b"././@LongLink", EntryType::GNULongName, &long_name),
        Member::file("h/root/etc/l", b"long"),
        Member {
            header: ustar,
            data: b"y".to_vec(),
        },
        Member {
            header: ustar_prefixed,
            data: b"q".to_vec(),
        },
    ];
    let m = manifest(vec![x.clone(), long.clone(), y.clone(), prefixed.clone()]);
    let mut t = tar_bytes(&manifest_json(&m), &members);
    t.extend(std::iter::repeat_n(0u8, 1 << 20));
    let s = Scratch::new();
    let o = s.unlock(&seal(&zstd_bytes(&t)), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(s.path("mnt/etc/x")).unwrap(), b"good");
    assert_eq!(std::fs::read(s.path("mnt/etc/y")).unwrap(), b"y");
    assert_eq!(
        std::fs::read(s.mnt().join(long_target.trim_start_matches('/'))).unwrap(),
        b"long"
    );
    assert_eq!(
        std::fs::read(s.mnt().join(prefixed.target.trim_start_matches('/'))).unwrap(),
        b"q"
    );
}

#[test]
fn zstd_frames_windows_and_skippable_frames() {
    // Allowed: the tar split over several frames, skippable frames before, between and after
    // them (their contents are never read), and a window of exactly 2^27 bytes.
    let x = file_item("/etc/x", b"good");
    let t = tar_bytes(
        &manifest_json(&manifest(vec![x.clone()])),
        &[Member::for_item(&x, b"good")],
    );
    let skippable = |magic_low: u8, data: &[u8]| {
        let mut f = vec![0x50 | magic_low, 0x2a, 0x4d, 0x18];
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(data);
        f
    };
    let with_window = |log: u32| {
        let mut enc = zstd::Encoder::new(Vec::new(), 1).unwrap();
        enc.set_parameter(zstd::zstd_safe::CParameter::WindowLog(log))
            .unwrap();
        use std::io::Write;
        enc.write_all(&t).unwrap();
        enc.finish().unwrap()
    };
    let mut payload = skippable(0, b"\x1b]0;ignored\x07");
    payload.extend(zstd_bytes(&t[..700]));
    payload.extend(skippable(0xf, &[0xff; 300]));
    payload.extend(zstd_bytes(&t[700..]));
    payload.extend(skippable(3, b""));
    for (what, p) in [("frames", payload), ("window 2^27", with_window(27))] {
        let s = Scratch::new();
        let o = s.unlock(&seal(&p), &[]);
        assert!(o.status.success(), "{what}: {}", text(&o));
        assert_eq!(
            std::fs::read(s.path("mnt/etc/x")).unwrap(),
            b"good",
            "{what}"
        );
    }
    run_all(vec![case(
        "a zstd window of 2^28 bytes",
        seal(&with_window(28)),
        "malformed",
    )]);
}

/// The archive's end is read in the first STREAM chunk; what follows it (here a skippable
/// frame) runs into chunks that were cut off. Reading to the end is what proves the
/// bundle whole: the error there must refuse it, on both placement paths.
#[test]
fn a_cut_after_the_archive_end_is_refused() {
    let x = file_item("/etc/x", b"good");
    let t = tar_bytes(
        &manifest_json(&manifest(vec![x.clone()])),
        &[Member::for_item(&x, b"good")],
    );
    // Zeros after the archive's end (allowed up to 1 MiB), so that the archive reader is done
    // long before the decompressor needs more input.
    let mut t = t;
    t.extend_from_slice(&[0u8; 512 * 1024]);
    let mut payload = zstd_bytes(&t);
    assert!(payload.len() < 4096);
    let filler: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    payload.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18]);
    payload.extend_from_slice(&(filler.len() as u32).to_le_bytes());
    payload.extend_from_slice(&filler);
    let whole = seal(&payload);
    // Header, 16-byte nonce, then three full 64 KiB chunks with their 16-byte tags: the rest
    // is dropped. The decompressor's first read (128 KiB) takes two chunks, which decrypt
    // (more follows them); the third, read after the archive's end, cannot be the last.
    let head = vault::bundle::header::parse(&whole).unwrap().len;
    let cut = whole[..head + 16 + 3 * (65536 + 16)].to_vec();
    let s = Scratch::new();
    let o = s.unlock(&whole, &[]);
    assert!(o.status.success(), "the uncut bundle: {}", text(&o));
    run_all(vec![case("cut after the archive end", cut.clone(), "")]);
    // `vault inspect` reads the payload as it decrypts: the cut surfaces after the archive.
    std::fs::write(s.path("cut.vault"), &cut).unwrap();
    let o = Command::new(vault_bin())
        .arg("inspect")
        .arg(s.path("cut.vault"))
        .arg("--passphrase-file")
        .arg(s.path("pw"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "inspect: {}", text(&o));
}

/// A directory's member may carry tar's trailing slash (`etc/ssh/`, as GNU tar writes it); a
/// file's may not, and a directory's member must still have the directory's own name.
#[test]
fn directory_member_names_with_and_without_the_slash() {
    let d = dir_item("/etc/ssh");
    let x = file_item("/etc/ssh/x", b"x");
    let m = manifest(vec![d.clone(), x.clone()]);
    let slash = bundle(
        &m,
        &[
            Member::raw(
                format!("{}/", d.archive_path()).as_bytes(),
                EntryType::Directory,
                b"",
            ),
            Member::for_item(&x, b"x"),
        ],
    );
    let s = Scratch::new();
    let o = s.unlock(&slash, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(s.path("mnt/etc/ssh/x")).unwrap(), b"x");
    run_all(vec![
        case(
            "a file member with a trailing slash",
            bundle(
                &m,
                &[
                    Member::for_item(&d, b""),
                    Member::raw(
                        format!("{}/", x.archive_path()).as_bytes(),
                        EntryType::Regular,
                        b"x",
                    ),
                ],
            ),
            "manifest says",
        ),
        case(
            "a directory member with another directory's name",
            bundle(
                &m,
                &[
                    Member::raw(
                        format!("{}/", dir_item("/etc/other").archive_path()).as_bytes(),
                        EntryType::Directory,
                        b"",
                    ),
                    Member::for_item(&x, b"x"),
                ],
            ),
            "manifest says",
        ),
    ]);
}

/// `vault.json` may be exactly 64 MiB (padded with JSON whitespace), not one byte more.
#[test]
fn the_manifest_size_limit_is_exact() {
    let x = file_item("/etc/x", b"x");
    let json = manifest_json(&manifest(vec![x.clone()]));
    let padded = |len: usize| {
        let mut j = json.clone();
        j.resize(len, b' ');
        seal(&zstd_bytes(&tar_bytes(&j, &[Member::for_item(&x, b"x")])))
    };
    let s = Scratch::new();
    let o = s.unlock(&padded(64 << 20), &[]);
    assert!(o.status.success(), "at the limit: {}", text(&o));
    run_all(vec![case(
        "vault.json one byte over 64 MiB",
        padded((64 << 20) + 1),
        "at most",
    )]);
}

#[test]
fn payloads_that_are_not_zstd_tar() {
    let cases = vec![
        case(
            "payload is plain tar",
            seal(&tar_bytes(b"{}", &[])),
            "malformed",
        ),
        case("payload is empty", seal(b""), "malformed"),
        case(
            "zstd of random bytes",
            seal(&zstd_bytes(
                &(0..4096u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
                    .collect::<Vec<_>>(),
            )),
            "",
        ),
        case(
            "zstd stream cut short",
            {
                let z = zstd_bytes(&tar_bytes(&manifest_json(&manifest(vec![])), &[]));
                seal(&z[..z.len() - 3])
            },
            "malformed",
        ),
    ];
    run_all(cases);
}

#[test]
fn a_refused_bundle_for_another_stage_places_nothing_either() {
    // Hostile content in a disk item must stop a root-only unlock too: everything is
    // verified, whatever is wanted.
    let (hi, hm) = honest_first();
    let d = disk_item("/tmp/disko-password", b"pw");
    let b = bundle(
        &manifest(vec![hi, d.clone()]),
        &[hm, Member::file(&d.archive_path(), b"PW")],
    );
    let s = Scratch::new();
    s.expect_refused(
        "hostile disk item, root stage",
        &b,
        &["--stage", "root"],
        4,
        "SHA-256",
    );
    let _ = Stage::Disk;
    let _ = Kind::File;
}

#[test]
fn kdf_parameters_beyond_the_caps_are_refused_before_any_work() {
    // The header is edited after encryption: the caps are checked before the header MAC
    // (which needs the expensive key), so the edit itself is not what is reported.
    let b = honest(vec![(file_item("/etc/x", b"x"), Some(b"x".to_vec()))]);
    let h = vault::bundle::header::parse(&b).unwrap().len;
    let head = String::from_utf8(b[..h].to_vec()).unwrap();
    let s = Scratch::new();
    for (args, needle) in [
        (" 4194305 1 1\n", "key derivation asks for"),
        (" 8 65 1\n", "key derivation asks for"),
        (" 8 1 65\n", "key derivation asks for"),
    ] {
        let edited = head.replacen(" 8 1 1\n", args, 1);
        assert_ne!(edited, head);
        let mut v = edited.into_bytes();
        v.extend_from_slice(&b[h..]);
        let t = Instant::now();
        s.expect_refused(args.trim(), &v, &[], 4, needle);
        assert!(t.elapsed() < Duration::from_secs(5), "{args}: the KDF ran");
    }
}

#[test]
fn the_item_limit_is_reachable_and_enforced() {
    // Exactly the limit unlocks; one more is refused. All but one item belong to another
    // host, so they are verified (the whole payload always is) but not placed: the test stays
    // fast.
    let max = vault::archive::Limits::default().max_items;
    let build = |n: usize| {
        let mine = file_item("/etc/x", b"x");
        let mut items = vec![mine.clone()];
        let mut members = vec![Member::for_item(&mine, b"x")];
        for i in 1..n {
            let it = Item {
                host: Some("other".into()),
                ..file_item(&format!("/f/{i}"), b"")
            };
            members.push(Member::for_item(&it, b""));
            items.push(it);
        }
        let m = BundleManifest {
            hosts: vec![HOST.into(), "other".into()],
            ..manifest(items)
        };
        let json = serde_json::to_vec(&m).unwrap();
        assert!(json.len() < (64 << 20));
        seal(&zstd_bytes(&tar_bytes(&json, &members)))
    };
    let s = Scratch::new();
    let o = s.unlock(&build(max), &["--host", HOST]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(s.path("mnt/etc/x")).unwrap(), b"x");
    let s = Scratch::new();
    s.expect_refused(
        "one item over the limit",
        &build(max + 1),
        &["--host", HOST],
        4,
        &format!("{} items (at most {max} allowed)", max + 1),
    );
}
