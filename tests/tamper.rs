//! A wrong passphrase, a truncated bundle, and single flipped bits in the header and in the
//! first and last payload chunks: each fails with its own error and exit code, and the target
//! tree is byte-identical afterwards.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{vault_bin, FAST_KDF};
use sha2::{Digest, Sha256};

/// Everything about a tree that placement could change: type, mode, owner, size, contents.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            let hash = if m.is_file() {
                hex::encode(Sha256::digest(std::fs::read(e.path()).unwrap()))
            } else {
                String::new()
            };
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (
                rel,
                format!("{:o} {}:{} {} {hash}", m.mode(), m.uid(), m.gid(), m.len()),
            )
        })
        .collect()
}

struct Fixture {
    dir: tempfile::TempDir,
    bundle: Vec<u8>,
    header_len: usize,
}

/// A bundle with an incompressible 300 KiB file, so the payload spans several 64 KiB chunks,
/// and a target root that already holds some files.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let noise = common::incompressible(300 * 1024);
    std::fs::write(d.join("blob"), &noise).unwrap();
    std::fs::write(d.join("key"), "secret key\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[hosts.h]\n[[hosts.h.entry]]\nsource = \"key\"\ntarget = \"/etc/ssh/key\"\n\
         [[hosts.h.entry]]\nsource = \"blob\"\ntarget = \"/var/blob\"\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "right passphrase\n").unwrap();
    std::fs::write(d.join("wrong"), "wrong passphrase\n").unwrap();
    std::fs::create_dir_all(d.join("mnt/etc")).unwrap();
    std::fs::write(d.join("mnt/etc/hostname"), "installer\n").unwrap();
    let mut args = vec![
        "pack".to_owned(),
        "-m".into(),
        d.join("vault.toml").to_string_lossy().into(),
        "-o".into(),
    ];
    args.push(d.join("b").to_string_lossy().into());
    args.extend([
        "--passphrase-file".into(),
        d.join("pw").to_string_lossy().into(),
    ]);
    args.extend(FAST_KDF.iter().map(|s| s.to_string()));
    args.extend(["--level".into(), "1".into()]);
    let o = Command::new(vault_bin()).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bundle = std::fs::read(d.join("b")).unwrap();
    let header_len = vault::bundle::header::parse(&bundle).unwrap().len;
    assert!(
        bundle.len() > header_len + 16 + 3 * 65552,
        "payload must span several chunks: {} bytes",
        bundle.len()
    );
    Fixture {
        dir,
        bundle,
        header_len,
    }
}

impl Fixture {
    fn unlock(&self, bytes: &[u8], pw: &str) -> Output {
        let d = self.dir.path();
        let path = d.join("try.bundle");
        std::fs::write(&path, bytes).unwrap();
        Command::new(vault_bin())
            .args([
                "unlock",
                path.to_str().unwrap(),
                "--root",
                d.join("mnt").to_str().unwrap(),
                "--root-not-mountpoint",
            ])
            .args(["--passphrase-file", d.join(pw).to_str().unwrap()])
            .output()
            .unwrap()
    }

    /// Runs unlock on `bytes` and checks the exit code, that stderr mentions `needle`, and
    /// that the target is untouched.
    fn expect_failure(&self, what: &str, bytes: &[u8], pw: &str, code: i32, needle: &str) {
        let before = snapshot(&self.dir.path().join("mnt"));
        let o = self.unlock(bytes, pw);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{what}: {err}");
        assert!(
            err.contains(needle),
            "{what}: expected {needle:?} in: {err}"
        );
        assert!(
            err.contains("hint:"),
            "{what}: every error says what to do next: {err}"
        );
        assert_eq!(
            snapshot(&self.dir.path().join("mnt")),
            before,
            "{what}: target changed"
        );
    }
}

fn flip(b: &[u8], at: usize) -> Vec<u8> {
    let mut v = b.to_vec();
    v[at] ^= 0x04;
    v
}

#[test]
fn the_intact_bundle_unlocks() {
    let f = fixture();
    let o = f.unlock(&f.bundle.clone(), "pw");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(f.dir.path().join("mnt/etc/ssh/key")).unwrap(),
        b"secret key\n"
    );
}

#[test]
fn wrong_passphrase() {
    let f = fixture();
    f.expect_failure(
        "wrong passphrase",
        &f.bundle,
        "wrong",
        3,
        "wrong passphrase",
    );
}

#[test]
fn truncated() {
    let f = fixture();
    let n = f.bundle.len();
    f.expect_failure(
        "cut in the last chunk",
        &f.bundle[..n - 100],
        "pw",
        4,
        "cut short",
    );
    f.expect_failure(
        "cut at a chunk boundary",
        &f.bundle[..f.header_len + 16 + 65552],
        "pw",
        4,
        "damaged or was tampered with",
    );
    f.expect_failure(
        "cut in the header",
        &f.bundle[..f.header_len - 10],
        "pw",
        4,
        "header",
    );
    f.expect_failure("empty", &[], "pw", 4, "vault bundle");
}

#[test]
fn flipped_bits() {
    let f = fixture();
    let h = f.header_len;
    // The stanza body line (the wrapped file key) reads as a wrong passphrase to the KDF; the
    // grease stanza and the MAC line are caught by the header MAC.
    let mac_line = h - 20;
    f.expect_failure(
        "bit in the header MAC",
        &flip(&f.bundle, mac_line),
        "pw",
        4,
        "header",
    );
    let grease = std::str::from_utf8(&f.bundle[..h])
        .unwrap()
        .rfind("\n-> ")
        .unwrap()
        + 5;
    f.expect_failure(
        "bit in the grease stanza",
        &flip(&f.bundle, grease),
        "pw",
        4,
        "tampered",
    );
    f.expect_failure(
        "bit in the nonce",
        &flip(&f.bundle, h + 3),
        "pw",
        4,
        "authentication",
    );
    f.expect_failure(
        "bit in the first chunk",
        &flip(&f.bundle, h + 16 + 100),
        "pw",
        4,
        "authentication",
    );
    let last = f.bundle.len() - 30;
    f.expect_failure(
        "bit in the last chunk",
        &flip(&f.bundle, last),
        "pw",
        4,
        "authentication",
    );
    f.expect_failure(
        "bit in the version line",
        &flip(&f.bundle, 2),
        "pw",
        4,
        "vault bundle",
    );
}

/// A bundle copied as text (git's `core.autocrlf`, an email client): every LF became CRLF.
/// The error names that and the fix, instead of "not a bundle".
#[test]
fn crlf_line_endings_are_named() {
    let f = fixture();
    let mut crlf = Vec::with_capacity(f.bundle.len() * 2);
    for &b in &f.bundle {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    f.expect_failure("CRLF", &crlf, "pw", 4, "CRLF line endings");
    f.expect_failure("CRLF", &crlf, "pw", 4, "copy it again as a binary file");
}
