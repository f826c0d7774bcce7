//! What a `vault rekey` killed with SIGKILL leaves in the repo (its temporaries, beside the
//! files it was re-encrypting) is named by `vault rekey --check` and `--dry-run`, which remove
//! nothing, and removed by the next real run, which says so: a `git add -A` in between would
//! commit them.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use common::vault_in as vault;

const N: usize = 400;

fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".vault-rekey-"))
        .collect()
}

fn encrypt_to(recipient: &str, plain: &[u8]) -> Vec<u8> {
    let r: age::x25519::Recipient = recipient.parse().unwrap();
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).unwrap();
    w.write_all(plain).unwrap();
    w.finish().unwrap();
    out
}

#[test]
fn temporaries_of_a_killed_rekey_are_named_then_swept() {
    if common::require_tool("nix-instantiate").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("repo");
    std::fs::create_dir(&repo).unwrap();
    let old = age::x25519::Identity::generate();
    let new = age::x25519::Identity::generate();
    let key = root.join("old.txt");
    std::fs::write(&key, format!("{}\n", old.to_string().expose_secret())).unwrap();
    for i in 0..N {
        let bytes = encrypt_to(
            &old.to_public().to_string(),
            format!("secret {i}\n").as_bytes(),
        );
        std::fs::write(repo.join(format!("s{i}.age")), bytes).unwrap();
    }
    std::fs::write(
        repo.join("secrets.nix"),
        format!("let k = import ./keys.nix; in builtins.listToAttrs (builtins.genList (i: {{ name = \"s${{toString i}}.age\"; value.publicKeys = k; }}) {N})\n"),
    )
    .unwrap();
    std::fs::write(
        repo.join("keys.nix"),
        format!("[ \"{}\" \"{}\" ]\n", old.to_public(), new.to_public()),
    )
    .unwrap();
    std::fs::write(
        root.join("vault.toml"),
        "version = 1\n[secrets]\nagenix_rules = \"repo/secrets.nix\"\n",
    )
    .unwrap();

    // SIGKILL while the new files are being written beside the old ones.
    let mut child = Command::new(common::vault_bin())
        .args(["rekey", "-j", "1", "-i", key.to_str().unwrap()])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while temps(&repo).len() < 10 && Instant::now() < deadline {
        assert!(child.try_wait().unwrap().is_none(), "rekey finished first");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = temps(&repo);
    assert!(!left.is_empty(), "the killed run left temporaries");

    // --check and --dry-run name them and remove nothing.
    for mode in ["--check", "--dry-run"] {
        let o = vault(root, &["rekey", mode, "-i", key.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{} temporar", left.len())) && err.contains("vault rekey"),
            "{mode}: {err}"
        );
        assert_eq!(temps(&repo).len(), left.len(), "{mode} removed nothing");
    }
    // The next real run sweeps them and says so.
    let o = vault(root, &["rekey", "-i", key.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("removed {} temporar", left.len())),
        "{err}"
    );
    assert!(temps(&repo).is_empty(), "{:?}", temps(&repo));
}
