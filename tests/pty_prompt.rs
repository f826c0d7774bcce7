//! The passphrase prompts, driven through a real pseudo-terminal: pack asks twice without
//! echo, unlock retries after a wrong passphrase and then succeeds.

mod common;

use std::path::Path;
use std::process::Command;

use common::pty::{exit_code, session, with_echo_on};
use common::vault_bin;
use expectrl::{Eof, Session};

/// `vault unlock BUNDLE --root ROOT --root-not-mountpoint`, arguments as strings.
fn unlock_args<'a>(bundle: &'a Path, root: &'a Path) -> [&'a str; 5] {
    let s = |p: &'a Path| p.to_str().unwrap();
    [
        "unlock",
        s(bundle),
        "--root",
        s(root),
        "--root-not-mountpoint",
    ]
}

/// `pack` of `d/vault.toml` into `d/b`, asking for the passphrase.
fn pack_asking(d: &Path) -> Command {
    let mut pack = Command::new(vault_bin());
    pack.args(["pack", "-m", "vault.toml", "-o", "b"])
        .args(common::FAST_KDF)
        .current_dir(d);
    pack
}

/// Everything up to the end of what the session shows.
fn rest(s: &mut Session) -> String {
    String::from_utf8_lossy(s.expect(Eof).unwrap().as_bytes()).into_owned()
}

#[test]
fn pack_then_unlock_with_typed_passphrases() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("key"), "host key\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[hosts.h]\n[[hosts.h.entry]]\nsource = \"key\"\ntarget = \"/etc/ssh/key\"\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("mnt")).unwrap();
    let bundle = d.join("b");

    let mut p = session(pack_asking(d));
    // Everything the terminal showed, to check that no typed passphrase was echoed.
    let mut seen = Vec::new();
    let mut expect = |p: &mut Session, what: &str| {
        let c = p.expect(what).unwrap();
        seen.extend_from_slice(c.as_bytes());
    };
    expect(&mut p, "New passphrase for");
    p.send_line("typed secret words").unwrap();
    expect(&mut p, "Repeat it:");
    p.send_line("different words").unwrap();
    expect(&mut p, "differ; try again");
    expect(&mut p, "New passphrase for");
    p.send_line("typed secret words").unwrap();
    expect(&mut p, "Repeat it:");
    p.send_line("typed secret words").unwrap();
    // Eof matches the whole rest of the output: it is in as_bytes(), not before().
    seen.extend_from_slice(p.expect(Eof).unwrap().as_bytes());
    let shown = String::from_utf8_lossy(&seen).into_owned();
    assert!(shown.contains("Repeat it:"), "{shown}");
    assert!(
        !shown.contains("typed secret words") && !shown.contains("different words"),
        "the passphrase was echoed: {shown}"
    );
    assert_eq!(exit_code(&mut p), 0, "{shown}");
    assert!(bundle.exists());

    let mut unlock = Command::new(vault_bin());
    unlock.args(unlock_args(&bundle, &d.join("mnt")));
    let mut u = session(unlock);
    u.expect("Passphrase for").unwrap();
    u.send_line("not it").unwrap();
    u.expect("wrong passphrase, try again (attempt 2 of 3)")
        .unwrap();
    u.expect("Passphrase for").unwrap();
    u.send_line("typed secret words").unwrap();
    u.expect("Unlocked").unwrap();
    u.expect(Eof).unwrap();
    assert_eq!(exit_code(&mut u), 0);
    assert_eq!(
        std::fs::read(d.join("mnt/etc/ssh/key")).unwrap(),
        b"host key\n"
    );
}

#[test]
fn three_wrong_passphrases_exit_3_and_place_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bundle = common::one_file_bundle(d, "right one");
    let mut unlock = Command::new(vault_bin());
    unlock.args(unlock_args(&bundle, &d.join("mnt")));
    let mut u = session(unlock);
    for attempt in 1..=3 {
        u.expect("Passphrase for").unwrap();
        u.send_line(format!("wrong {attempt}")).unwrap();
    }
    u.expect("wrong passphrase for").unwrap();
    u.expect(Eof).unwrap();
    assert_eq!(exit_code(&mut u), 3);
    assert_eq!(std::fs::read_dir(d.join("mnt")).unwrap().count(), 0);
}

#[test]
fn ctrl_c_at_the_passphrase_prompt_exits_130_and_restores_echo() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bundle = common::one_file_bundle(d, "right one");
    // The pty starts with echo off: turn it on, as on a console, before vault starts.
    let mut u = session(with_echo_on(
        &vault_bin(),
        &unlock_args(&bundle, &d.join("mnt")),
    ));
    u.expect("Passphrase for").unwrap();
    // Ctrl-C, typed at the prompt.
    u.send([3u8]).unwrap();
    let shown = rest(&mut u);
    assert_eq!(exit_code(&mut u), 130, "{shown}");
    assert!(shown.contains("interrupted by SIGINT"), "{shown}");
    assert_eq!(std::fs::read_dir(d.join("mnt")).unwrap().count(), 0);
    // Echo is back on the terminal vault left.
    assert!(u.get_process().get_echo().unwrap(), "echo left off");
}

#[test]
fn an_empty_passphrase_at_the_terminal_gets_a_hint_about_typing_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::one_file_manifest(d);
    let mut p = session(pack_asking(d));
    p.expect("New passphrase for").unwrap();
    p.send_line("").unwrap();
    // Everything up to the end: the error and its hint.
    let shown = rest(&mut p);
    assert_ne!(exit_code(&mut p), 0, "{shown}");
    assert!(shown.contains("empty"), "{shown}");
    assert!(shown.contains("hint:"), "{shown}");
    assert!(!shown.contains("run in a terminal"), "{shown}");
    assert!(!d.join("b").exists());
}

#[test]
fn a_passphrase_typed_as_the_prompt_appears_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bundle = common::one_file_bundle(d, "typed at once");
    // The answer is written the moment the prompt's first bytes arrive, as a fast typist or a
    // paste would: echo must already be off. A race, so many runs.
    let mut echoed = 0;
    const RUNS: usize = 30;
    for _ in 0..RUNS {
        let args = [&unlock_args(&bundle, d)[..], &["--dry-run"]].concat();
        let mut u = session(with_echo_on(&vault_bin(), &args));
        u.expect("Passphrase").unwrap();
        u.send_line("typed at once").unwrap();
        let shown = rest(&mut u);
        assert_eq!(exit_code(&mut u), 0, "{shown}");
        echoed += usize::from(shown.contains("typed at once"));
    }
    assert_eq!(
        echoed, 0,
        "the passphrase was echoed in {echoed} of {RUNS} runs"
    );
}
