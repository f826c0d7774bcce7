//! The adversarial corpus: validly encrypted bundles whose payloads a hostile packer (or
//! someone who learned the passphrase) crafted. Each is refused by the real `vault` binary
//! with a clear error and exit code 4, and `mnt/`, `live/` and an `outside/` canary are
//! byte-identical afterwards (full listing: types, modes, owners, SHA-256, link targets).
//!
//! Every case runs twice: with the default in-memory staging and with `--staging-memory 0`,
//! which streams files into temporaries beside their targets during the walk, so the
//! rollback of written temporaries is exercised too.

mod hostile;

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
        ("contiguous file", EntryType::Continuous, "special entry"),
        ("gnu sparse", EntryType::GNUSparse, "invalid contents"),
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
            "(PAX)",
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
            "the manifest 4",
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
            "block device",
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
