//! Hostile installer images and inputs, one test per class, through the real `vault` binary:
//! special files as inputs (FIFOs, directories, character devices), an output that is an
//! input, partition records that lie (past the end, a damaged binary partition), two bundles
//! in one image, and a device with nothing on it. Each refusal leaves every file as it was and
//! names the file and the fix. Faults of the machine (disk full, signals, I/O errors) are in
//! `media_faults.rs`; the random-image corpus is `media.rs::hostile`.

mod common;
mod media_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use media_common::*;

/// Runs `vault args`; a run still going after `limit` is killed and fails the test (a FIFO
/// opened for reading blocks until a writer comes: this is how such a hang shows).
fn vault_bounded(args: &[&str]) -> Output {
    let mut child = Command::new(common::vault_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let limit = Duration::from_secs(60);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`vault {}` was still running after {limit:?}: blocked",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// [`scene`] with a 3000-byte bundle attached as a partition to a copy of the image,
/// `stick.img`: (folder, bundle, stick image).
fn attached() -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    let (dir, iso, b) = scene(3000)?;
    let img = dir.path().join("stick.img");
    common::ok(attach(&iso, &b, &img, &[]));
    Some((dir, b, img))
}

fn mkfifo(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

/// A FIFO (or a directory, or /dev/zero) as the image, the bundle, `detach --image`,
/// `inspect` or `unlock`: refused at once (exit 6), naming what it is; nothing is written.
#[test]
fn special_files_as_inputs_are_refused_without_blocking() {
    let Some((dir, iso, b)) = scene(100) else {
        return;
    };
    let d = dir.path();
    let fifo = d.join("fifo");
    mkfifo(&fifo);
    let out = d.join("out.img");
    let pass = d.join("b-src/pass");
    let cases: Vec<Vec<&str>> = vec![
        attach_args(&fifo, &b, &out, &[]),
        attach_args(&iso, &fifo, &out, &[]),
        attach_args(&iso, &fifo, &out, &["--iso-file"]),
        stick_args(&fifo, &b, &[]),
        vec!["detach", "--image", s(&fifo)],
        vec!["detach", "--image", s(&fifo), "-o", s(&out)],
        vec!["inspect", s(&fifo)],
        dry_unlock_args(&fifo, d, &pass),
    ];
    for args in &cases {
        let err = failed_with(vault_bounded(args), 6, "is a FIFO (named pipe)");
        assert!(err.contains(s(&fifo)), "{err}");
    }
    for (what, kind) in [
        (d, "is a directory"),
        (Path::new("/dev/zero"), "is a character device"),
    ] {
        failed_with(vault_bounded(&attach_args(&iso, what, &out, &[])), 6, kind);
        failed_with(vault_bounded(&["detach", "--image", s(what)]), 6, kind);
    }
    assert!(!out.exists());
    assert!(temporaries(d).is_empty(), "{:?}", temporaries(d));
}

/// `-o` naming the bundle (also through a link), even with `--force`, is refused and the bundle
/// stays as it was; so is a device that is the bundle.
#[test]
fn the_output_is_never_the_bundle() {
    let Some((dir, iso, b)) = scene(100) else {
        return;
    };
    let d = dir.path();
    let before = fs::read(&b).unwrap();
    let link = d.join("link.vault");
    std::os::unix::fs::symlink(&b, &link).unwrap();
    for out in [&b, &link] {
        for extra in [&[][..], &["--iso-file"][..]] {
            let args = [&["--force"][..], extra].concat();
            refused(attach(&iso, &b, out, &args), "is the bundle");
        }
    }
    assert_eq!(fs::read(&b).unwrap(), before);
    // A stick (a file standing in for one) that is also the bundle.
    refused(attach_stick(&b, &link, &[]), "is the bundle");
    assert_eq!(fs::read(&b).unwrap(), before);
}

/// An image made by attach whose bundle entry was changed to start 1 TiB in (past its end):
/// `--replace` refuses it as a damaged partition (exit 4) instead of writing a 1 TiB image; so
/// does the same in place on a stick.
#[test]
fn replace_refuses_a_bundle_entry_that_points_past_the_end() {
    let Some((dir, b, img)) = attached() else {
        return;
    };
    let d = dir.path();
    let (sys, start, sectors) = entry(&img, 3);
    assert_eq!(sys, 0xDA);
    patch_entry(&img, 3, 0xDA, 1 << 31, sectors);
    let before = fs::read(&img).unwrap();
    let out = d.join("new.img");
    let err = failed_with(
        attach(&img, &b, &out, &["--replace"]),
        4,
        "extends past the end",
    );
    assert!(err.contains("MBR slot 3"), "{err}");
    assert!(
        !out.exists(),
        "wrote {} bytes",
        fs::metadata(&out).map(|m| m.len()).unwrap_or(0)
    );
    assert!(temporaries(d).is_empty());
    failed_with(
        attach_stick(&img, &b, &["--replace"]),
        4,
        "extends past the end",
    );
    assert_eq!(fs::read(&img).unwrap(), before);
    // An entry within the image whose partition does not start with a bundle: damaged too.
    patch_entry(&img, 3, 0xDA, start, sectors);
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 64], u64::from(start) * 512).unwrap();
    drop(f);
    failed_with(
        attach(&img, &b, &out, &["--replace"]),
        4,
        "does not start with a vault bundle",
    );
    assert!(!out.exists());
}

/// `detach -o` on an image whose ISO9660 volume and bundle entry claim to reach 1 TiB: refused
/// as truncated, not a 1 TiB copy.
#[test]
fn detach_refuses_records_that_reach_past_the_end() {
    let Some((dir, _, img)) = attached() else {
        return;
    };
    let d = dir.path();
    let (_, _, sectors) = entry(&img, 3);
    patch_entry(&img, 3, 0xDA, 1 << 31, sectors);
    // The primary volume descriptor's size: 2^29 blocks of 2048 bytes.
    let mut bytes = fs::read(&img).unwrap();
    let pvd = 16 * 2048;
    bytes[pvd + 80..pvd + 84].copy_from_slice(&(1u32 << 29).to_le_bytes());
    bytes[pvd + 84..pvd + 88].copy_from_slice(&(1u32 << 29).to_be_bytes());
    fs::write(&img, &bytes).unwrap();
    let out = d.join("plain.iso");
    refused(
        vault(&["detach", "--image", s(&img), "-o", s(&out)]),
        "was it truncated?",
    );
    assert!(!out.exists());
    assert!(temporaries(d).is_empty());
}

/// No MBR signature: a refusal (exit 6), as docs/MEDIA.md lists it.
#[test]
fn a_missing_mbr_signature_is_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = bundle(d, "b", 100);
    let img = d.join("zeros.img");
    fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let out = d.join("o.img");
    refused(attach(&img, &b, &out, &[]), "no usable MBR");
    refused(attach_stick(&img, &b, &[]), "no usable MBR");
    assert!(!out.exists());
}

/// A binary partition (type 0x96) that holds no ISO9660 volume: `detach --image` still shows
/// the bundle and names the binary partition as the damaged one, never "the bundle partition";
/// `inspect` reads the bundle and says the same.
#[test]
fn a_damaged_binary_partition_is_named_and_hides_nothing() {
    let Some((_dir, _, img)) = attached() else {
        return;
    };
    // One MiB of zeros after the image, recorded as the binary partition in slot 4.
    let len = fs::metadata(&img).unwrap().len();
    let start = len.div_ceil(1 << 20) << 20;
    fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(start + (1 << 20))
        .unwrap();
    patch_entry(&img, 4, 0x96, (start / 512) as u32, 2048);
    let shown = common::ok(vault(&["detach", "--image", s(&img)]));
    assert!(shown.contains("vault bundle: MBR slot 3"), "{shown}");
    assert!(
        shown.contains("the vault binary (MBR slot 4, label VAULT-BIN)"),
        "{shown}"
    );
    assert!(
        shown.contains("is damaged: its partition holds no ISO9660 volume"),
        "{shown}"
    );
    assert!(shown.contains("the bundle is not affected"), "{shown}");
    assert!(!shown.contains("bundle partition"), "{shown}");
    let json: serde_json::Value = serde_json::from_str(&common::ok(vault(&[
        "detach",
        "--image",
        s(&img),
        "--json",
    ])))
    .unwrap();
    assert!(
        json["binary_damaged"]
            .as_str()
            .unwrap()
            .contains("MBR slot 4"),
        "{json}"
    );
    assert_eq!(json["partition"]["slot"], 3);
    let inspected = common::ok(vault(&["inspect", s(&img)]));
    assert!(
        inspected.contains("the vault binary (MBR slot 4"),
        "{inspected}"
    );
    assert!(inspected.contains("vault bundle"), "{inspected}");
}

/// `--iso-file` then a partition attach (and the other way round) is refused: one image, one
/// bundle. An image that carries both anyway is refused by `inspect` and `unlock`, naming
/// both, instead of silently taking one.
#[test]
fn one_image_carries_one_bundle() {
    let Some((dir, iso, b)) = scene(3000) else {
        return;
    };
    let d = dir.path();
    let other = bundle(d, "other", 3000);
    let with_file = d.join("with-file.iso");
    common::ok(attach(&iso, &b, &with_file, &["--iso-file"]));
    let out = d.join("two.img");
    refused(
        attach(&with_file, &other, &out, &[]),
        "already carries a vault bundle as /vault/bundle in its ISO tree",
    );
    assert!(!out.exists());
    let stick = d.join("written-stick.img");
    fs::copy(&with_file, &stick).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&stick)
        .unwrap()
        .set_len(fs::metadata(&with_file).unwrap().len() + (4 << 20))
        .unwrap();
    refused(
        attach_stick(&stick, &other, &[]),
        "already carries a vault bundle as /vault/bundle",
    );
    let with_part = d.join("with-part.img");
    common::ok(attach(&iso, &b, &with_part, &[]));
    refused(
        attach(&with_part, &other, &out, &["--iso-file"]),
        "already carries a vault bundle (MBR slot 3)",
    );
    assert!(!out.exists());

    // Both anyway: the --iso-file image with a bundle partition appended by hand.
    let mut img = fs::read(&with_file).unwrap();
    let start = (img.len() as u64).div_ceil(1 << 20) << 20;
    let bytes = fs::read(&other).unwrap();
    img.resize(start as usize, 0);
    img.extend_from_slice(&bytes);
    img.resize((start as usize + bytes.len()).div_ceil(512) * 512, 0);
    img.extend_from_slice(&vault::media::mbr::trailer(bytes.len() as u64));
    let sectors = ((img.len() as u64 - start) / 512) as u32;
    set_entry(&mut img, 3, 0xDA, (start / 512) as u32, sectors);
    let two = d.join("both.img");
    fs::write(&two, &img).unwrap();
    let pass = d.join("b-src/pass");
    for args in [vec!["inspect", s(&two)], dry_unlock_args(&two, d, &pass)] {
        let err = failed_with(vault(&args), 6, "carries two vault bundles");
        assert!(
            err.contains("MBR slot 3") && err.contains("/vault/bundle"),
            "{err}"
        );
    }
    // detach shows both, and -o keeps only /vault/bundle, which then opens.
    let shown = common::ok(vault(&["detach", "--image", s(&two)]));
    assert!(
        shown.contains("vault bundle: MBR slot 3")
            && shown.contains("/vault/bundle in the ISO tree"),
        "{shown}"
    );
    let one = d.join("one.img");
    common::ok(vault(&["detach", "--image", s(&two), "-o", s(&one)]));
    common::ok(vault(&["inspect", s(&one)]));
}

/// A loop device with no backing file (as a card reader with no card, or a stick pulled out):
/// `inspect` says it is empty, instead of calling it "not a bundle".
#[test]
fn an_empty_device_is_named_as_such() {
    if !rustix::process::geteuid().is_root() || common::require_tool("losetup").is_none() {
        eprintln!("SKIP: needs root and losetup");
        return;
    }
    let o = Command::new("losetup").arg("-f").output().unwrap();
    let dev = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    if !o.status.success() || dev.is_empty() {
        eprintln!("SKIP: no free loop device");
        return;
    }
    failed_with(vault(&["inspect", &dev]), 4, "is empty (0 bytes)");
}
