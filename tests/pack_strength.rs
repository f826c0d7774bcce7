//! `vault pack` estimates what guessing the passphrase would cost at the chosen Argon2id
//! settings, prints it, and refuses a passphrase below the threshold unless
//! `--weak-passphrase`. The passphrase itself never appears in what vault prints, typed or read
//! from a file.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{vault_bin, vault_in};
use expectrl::{Eof, Session};

/// zxcvbn puts this at about 10^13.5 guesses: above the threshold at 64 MiB × 3 passes, below it
/// at 8 MiB × 1 pass (docs/SECURITY.md, "Passphrase strength").
const MEDIUM: &str = "plinth quokka 9";
/// A top-100 password.
const WEAK: &str = "hunter2";
/// Cheap settings at which a medium passphrase is too weak.
const CHEAP: &[&str] = common::CHEAP_KDF;
/// Settings with 24 times the memory traffic per guess, still cheap enough for a test.
const DEARER: &[&str] = &[
    "--weak-kdf",
    "--kdf-memory",
    "64",
    "--kdf-iterations",
    "3",
    "--kdf-parallelism",
    "1",
];

fn setup(d: &Path, pass: &str) {
    std::fs::write(d.join("key"), "host key\n").unwrap();
    std::fs::write(d.join("pw"), format!("{pass}\n")).unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[hosts.laptop]\n[[hosts.laptop.entry]]\nsource = \"key\"\ntarget = \"/etc/ssh/key\"\n",
    )
    .unwrap();
}

fn pack(d: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["pack", "--passphrase-file", "pw", "-o", "b.bundle"];
    args.extend_from_slice(extra);
    vault_in(d, &args)
}

/// stdout and stderr together.
fn shown(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_not_shown(text: &str, pass: &str) {
    assert!(!text.contains(pass), "the passphrase was printed:\n{text}");
    for word in pass.split_whitespace().filter(|w| w.len() > 4) {
        assert!(
            !text.contains(word),
            "a passphrase word was printed:\n{text}"
        );
    }
}

#[test]
fn a_weak_passphrase_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, WEAK);
    let o = pack(d, &[]);
    let text = shown(&o);
    assert_eq!(o.status.code(), Some(6), "{text}");
    assert!(text.contains("too weak"), "{text}");
    assert!(text.contains("--weak-passphrase"), "{text}");
    assert!(text.contains("GPU"), "the cost is printed:\n{text}");
    assert!(!d.join("b.bundle").exists());
    assert_not_shown(&text, WEAK);
}

#[test]
fn weak_passphrase_accepts_it_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, WEAK);
    let mut args = CHEAP.to_vec();
    args.push("--weak-passphrase");
    let o = pack(d, &args);
    let text = shown(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("warning: weak passphrase (--weak-passphrase)"),
        "{text}"
    );
    assert!(d.join("b.bundle").exists());
    assert_not_shown(&text, WEAK);
}

#[test]
fn the_threshold_depends_on_the_argon2id_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, MEDIUM);
    let o = pack(d, CHEAP);
    let text = shown(&o);
    assert_eq!(o.status.code(), Some(6), "{text}");
    assert!(text.contains("too weak"), "{text}");
    assert_not_shown(&text, MEDIUM);

    let mut args = DEARER.to_vec();
    args.push("--json");
    let o = pack(d, &args);
    let text = shown(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("Passphrase strength: about 10^"), "{text}");
    assert!(!text.contains("weak passphrase"), "{text}");
    assert_not_shown(&text, MEDIUM);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &v["passphrase_strength"];
    assert!(s["gpu_years"].as_f64().unwrap() >= 100.0, "{v}");
    assert!(s["guesses_log10"].as_f64().unwrap() > 12.0, "{v}");
    assert!(s["zxcvbn_score"].is_u64(), "{v}");
}

#[test]
fn a_host_name_makes_a_passphrase_weaker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Strong enough on its own at these settings, but built from the host's name.
    let pass = "zorbulaxquintessa zorbulaxquintessa";
    setup(d, pass);
    common::ok(pack(d, DEARER));
    std::fs::remove_file(d.join("b.bundle")).unwrap();
    let toml = std::fs::read_to_string(d.join("vault.toml")).unwrap();
    std::fs::write(
        d.join("vault.toml"),
        toml.replace("laptop", "zorbulaxquintessa"),
    )
    .unwrap();
    let o = pack(d, DEARER);
    let text = shown(&o);
    assert_eq!(o.status.code(), Some(6), "{text}");
    assert_not_shown(&text, pass);
}

/// Runs `vault pack` in a real pty, types `pass` twice (`tries` times: a passphrase refused as
/// too weak is asked for again, three times in all), returns everything the terminal showed
/// and the exit code.
fn pack_typed(d: &Path, pass: &str, tries: usize, extra: &[&str]) -> (String, i32) {
    let mut c = Command::new(vault_bin());
    c.current_dir(d)
        .args(["pack", "-o", "b.bundle"])
        .args(extra);
    let mut p = Session::spawn(c).expect("spawn in a pty");
    p.set_expect_timeout(Some(Duration::from_secs(60)));
    let mut seen = Vec::new();
    for _ in 0..tries {
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
    (String::from_utf8_lossy(&seen).into_owned(), code)
}

#[test]
fn a_typed_passphrase_is_estimated_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, "unused");
    let (text, code) = pack_typed(d, MEDIUM, 3, CHEAP);
    assert_eq!(code, 6, "{text}");
    assert!(text.contains("too weak"), "{text}");
    assert!(text.contains("attempt 3 of 3"), "asked again: {text}");
    assert!(!d.join("b.bundle").exists());
    assert_not_shown(&text, MEDIUM);

    let (text, code) = pack_typed(d, MEDIUM, 1, DEARER);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Passphrase strength: about 10^"), "{text}");
    assert!(text.contains("Packed 1 file"), "{text}");
    assert_not_shown(&text, MEDIUM);
}

/// Passphrases zxcvbn alone rates above the threshold at the default settings, that an attacker
/// tries early: well-known phrases (spaced, joined, capitalised) and keyboard walks on layouts
/// other than QWERTY (QWERTZ, AZERTY, Colemak). Refused before any key derivation.
#[test]
fn well_known_phrases_and_walks_on_other_layouts_are_refused() {
    for pass in [
        "correcthorsebatterystaple",
        "correct horse battery staple",
        "Correct-Horse-Battery-Staple",
        "the quick brown fox jumps over the lazy dog",
        "qayxswedcvfrtgbnhz",
        "qwertzuiopasdfghjklyxcvbnm",
        "aqwxszedcvfrtgbnhy",
        "arstdhneiozxcvkm",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        setup(d, pass);
        let o = pack(d, &[]);
        let text = shown(&o);
        assert_eq!(o.status.code(), Some(6), "{pass:?}: {text}");
        assert!(text.contains("too weak"), "{pass:?}: {text}");
        assert!(!d.join("b.bundle").exists(), "{pass:?}");
        assert_not_shown(&text, pass);
    }
}
