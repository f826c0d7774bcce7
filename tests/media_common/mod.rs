//! Shared by the installer-media tests (`media.rs`, `hostile_media.rs`, `media_faults.rs`):
//! real bundles from `vault pack`, a real isohybrid image from `xorriso`, hand-made MBRs.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::common;

pub fn vault(args: &[&str]) -> Output {
    Command::new(common::vault_bin())
        .args(args)
        .output()
        .unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `vault attach --no-binary --image IMAGE --bundle BUNDLE -o OUT` and `extra` flags.
pub fn attach(image: &Path, bundle: &Path, out: &Path, extra: &[&str]) -> Output {
    vault(&attach_args(image, bundle, out, extra))
}

/// The arguments of [`attach`].
pub fn attach_args<'a>(
    image: &'a Path,
    bundle: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "attach",
        "--no-binary",
        "--image",
        s(image),
        "--bundle",
        s(bundle),
    ];
    args.extend(["-o", s(out)]);
    args.extend_from_slice(extra);
    args
}

/// `vault attach --no-binary` of `bundle` onto `stick`, a file standing in for a device, and
/// `extra` flags.
pub fn attach_stick(stick: &Path, bundle: &Path, extra: &[&str]) -> Output {
    vault(&stick_args(stick, bundle, extra))
}

/// The arguments of [`attach_stick`].
pub fn stick_args<'a>(stick: &'a Path, bundle: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "attach",
        "--no-binary",
        "--device",
        s(stick),
        "--bundle",
        s(bundle),
    ];
    args.extend(["--yes", "--test-file-as-device"]);
    args.extend_from_slice(extra);
    args
}

/// `vault unlock BUNDLE --dry-run` into `root` with the passphrase file `pass` (a
/// [`bundle`] NAME has it at `NAME-src/pass`).
pub fn dry_unlock_args<'a>(bundle: &'a Path, root: &'a Path, pass: &'a Path) -> Vec<&'a str> {
    let mut args = vec!["unlock", s(bundle), "--dry-run", "--root", s(root)];
    args.extend(["--root-not-mountpoint", "--passphrase-file", s(pass)]);
    args
}

/// Asserts exit 6 with `needle` in the message and a hint.
pub fn refused(o: Output, needle: &str) {
    failed_with(o, 6, needle);
}

/// Asserts exit `code` with `needle` in the message and a hint; returns stderr.
pub fn failed_with(o: Output, code: i32, needle: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(err.contains("hint:"), "no hint in: {err}");
    err
}

/// A scratch folder with the installer image and a bundle `b` of `size` random bytes: (folder,
/// image, bundle); None (skip) without xorriso.
pub fn scene(size: usize) -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    let iso = iso(dir.path())?;
    let b = bundle(dir.path(), "b", size);
    Some((dir, iso, b))
}

/// A bundle packed from `size` random (incompressible) bytes, passphrase [`PASSPHRASE`].
pub fn bundle(dir: &Path, name: &str, size: usize) -> PathBuf {
    let src = dir.join(format!("{name}-src"));
    fs::create_dir_all(&src).unwrap();
    let mut data = vec![0u8; size];
    std::io::Read::read_exact(&mut fs::File::open("/dev/urandom").unwrap(), &mut data).unwrap();
    fs::write(src.join("blob"), data).unwrap();
    fs::write(
        src.join("vault.toml"),
        "version = 1\n[[entry]]\nsource = \"blob\"\ntarget = \"/etc/blob\"\nmode = \"0600\"\n",
    )
    .unwrap();
    fs::write(src.join("pass"), format!("{PASSPHRASE}\n")).unwrap();
    let out = dir.join(format!("{name}.vault"));
    let mut args = vec![
        "pack",
        "-m",
        s(&src.join("vault.toml")).to_owned().leak(),
        "-o",
        s(&out).to_owned().leak(),
        "--passphrase-file",
        s(&src.join("pass")).to_owned().leak(),
    ];
    args.extend(common::FAST_KDF);
    common::ok(vault(&args));
    out
}

pub const PASSPHRASE: &str = "correct horse battery staple";

/// A small isohybrid image as nixpkgs makes them (isolinux, -isohybrid-mbr).
pub fn iso(dir: &Path) -> Option<PathBuf> {
    common::isohybrid(dir, "nixos-minimal-25.05-x86_64", "installer.iso")
}

/// A 4 MiB image with an MBR holding `entries` (slot, type, start LBA, sectors).
pub fn raw_image(path: &Path, entries: &[(usize, u8, u32, u32)]) {
    let mut img = vec![0u8; 4 << 20];
    for &(slot, sys, start, sectors) in entries {
        set_entry(&mut img, slot, sys, start, sectors);
    }
    img[510] = 0x55;
    img[511] = 0xAA;
    fs::write(path, img).unwrap();
}

/// Writes MBR entry `slot` (1..=4) of the image bytes `img`.
pub fn set_entry(img: &mut [u8], slot: usize, sys: u8, start: u32, sectors: u32) {
    let e = 446 + 16 * (slot - 1);
    img[e + 4] = sys;
    img[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
    img[e + 12..e + 16].copy_from_slice(&sectors.to_le_bytes());
}

/// MBR entry `slot` of the file `img`: (type, start LBA, sectors).
pub fn entry(img: &Path, slot: usize) -> (u8, u32, u32) {
    let b = fs::read(img).unwrap();
    let e = &b[446 + 16 * (slot - 1)..446 + 16 * slot];
    (
        e[4],
        u32::from_le_bytes(e[8..12].try_into().unwrap()),
        u32::from_le_bytes(e[12..16].try_into().unwrap()),
    )
}

/// Rewrites MBR entry `slot` of the file `img` in place.
pub fn patch_entry(img: &Path, slot: usize, sys: u8, start: u32, sectors: u32) {
    let mut b = fs::read(img).unwrap();
    set_entry(&mut b, slot, sys, start, sectors);
    fs::write(img, b).unwrap();
}

/// Files in `dir` whose names mark them as vault temporaries.
pub fn temporaries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(".vault-") || n.contains(".vault-") && n.ends_with(".tmp")
        })
        .map(|e| e.path())
        .collect()
}
