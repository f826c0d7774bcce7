//! `vault pack` as a new user meets it: `--kdf-calibrate` never chooses settings the next
//! check refuses; a private key placed where others can read it is refused (group: warned);
//! a passphrase refused as too weak on a terminal is asked again, not the end of the run.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{vault_bin, vault_in, FAST_KDF};
use expectrl::{Eof, Session};

/// Five random words: strong at the default Argon2id settings.
const STRONG: &str = "tundra melon vortex quill saffron";

fn shown(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn setup(d: &Path, key: &str, mode: &str) {
    std::fs::write(d.join("key"), key).unwrap();
    std::fs::set_permissions(d.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(d.join("pw"), format!("{STRONG}\n")).unwrap();
    std::fs::write(
        d.join("vault.toml"),
        format!("version = 1\n[hosts.laptop]\n[[hosts.laptop.entry]]\nsource = \"key\"\ntarget = \"/etc/ssh/ssh_host_ed25519_key\"\nmode = \"{mode}\"\n"),
    )
    .unwrap();
}

const OPENSSH_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";

/// The KDF parameters `vault inspect --json` reads from a bundle's header.
fn kdf_of(d: &Path, bundle: &str) -> (u64, u64) {
    let o = vault_in(d, &["inspect", bundle, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect --json");
    (
        v["kdf"]["memory_kib"].as_u64().unwrap(),
        v["kdf"]["iterations"].as_u64().unwrap(),
    )
}

/// `--kdf-calibrate 2 --target-memory 2048` (and a shorter time) packs with settings at least
/// as strong as the default, instead of choosing weaker ones and refusing them.
#[test]
fn calibration_never_chooses_what_pack_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d, "not a key\n", "0600");
    for secs in ["2", "0.5"] {
        let out = format!("b{secs}.bundle");
        let o = vault_in(
            d,
            &[
                "pack",
                "-o",
                &out,
                "--passphrase-file",
                "pw",
                "--kdf-calibrate",
                secs,
                "--target-memory",
                "2048",
            ],
        );
        assert!(o.status.success(), "--kdf-calibrate {secs}: {}", shown(&o));
        let (m, t) = kdf_of(d, &out);
        // The default: 1 GiB × 3 passes (docs/CLI.md).
        assert!(m >= 1 << 20 && m * t >= 3 << 20, "{secs}: {m} KiB × {t}");
    }
}

/// A private key is a private key wherever it lands: others may not read it.
#[test]
fn a_private_key_entry_others_can_read_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d, OPENSSH_KEY, "0777");
    let mut args = vec!["pack", "-o", "b.bundle", "--passphrase-file", "pw"];
    args.extend_from_slice(FAST_KDF);
    let o = vault_in(d, &args);
    let text = shown(&o);
    assert_eq!(o.status.code(), Some(6), "{text}");
    assert!(text.contains("/etc/ssh/ssh_host_ed25519_key"), "{text}");
    assert!(text.contains("0777"), "{text}");
    assert!(text.contains("mode = \"0600\""), "says the fix: {text}");
    assert!(!d.join("b.bundle").exists());
    // Group-readable: packed, with a warning naming the entry.
    setup(d, OPENSSH_KEY, "0640");
    let o = vault_in(d, &args);
    let text = shown(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("warning:") && text.contains("0640"), "{text}");
    // Not a key (a public key, a config file): no word about it.
    std::fs::remove_file(d.join("b.bundle")).unwrap();
    setup(
        d,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL0idNvgGiucWgup/mP78zyC23uFjYq0evcWdjGQUaBH\n",
        "0644",
    );
    let o = vault_in(d, &args);
    assert!(o.status.success(), "{}", shown(&o));
    assert!(!shown(&o).contains("private key"), "{}", shown(&o));
    // An age identity file is a private key too.
    std::fs::remove_file(d.join("b.bundle")).unwrap();
    setup(
        d,
        "# created: 2024-01-01\nAGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n",
        "0604",
    );
    let o = vault_in(d, &args);
    assert_eq!(o.status.code(), Some(6), "{}", shown(&o));
}

/// On a terminal, a passphrase below the threshold is refused with the reason and asked for
/// again; a strong one then packs. No bundle until then, and the weak one never shown.
#[test]
fn a_weak_typed_passphrase_is_asked_again() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    setup(d, "not a key\n", "0600");
    let mut c = Command::new(vault_bin());
    c.current_dir(d).args(["pack", "-o", "b.bundle"]);
    let mut p = Session::spawn(c).expect("spawn in a pty");
    p.set_expect_timeout(Some(Duration::from_secs(120)));
    let mut seen = Vec::new();
    for pass in ["hunter2", STRONG] {
        seen.extend_from_slice(p.expect("New passphrase for").unwrap().as_bytes());
        p.send_line(pass).unwrap();
        seen.extend_from_slice(p.expect("Repeat it:").unwrap().as_bytes());
        p.send_line(pass).unwrap();
    }
    seen.extend_from_slice(p.expect(Eof).unwrap().as_bytes());
    let code = match p.get_process().wait().expect("wait") {
        expectrl::WaitStatus::Exited(_, code) => code,
        other => panic!("vault did not exit normally: {other:?}"),
    };
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("too weak"), "{text}");
    assert!(text.contains("Packed 1 file"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(d.join("b.bundle").exists());
}
