//! Text a stick or a bundle controls reaches the terminal escaped and bounded: the carried
//! binary's record (`vault inspect IMAGE`, `vault detach --image`), targets with invisible or
//! reordering characters (`inspect`, `unlock`), and a bundle's `created_by` of any length.

mod common;
mod hostile;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{ok, vault_in, FAST_KDF};

/// Everything printed, stdout then stderr.
fn shown(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// No character a terminal acts on or that hides itself, anywhere in `out`.
fn assert_clean(out: &str) {
    for c in out.chars() {
        assert!(
            !vault::escape::needs_escape(c) || c == '\n' || c == '\\',
            "raw U+{:04X} printed: {out:?}",
            c as u32
        );
    }
}

/// The smallest file `attach --vault-binary` takes: a static x86_64 ELF executable header,
/// one PT_LOAD program header, and vault's version marker.
fn fake_static_vault(path: &Path) {
    let mut b = vec![0u8; 64 + 56];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // 64-bit
    b[5] = 1; // little-endian
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86_64
    b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    b[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    b.extend_from_slice(b"\0vault-version:9.9.9\0");
    std::fs::write(path, b).unwrap();
}

fn packed(d: &Path, target: &str) -> PathBuf {
    std::fs::write(d.join("key"), "host key\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        format!(
            "version = 1\n[hosts.h]\n[[hosts.h.entry]]\nsource = \"key\"\ntarget = \"{target}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(d.join("pw"), "correct horse battery staple\n").unwrap();
    let mut args = vec!["pack", "-o", "b.bundle", "--passphrase-file", "pw"];
    args.extend(FAST_KDF);
    ok(vault_in(d, &args));
    d.join("b.bundle")
}

/// The image's record of the carried binary with its `version` line replaced by `version`.
fn forge_record_version(img: &Path, version: &str) {
    let mut bytes = std::fs::read(img).unwrap();
    let magic = b"vault-binary v1\n";
    let at = bytes
        .windows(magic.len())
        .position(|w| w == magic)
        .expect("the record");
    let area = &bytes[at..at + 512];
    let end = area.iter().position(|&b| b == 0).unwrap_or(area.len());
    let old = String::from_utf8(area[..end].to_vec()).unwrap();
    let new: String = old
        .lines()
        .map(|l| {
            if l.starts_with("version ") {
                format!("version {version}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(new.len() <= 512, "the record area is 512 bytes");
    bytes[at..at + new.len()].copy_from_slice(new.as_bytes());
    std::fs::write(img, bytes).unwrap();
}

#[test]
fn a_forged_version_on_the_stick_cannot_draw_over_the_checksum() {
    let Some(_) = common::require_tool("xorriso") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    packed(d, "/etc/ssh/key");
    common::isohybrid(d, "nixos-minimal-25.05-x86_64", "installer.iso").expect("xorriso");
    fake_static_vault(&d.join("vault-static"));
    ok(vault_in(
        d,
        &[
            "attach",
            "--image",
            "installer.iso",
            "--bundle",
            "b.bundle",
            "-o",
            "img",
            "--vault-binary",
            "vault-static",
        ],
    ));
    // Clear the screen, home the cursor, write a reassuring checksum line; hide the rest
    // behind reordering, invisible and line-breaking characters.
    let forged = "9.9.9\x1b[2J\x1b[H\u{9b}2K sha256 0000 (matches)\u{202e}\u{061c}\u{200b}\u{2028}\u{2029}\u{feff}\u{3164}";
    forge_record_version(&d.join("img"), forged);
    for args in [&["inspect", "img"][..], &["detach", "--image", "img"]] {
        let out = shown(&vault_in(d, args));
        assert_clean(&out);
        assert!(
            out.contains(r"9.9.9\x1b[2J\x1b[H\u{9b}2K sha256 0000 (matches)\u{202e}\u{61c}\u{200b}\u{2028}\u{2029}\u{feff}\u{3164}"),
            "{args:?}: {out}"
        );
        // The real checksum is still there, on the same line.
        assert!(out.contains("vault binary: 9.9.9"), "{out}");
    }
}

#[test]
fn invisible_characters_in_targets_are_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // In TOML, \u escapes: an Arabic letter mark, a zero-width space, a line separator, a BOM
    // and a Hangul filler.
    packed(d, r"/etc/ssh/a\u061Cb\u200Bc\u2028d\uFEFFe\u3164f");
    std::fs::create_dir(d.join("mnt")).unwrap();
    let want = r"/etc/ssh/a\u{61c}b\u{200b}c\u{2028}d\u{feff}e\u{3164}f";
    for args in [
        &["inspect", "b.bundle", "--passphrase-file", "pw"][..],
        &[
            "unlock",
            "b.bundle",
            "--root",
            "mnt",
            "--root-not-mountpoint",
            "--passphrase-file",
            "pw",
            "--dry-run",
        ],
    ] {
        let o = vault_in(d, args);
        let out = shown(&o);
        assert!(o.status.success(), "{args:?}: {out}");
        assert_clean(&out);
        assert!(out.contains(want), "{args:?}: {out}");
    }
}

#[test]
fn a_long_created_by_is_cut_with_a_marker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = b"k".to_vec();
    let item = hostile::file_item("/etc/k", &data);
    let mut m = hostile::manifest(vec![item.clone()]);
    let long = format!("vault 1.0\x1b[2J{}", "x".repeat(1 << 20));
    m.created_by = long.clone().into();
    let b = hostile::bundle(&m, &[hostile::Member::for_item(&item, &data)]);
    std::fs::write(d.join("b.bundle"), b).unwrap();
    std::fs::write(d.join("pw"), format!("{}\n", hostile::PASSPHRASE)).unwrap();
    let o = vault_in(d, &["inspect", "b.bundle", "--passphrase-file", "pw"]);
    let out = shown(&o);
    assert!(o.status.success(), "{}", &out[..out.len().min(2000)]);
    assert_clean(&out);
    let line = out
        .lines()
        .find(|l| l.contains("written by"))
        .expect("the written-by line");
    // 16 characters for `vault 1.0\x1b[2J` (13 bytes), then as many x as fit.
    let xs = vault::escape::MAX_SHOWN - 16;
    let prefix = format!(r"vault 1.0\x1b[2J{}", "x".repeat(xs));
    assert_eq!(
        line.trim(),
        format!(
            r"written by {prefix}\…[{} more bytes]",
            long.len() - 13 - xs
        )
    );
}
