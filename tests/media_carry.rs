//! The vault binary a stick carries for installers without vault (docs/MEDIA.md, "The carried
//! vault"): where `vault attach` puts it, that the result is a labelled ISO9660 volume other
//! tools read (blkid, xorriso), what `vault inspect` reports, and the refusals (dynamic binary,
//! wrong architecture, no room), each leaving the input untouched. The binary is the real
//! static build from `scripts/build-static`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::qemu::static_vault;
use sha2::{Digest, Sha256};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn vault(args: &[&str]) -> Output {
    Command::new(common::vault_bin())
        .args(args)
        .output()
        .unwrap()
}

/// Runs `cmd`; asserts success and returns its stdout.
fn run(cmd: &mut Command) -> String {
    common::ok(cmd.output().unwrap())
}

fn refused(o: Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(6), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    assert!(err.contains("hint:"), "no hint in: {err}");
    err
}

fn tools() -> bool {
    ["xorriso", "blkid"]
        .iter()
        .all(|t| common::require_tool(t).is_some())
        && Path::new("/usr/lib/ISOLINUX/isohdpfx.bin").exists()
}

fn sha256(p: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(p).unwrap()))
}

/// A bundle of one file, `blob` with `content`, packed (cheap KDF) from `dir/NAME` to
/// `dir/NAME.vault`.
fn pack(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let src = dir.join(name);
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("blob"), content).unwrap();
    fs::write(
        src.join("vault.toml"),
        "version = 1\n[[entry]]\nsource = \"blob\"\ntarget = \"/etc/blob\"\nmode = \"0600\"\n",
    )
    .unwrap();
    fs::write(src.join("pass"), "correct horse battery staple\n").unwrap();
    let out = dir.join(format!("{name}.vault"));
    let manifest = src.join("vault.toml");
    let pass = src.join("pass");
    let mut args = vec!["pack", "-m", s(&manifest), "-o", s(&out)];
    args.extend(["--passphrase-file", s(&pass)]);
    args.extend(common::FAST_KDF);
    common::ok(vault(&args));
    out
}

/// `--image IMAGE --bundle BUNDLE -o OUT`, the arguments of an attach to an image file.
fn to_image<'a>(image: &'a Path, bundle: &'a Path, out: &'a Path) -> [&'a str; 6] {
    ["--image", s(image), "--bundle", s(bundle), "-o", s(out)]
}

/// `--device STICK --test-file-as-device --yes --bundle BUNDLE`: an attach to a file standing
/// in for a stick.
fn to_stick<'a>(stick: &'a Path, bundle: &'a Path) -> [&'a str; 6] {
    [
        "--device",
        s(stick),
        "--test-file-as-device",
        "--yes",
        "--bundle",
        s(bundle),
    ]
}

/// `vault attach` with `before`, then `target` (see [`to_image`], [`to_stick`]).
fn attach(before: &[&str], target: &[&str]) -> Output {
    attach_with(&common::vault_bin(), before, target)
}

/// [`attach`] run by the binary `bin`.
fn attach_with(bin: &Path, before: &[&str], target: &[&str]) -> Output {
    Command::new(bin)
        .arg("attach")
        .args(before)
        .args(target)
        .output()
        .unwrap()
}

/// A scratch folder with an x86_64 installer image and a small bundle in it; None (skip)
/// without the tools.
fn scene() -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    if !tools() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let iso = make_iso(dir.path(), "nixos-minimal-25.11-x86_64");
    let bundle = pack(dir.path(), "src", b"secret\n");
    Some((dir, iso, bundle))
}

/// An isohybrid image as nixpkgs makes them, with volume label `volid`.
fn make_iso(dir: &Path, volid: &str) -> PathBuf {
    common::isohybrid(dir, volid, &format!("{volid}.iso")).expect("xorriso and isolinux")
}

/// MBR entry `slot`: (type, byte offset, byte length).
fn entry(img: &[u8], slot: usize) -> (u8, u64, u64) {
    let e = &img[446 + 16 * (slot - 1)..446 + 16 * slot];
    (
        e[4],
        u64::from(u32::from_le_bytes(e[8..12].try_into().unwrap())) * 512,
        u64::from(u32::from_le_bytes(e[12..16].try_into().unwrap())) * 512,
    )
}

/// Checks the binary partition of `img` with tools other than vault: blkid sees an ISO9660
/// volume labelled VAULT-BIN, xorriso extracts `/vault` with the binary's exact bytes.
fn check_binary_partition(dir: &Path, img: &Path, slot: usize, binary: &Path) {
    let bytes = fs::read(img).unwrap();
    let (sys, start, len) = entry(&bytes, slot);
    assert_eq!(sys, 0x96, "slot {slot} type");
    assert_eq!(start % (1 << 20), 0);
    assert_eq!(
        start + len,
        bytes.len() as u64,
        "the image ends with the binary partition"
    );
    let part = dir.join("part.iso");
    fs::write(&part, &bytes[start as usize..(start + len) as usize]).unwrap();
    let probe = run(Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(&part));
    assert!(probe.contains("LABEL=VAULT-BIN"), "{probe}");
    assert!(probe.contains("TYPE=iso9660"), "{probe}");
    let got = dir.join("extracted");
    let _ = fs::remove_file(&got);
    run(Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&part)
        .args(["-extract", "/VAULT"])
        .arg(&got));
    assert_eq!(fs::read(&got).unwrap(), fs::read(binary).unwrap());
}

/// The binary partition (slot 4) of `img` starts at the first MiB boundary after the bundle's
/// (slot 3), and holds `binary` (see [`check_binary_partition`]).
fn check_binary_follows_bundle(dir: &Path, img: &Path, binary: &Path) {
    let bytes = fs::read(img).unwrap();
    let (_, start3, len3) = entry(&bytes, 3);
    let (_, start4, _) = entry(&bytes, 4);
    assert_eq!(start4, (start3 + len3).div_ceil(1 << 20) << 20);
    check_binary_partition(dir, img, 4, binary);
}

#[test]
fn attach_carries_the_static_vault_in_a_labelled_iso9660_partition() {
    let Some((dir, iso, b)) = scene() else {
        return;
    };
    let d = dir.path();
    let bin = static_vault();
    let before = fs::read(&iso).unwrap();
    let out = d.join("stick.img");
    let o = common::ok(attach(
        &["--vault-binary", s(&bin)],
        &to_image(&iso, &b, &out),
    ));
    // The SHA-256, and the command to run on the live system, which checks it before it runs
    // the binary (tests/qemu_boot.rs types it into a booted installer).
    assert!(o.contains(&format!("sha256 {}", sha256(&bin))), "{o}");
    assert!(
        o.contains(&format!(
            "on the installer: {}\n",
            vault::media::carry::run_command(&sha256(&bin))
        )),
        "{o}"
    );
    assert!(o.contains("partition 4 (e.g. /dev/sda4)"), "{o}");
    assert_eq!(fs::read(&iso).unwrap(), before, "the input was modified");
    let after = fs::read(&out).unwrap();
    // Within the original image only the entries of slots 3 and 4 changed.
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert!(
        changed.iter().all(|&i| (478..510).contains(&i)),
        "{changed:?}"
    );
    let (sys3, start3, _) = entry(&after, 3);
    assert_eq!(sys3, 0xDA);
    check_binary_follows_bundle(d, &out, &bin);
    // The bundle is found as before.
    let src = vault::media::open_source(&out).unwrap();
    assert_eq!(src.offset, start3);

    // `vault inspect` reports the carried binary: version and SHA-256.
    let i = common::ok(vault(&["inspect", s(&out)]));
    assert!(
        i.contains(&format!(
            "vault binary: {} x86_64",
            env!("CARGO_PKG_VERSION")
        )),
        "{i}"
    );
    assert!(i.contains(&sha256(&bin)), "{i}");
    let j: serde_json::Value =
        serde_json::from_str(&common::ok(vault(&["inspect", "--json", s(&out)]))).unwrap();
    assert_eq!(j["binary"]["sha256"], sha256(&bin));
    assert_eq!(j["binary"]["matches_record"], true);

    // Detach removes both partitions and gives back the original image.
    let plain = d.join("plain.iso");
    common::ok(vault(&["detach", "--image", s(&out), "-o", s(&plain)]));
    assert_eq!(fs::read(&plain).unwrap(), before);

    // A bundle inspected on its own carries nothing; an image attached without a binary says
    // so.
    let i = common::ok(vault(&["inspect", s(&b)]));
    assert!(!i.contains("vault binary"), "{i}");
    let bare = d.join("bare.img");
    common::ok(attach(&["--no-binary"], &to_image(&iso, &b, &bare)));
    let i = common::ok(vault(&["inspect", s(&bare)]));
    assert!(i.contains("vault binary: none"), "{i}");
}

/// Without --vault-binary, a static vault carries itself; --replace keeps carrying it after
/// the resized bundle.
#[test]
fn the_running_static_vault_carries_itself_and_replace_moves_it() {
    let Some((dir, iso, b)) = scene() else {
        return;
    };
    let d = dir.path();
    let bin = static_vault();
    let out = d.join("stick.img");
    let o = common::ok(attach_with(&bin, &["--json"], &to_image(&iso, &b, &out)));
    let j: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(j["binary"]["sha256"], sha256(&bin));
    assert_eq!(j["binary"]["slot"], 4);
    check_binary_partition(d, &out, 4, &bin);

    // A bundle larger by more than the 1 MiB gap: the binary partition moves behind it.
    let mut data = vec![0u8; 3 << 20];
    std::io::Read::read_exact(&mut fs::File::open("/dev/urandom").unwrap(), &mut data).unwrap();
    let big = pack(d, "big", &data);
    let out2 = d.join("stick2.img");
    common::ok(attach_with(
        &bin,
        &["--replace"],
        &to_image(&out, &big, &out2),
    ));
    let (_, _, len3) = entry(&fs::read(&out2).unwrap(), 3);
    assert!(len3 > 3 << 20);
    check_binary_follows_bundle(d, &out2, &bin);
}

#[test]
fn refuses_a_dynamic_binary_a_wrong_architecture_and_no_room() {
    let Some((dir, iso, b)) = scene() else {
        return;
    };
    let d = dir.path();
    let before = fs::read(&iso).unwrap();
    let out = d.join("out.img");
    // Refused, with no output written and `image` as it was.
    let refused_to = |binary: &[&str], image: &Path, needles: &[&str]| {
        let image_before = fs::read(image).unwrap();
        let err = refused(attach(binary, &to_image(image, &b, &out)), needles);
        assert_eq!(
            fs::read(image).unwrap(),
            image_before,
            "the input was modified"
        );
        assert!(!out.exists(), "an output was written");
        err
    };
    // This test's vault is dynamically linked: as the default binary and given explicitly.
    let err = refused_to(
        &[],
        &iso,
        &["dynamically linked", "scripts/build-static", "--no-binary"],
    );
    assert!(
        err.contains(s(&fs::canonicalize(common::vault_bin()).unwrap())),
        "{err}"
    );
    let dynamic = common::vault_bin();
    refused_to(
        &["--vault-binary", s(&dynamic)],
        &iso,
        &["dynamically linked", "scripts/build-static"],
    );
    // Not vault at all.
    let not_elf = d.join("script");
    fs::write(&not_elf, "#!/bin/sh\necho hi\n").unwrap();
    refused_to(
        &["--vault-binary", s(&not_elf)],
        &iso,
        &["not an ELF executable"],
    );

    let bin = static_vault();
    // An aarch64 installer and the x86_64 static build.
    let arm = make_iso(d, "nixos-minimal-25.11-aarch64");
    refused_to(
        &["--vault-binary", s(&bin)],
        &arm,
        &["built for x86_64", "is for aarch64", "aarch64"],
    );

    // No slot: an image whose slots 2 and 4 are taken has room for the bundle (slot 3) only.
    let full = d.join("full.iso");
    let mut img = before.clone();
    for e in [446 + 16, 446 + 48] {
        img[e + 4] = 0x0c;
        img[e + 8..e + 12].copy_from_slice(&1u32.to_le_bytes());
        img[e + 12..e + 16].copy_from_slice(&1u32.to_le_bytes());
    }
    fs::write(&full, &img).unwrap();
    refused_to(
        &["--vault-binary", s(&bin)],
        &full,
        &["no free MBR slot", "--no-binary"],
    );
    assert_eq!(fs::read(&iso).unwrap(), before, "the input was modified");

    // No room: a stick with room for the bundle but not for the binary after it.
    let start = (before.len() as u64).div_ceil(1 << 20) << 20;
    let stick = d.join("stick.img");
    let mut content = before.clone();
    content.resize((start + (1 << 20)) as usize, 0xA5);
    fs::write(&stick, &content).unwrap();
    refused(
        attach(&["--vault-binary", s(&bin)], &to_stick(&stick, &b)),
        &["too small", "--no-binary"],
    );
    assert_eq!(fs::read(&stick).unwrap(), content, "the stick was modified");
    // Without the binary the same stick has room.
    common::ok(attach(&["--no-binary"], &to_stick(&stick, &b)));
}

/// `--device` (on a file standing in for a stick) and `--iso-file` carry the binary too.
#[test]
fn device_and_iso_file_modes_carry_the_binary() {
    let Some((dir, iso, b)) = scene() else {
        return;
    };
    let d = dir.path();
    let bin = static_vault();
    let stick = d.join("stick.img");
    let mut content = fs::read(&iso).unwrap();
    content.resize(content.len() + (64 << 20), 0);
    fs::write(&stick, &content).unwrap();
    let o = common::ok(attach(&["--vault-binary", s(&bin)], &to_stick(&stick, &b)));
    assert!(o.contains(&sha256(&bin)), "{o}");
    let info = vault::media::inspect_image(&stick).unwrap();
    let carried = info.binary.expect("the stick carries vault");
    assert_eq!(carried.sha256, sha256(&bin));
    assert_eq!(carried.matches_record, Some(true));
    // Cut the stick at the binary partition's end, then check it like an image.
    let after = fs::read(&stick).unwrap();
    let (_, start4, len4) = entry(&after, 4);
    let cut = d.join("cut.img");
    fs::write(&cut, &after[..(start4 + len4) as usize]).unwrap();
    check_binary_partition(d, &cut, 4, &bin);

    let out = d.join("file.iso");
    let o = common::ok(attach(
        &["--iso-file", "--vault-binary", s(&bin)],
        &to_image(&iso, &b, &out),
    ));
    assert!(o.contains("sudo /iso/vault/vault unlock"), "{o}");
    // Executable for everyone in the Rock Ridge attributes, so /iso/vault/vault runs.
    let ls = run(Command::new("xorriso")
        .args(["-indev"])
        .arg(&out)
        .args(["-lsl", "/vault/vault"]));
    assert!(ls.contains("-rwxr-xr-x"), "{ls}");
    let i = common::ok(vault(&["inspect", s(&out)]));
    assert!(i.contains("/vault/vault in the ISO tree"), "{i}");
    assert!(i.contains(&sha256(&bin)), "{i}");
}

/// `-o` naming the binary to carry, even with `--force` and through a link, is refused and the
/// binary stays as it was (docs/MEDIA.md: never an input).
#[test]
fn the_output_is_never_the_carried_binary() {
    let Some((dir, iso, b)) = scene() else {
        return;
    };
    let d = dir.path();
    let bin = d.join("vault-static");
    fs::copy(static_vault(), &bin).unwrap();
    let before = fs::read(&bin).unwrap();
    let link = d.join("link");
    fs::hard_link(&bin, &link).unwrap();
    for out in [&bin, &link] {
        for extra in [&[][..], &["--iso-file"][..]] {
            let mut args = vec!["--force", "--vault-binary", s(&bin)];
            args.extend(extra);
            refused(
                attach(&args, &to_image(&iso, &b, out)),
                &["is the vault binary"],
            );
        }
    }
    assert_eq!(fs::read(&bin).unwrap(), before);
}

/// The guides show the command `attach` prints (with a placeholder for the SHA-256), so that
/// what a user types from them checks the binary too.
#[test]
fn the_guides_show_the_checking_command() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, hash) in [
        ("README.md", "SHA256"),
        ("docs/MEDIA.md", "SHA256"),
        ("docs/guide/first-stick.md", "SHA256"),
    ] {
        let text = fs::read_to_string(repo.join(file)).unwrap();
        let command = vault::media::carry::run_command(hash);
        assert!(text.contains(&command), "{file} does not show: {command}");
        for line in text.lines().filter(|l| l.contains("mount -r LABEL=")) {
            assert!(
                line.contains("sha256sum -c"),
                "{file}: unchecked command: {line}"
            );
        }
    }
}
