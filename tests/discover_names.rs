//! Discovery prints the names of files it found on the installer media; a file name is
//! untrusted (whoever made the stick chose it), so it is printed escaped, never raw.

mod common;

use std::path::Path;
use std::process::Command;

use common::vault_bin;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `script` in a private mount namespace with a tmpfs on `/iso` holding `files` (name,
/// contents). `/iso` is created for the run when missing, and removed afterwards.
fn with_iso(files: &[(&str, &[u8])], script: &str) -> Option<String> {
    if !is_root() || Path::new("/iso").exists() {
        eprintln!("SKIP: needs root and no /iso on this machine");
        return None;
    }
    let Some(unshare) = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("SKIP: unshare not found");
        return None;
    };
    let src = tempfile::tempdir().unwrap();
    for (name, data) in files {
        std::fs::write(src.path().join(name), data).unwrap();
    }
    std::fs::create_dir("/iso").unwrap();
    let full = format!(
        "set -e\nmount -t tmpfs tmpfs /iso\nmkdir /iso/vault\ncp -a {src}/. /iso/vault/\n\
         V={vault}\n{script}",
        src = src.path().display(),
        vault = vault_bin().display(),
    );
    let o = Command::new(unshare)
        .args(["--mount", "--propagation", "private", "sh", "-c", &full])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir("/iso");
    let mut out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(&o.stderr));
    Some(out)
}

const EVIL: &str = "evil\x1b]0;owned\x07\x1b[2J.bundle";

const UNLOCK: &str =
    "$V unlock --dry-run --root /iso --root-not-mountpoint --passphrase-file /iso/vault/pw </dev/null || true\n";

fn bundle() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/small.bundle")).unwrap()
}

/// One test, not two: both would mount on the same `/iso`.
#[test]
fn found_file_names_are_printed_escaped() {
    let b = bundle();
    // One bundle: `detach --discover` lists it, `unlock` says "Found a bundle: …" and then
    // refuses the wrong passphrase.
    let Some(out) = with_iso(
        &[(EVIL, &b), ("pw", b"wrong\n")],
        &format!("$V detach --discover || true\n{UNLOCK}"),
    ) else {
        return;
    };
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(out.contains(r"evil\x1b]0;owned\x07\x1b[2J.bundle"), "{out}");
    assert!(out.contains("Found a bundle: "), "{out}");

    // Two bundles and no terminal: the refusal lists both.
    let Some(out) = with_iso(
        &[(EVIL, &b), ("plain.bundle", &b), ("pw", b"wrong\n")],
        UNLOCK,
    ) else {
        return;
    };
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(out.contains("plain.bundle"), "{out}");
    assert!(out.contains(r"evil\x1b]0;owned\x07\x1b[2J.bundle"), "{out}");
}
