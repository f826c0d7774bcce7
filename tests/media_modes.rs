//! Files `vault attach` and `vault detach` write carry the bundle (attach) or came from an
//! image that carried one: they are created 0600, like the bundle, never readable by others
//! even for a moment.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{ok, vault_bin};

fn vault(args: &[&str]) -> std::process::Output {
    Command::new(vault_bin()).args(args).output().unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn attached_and_detached_images_are_0600() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n);
    fs::write(d("blob"), b"secret").unwrap();
    fs::write(d("pw"), "correct horse battery staple\n").unwrap();
    fs::write(
        d("vault.toml"),
        "version = 1\n[[entry]]\nsource = \"blob\"\ntarget = \"/etc/blob\"\n",
    )
    .unwrap();
    let mut args = vec![
        "pack",
        "-m",
        d("vault.toml").to_str().unwrap().to_owned().leak(),
        "-o",
        d("b.vault").to_str().unwrap().to_owned().leak(),
        "--passphrase-file",
        d("pw").to_str().unwrap().to_owned().leak(),
    ];
    args.extend(common::FAST_KDF);
    ok(vault(&args));
    assert_eq!(mode(&d("b.vault")), 0o600);
    // A 4 MiB image with an MBR and one partition: an installer image as far as attach cares.
    let mut img = vec![0u8; 4 << 20];
    img[446 + 4] = 0x83;
    img[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
    img[446 + 12..446 + 16].copy_from_slice(&1024u32.to_le_bytes());
    img[510] = 0x55;
    img[511] = 0xAA;
    fs::write(d("in.img"), img).unwrap();
    fs::set_permissions(d("in.img"), fs::Permissions::from_mode(0o644)).unwrap();
    let s = |n: &str| d(n).to_str().unwrap().to_owned();
    ok(vault(&[
        "attach",
        "--no-binary",
        "--image",
        &s("in.img"),
        "--bundle",
        &s("b.vault"),
        "-o",
        &s("out.img"),
    ]));
    assert_eq!(mode(&d("out.img")), 0o600, "attach output");
    ok(vault(&[
        "detach",
        "--image",
        &s("out.img"),
        "-o",
        &s("plain.img"),
    ]));
    assert_eq!(mode(&d("plain.img")), 0o600, "detach output");
}
