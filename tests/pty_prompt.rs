//! The passphrase prompts, driven through a real pseudo-terminal: pack asks twice without
//! echo, unlock retries after a wrong passphrase and then succeeds.

mod common;

use std::process::Command;
use std::time::Duration;

use common::vault_bin;
use expectrl::{Eof, Session};

fn session(cmd: Command) -> Session {
    let mut s = Session::spawn(cmd).expect("spawn in a pty");
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    s
}

fn exit_code(s: &mut Session) -> i32 {
    match s.get_process().wait().expect("wait") {
        expectrl::WaitStatus::Exited(_, code) => code,
        other => panic!("vault did not exit normally: {other:?}"),
    }
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

    let mut pack = Command::new(vault_bin());
    pack.args([
        "pack",
        "-m",
        d.join("vault.toml").to_str().unwrap(),
        "-o",
        bundle.to_str().unwrap(),
    ]);
    pack.args(common::FAST_KDF);
    let mut p = session(pack);
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
    unlock.args([
        "unlock",
        bundle.to_str().unwrap(),
        "--root",
        d.join("mnt").to_str().unwrap(),
        "--root-not-mountpoint",
    ]);
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
    std::fs::write(d.join("key"), "k").unwrap();
    std::fs::write(d.join("pw"), "right one\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[[entry]]\nsource = \"key\"\ntarget = \"/k\"\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("mnt")).unwrap();
    let bundle = d.join("b");
    let o = Command::new(vault_bin())
        .args([
            "pack",
            "-m",
            d.join("vault.toml").to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
        ])
        .args(["--passphrase-file", d.join("pw").to_str().unwrap()])
        .args(common::FAST_KDF)
        .output()
        .unwrap();
    assert!(o.status.success());
    let mut unlock = Command::new(vault_bin());
    unlock.args([
        "unlock",
        bundle.to_str().unwrap(),
        "--root",
        d.join("mnt").to_str().unwrap(),
        "--root-not-mountpoint",
    ]);
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
    std::fs::write(d.join("key"), "k").unwrap();
    std::fs::write(d.join("pw"), "right one\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[[entry]]\nsource = \"key\"\ntarget = \"/k\"\n",
    )
    .unwrap();
    std::fs::create_dir(d.join("mnt")).unwrap();
    let bundle = d.join("b");
    let o = Command::new(vault_bin())
        .args([
            "pack",
            "-m",
            d.join("vault.toml").to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
        ])
        .args(["--passphrase-file", d.join("pw").to_str().unwrap()])
        .args(common::FAST_KDF)
        .output()
        .unwrap();
    assert!(o.status.success());
    // The pty starts with echo off: turn it on, as on a console, before vault starts.
    let mut unlock = Command::new("sh");
    unlock.args(["-c", "stty echo && exec \"$0\" \"$@\""]);
    unlock.arg(vault_bin());
    unlock.args([
        "unlock",
        bundle.to_str().unwrap(),
        "--root",
        d.join("mnt").to_str().unwrap(),
        "--root-not-mountpoint",
    ]);
    let mut u = session(unlock);
    u.expect("Passphrase for").unwrap();
    // Ctrl-C, typed at the prompt.
    u.send([3u8]).unwrap();
    let rest = u.expect(Eof).unwrap();
    let shown = String::from_utf8_lossy(rest.as_bytes()).into_owned();
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
    std::fs::write(d.join("key"), "k").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[[entry]]\nsource = \"key\"\ntarget = \"/k\"\n",
    )
    .unwrap();
    let mut pack = Command::new(vault_bin());
    pack.args([
        "pack",
        "-m",
        d.join("vault.toml").to_str().unwrap(),
        "-o",
        d.join("b").to_str().unwrap(),
    ]);
    pack.args(common::FAST_KDF);
    let mut p = session(pack);
    p.expect("New passphrase for").unwrap();
    p.send_line("").unwrap();
    // Everything up to the end: the error and its hint.
    let rest = p.expect(Eof).unwrap();
    let shown = String::from_utf8_lossy(rest.as_bytes()).into_owned();
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
    std::fs::write(d.join("key"), "k").unwrap();
    std::fs::write(d.join("pw"), "typed at once\n").unwrap();
    std::fs::write(
        d.join("vault.toml"),
        "version = 1\n[[entry]]\nsource = \"key\"\ntarget = \"/k\"\n",
    )
    .unwrap();
    let bundle = d.join("b");
    let o = Command::new(vault_bin())
        .args(["pack", "-m", d.join("vault.toml").to_str().unwrap()])
        .args(["-o", bundle.to_str().unwrap()])
        .args(["--passphrase-file", d.join("pw").to_str().unwrap()])
        .args(common::FAST_KDF)
        .output()
        .unwrap();
    assert!(o.status.success());
    // The answer is written the moment the prompt's first bytes arrive, as a fast typist or a
    // paste would: echo must already be off. A race, so many runs.
    let mut echoed = 0;
    const RUNS: usize = 30;
    for _ in 0..RUNS {
        let mut unlock = Command::new("sh");
        unlock.args(["-c", "stty echo && exec \"$0\" \"$@\""]);
        unlock.arg(vault_bin());
        unlock.args(["unlock", bundle.to_str().unwrap(), "--dry-run"]);
        unlock.args(["--root", d.to_str().unwrap(), "--root-not-mountpoint"]);
        let mut u = session(unlock);
        u.expect("Passphrase").unwrap();
        u.send_line("typed at once").unwrap();
        let rest = u.expect(Eof).unwrap();
        let shown = String::from_utf8_lossy(rest.as_bytes()).into_owned();
        assert_eq!(exit_code(&mut u), 0, "{shown}");
        echoed += usize::from(shown.contains("typed at once"));
    }
    assert_eq!(
        echoed, 0,
        "the passphrase was echoed in {echoed} of {RUNS} runs"
    );
}
