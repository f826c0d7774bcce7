//! Partition logic of `vault attach` / `vault detach` on images built in the test: a real
//! isohybrid image from `xorriso -as mkisofs -isohybrid-mbr` (as nixpkgs builds them), and
//! hand-made MBRs for the layouts xorriso does not produce (all slots used, protective GPT).
//! Bundles are real ones from `vault pack` with cheap KDF parameters.

mod common;
mod media_common;

use std::fs;
use std::path::Path;
use std::process::Command;

use media_common::{attach, bundle, iso, raw_image, refused, s, vault};
use vault::media::{self, mbr, open_source};

use common::ok;

/// The bundle bytes `open_source` finds in `img`.
fn carried(img: &Path) -> Vec<u8> {
    let src = open_source(img).unwrap();
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut src.reader(), &mut v).unwrap();
    v
}

#[test]
fn attach_changes_one_entry_and_appends_at_the_next_mib() {
    let dir = tempfile::tempdir().unwrap();
    let Some(iso) = iso(dir.path()) else { return };
    let b = bundle(dir.path(), "small", 3000);
    let before = fs::read(&iso).unwrap();
    let out = dir.path().join("out.img");
    ok(attach(&iso, &b, &out, &[]));
    assert_eq!(fs::read(&iso).unwrap(), before, "the input was modified");
    let after = fs::read(&out).unwrap();
    // Only slot 3's 16 bytes differ within the original image.
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert!(!changed.is_empty());
    assert!(
        changed.iter().all(|&i| (478..494).contains(&i)),
        "{changed:?}"
    );
    let start = (before.len() as u64).div_ceil(1 << 20) << 20;
    let e = &after[478..494];
    assert_eq!(e[4], 0xDA);
    assert_eq!(
        u64::from(u32::from_le_bytes(e[8..12].try_into().unwrap())) * 512,
        start
    );
    let bundle_bytes = fs::read(&b).unwrap();
    assert_eq!(
        &after[start as usize..start as usize + bundle_bytes.len()],
        &bundle_bytes[..]
    );
    assert_eq!(carried(&out), bundle_bytes);
    // The partition ends with the trailer sector; the image ends with the partition.
    let sectors = u64::from(u32::from_le_bytes(e[12..16].try_into().unwrap()));
    assert_eq!(after.len() as u64, start + sectors * 512);
    assert_eq!(
        mbr::parse_trailer(&after[after.len() - 512..]),
        Some(bundle_bytes.len() as u64)
    );
}

#[test]
fn refuses_to_overwrite_the_input_or_an_existing_output() {
    let dir = tempfile::tempdir().unwrap();
    let Some(iso) = iso(dir.path()) else { return };
    let b = bundle(dir.path(), "small", 100);
    let before = fs::read(&iso).unwrap();
    refused(attach(&iso, &b, &iso, &[]), "is the input image");
    let link = dir.path().join("link.iso");
    fs::hard_link(&iso, &link).unwrap();
    refused(attach(&iso, &b, &link, &["--force"]), "is the input image");
    let other = dir.path().join("other.img");
    fs::write(&other, "keep me").unwrap();
    refused(attach(&iso, &b, &other, &[]), "already exists");
    assert_eq!(fs::read(&other).unwrap(), b"keep me");
    assert_eq!(fs::read(&iso).unwrap(), before);
    // Not a bundle: refused before anything is written.
    let o = attach(&iso, &iso, &dir.path().join("x.img"), &[]);
    assert!(!o.status.success());
    assert!(!dir.path().join("x.img").exists());
}

#[test]
fn all_slots_used_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(dir.path(), "small", 100);
    let img = dir.path().join("full.img");
    raw_image(
        &img,
        &[
            (1, 0x83, 2048, 1024),
            (2, 0x83, 3072, 1024),
            (3, 0x83, 4096, 1024),
            (4, 0x83, 5120, 1024),
        ],
    );
    refused(
        attach(&img, &b, &dir.path().join("o.img"), &[]),
        "no free MBR slot",
    );
    assert!(!dir.path().join("o.img").exists());
    // Type 0 with an extent (xorriso's ISO entry) is in use too.
    raw_image(
        &img,
        &[
            (1, 0x00, 0, 8192),
            (2, 0xEF, 100, 100),
            (3, 0x83, 4096, 1024),
            (4, 0x0C, 5120, 1024),
        ],
    );
    refused(
        attach(&img, &b, &dir.path().join("o.img"), &[]),
        "no free MBR slot",
    );
}

#[test]
fn protective_gpt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(dir.path(), "small", 100);
    let img = dir.path().join("gpt.img");
    raw_image(&img, &[(1, 0xEE, 1, 8191)]);
    refused(attach(&img, &b, &dir.path().join("o.img"), &[]), "GPT");
    // A hybrid MBR (0xEE beside other entries) too: the kernel would follow the GPT.
    raw_image(&img, &[(1, 0x00, 0, 4096), (2, 0xEE, 1, 100)]);
    refused(attach(&img, &b, &dir.path().join("o.img"), &[]), "GPT");
    // No MBR at all.
    fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let o = attach(&img, &b, &dir.path().join("o.img"), &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no usable MBR"));
}

#[test]
fn replace_grows_and_shrinks_in_the_same_slot_and_detach_restores_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let Some(iso) = iso(dir.path()) else { return };
    let small = bundle(dir.path(), "small", 2000);
    let big = bundle(dir.path(), "big", 1_500_000);
    let d = |n: &str| dir.path().join(n);
    ok(attach(&iso, &small, &d("a.img"), &[]));
    refused(
        attach(&d("a.img"), &big, &d("x.img"), &[]),
        "already carries",
    );
    ok(attach(&d("a.img"), &big, &d("grown.img"), &["--replace"]));
    ok(attach(
        &d("grown.img"),
        &small,
        &d("shrunk.img"),
        &["--replace"],
    ));
    let a = media::inspect_image(&d("a.img")).unwrap();
    let g = media::inspect_image(&d("grown.img")).unwrap();
    let sh = media::inspect_image(&d("shrunk.img")).unwrap();
    let (slot, start, _) = a.partition.unwrap();
    assert_eq!(g.partition.map(|p| (p.0, p.1)), Some((slot, start)));
    assert!(g.len > a.len + 1_400_000, "{} vs {}", g.len, a.len);
    assert_eq!(carried(&d("grown.img")), fs::read(&big).unwrap());
    assert_eq!(carried(&d("shrunk.img")), fs::read(&small).unwrap());
    assert_eq!(sh.len, a.len);
    assert_eq!(
        fs::read(d("shrunk.img")).unwrap(),
        fs::read(d("a.img")).unwrap()
    );
    // Detach gives back the original image, byte for byte.
    ok(vault(&[
        "detach",
        "--image",
        s(&d("grown.img")),
        "-o",
        s(&d("detached.img")),
    ]));
    assert_eq!(
        fs::read(d("detached.img")).unwrap(),
        fs::read(&iso).unwrap()
    );
    // --replace on an image without a bundle is refused.
    let o = attach(&iso, &small, &d("y.img"), &["--replace"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("carries no vault bundle"));
}

#[test]
fn device_mode_on_a_file_standing_in_for_a_stick() {
    let dir = tempfile::tempdir().unwrap();
    let Some(iso) = iso(dir.path()) else { return };
    let small = bundle(dir.path(), "small", 2000);
    let big = bundle(dir.path(), "big", 1_500_000);
    let iso_bytes = fs::read(&iso).unwrap();
    let start = (iso_bytes.len() as u64).div_ceil(1 << 20) << 20;
    // A "stick" with the ISO written to it and 1 MiB of room after the next MiB boundary.
    let stick = dir.path().join("stick.img");
    let mut content = iso_bytes.clone();
    content.resize((start + (1 << 20)) as usize, 0xA5);
    fs::write(&stick, &content).unwrap();

    // Too small for the big bundle: refused, nothing written.
    match media::plan_in_place(&stick, &big, false, None) {
        Err(media::Error::TooSmall {
            start: s0,
            capacity,
            ..
        }) => {
            assert_eq!(s0, start);
            assert_eq!(capacity, content.len() as u64);
        }
        other => panic!("expected TooSmall, got {other:?}"),
    }
    refused(
        vault(&[
            "attach",
            "--no-binary",
            "--device",
            s(&stick),
            "--bundle",
            s(&big),
            "--yes",
            "--test-file-as-device",
        ]),
        "too small",
    );
    assert_eq!(fs::read(&stick).unwrap(), content);

    // The small one fits: written after the ISO, the rest of the stick as it was.
    let plan = media::plan_in_place(&stick, &small, false, None).unwrap();
    assert_eq!((plan.slot, plan.extent.start), (3, start));
    ok(vault(&[
        "attach",
        "--no-binary",
        "--device",
        s(&stick),
        "--bundle",
        s(&small),
        "--yes",
        "--test-file-as-device",
    ]));
    let after = fs::read(&stick).unwrap();
    assert_eq!(after.len(), content.len(), "a device does not grow");
    let end = plan.extent.end() as usize;
    assert!((0..start as usize).all(|i| after[i] == content[i] || (478..494).contains(&i)));
    assert!(after[end..] == content[end..]);
    assert_eq!(carried(&stick), fs::read(&small).unwrap());
    // Without --yes and no terminal to confirm on: refused.
    let o = Command::new(common::vault_bin())
        .args([
            "attach",
            "--no-binary",
            "--replace",
            "--device",
            s(&stick),
            "--bundle",
            s(&small),
            "--test-file-as-device",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    refused(o, "nothing was written");
    assert_eq!(fs::read(&stick).unwrap(), after);

    // --replace in place: the big bundle still does not fit; another small one does, same slot.
    assert!(matches!(
        media::plan_in_place(&stick, &big, true, None),
        Err(media::Error::TooSmall { .. })
    ));
    let other = bundle(dir.path(), "other", 9000);
    let plan = media::plan_in_place(&stick, &other, true, None).unwrap();
    assert_eq!((plan.slot, plan.extent.start), (3, start));
    assert_eq!(media::attach_in_place(&plan).unwrap(), None);
    assert_eq!(carried(&stick), fs::read(&other).unwrap());
    assert_eq!(fs::read(&stick).unwrap().len(), content.len());
}

#[test]
fn iso_file_mode_puts_the_bundle_in_the_iso_tree() {
    let dir = tempfile::tempdir().unwrap();
    let Some(iso) = iso(dir.path()) else { return };
    let b = bundle(dir.path(), "small", 5000);
    let out = dir.path().join("withfile.iso");
    ok(attach(&iso, &b, &out, &["--iso-file"]));
    let info = media::inspect_image(&out).unwrap();
    assert!(info.partition.is_none());
    let (_, len) = info.iso_file.unwrap();
    assert_eq!(len, fs::metadata(&b).unwrap().len());
    assert_eq!(carried(&out), fs::read(&b).unwrap());
    let shown = ok(vault(&["detach", "--image", s(&out)]));
    assert!(shown.contains("/vault/bundle in the ISO tree"), "{shown}");
    // The boot records survive the rewrite (xorriso -boot_image any replay).
    let t = mbr::Table::read(&mut fs::File::open(&out).unwrap(), &out)
        .unwrap()
        .unwrap();
    assert!(!t.used.is_empty());
}

#[test]
fn open_source_accepts_bare_bundles_and_rejects_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(dir.path(), "small", 100);
    assert_eq!(carried(&b), fs::read(&b).unwrap());
    let junk = dir.path().join("junk");
    fs::write(&junk, vec![7u8; 5000]).unwrap();
    assert!(matches!(
        open_source(&junk),
        Err(media::Error::NoBundle { .. })
    ));
    // A 0xDA entry that points past the end of the file: damaged, not a panic.
    let img = dir.path().join("bad.img");
    raw_image(&img, &[(3, 0xDA, 8000, 100)]);
    assert!(matches!(
        open_source(&img),
        Err(media::Error::Damaged { .. })
    ));
    raw_image(&img, &[(3, 0xDA, 2048, 100)]);
    assert!(matches!(
        open_source(&img),
        Err(media::Error::Damaged { .. })
    ));
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    /// An image of random bytes with an MBR signature, up to four entries pointing anywhere
    /// (some at real offsets inside the file), and optionally an ISO9660 descriptor whose root
    /// directory is random bytes.
    fn image() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(any::<u8>(), 40_000..70_000),
            proptest::collection::vec((0u8..=255, any::<u32>(), any::<u32>(), any::<bool>()), 0..4),
            any::<bool>(),
            any::<u32>(),
        )
            .prop_map(|(mut img, entries, iso, root)| {
                img[510] = 0x55;
                img[511] = 0xAA;
                for (i, (sys, start, len, small)) in entries.into_iter().enumerate() {
                    let e = 446 + 16 * i;
                    img[e] = 0;
                    // Slot 2 is often a carried-binary partition (0x96), read by inspect.
                    img[e + 4] = match (i, sys) {
                        (0, _) => 0xDA,
                        (1, 0..=127) => 0x96,
                        _ => sys,
                    };
                    let (start, len) = if small {
                        (start % 120, len % 120)
                    } else {
                        (start, len)
                    };
                    img[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
                    img[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
                }
                if iso && img.len() > 16 * 2048 + 2048 {
                    let p = 16 * 2048;
                    img[p] = 1;
                    img[p + 1..p + 6].copy_from_slice(b"CD001");
                    img[p + 128..p + 130].copy_from_slice(&2048u16.to_le_bytes());
                    img[p + 156 + 2..p + 156 + 6].copy_from_slice(&(root % 40).to_le_bytes());
                    img[p + 156 + 10..p + 156 + 14].copy_from_slice(&(root % 70_000).to_le_bytes());
                }
                img
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        /// Untrusted images are parsed without panics; anything found is within the file.
        #[test]
        fn untrusted_images_never_panic(img in image()) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("img");
            fs::write(&p, &img).unwrap();
            if let Ok(src) = open_source(&p) {
                prop_assert!(src.offset + src.len <= img.len() as u64);
            }
            let _ = media::inspect_image(&p);
            let b = dir.path().join("b");
            // Not a bundle: refused before the image is looked at; with a real-looking header
            // the planner runs on the hostile table.
            fs::write(&b, b"age-encryption.org/v1\n-> vault.bundle/argon2id AQEBAQEBAQEBAQEBAQEBAQ 8192 1 1\nBhp5ycc7dzqBCrrhwJRCAGIwTfrjXgrNsyATnk5BEHM\n--- gAhdCeX9gSlHPEDY05mdqP/k54MhWMp0OCDzgNEtNAU\nNONCENONCENONCEN").unwrap();
            prop_assert!(vault::bundle::looks_like_bundle(&fs::read(&b).unwrap()));
            let _ = media::plan_in_place(&p, &b, false, None);
            let _ = media::plan_in_place(&p, &b, true, None);
            let _ = media::attach_image(&p, &b, &dir.path().join("o"), false, false, None);
            let _ = media::attach_image(&p, &b, &dir.path().join("o2"), true, false, None);
            let _ = media::detach_image(&p, &dir.path().join("o3"), false);
        }
    }
}
